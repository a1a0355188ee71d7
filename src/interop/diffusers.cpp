// diffusers UNet2DModel ↔ libddpm: names, config.json, scheduler config.
//
// Time embedding: diffusers computes [sin f_i t | cos f_i t] (flip_sin_to_cos = false) or
// [cos | sin] with f_i = exp(−ln 10⁴·i/(half − freq_shift)); libddpm's own interleaved layout
// [sin f_0 t, cos f_0 t, ...] with shift 0 is the same function after permuting the input
// columns of the first time-MLP layer, so such models export exactly (up to float rounding of
// the embedding) with "_libddpm_time_embedding": "interleaved" in config.json (diffusers ignores
// keys starting with "_"); importing undoes the permutation, so the round trip is bit-exact.
#include "ddpm/interop/diffusers.hpp"
#include "interop/diffusers_json.hpp"

#include <ATen/ATen.h>

#include <filesystem>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "ddpm/io/atomic_file.hpp"
#include "ddpm/io/safetensors.hpp"
#include "ddpm/io/read_file.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/version.hpp"

namespace fs = std::filesystem;

namespace ddpm::interop {

namespace {

const char* kInterleavedKey = "_libddpm_time_embedding";

std::string read_text(const std::string& path) {
  return io::read_regular_file(path, "config file", std::uint64_t{16} << 20);
}

json::Value read_json(const std::string& path) {
  const std::string text = read_text(path);
  try {
    json::Value v = json::parse(text);
    if (!v.is_object()) throw std::invalid_argument("not a JSON object");
    return v;
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("'" + path + "': " + e.what());
  }
}

void write_text(const std::string& path, const std::string& text) { io::write_file_atomically(path, text); }

}  // namespace

std::string diffusers_name(const std::string& ours, int64_t levels, bool legacy) {
  const OurName n = split_name(ours);
  auto res = [](const std::string& rest) {
    if (rest.rfind("temb_proj.", 0) == 0) return "time_emb_proj." + rest.substr(10);
    if (rest.rfind("shortcut.", 0) == 0) return "conv_shortcut." + rest.substr(9);
    return rest;
  };
  auto attn = [&](const std::string& rest) {
    const size_t dot = rest.find('.');
    const std::string layer = rest.substr(0, dot), tail = rest.substr(dot);
    if (layer == "norm") return "group_norm" + tail;
    if (layer == "q") return (legacy ? "query" : "to_q") + tail;
    if (layer == "k") return (legacy ? "key" : "to_k") + tail;
    if (layer == "v") return (legacy ? "value" : "to_v") + tail;
    if (layer == "proj_out") return (legacy ? "proj_attn" : "to_out.0") + tail;
    throw std::invalid_argument("unexpected attention parameter '" + rest + "'");
  };
  if (n.path == "temb") return "time_embedding.linear_" + std::to_string(n.level + 1) + "." + n.rest;
  if (n.path == "conv_in" || n.path == "conv_out") return n.path + "." + n.rest;
  if (n.path == "norm_out") return "conv_norm_out." + n.rest;
  if (n.path == "mid_attn") return "mid_block.attentions.0." + attn(n.rest);
  if (n.path == "mid") return "mid_block.resnets." + std::to_string(n.index) + "." + res(n.rest);
  const std::string blocks = n.path == "down" ? "down_blocks." + std::to_string(n.level)
                                              : "up_blocks." + std::to_string(levels - 1 - n.level);
  if (n.block == "res") return blocks + ".resnets." + std::to_string(n.index) + "." + res(n.rest);
  if (n.block == "attn") return blocks + ".attentions." + std::to_string(n.index) + "." + attn(n.rest);
  const std::string conv = n.rest.substr(n.rest.find('.') + 1);  // "conv.weight" → "weight"
  return blocks + (n.block == "downsample" ? ".downsamplers.0.conv." : ".upsamplers.0.conv.") + conv;
}

Config diffusers_config(const json::Value& u, const json::Value* sched, const std::string& what) {
  auto bad = [&](const std::string& key, const std::string& msg) {
    return std::invalid_argument(what + ": " + key + ": " + msg);
  };
  static const std::set<std::string> known{
      "sample_size", "in_channels", "out_channels", "center_input_sample", "time_embedding_type",
      "time_embedding_dim", "freq_shift", "flip_sin_to_cos", "down_block_types", "mid_block_type",
      "up_block_types", "block_out_channels", "layers_per_block", "mid_block_scale_factor",
      "downsample_padding", "downsample_type", "upsample_type", "dropout", "act_fn", "attention_head_dim",
      "norm_num_groups", "attn_norm_num_groups", "norm_eps", "resnet_time_scale_shift", "add_attention",
      "class_embed_type", "num_class_embeds", "num_train_timesteps"};
  for (const auto& [k, v] : u.members())
    if (k[0] != '_' && !known.count(k)) throw bad(k, "unknown UNet2DModel key");
  if (const auto* cls = u.find("_class_name"); cls && (!cls->is_string() || cls->as_string() != "UNet2DModel"))
    throw bad("_class_name", "expected \"UNet2DModel\"");
  auto get = [&](const char* key) -> const json::Value* { return u.find(key); };
  // A key may be absent (diffusers' default applies) or null.
  auto str = [&](const char* key, const std::string& def) {
    const json::Value* v = get(key);
    if (!v || v->is_null()) return def;
    if (!v->is_string()) throw bad(key, "expected a string");
    return v->as_string();
  };
  auto num = [&](const char* key, double def) {
    const json::Value* v = get(key);
    if (!v || v->is_null()) return def;
    if (!v->is_number()) throw bad(key, "expected a number");
    return v->as_double();
  };
  auto integer = [&](const char* key, int64_t def) {
    const json::Value* v = get(key);
    if (!v || v->is_null()) return def;
    try {
      return v->as_int64();
    } catch (const std::invalid_argument&) {
      throw bad(key, "expected an integer");
    }
  };
  auto boolean = [&](const char* key, bool def) {
    const json::Value* v = get(key);
    if (!v || v->is_null()) return def;
    if (v->type() != json::Type::Bool) throw bad(key, "expected true or false");
    return v->as_bool();
  };
  auto require = [&](bool ok, const char* key, const std::string& msg) {
    if (!ok) throw bad(key, msg);
  };
  auto strings = [&](const char* key) {
    const json::Value* v = get(key);
    if (!v || !v->is_array()) throw bad(key, "expected a list of block types");
    std::vector<std::string> out;
    for (const auto& x : v->items()) {
      if (!x.is_string()) throw bad(key, "expected a list of block types");
      out.push_back(x.as_string());
    }
    return out;
  };

  Config c;
  UNetConfig& m = c.model;
  int64_t height = 0, width = 0;
  if (const json::Value* s = get("sample_size"); s && s->is_array() && s->items().size() == 2) {
    height = s->items()[0].as_int64(), width = s->items()[1].as_int64();
  } else {
    height = width = integer("sample_size", 0);
  }
  require(height > 0 && width > 0, "sample_size", "needs the image size (an integer or [height, width])");
  const int64_t in_ch = integer("in_channels", 3), out_ch = integer("out_channels", 3);
  require(out_ch == in_ch || out_ch == 2 * in_ch, "out_channels", "must equal in_channels (or twice it: learned variance)");
  m.learned_variance = out_ch == 2 * in_ch;
  require(!boolean("center_input_sample", false), "center_input_sample", "true is not supported");
  require(str("time_embedding_type", "positional") == "positional", "time_embedding_type", "only \"positional\" is supported");
  require(str("act_fn", "silu") == "silu", "act_fn", "only \"silu\" is supported");
  require(str("mid_block_type", "UNetMidBlock2D") == "UNetMidBlock2D", "mid_block_type", "only \"UNetMidBlock2D\" is supported");
  require(boolean("add_attention", true), "add_attention", "false is not supported");
  require(num("mid_block_scale_factor", 1) == 1, "mid_block_scale_factor", "only 1 is supported");
  require(integer("downsample_padding", 1) == 0, "downsample_padding",
          "only 0 (the original's pad right/bottom, stride-2 conv) is supported");
  require(str("downsample_type", "conv") == "conv", "downsample_type", "only \"conv\" is supported");
  require(str("upsample_type", "conv") == "conv", "upsample_type", "only \"conv\" is supported");
  require(str("resnet_time_scale_shift", "default") == "default", "resnet_time_scale_shift", "only \"default\" is supported");
  require(!get("class_embed_type") || get("class_embed_type")->is_null(), "class_embed_type", "class conditioning is not supported");
  require(!get("num_class_embeds") || get("num_class_embeds")->is_null(), "num_class_embeds", "class conditioning is not supported");

  const json::Value* boc = get("block_out_channels");
  require(boc && boc->is_array() && !boc->items().empty(), "block_out_channels", "expected a list of channel counts");
  std::vector<int64_t> channels;
  for (const auto& x : boc->items()) channels.push_back(x.as_int64());
  m.base_channels = channels[0];
  require(m.base_channels > 0, "block_out_channels", "must be positive");
  m.channel_mult.clear();
  for (int64_t ch : channels) {
    require(ch > 0 && ch % m.base_channels == 0, "block_out_channels", "every entry must be a multiple of the first");
    m.channel_mult.push_back(ch / m.base_channels);
  }
  require(integer("time_embedding_dim", 4 * m.base_channels) == 4 * m.base_channels, "time_embedding_dim",
          "only 4 × block_out_channels[0] is supported");
  const auto down = strings("down_block_types"), up = strings("up_block_types");
  const int64_t L = static_cast<int64_t>(channels.size());
  require(static_cast<int64_t>(down.size()) == L, "down_block_types", "needs one entry per block_out_channels entry");
  require(static_cast<int64_t>(up.size()) == L, "up_block_types", "needs one entry per block_out_channels entry");
  m.attention_resolutions.clear();
  for (int64_t l = 0; l < L; ++l) {
    const std::string& d = down[static_cast<size_t>(l)];
    const std::string& p = up[static_cast<size_t>(L - 1 - l)];
    require(d == "DownBlock2D" || d == "AttnDownBlock2D", "down_block_types", "unsupported block '" + d + "'");
    require(p == "UpBlock2D" || p == "AttnUpBlock2D", "up_block_types", "unsupported block '" + p + "'");
    require((d == "AttnDownBlock2D") == (p == "AttnUpBlock2D"), "up_block_types",
            "attention must be at the same levels on the way down and up");
    if (d == "AttnDownBlock2D") m.attention_resolutions.push_back(height >> l);
  }
  m.num_res_blocks = integer("layers_per_block", 2);
  m.dropout = num("dropout", 0.0);
  m.groups = integer("norm_num_groups", 32);
  require(integer("attn_norm_num_groups", m.groups) == m.groups, "attn_norm_num_groups", "must equal norm_num_groups");
  m.norm_eps = num("norm_eps", 1e-5);
  m.resample = "conv";
  m.time_embedding = boolean("flip_sin_to_cos", true) ? TimeEmbedding::CosSin : TimeEmbedding::SinCos;
  m.time_freq_shift = num("freq_shift", 0.0);
  if (const json::Value* te = get(kInterleavedKey)) {
    require(te->is_string() && te->as_string() == "interleaved" && m.time_embedding == TimeEmbedding::SinCos &&
                m.time_freq_shift == 0.0,
            kInterleavedKey, "only \"interleaved\", with flip_sin_to_cos false and freq_shift 0");
    m.time_embedding = TimeEmbedding::Interleaved;
  }
  // attention_head_dim: null = one head of all channels; else heads = channels / head_dim per block.
  m.num_heads = 1;
  if (const json::Value* hd = get("attention_head_dim"); hd && !hd->is_null()) {
    const int64_t head_dim = integer("attention_head_dim", 0);
    require(head_dim > 0, "attention_head_dim", "must be positive");
    int64_t heads = -1;
    for (int64_t l = 0; l < L; ++l)
      if (l == L - 1 || down[static_cast<size_t>(l)] == "AttnDownBlock2D") {
        const int64_t ch = channels[static_cast<size_t>(l)];
        require(ch % head_dim == 0, "attention_head_dim", "does not divide the channels of an attention block");
        require(heads < 0 || heads == ch / head_dim, "attention_head_dim",
                "gives different head counts at different levels (libddpm uses one count)");
        heads = ch / head_dim;
      }
    m.num_heads = heads;
  }
  c.image_size = height == width ? std::to_string(height) : std::to_string(height) + "x" + std::to_string(width);
  c.channels = in_ch;
  c.sample.kind = SamplerKind::Ddpm;
  c.sample.steps = 0;

  if (sched) {
    auto sbad = [&](const std::string& key, const std::string& msg) {
      return std::invalid_argument(what + ": scheduler " + key + ": " + msg);
    };
    auto sstr = [&](const char* key, const std::string& def) {
      const json::Value* v = sched->find(key);
      if (!v || v->is_null()) return def;
      if (!v->is_string()) throw sbad(key, "expected a string");
      return v->as_string();
    };
    auto snum = [&](const char* key, double def) {
      const json::Value* v = sched->find(key);
      if (!v || v->is_null()) return def;
      if (!v->is_number()) throw sbad(key, "expected a number");
      return v->as_double();
    };
    auto sbool = [&](const char* key, bool def) {
      const json::Value* v = sched->find(key);
      if (!v || v->is_null()) return def;
      if (v->type() != json::Type::Bool) throw sbad(key, "expected true or false");
      return v->as_bool();
    };
    const double T = snum("num_train_timesteps", 1000);
    c.schedule.timesteps = static_cast<int64_t>(T);
    if (static_cast<double>(c.schedule.timesteps) != T) throw sbad("num_train_timesteps", "expected an integer");
    c.schedule.beta_start = snum("beta_start", 1e-4);
    c.schedule.beta_end = snum("beta_end", 0.02);
    const std::string bs = sstr("beta_schedule", "linear");
    if (bs == "linear") c.schedule.kind = "linear";
    else if (bs == "scaled_linear") c.schedule.kind = "quadratic";  // linspace(√β₀, √β₁)², as ours
    else throw sbad("beta_schedule", "'" + bs + "' is not supported (linear, scaled_linear)");
    if (const json::Value* tb = sched->find("trained_betas"); tb && !tb->is_null())
      throw sbad("trained_betas", "explicit betas are not supported");
    const std::string var = sstr("variance_type", "fixed_small");
    if (var == "fixed_small" || var == "fixed_small_log") c.sample.variance = Variance::FixedSmall;
    else if (var == "fixed_large" || var == "fixed_large_log") c.sample.variance = Variance::FixedLarge;
    else if (var == "learned_range" || var == "learned") c.sample.variance = Variance::FixedSmall;  // samplers use fixed variances
    else throw sbad("variance_type", "'" + var + "' is not supported");
    c.sample.clip_x0 = sbool("clip_sample", true);
    if (c.sample.clip_x0 && snum("clip_sample_range", 1.0) != 1.0) throw sbad("clip_sample_range", "only 1 is supported");
    c.sample.dynamic_threshold = sbool("thresholding", false);
    c.sample.dynamic_threshold_percentile = snum("dynamic_thresholding_ratio", 0.995);
    const std::string pred = sstr("prediction_type", "epsilon");
    try {
      c.train.prediction = parse_prediction(pred);
    } catch (const std::invalid_argument&) {
      throw sbad("prediction_type", "'" + pred + "' is not supported");
    }
    if (sbool("rescale_betas_zero_snr", false)) c.schedule.zero_terminal_snr = true;
  } else {
    c.sample.variance = Variance::FixedSmall;
    c.sample.clip_x0 = true;
  }
  c.resolve();
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(what + ": resulting config: " + e.what());
  }
  return c;
}

