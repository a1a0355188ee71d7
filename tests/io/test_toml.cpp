// The TOML reader (src/io/toml.hpp) and the config files read through it: valid TOML is
// read as the spec says, malformed TOML is an error naming the line, never a guess.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "io/toml.hpp"
#include "ddpm/pipeline/config.hpp"
#include "tools/options.hpp"
#include "test_util.hpp"

namespace {

using ddpm::toml::Value;

const Value& at(const Value& t, const std::string& key) {
  const Value* v = t.find(key);
  if (v == nullptr) throw std::runtime_error("no key " + key);
  return *v;
}

std::string error_of(const std::string& text) {
  try {
    ddpm::toml::parse(text);
  } catch (const ddpm::toml::ParseError& e) {
    return e.what();
  }
  return "";
}

TEST(Toml, ScalarsOfEveryKind) {
  const Value d = ddpm::toml::parse(
      "a = 1_000\nb = 0xdead_BEEF\nc = 0o17\ne = 0b101\nf = +3.5e-2\ng = -inf\nh = nan\ni = true\nj = false\n"
      "k = \"tab\\there \\u00e9 \\\"q\\\"\"\nl = 'C:\\path'\nm = 1e3\nn = 0.0\n"
      "\"quoted key\" = 1\n'lit key' = 2\nbare-key_1 = 3 # comment\n");
  EXPECT_EQ(at(d, "a").integer, 1000);
  EXPECT_EQ(at(d, "b").integer, 0xdeadbeef);
  EXPECT_EQ(at(d, "c").integer, 15);
  EXPECT_EQ(at(d, "e").integer, 5);
  EXPECT_DOUBLE_EQ(at(d, "f").floating, 0.035);
  EXPECT_TRUE(std::isinf(at(d, "g").floating) && at(d, "g").floating < 0);
  EXPECT_TRUE(std::isnan(at(d, "h").floating));
  EXPECT_TRUE(at(d, "i").boolean);
  EXPECT_FALSE(at(d, "j").boolean);
  EXPECT_EQ(at(d, "k").string, "tab\there \xC3\xA9 \"q\"");
  EXPECT_EQ(at(d, "l").string, "C:\\path");
  EXPECT_EQ(at(d, "m").kind, Value::Kind::Float);
  EXPECT_EQ(at(d, "quoted key").integer, 1);
  EXPECT_EQ(at(d, "lit key").integer, 2);
  EXPECT_EQ(at(d, "bare-key_1").integer, 3);
}

TEST(Toml, HexNeedsNoSignAndUnderscoresSitBetweenDigits) {
  EXPECT_NE(error_of("b = -0x1\n"), "");  // signs are for decimal numbers only
  for (const char* bad : {"a = 1__0\n", "a = _1\n", "a = 1_\n", "a = 1_.5\n"})
    EXPECT_NE(error_of(bad), "") << bad;
}

TEST(Toml, ArraysTablesAndInlineTables) {
  const Value d = ddpm::toml::parse(
      "list = [\n  1, # one\n  2,\n  3,\n]\nnested = [[1, 2], ['a']]\nempty = []\n"
      "point = { x = 1, y = { z = 2 } }\nsite.name = \"x\"\n"
      "[model]\nbase-channels = 32\n[model.sub]\nq = 1\n[[runs]]\nid = 1\n[[runs]]\nid = 2\n");
  const Value& list = at(d, "list");
  ASSERT_EQ(list.array.size(), 3u);
  EXPECT_EQ(list.array[2].integer, 3);
  EXPECT_EQ(at(d, "nested").array[1].array[0].string, "a");
  EXPECT_TRUE(at(d, "empty").array.empty());
  EXPECT_EQ(at(at(at(d, "point"), "y"), "z").integer, 2);
  EXPECT_EQ(at(at(d, "site"), "name").string, "x");
  EXPECT_EQ(at(at(d, "model"), "base-channels").integer, 32);
  EXPECT_EQ(at(at(at(d, "model"), "sub"), "q").integer, 1);
  ASSERT_EQ(at(d, "runs").array.size(), 2u);
  EXPECT_EQ(at(d, "runs").array[1].find("id")->integer, 2);
}

TEST(Toml, MultiLineStrings) {
  const Value d = ddpm::toml::parse(
      "a = \"\"\"\nline one\nline two\"\"\"\nb = \"\"\"one \\\n    two\"\"\"\nc = '''\nraw \\n'''\n"
      "d = \"\"\"q\"\"\"\"\n");
  EXPECT_EQ(at(d, "a").string, "line one\nline two");
  EXPECT_EQ(at(d, "b").string, "one two");
  EXPECT_EQ(at(d, "c").string, "raw \\n");
  EXPECT_EQ(at(d, "d").string, "q\"");
}

TEST(Toml, MalformedInputIsAnErrorNamingTheLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"steps = [1,\n", "line 2"},          // unterminated array (read as 1 by the old parser)
      {"a = 1\nsteps\n", "line 2"},         // a bare key line (ignored by the old parser)
      {"a = 1\na = 2\n", "line 2"},         // duplicate key
      {"a = \"open\n", "line 1"},           // unterminated string
      {"a = hello\n", "line 1"},            // strings need quotes
      {"a = 1 2\n", "line 1"},              // trailing garbage
      {"a = 007\n", "line 1"},              // leading zeros
      {"a = 1979-05-27\n", "line 1"},       // dates are not supported
      {"[t]\nx = 1\n[t]\n", "line 3"},      // table defined twice
      {"a = {x = 1}\n[a]\n", "line 2"},     // inline tables are closed
      {"a = 99999999999999999999\n", "line 1"},  // out of int64 range
      {"a = \"\\q\"\n", "line 1"},          // bad escape
      {"= 1\n", "line 1"},                  // no key
  };
  for (const auto& [text, where] : cases) {
    const std::string e = error_of(text);
    EXPECT_NE(e.find(where), std::string::npos) << text << " → '" << e << "'";
  }
  // Nesting is bounded (no stack exhaustion on hostile input).
  EXPECT_NE(error_of("a = " + std::string(10000, '[') + "\n"), "");
}

