#include "ddpm/pipeline/config_keys.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "io/toml.hpp"

namespace ddpm {
namespace {

[[noreturn]] void reject(const std::string& what) { throw std::invalid_argument(what); }

std::string show(double v) {
  std::string s = toml::format_float(v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

std::string range_text(const ConfigKey& k) {
  // Integer keys print their bounds as integers ("in [2, 100000]", not "1e+05").
  auto bound = [&](double v) {
    return k.type == KeyType::Integer ? std::to_string(static_cast<int64_t>(v)) : show(v);
  };
  if (k.max >= 1e300) return ">= " + bound(k.min);
  return "in [" + bound(k.min) + ", " + bound(k.max) + "]";
}

int64_t parse_int(const ConfigKey& k, const std::string& text) {
  int64_t v = 0;
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec == std::errc::result_out_of_range) reject("must be " + range_text(k) + " (got " + text + ")");
  if (ec != std::errc() || p != e || b == e) reject("must be an integer (got '" + text + "')");
  if (k.bounded && (static_cast<double>(v) < k.min || static_cast<double>(v) > k.max))
    reject("must be " + range_text(k) + " (got " + text + ")");
  return v;
}

uint64_t parse_unsigned(const std::string& text) {
  uint64_t v = 0;
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '-') reject("must be a non-negative integer (got " + text + ")");
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec == std::errc::result_out_of_range) reject("must be at most 18446744073709551615 (got " + text + ")");
  if (ec != std::errc() || p != e || b == e) reject("must be a non-negative integer (got '" + text + "')");
  return v;
}

double parse_float(const ConfigKey& k, const std::string& text) {
  double v = 0;
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e || b == e || std::isnan(v)) reject("must be a number (got '" + text + "')");
  if (k.bounded && !(v >= k.min && v <= k.max)) reject("must be " + range_text(k) + " (got " + text + ")");
  return v;
}

bool parse_bool(const std::string& text) {
  if (text == "true" || text == "1" || text == "on" || text == "yes") return true;
  if (text == "false" || text == "0" || text == "off" || text == "no") return false;
  reject("must be true or false (got '" + text + "')");
}