json::Value diffusers_unet_json(const Config& config) {
  Config cfg = config;
  cfg.resolve();
  const UNetConfig& m = cfg.model;
  m.validate();
  if (m.resample != "conv") throw std::invalid_argument("resample: diffusers' UNet2DModel has no avgpool downsampling");
  const auto levels = level_info(m);
  const int64_t L = m.levels();
  // heads: one count for every attention block → attention_head_dim must be the same C/heads everywhere.
  json::Value head_dim;
  if (m.num_heads != 1) {
    int64_t dim = -1;
    for (int64_t l = 0; l < L; ++l)
      if (levels[static_cast<size_t>(l)].attention || l == L - 1) {
        const int64_t d = levels[static_cast<size_t>(l)].channels / m.num_heads;
        if (dim >= 0 && d != dim)
          throw std::invalid_argument("num-heads: diffusers needs the same head width at every attention block");
        dim = d;
      }
    head_dim = json::Value::integer(dim);
  }
  json::Value down = json::Value::array(), up = json::Value::array(), boc = json::Value::array();
  for (int64_t l = 0; l < L; ++l) {
    down.push(json::Value::string(levels[static_cast<size_t>(l)].attention ? "AttnDownBlock2D" : "DownBlock2D"));
    up.push(json::Value::string(levels[static_cast<size_t>(L - 1 - l)].attention ? "AttnUpBlock2D" : "UpBlock2D"));
    boc.push(json::Value::integer(levels[static_cast<size_t>(l)].channels));
  }
  json::Value sample_size = m.image_height == m.image_width
                                ? json::Value::integer(m.image_height)
                                : json::Value::array({json::Value::integer(m.image_height), json::Value::integer(m.image_width)});
  json::Value j = json::Value::object();
  j.set("_class_name", json::Value::string("UNet2DModel"));
  j.set("_diffusers_version", json::Value::string("0.21.0"));
  j.set("_libddpm_version", json::Value::string(version()));
  if (m.time_embedding == TimeEmbedding::Interleaved) j.set(kInterleavedKey, json::Value::string("interleaved"));
  j.set("act_fn", json::Value::string("silu"));
  j.set("add_attention", json::Value::boolean(true));
  j.set("attention_head_dim", head_dim);
  j.set("block_out_channels", boc);
  j.set("center_input_sample", json::Value::boolean(false));
  j.set("down_block_types", down);
  j.set("downsample_padding", json::Value::integer(0));
  j.set("downsample_type", json::Value::string("conv"));
  j.set("dropout", json::Value::number(m.dropout));
  j.set("flip_sin_to_cos", json::Value::boolean(m.time_embedding == TimeEmbedding::CosSin));
  j.set("freq_shift", m.time_freq_shift == static_cast<double>(static_cast<int64_t>(m.time_freq_shift))
                          ? json::Value::integer(static_cast<int64_t>(m.time_freq_shift))
                          : json::Value::number(m.time_freq_shift));
  j.set("in_channels", json::Value::integer(m.image_channels));
  j.set("layers_per_block", json::Value::integer(m.num_res_blocks));
  j.set("mid_block_scale_factor", json::Value::integer(1));
  j.set("mid_block_type", json::Value::string("UNetMidBlock2D"));
  j.set("norm_eps", json::Value::number(m.norm_eps));
  j.set("norm_num_groups", json::Value::integer(m.groups));
  j.set("out_channels", json::Value::integer(m.out_channels()));
  j.set("resnet_time_scale_shift", json::Value::string("default"));
  j.set("sample_size", sample_size);
  j.set("time_embedding_type", json::Value::string("positional"));
  j.set("up_block_types", up);
  j.set("upsample_type", json::Value::string("conv"));
  return j;
}

