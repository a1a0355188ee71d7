#pragma once
// Reads tests/data/schedules.json (float64 reference values computed independently of
// this code; see shared/reference/README.md) and maps its case names to configs.
// A tiny JSON reader is enough: the file holds only objects, strings, numbers and null.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/math/schedule.hpp"

namespace ddpm::test {

struct JsonValue {
  enum Kind { Null, Number, String, Object } kind = Null;
  double number = 0;
  std::string string;
  std::map<std::string, JsonValue> object;
  const JsonValue& at(const std::string& key) const {
    auto it = object.find(key);
    if (it == object.end()) throw std::runtime_error("schedules.json: missing key '" + key + "'");
    return it->second;
  }
};

class JsonReader {
 public:
  explicit JsonReader(std::string text) : s_(std::move(text)) {}
  JsonValue parse() {
    JsonValue v = value();
    ws();
    if (p_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("schedules.json: " + what + " at offset " + std::to_string(p_));
  }
  void ws() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
  }
  char peek() {
    ws();
    if (p_ >= s_.size()) fail("unexpected end");
    return s_[p_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++p_;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (p_ < s_.size() && s_[p_] != '"') {
      if (s_[p_] == '\\') fail("escapes are not supported");
      out += s_[p_++];
    }
    expect('"');
    return out;
  }
  JsonValue value() {
    JsonValue v;
    const char c = peek();
    if (c == '{') {
      v.kind = JsonValue::Object;
      ++p_;
      if (peek() == '}') {
        ++p_;
        return v;
      }
      for (;;) {
        std::string key = str();
        expect(':');
        v.object[key] = value();
        if (peek() == ',') {
          ++p_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '"') {
      v.kind = JsonValue::String;
      v.string = str();
      return v;
    }
    if (s_.compare(p_, 4, "null") == 0) {
      p_ += 4;
      return v;
    }
    const char* begin = s_.c_str() + p_;
    char* end = nullptr;
    v.number = std::strtod(begin, &end);
    if (end == begin) fail("bad value");
    p_ += static_cast<size_t>(end - begin);
    v.kind = JsonValue::Number;
    return v;
  }
  std::string s_;
  size_t p_ = 0;
};

inline JsonValue load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return JsonReader(ss.str()).parse();
}

/// One reference case: its config, the equivalent ddpm-schedule flags, and its values.
struct ReferenceCase {
  std::string name;
  ScheduleConfig config;
  std::string flags;
  // rows[i][quantity]; logsnr is −inf where the file has null.
  std::map<int64_t, std::map<std::string, double>> rows;
};

/// The case names the reference README lists, translated to configs. An unknown name
/// throws, so a case added to the file cannot be skipped silently.
inline ScheduleConfig config_for_case(const std::string& name, std::string& flags) {
  ScheduleConfig c;
  auto kind = [&](const std::string& k) {
    c.kind = k;
    flags = "--schedule " + k;
  };
  if (name == "linear" || name == "quadratic" || name == "cosine" || name == "sigmoid" || name == "cosine-logsnr" ||
      name == "sigmoid-logsnr") {
    kind(name);
  } else if (name == "linear+scale0.5" || name == "cosine+scale0.5") {
    kind(name.substr(0, name.find('+')));
    c.input_scale = 0.5;
    flags += " --input-scale 0.5";
  } else if (name == "sigmoid(start=0,end=3,tau=0.7)") {
    kind("sigmoid");
    c.sigmoid_start = 0;
    c.sigmoid_end = 3;
    c.sigmoid_tau = 0.7;
    flags += " --sigmoid-start 0 --sigmoid-end 3 --sigmoid-tau 0.7";
  } else if (name == "cosine-logsnr(shift=2ln(0.5))") {
    kind("cosine-logsnr");
    c.logsnr_shift = 2 * std::log(0.5);
    flags += " --logsnr-shift -1.3862943611198906";
  } else if (name == "linear+zero-terminal-snr") {
    kind("linear");
    c.zero_terminal_snr = true;
    flags += " --zero-terminal-snr";
  } else {
    throw std::runtime_error("schedules.json: unknown case '" + name + "'");
  }
  return c;
}

inline std::vector<ReferenceCase> load_reference(const std::string& path) {
  const JsonValue root = load_json(path);
  const int64_t T = static_cast<int64_t>(root.at("T").number);
  std::vector<ReferenceCase> out;
  for (const auto& [name, sched] : root.at("schedules").object) {
    ReferenceCase rc;
    rc.name = name;
    rc.config = config_for_case(name, rc.flags);
    rc.config.timesteps = T;
    rc.flags += " --timesteps " + std::to_string(T);
    for (const auto& [index, row] : sched.object) {
      auto& r = rc.rows[std::stoll(index)];
      for (const auto& [key, v] : row.object)
        r[key] = v.kind == JsonValue::Null ? -std::numeric_limits<double>::infinity() : v.number;
    }
    out.push_back(std::move(rc));
  }
  return out;
}

/// |actual − expected| ≤ tol·|expected|, so an expected 0 must be matched exactly and an
/// expected −inf by −inf. For logsnr the scale is max(|expected|, 1): λ = ln(ᾱ/(1−ᾱ)) has
/// |dλ| = |dᾱ|/(ᾱ(1−ᾱ)) ≥ 4|dᾱ|/ᾱ, so a relative error tol in ᾱ is an absolute error of at
/// least tol in λ; near λ = 0 (ᾱ ≈ 1/2, e.g. sigmoid at i = 499, where the file holds
/// rounding noise of 4e-16) only the absolute error means anything.
inline bool matches_reference(const std::string& key, double actual, double expected, double tol) {
  if (std::isinf(expected)) return actual == expected;
  const double scale = key == "logsnr" ? std::max(std::abs(expected), 1.0) : std::abs(expected);
  return std::abs(actual - expected) <= tol * scale;
}

}  // namespace ddpm::test
