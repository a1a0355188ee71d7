// The strict JSON reader/writer used for safetensors headers and diffusers configs.
#include <gtest/gtest.h>

#include "io/json.hpp"
#include "test_util.hpp"

using namespace ddpm;
using ddpm::test::error_of;

TEST(Json, ParsesEveryKind) {
  const json::Value v = json::parse(R"( {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00", "o": {}} )");
  ASSERT_TRUE(v.is_object());
  const auto& a = v.find("a")->items();
  EXPECT_EQ(a[0].as_int64(), 1);
  EXPECT_DOUBLE_EQ(a[1].as_double(), -2500.0);
  EXPECT_TRUE(a[2].as_bool());
  EXPECT_FALSE(a[3].as_bool());
  EXPECT_TRUE(a[4].is_null());
  EXPECT_EQ(v.find("s")->as_string(), "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v.find("o")->members().empty());
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, LargeIntegersStayExact) {
  EXPECT_EQ(json::parse("9007199254740993").as_int64(), 9007199254740993LL);
  EXPECT_NE(error_of([] { json::parse("99999999999999999999").as_int64(); }), "");
  EXPECT_NE(error_of([] { json::parse("1.0").as_int64(); }), "");
}

TEST(Json, RejectsWhatRfc8259Rejects) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "1e", "'a'", "\"\t\"", "\"\\x\"",
                          "\"\\ud800\"", "\"\\udc00\"", "tru", "nul", "[1] 2", "{\"a\" 1}", "{1:2}", "\"\xc0\xaf\"",
                          "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"abc", "NaN", "Infinity"}) {
    const std::string e = error_of([&] { json::parse(bad); });
    EXPECT_NE(e, "") << "accepted: " << bad;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
  EXPECT_NE(error_of([] { json::parse(R"({"a":1,"a":2})"); }).find("duplicate key"), std::string::npos);
}

TEST(Json, DepthAndSizeAreBounded) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(error_of([&] { json::parse(deep); }).find("nesting"), std::string::npos);
  EXPECT_NO_THROW(json::parse(std::string(10, '[') + std::string(10, ']')));
  EXPECT_NE(error_of([] { json::parse("[1,2,3]", {64, 4}); }).find("limit"), std::string::npos);
}

TEST(Json, WriteThenParseRoundTrips) {
  json::Value v = json::Value::object();
  v.set("n", json::Value::number(0.1)).set("i", json::Value::integer(-42)).set("s", json::Value::string("a\"b\x01"));
  v.set("arr", json::Value::array({json::Value::boolean(true), json::Value()}));
  for (int indent : {-1, 2}) {
    const json::Value back = json::parse(json::write(v, indent));
    EXPECT_EQ(back.find("n")->as_double(), 0.1);
    EXPECT_EQ(back.find("i")->as_int64(), -42);
    EXPECT_EQ(back.find("s")->as_string(), "a\"b\x01");
    EXPECT_TRUE(back.find("arr")->items()[0].as_bool());
    EXPECT_EQ(json::write(back, indent), json::write(v, indent));
  }
  EXPECT_EQ(json::write(json::parse("[1, {\"a\": []}]")), "[1,{\"a\":[]}]");
}

TEST(Json, SpacedLayoutAndNumberLiterals) {
  json::Value v = json::Value::object();
  v.set("a", json::Value::number_literal("1.50")).set("b", json::Value::array({json::Value::integer(1),
                                                                              json::Value::number_literal("2e-05")}));
  v.set("c", json::Value::object({{"d", json::Value::string("x\"y")}}));
  EXPECT_EQ(json::write_spaced(v), "{\"a\": 1.50, \"b\": [1, 2e-05], \"c\": {\"d\": \"x\\\"y\"}}");
  EXPECT_EQ(json::write(v), "{\"a\":1.50,\"b\":[1,2e-05],\"c\":{\"d\":\"x\\\"y\"}}");
  EXPECT_EQ(json::parse(json::write_spaced(v)).find("a")->as_double(), 1.5);
  for (const char* bad : {"nan", "inf", "1.", ".5", " 1", "01", "1,2", "\"1\"", ""})
    EXPECT_NE(error_of([&] { json::Value::number_literal(bad); }).find("is not a number"), std::string::npos) << bad;
}