json::Value diffusers_scheduler_json(const Config& config) {
  const ScheduleConfig& s = config.schedule;
  json::Value j = json::Value::object();
  j.set("_class_name", json::Value::string("DDPMScheduler"));
  j.set("_diffusers_version", json::Value::string("0.21.0"));
  j.set("num_train_timesteps", json::Value::integer(s.timesteps));
  j.set("beta_start", json::Value::number(s.beta_start));
  j.set("beta_end", json::Value::number(s.beta_end));
  const bool closed = (s.kind == "linear" || s.kind == "quadratic") && !s.zero_terminal_snr && s.input_scale == 1.0;
  if (closed) {
    j.set("beta_schedule", json::Value::string(s.kind == "linear" ? "linear" : "scaled_linear"));
    j.set("trained_betas", json::Value());
  } else {
    // No diffusers name for it: the betas themselves.
    const NoiseSchedule schedule(s);
    const at::Tensor betas = schedule.beta64.to(at::kDouble);
    json::Value list = json::Value::array();
    for (int64_t i = 0; i < betas.numel(); ++i) list.push(json::Value::number(betas[i].item<double>()));
    j.set("beta_schedule", json::Value::string("linear"));
    j.set("trained_betas", list);
  }
  j.set("variance_type", json::Value::string(config.sample.variance == Variance::FixedLarge ? "fixed_large" : "fixed_small"));
  j.set("clip_sample", json::Value::boolean(config.sample.clip_x0));
  j.set("clip_sample_range", json::Value::number(1.0));
  j.set("prediction_type", json::Value::string(config.train.prediction == Prediction::Epsilon ? "epsilon"
                                               : config.train.prediction == Prediction::X0  ? "sample"
                                                                                             : "v_prediction"));
  j.set("thresholding", json::Value::boolean(config.sample.dynamic_threshold));
  j.set("dynamic_thresholding_ratio", json::Value::number(config.sample.dynamic_threshold_percentile));
  j.set("timestep_spacing", json::Value::string(to_string(config.sample.spacing)));
  return j;
}