std::vector<int64_t> parse_list(const std::string& text) {
  // "1,2,2" or "[1, 2, 2]" (old run configs) ; "" and "[]" are the empty list.
  std::vector<int64_t> out;
  std::string item;
  for (char ch : text + ",") {
    if (ch == ',' || ch == ' ' || ch == '[' || ch == ']' || ch == '"' || ch == '\'') {
      if (item.empty()) continue;
      int64_t v = 0;
      auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (ec != std::errc() || p != item.data() + item.size()) reject("'" + item + "' is not an integer");
      out.push_back(v);
      item.clear();
    } else {
      item += ch;
    }
  }
  return out;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t begin = 0;
  for (;;) {
    const size_t end = text.find(',', begin);
    out.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (out.back().empty()) reject("empty class name in '" + text + "'");
    if (std::find(out.begin(), out.end() - 1, out.back()) != out.end() - 1)
      reject("class name '" + out.back() + "' appears twice in '" + text + "'");
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// Builders: one line per key below. `F` projects a Config onto the field.
struct Table {
  std::vector<ConfigKey> keys;
  KeyArea area = KeyArea::Top;
  std::string group;

  ConfigKey& add(const std::string& name, KeyType type, const std::string& help) {
    ConfigKey k;
    k.name = name;
    k.area = area;
    k.group = group;
    k.type = type;
    k.help = help;
    keys.push_back(std::move(k));
    return keys.back();
  }

  template <class F>
  ConfigKey& integer(const std::string& name, F field, double min, double max, const std::string& help) {
    ConfigKey& k = add(name, KeyType::Integer, help);
    k.min = min;
    k.max = max;
    k.bounded = true;
    k.get = [field](const Config& c) { return std::to_string(field(c)); };
    k.set = [field, kk = k](Config& c, const std::string& t) { field(c) = parse_int(kk, t); };
    return k;
  }
  template <class F>
  ConfigKey& unsigned_(const std::string& name, F field, const std::string& help) {
    ConfigKey& k = add(name, KeyType::Unsigned, help);
    k.get = [field](const Config& c) { return std::to_string(field(c)); };
    k.set = [field](Config& c, const std::string& t) { field(c) = parse_unsigned(t); };
    return k;
  }
  template <class F>
  ConfigKey& floating(const std::string& name, F field, double min, double max, const std::string& help) {
    ConfigKey& k = add(name, KeyType::Float, help);
    k.min = min;
    k.max = max;
    k.bounded = std::isfinite(min) || std::isfinite(max);
    k.get = [field](const Config& c) { return toml::format_float(field(c)); };
    k.set = [field, kk = k](Config& c, const std::string& t) { field(c) = parse_float(kk, t); };
    return k;
  }
  template <class F>
  ConfigKey& optional_float(const std::string& name, F field, const std::string& help) {
    ConfigKey& k = add(name, KeyType::OptionalFloat, help);
    k.get = [field](const Config& c) {
      const auto& v = field(c);
      return v ? toml::format_float(*v) : std::string();
    };
    k.set = [field, kk = k](Config& c, const std::string& t) {
      if (t.empty()) field(c).reset();
      else field(c) = parse_float(kk, t);
    };
    return k;
  }
  template <class F>
  ConfigKey& boolean(const std::string& name, F field, const std::string& help) {
    ConfigKey& k = add(name, KeyType::Boolean, help);
    k.get = [field](const Config& c) { return std::string(field(c) ? "true" : "false"); };
    k.set = [field](Config& c, const std::string& t) { field(c) = parse_bool(t); };
    return k;
  }
  template <class F>
  ConfigKey& string(const std::string& name, F field, const std::string& help) {
    ConfigKey& k = add(name, KeyType::String, help);
    k.get = [field](const Config& c) { return field(c); };
    k.set = [field](Config& c, const std::string& t) { field(c) = t; };
    return k;
  }
  /// A closed set: `parse` maps text (aliases included) to the value, `print` back.
  template <class F, class P, class S>
  ConfigKey& choice(const std::string& name, F field, std::vector<std::string> choices, P parse, S print,
                    const std::string& help) {
    ConfigKey& k = add(name, KeyType::Choice, help);
    k.choices = choices;
    k.get = [field, print](const Config& c) { return print(field(c)); };
    k.set = [field, parse, choices](Config& c, const std::string& t) {
      try {
        field(c) = parse(t);
      } catch (const std::invalid_argument&) {
        std::string list;
        for (size_t i = 0; i < choices.size(); ++i) list += (i ? ", " : "") + choices[i];
        reject("must be one of " + list + " (got '" + t + "')");
      }
    };
    return k;
  }
  template <class F>
  ConfigKey& strings(const std::string& name, F field, std::vector<std::string> choices, const std::string& help) {
    return choice(
        name, field, choices,
        [choices](const std::string& t) {
          for (const auto& c : choices)
            if (c == t) return t;
          throw std::invalid_argument(t);
        },
        [](const std::string& v) { return v; }, help);
  }
  // A Guidance's σ interval, "LOW,HIGH" as ddpm-eval's --guidance-interval; "" = every step (0, ∞).
  template <class F>
  ConfigKey& interval(const std::string& name, F guidance, const std::string& help) {
    ConfigKey& k = add(name, KeyType::String, help);
    k.get = [guidance](const Config& c) {
      const Guidance& g = guidance(c);
      if (g.sigma_low == 0.0 && std::isinf(g.sigma_high)) return std::string();
      return show(g.sigma_low) + "," + show(g.sigma_high);
    };
    k.set = [guidance, kk = k](Config& c, const std::string& text) {
      Guidance& g = guidance(c);
      if (text.empty()) {
        g.sigma_low = 0.0;
        g.sigma_high = kInf;
        return;
      }
      const size_t comma = text.find(',');
      if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos)
        reject("must be LOW,HIGH (got '" + text + "')");
      g.sigma_low = parse_float(kk, text.substr(0, comma));
      g.sigma_high = parse_float(kk, text.substr(comma + 1));
    };
    return k;
  }
  // A weight that may be unset ("" / absent): `given` says whether it was set.
  template <class F, class G>
  ConfigKey& optional_weight(const std::string& name, F weight, G given, const std::string& help) {
    ConfigKey& k = add(name, KeyType::OptionalFloat, help);
    k.get = [weight, given](const Config& c) { return given(c) ? toml::format_float(weight(c)) : std::string(); };
    k.set = [weight, given, kk = k](Config& c, const std::string& t) {
      given(c) = !t.empty();
      weight(c) = t.empty() ? 0.0 : parse_float(kk, t);
    };
    return k;
  }
  template <class F>
  ConfigKey& list(const std::string& name, F field, const std::string& help) {
    ConfigKey& k = add(name, KeyType::IntegerList, help);
    k.get = [field](const Config& c) { return join(field(c)); };
    k.set = [field](Config& c, const std::string& t) { field(c) = parse_list(t); };
    return k;
  }
};

#define FIELD(expr) [](auto& c) -> auto& { return c.expr; }

std::vector<ConfigKey> build() {
  Table t;
  // ---------------------------------------------------------------- Data
  t.area = KeyArea::Top;
  t.group = "Data";
  t.string("image-size", FIELD(image_size), "Image size N or HxW (default: the data's size)");
  t.choice(
      "channels", FIELD(channels), {"0", "1", "3", "4"},
      [](const std::string& s) -> int64_t {
        if (s == "0" || s == "1" || s == "3" || s == "4") return std::stoll(s);
        throw std::invalid_argument(s);
      },
      [](int64_t v) { return std::to_string(v); }, "Image channels 1, 3 or 4, converting the data (0 = the data's)");
  t.area = KeyArea::Data;
  t.string("data", FIELD(data.source),
           "Training images: a folder (recursive; PNG, JPEG, BMP, TGA, GIF) or idx:PATH for an MNIST-family IDX "
           "images file (PATH or PATH.gz)");
  t.boolean("hflip", FIELD(data.hflip), "Random horizontal flips (p = 1/2)");
  t.string("labels", FIELD(data.labels),
           "Class labels: idx:PATH of an IDX labels file (PATH or PATH.gz), one per image (makes the model "
           "class-conditional)");
  t.boolean("class-folders", FIELD(data.class_folders),
            "Class labels from the image folder's sub-folders (sorted names -> ids 0, 1, ...)");
  t.integer("workers", FIELD(data.workers), 0, 256, "Data loader threads (0 = load in the training thread)")
      .operational = true;
  t.integer("prefetch", FIELD(data.prefetch), 1, 1024, "Batches the loader prepares ahead").operational = true;
  t.boolean("cache", FIELD(data.cache), "Keep decoded images in memory (uint8)").operational = true;

  // ---------------------------------------------------------------- Model
  t.area = KeyArea::Model;
  t.group = "Model";
  t.integer("base-channels", FIELD(model.base_channels), 1, 65536, "channels of the first level (ch)");
  t.list("channel-mult", FIELD(model.channel_mult), "channel multiplier per level, e.g. 1,2,2,2 (comma-separated)");
  t.integer("num-res-blocks", FIELD(model.num_res_blocks), 0, 1024, "residual blocks per level");
  t.list("attention-resolutions", FIELD(model.attention_resolutions),
         "feature-map heights with self-attention, e.g. 16; empty for none (comma-separated)");
  t.integer("num-heads", FIELD(model.num_heads), 1, 4096, "attention heads");
  t.floating("dropout", FIELD(model.dropout), 0.0, 1.0, "dropout in the residual blocks");
  t.integer("groups", FIELD(model.groups), 1, 65536, "GroupNorm groups");
  t.floating("norm-eps", FIELD(model.norm_eps), 0.0, kInf, "GroupNorm epsilon");
  t.strings("resample", FIELD(model.resample), {"conv", "avgpool"}, "downsampling: conv (stride-2 3x3) | avgpool");
  t.boolean("learned-variance", FIELD(model.learned_variance),
            "also output the variance interpolation (2x image channels)");
  t.boolean("channels-last", FIELD(model.channels_last), "channels_last memory format");
  t.choice(
      "time-embedding", FIELD(model.time_embedding), {"interleaved", "sin-cos", "cos-sin"}, parse_time_embedding,
      [](TimeEmbedding e) { return std::string(to_string(e)); },
      "timestep embedding: interleaved (libddpm's) | sin-cos (original DDPM, diffusers) | cos-sin (diffusers' flip)");
  t.floating("time-freq-shift", FIELD(model.time_freq_shift), 0.0, kInf,
             "embedding frequencies exp(-ln(1e4) i/(d/2 - shift)); the original DDPM: 1 (sin-cos and cos-sin only)");
  t.integer("num-classes", FIELD(model.num_classes), 0, 1 << 20,
            "class-conditional with this many classes (0 = unconditional; ddpm-train infers it from the labels)");
  {
    // Names may not contain ',' (the separator); ddpm-train refuses class folders that do.
    ConfigKey& k = t.add("class-names", KeyType::String,
                         "names of the classes 0, 1, ... (comma-separated; --class-folders sets them from the folders)");
    k.get = [](const Config& c) { return join_names(c.model.class_names); };
    k.set = [](Config& c, const std::string& text) { c.model.class_names = split_names(text); };
  }

  // ---------------------------------------------------------------- Schedule
  t.area = KeyArea::Schedule;
  t.group = "Schedule";
  t.strings("schedule", FIELD(schedule.kind),
            {"linear", "quadratic", "cosine", "sigmoid", "cosine-logsnr", "sigmoid-logsnr"},
            "linear | quadratic | cosine | sigmoid | cosine-logsnr | sigmoid-logsnr");
  t.integer("timesteps", FIELD(schedule.timesteps), 2, 100000, "number of diffusion steps T (>= 2)");
  t.floating("beta-start", FIELD(schedule.beta_start), -kInf, kInf, "β₀ (linear, quadratic)");
  t.floating("beta-end", FIELD(schedule.beta_end), -kInf, kInf, "β₁ (linear, quadratic)");
  t.floating("cosine-s", FIELD(schedule.cosine_s), -kInf, kInf, "offset s (cosine)");
  t.floating("sigmoid-start", FIELD(schedule.sigmoid_start), -kInf, kInf, "start s (sigmoid)");
  t.floating("sigmoid-end", FIELD(schedule.sigmoid_end), -kInf, kInf, "end e (sigmoid)");
  t.floating("sigmoid-tau", FIELD(schedule.sigmoid_tau), -kInf, kInf, "temperature k > 0 (sigmoid)");
  t.optional_float("logsnr-max", FIELD(schedule.logsnr_max),
                   "largest log SNR (logsnr kinds; default 15 cosine-logsnr, 10 sigmoid-logsnr)");
  t.optional_float("logsnr-min", FIELD(schedule.logsnr_min),
                   "smallest log SNR (logsnr kinds; default -15 cosine-logsnr, -10 sigmoid-logsnr)");
  t.floating("logsnr-shift", FIELD(schedule.logsnr_shift), -kInf, kInf, "shift added to log SNR (cosine-logsnr)");
  t.floating("input-scale", FIELD(schedule.input_scale), -kInf, kInf,
             "input scaling b > 0 (Chen 2023): log SNR shifted by 2 ln b");
  t.boolean("zero-terminal-snr", FIELD(schedule.zero_terminal_snr), "rescale so that ᾱ_{T-1} = 0 (Lin et al. 2024)");

  // ---------------------------------------------------------------- Training
  t.area = KeyArea::Train;
  t.group = "Training";
  t.integer("steps", FIELD(train.steps), 1, 1e15, "Optimizer steps in all").operational = true;
  t.integer("batch-size", FIELD(train.batch_size), 1, 65536, "Images per micro-batch (per step: × grad-accum)");
  t.floating("lr", FIELD(train.lr), 0.0, kInf, "Peak learning rate of AdamW");
  t.floating("adam-beta1", FIELD(train.adam_beta1), 0.0, 1.0, "AdamW β₁");
  t.floating("adam-beta2", FIELD(train.adam_beta2), 0.0, 1.0, "AdamW β₂");
  t.floating("adam-eps", FIELD(train.adam_eps), 0.0, kInf, "AdamW ε");
  t.floating("weight-decay", FIELD(train.weight_decay), 0.0, kInf, "AdamW decoupled weight decay");
  t.integer("warmup-steps", FIELD(train.warmup_steps), 0, 1e15,
            "Linear learning-rate warm-up over this many steps (0 = none)");
  t.choice(
      "lr-schedule", FIELD(train.lr_schedule), {"constant", "cosine"}, parse_lr_schedule,
      [](LrSchedule s) { return to_string(s); },
      "Learning rate after the warm-up: constant | cosine (decays to 0 at the last of --steps)");
  t.floating("grad-clip", FIELD(train.grad_clip), 0.0, kInf,
             "Clip the gradient's global L2 norm to this (0 = no clipping)");
  t.integer("grad-accum", FIELD(train.grad_accum), 1, 65536, "Micro-batches accumulated per optimizer step");
  t.floating("ema-decay", FIELD(train.ema_decay), 0.0, 1.0,
             "Decay of the EMA of the weights (sample grids and checkpoints)");
  t.strings("ema-warmup", FIELD(train.ema_warmup), {"none", "rational", "power"},
            "EMA decay warm-up after n updates: none | rational: min(decay, (1+n)/(10+n)) | "
            "power: min(decay, 1-(1+n)^-ema-power)");
  t.floating("ema-power", FIELD(train.ema_power), 0.0, kInf,
             "Exponent of the power EMA warm-up (2/3: ~1M steps, 3/4: ~100k)");
  t.integer("ema-update-every", FIELD(train.ema_update_every), 1, 1e15, "Steps between EMA updates");
  t.choice(
      "prediction", FIELD(train.prediction), {"epsilon", "x0", "v"}, parse_prediction,
      [](Prediction p) { return to_string(p); }, "What the network predicts: epsilon | x0 | v");
  t.choice(
      "loss-weighting", FIELD(train.loss_weighting), {"none", "min-snr"}, parse_loss_weighting,
      [](LossWeighting w) { return to_string(w); },
      "Per-timestep loss weight: none (DDPM's L_simple) | min-snr (Hang et al. 2023)");
  t.floating("min-snr-gamma", FIELD(train.min_snr_gamma), 0.0, kInf, "γ of min-SNR-γ weighting");
  t.floating("cond-drop", FIELD(train.cond_drop), 0.0, 1.0,
             "Class-conditional models: probability of training an image as 'no class' (classifier-free guidance)");
  t.unsigned_("seed", FIELD(train.seed), "Seed of model init, timesteps, noise, dropout and data order");
  t.boolean("bf16", FIELD(train.bf16), "bf16 autocast (CUDA, and CPUs that support it); fp32 otherwise");
  t.integer("sample-every", FIELD(train.sample_every), 0, 1e15,
            "Steps between PNG sample grids from the EMA weights in run-dir/samples (and one at the end); 0 = none")
      .operational = true;
  t.integer("sample-n", FIELD(train.sample_n), 1, 4096, "Images per sample grid").operational = true;
  t.integer("save-every", FIELD(train.save_every), 1, 1e15, "Steps between checkpoints (one is always saved at the end)")
      .operational = true;
  t.integer("keep-last", FIELD(train.keep_last), 0, 1e9, "Checkpoints kept in run-dir/checkpoints (0 = all)")
      .operational = true;
  t.integer("log-every", FIELD(train.log_every), 1, 1e15,
            "Steps per line of metrics.jsonl (and per log line when not a terminal)")
      .operational = true;
  t.string("run-dir", FIELD(train.run_dir), "Run directory: config.toml, checkpoints/, samples/, metrics.jsonl")
      .operational = true;
  t.boolean("tensorboard", FIELD(train.tensorboard),
            "TensorBoard events files in the run directory (curves, sample grids, config): tensorboard --logdir "
            "RUN-DIR")
      .operational = true;
  t.integer("eval-every", FIELD(train.eval_every), 0, 1e15,
            "Steps between sample-quality evaluations (FID, KID, precision/recall into metrics.jsonl); 0 = none")
      .operational = true;
  t.integer("eval-n", FIELD(train.eval_n), 10, 1e9, "Samples per evaluation").operational = true;
  t.floating("eval-guidance", FIELD(train.eval_guidance.weight), 0, 1000,
             "Class-conditional runs: classifier-free guidance weight of the evaluations' samples, every class "
             "drawn equally (0 = plain conditional)")
      .operational = true;
  t.interval("eval-guidance-interval", FIELD(train.eval_guidance),
             "Class-conditional runs: guide the evaluations' samples only where sigma = "
             "sqrt((1 - alpha_bar)/alpha_bar) is in (LOW, HIGH], as LOW,HIGH (empty = every step)")
      .operational = true;
  t.string("eval-features", FIELD(train.eval_features),
           "Feature network for evaluations: a ddpm-eval fit-classifier file or a TorchScript file")
      .operational = true;
  t.string("eval-ref", FIELD(train.eval_ref),
           "Reference for evaluations: statistics (.npz, FID only) or images (folder, idx:FILE)")
      .operational = true;

  // ---------------------------------------------------------------- Distillation (ddpm-distill)
  t.area = KeyArea::Distill;
  t.group = "Distillation";
  t.string("teacher", FIELD(distill.teacher),
           "Progressive distillation: the teacher's checkpoint or run directory (its config gives the model, "
           "schedule, data and prediction)");
  t.string("student-init", FIELD(distill.student_init),
           "The student's first weights: a checkpoint of the teacher's shape (default: the teacher's, EMA if any)");
  t.integer("start-steps", FIELD(distill.start_steps), 2, 100000,
            "DDIM steps of the teacher in the first round (trailing spacing); the student learns half as many");
  t.integer("final-steps", FIELD(distill.final_steps), 1, 100000,
            "The student's DDIM steps after the last round (start-steps / 2^rounds)");
  t.integer("steps-per-round", FIELD(distill.steps_per_round), 1, 1e12, "Optimizer steps of each round");
  t.optional_weight("guidance", FIELD(distill.guidance.weight), FIELD(distill.guidance_given),
                   "Class-conditional teachers: classifier-free guidance weight w of the teacher the student "
                   "learns (default: the teacher's eval-guidance)");
  t.interval("guidance-interval", FIELD(distill.guidance),
             "Guide the teacher only where sigma is in (LOW, HIGH] (default: every step); needs --guidance "
             "(without it the teacher's eval-guidance-interval is used)");
  t.area = KeyArea::Distilled;  // written by ddpm-distill, never an option
  t.integer("distilled-steps", FIELD(distill.distilled_steps), 0, 100000,
            "Recorded: the DDIM steps this student was distilled for (0 = not distilled)");
  t.integer("distilled-rounds", FIELD(distill.distilled_rounds), 0, 64, "Recorded: distillation rounds done");

  // ---------------------------------------------------------------- Sampling (the grids' sampler)
  // ddpm-sample binds the same keys with sample-steps → steps and sample-seed → seed.
  t.area = KeyArea::Sample;
  t.group = "Sampling";
  t.choice(
      "sampler", FIELD(sample.kind), sampler_names(), parse_sampler_kind, [](SamplerKind k) { return to_string(k); },
      "ddpm (ancestral) | ddim | dpm++2m | dpm++3m | dpm++2m-sde | unipc | heun | euler | euler-a | ipndm");
  t.integer("sample-steps", FIELD(sample.steps), 0, 100000,
            "sampling steps (0 = default: all T for ddpm, 50 for ddim, 20 for the others; ddpm with fewer than T "
            "respaces the process; heun makes 2 network calls a step)");
  t.choice(
      "spacing", FIELD(sample.spacing), spacing_names(), parse_spacing, [](Spacing s) { return to_string(s); },
      "step placement: leading | trailing | linspace (integer timesteps) | karras | logsnr (noise levels, "
      "fractional timesteps)");
  t.floating("karras-rho", FIELD(sample.karras_rho), 1e-3, 1000.0, "rho of the karras spacing (Karras et al. 2022)");
  t.integer("solver-order", FIELD(sample.order), 0, 4, "order of unipc (1-3) and ipndm (1-4); 0 = the highest");
  t.floating("s-churn", FIELD(sample.s_churn), 0.0, 1e6, "heun: stochastic churn S_churn (0 = deterministic)");
  t.floating("s-tmin", FIELD(sample.s_tmin), 0.0, kInf, "heun: churn only where sigma >= S_tmin");
  t.floating("s-tmax", FIELD(sample.s_tmax), 0.0, kInf, "heun: churn only where sigma <= S_tmax");
  t.floating("s-noise", FIELD(sample.s_noise), 0.0, 1e6, "heun: noise scale S_noise of the churn");
  t.floating("eta", FIELD(sample.eta), 0.0, 1.0, "DDIM eta in [0, 1] (0 = deterministic)");
  t.choice(
      "variance", FIELD(sample.variance), {"fixed_small", "fixed_large"}, parse_variance,
      [](Variance v) { return to_string(v); }, "ddpm variance: fixed_small (posterior) | fixed_large (beta)");
  t.boolean("clip-x0", FIELD(sample.clip_x0), "clip the predicted x0 to [-1, 1]");
  t.boolean("dynamic-threshold", FIELD(sample.dynamic_threshold),
            "dynamic thresholding of the predicted x0 (Saharia et al. 2022)");
  t.floating("dynamic-threshold-percentile", FIELD(sample.dynamic_threshold_percentile), 0.0, 1.0,
             "percentile of |x0| used by --dynamic-threshold");
  t.boolean("corrector", FIELD(sample.corrector), "annealed Langevin corrector after each step (Song et al. 2021)");
  t.floating("corrector-snr", FIELD(sample.corrector_snr), 0.0, kInf, "corrector signal-to-noise ratio r");
  t.integer("corrector-steps", FIELD(sample.corrector_steps), 1, 1000, "Langevin steps per sampling step");
  t.unsigned_("sample-seed", FIELD(sample.seed), "seed; image k of a run is the same whatever the batch size");
  // The grids' sampler may change on resume: it does not touch the training trajectory.
  for (ConfigKey& k : t.keys)
    if (k.area == KeyArea::Sample) k.operational = true;
  return t.keys;
}

#undef FIELD

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = build();
  return keys;
}

const ConfigKey* find_config_key(const std::string& name) {
  for (const ConfigKey& k : config_keys())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace ddpm