TEST(Toml, WritingHelpersRoundTrip) {
  for (double v : {0.1, 2.0, 1e-8, 3.14159265358979, -0.0, 1e300, 5e-324}) {
    const Value d = ddpm::toml::parse("x = " + ddpm::toml::format_float(v) + "\n");
    EXPECT_EQ(at(d, "x").kind, Value::Kind::Float) << v;
    EXPECT_EQ(at(d, "x").floating, v) << ddpm::toml::format_float(v);
  }
  const std::string s = "quote \" backslash \\ newline \n tab \t bell \x07";
  EXPECT_EQ(at(ddpm::toml::parse("x = " + ddpm::toml::quote(s) + "\n"), "x").string, s);
}

TEST(ConfigToml, ValidTomlIsAcceptedAndTablesNameTheGroups) {
  const ddpm::Config c = ddpm::config_from_toml(
      "channel-mult = [\n  1,\n  2,\n]\nsteps = 1_000\n[model]\nbase-channels = 48\n[training]\nlr = 1e-3\n");
  EXPECT_EQ(c.model.channel_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.model.base_channels, 48);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  // A key in the wrong table, an unknown table, a wrong type: one line naming it.
  for (const auto& [text, what] : std::vector<std::pair<std::string, std::string>>{
           {"[model]\nlr = 1\n", "model.lr"},
           {"[optimizer]\nlr = 1\n", "[optimizer]"},
           {"steps = \"ten\"\n", "steps"},
           {"batch-size = 0\n", "batch-size: must be in [1, 65536] (got 0)"},
           {"seed = -1\n", "seed: must be a non-negative integer"},
           {"steps = [1,\n", "line 2"}}) {
    try {
      ddpm::config_from_toml(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

TEST(ConfigToml, FileErrorsNameTheFileAndTheLine) {
  const std::string dir = ddpm::test::make_temp_dir("toml-file");
  const std::string path = dir + "/bad.toml";
  ddpm::test::write_bytes(path, std::string("lr = 0.1\nsteps = [1,\n"));
  try {
    ddpm::config_from_file(path);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ddpm::config_from_file(dir), std::invalid_argument);  // a directory is not a config
}

}  // namespace

namespace {

// Issue 18 items 8 and 12: out-of-range numbers are refused (never clamped), and range errors
// are short and name the option.
TEST(ConfigOptions, OutOfRangeNumbersAreRefusedWithAShortMessage) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--steps", "99999999999999999999"}, "--steps: must be in [1, 1000000000000000] (got 99999999999999999999)"},
      {{"--seed", "-1"}, "--seed: must be a non-negative integer (got -1)"},
      {{"--seed", "18446744073709551616"}, "--seed: must be at most 18446744073709551615"},
      {{"--batch-size", "0"}, "--batch-size: must be in [1, 65536] (got 0)"},
      {{"--lr", "-1"}, "--lr: must be >= 0 (got -1)"},
      {{"--timesteps", "1000000000"}, "--timesteps: must be in [2, 100000] (got 1000000000)"},
      {{"--sample-n", "100000000"}, "--sample-n: must be in [1, 4096] (got 100000000)"},
      {{"--eta", "nan"}, "--eta: must be a number (got 'nan')"},
      {{"--sampler", "dpm++4m"}, "--sampler: must be one of ddpm, ddim, dpm++2m, dpm++3m, dpm++2m-sde, unipc, heun, euler, euler-a, ipndm (got 'dpm++4m')"},
  };
  for (const auto& [args, message] : cases) {
    try {
      ddpm::cli::config_from_args(args);
      ADD_FAILURE() << args[0] << " " << args[1] << " was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(message), std::string::npos) << what;
      EXPECT_LT(what.size(), 120u) << what;
    }
  }
  // In range: accepted as given, no clamping.
  const ddpm::Config c = ddpm::cli::config_from_args({"--steps", "1000000000000000", "--seed", "18446744073709551615"});
  EXPECT_EQ(c.train.steps, 1000000000000000);
  EXPECT_EQ(c.train.seed, 18446744073709551615ull);
}

}  // namespace