UNet import_diffusers_weights(const StateDict& weights, const Config& config, const std::string& what) {
  const int64_t L = config.model.levels();
  bool legacy = false;
  for (const auto& kv : weights)
    if (kv.first.find(".attentions.0.query.") != std::string::npos) legacy = true;
  // The network is sized from the config before it is built (UNetConfig::validate_limits), and
  // may not describe far more parameters than the weights file holds (a small config cannot make
  // us build a huge network); within 2× a missing or mis-shaped tensor is named below instead.
  try {
    config.model.validate_limits();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(what + ": " + e.what());
  }
  int64_t stored = 0;
  for (const auto& kv : weights) stored += kv.second.numel();
  if (parameter_count(config.model) > 2 * stored)
    throw std::invalid_argument(what + ": the config describes a network of " + std::to_string(parameter_count(config.model)) +
                                " parameters, the weights hold " + std::to_string(stored) + " values");
  UNet model(config.model);
  StateDict w = weights;
  if (config.model.time_embedding == TimeEmbedding::Interleaved) {
    // Inverse of the export permutation: ours[:, 2i] = theirs[:, i], ours[:, 2i+1] = theirs[:, half+i].
    auto it = w.find("time_embedding.linear_1.weight");
    if (it != w.end() && it->second.dim() == 2 && it->second.size(1) % 2 == 0) {
      const at::Tensor t = it->second;
      const int64_t half = t.size(1) / 2;
      it->second = at::stack({t.narrow(1, 0, half), t.narrow(1, half, half)}, 2).reshape({t.size(0), 2 * half});
    }
  }
  load_mapped(*model, w, [&](const std::string& n) { return diffusers_name(n, L, legacy); }, what);
  return model;
}

StateDict export_diffusers_weights(const UNetImpl& model) {
  const int64_t L = model.config().levels();
  StateDict out = export_mapped(
      model, [&](const std::string& n) { return diffusers_name(n, L); },
      [](const std::string& key) { return key.find(".attentions.") != std::string::npos; });
  if (model.config().time_embedding == TimeEmbedding::Interleaved) {
    at::Tensor& t = out.at("time_embedding.linear_1.weight");
    using at::indexing::Slice;
    t = at::cat({t.index({Slice(), Slice(0, at::indexing::None, 2)}), t.index({Slice(), Slice(1, at::indexing::None, 2)})}, 1)
            .contiguous();
  }
  return out;
}

Imported import_diffusers(const std::string& dir_in) {
  std::string dir = dir_in;
  if (!fs::exists(dir + "/config.json") && fs::exists(dir + "/unet/config.json")) dir += "/unet";  // a pipeline folder
  const std::string cfg_path = dir + "/config.json";
  if (!fs::exists(cfg_path)) throw std::invalid_argument("diffusers folder '" + dir_in + "': no config.json");
  const json::Value unet = read_json(cfg_path);
  std::optional<json::Value> sched;
  for (const std::string& p : {dir + "/scheduler/scheduler_config.json", dir + "/../scheduler/scheduler_config.json",
                               dir + "/scheduler_config.json"})
    if (fs::exists(p)) {
      sched = read_json(p);
      break;
    }
  Imported out;
  out.config = diffusers_config(unet, sched ? &*sched : nullptr, "'" + cfg_path + "'");
  std::string weights;
  for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"})
    if (fs::exists(dir + "/" + name)) {
      weights = dir + "/" + name;
      break;
    }
  if (weights.empty())
    throw std::invalid_argument("diffusers folder '" + dir + "': no diffusion_pytorch_model.safetensors or .bin");
  out.model = import_diffusers_weights(read_weights(weights), out.config, "'" + weights + "'");
  return out;
}

void export_diffusers(const Config& config, const UNetImpl& model, const std::string& dir) {
  const json::Value unet = diffusers_unet_json(config), sched = diffusers_scheduler_json(config);
  fs::create_directories(dir + "/scheduler");
  safetensors::write_file(dir + "/diffusion_pytorch_model.safetensors", export_diffusers_weights(model), {{"format", "pt"}});
  write_text(dir + "/config.json", json::write(unet, 2) + "\n");
  write_text(dir + "/scheduler/scheduler_config.json", json::write(sched, 2) + "\n");
}

}  // namespace ddpm::interop
