// What floodgatectl prints of attacker-controlled text, and the durations
// ops type.
#include "ctl/terminal_text.hpp"

#include <gtest/gtest.h>

namespace floodgate::ctl {
namespace {

using namespace std::chrono_literals;

TEST(EscapeForTerminal, EscapesEveryControlCharacterAndKeepsReadableText) {
  struct Case {
    std::string raw;
    std::string want;
  };
  const Case cases[] = {
      {"plain text", "plain text"},
      {"\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"},
      {"line\r\nforged: yes", "line\\x0d\\x0aforged: yes"},
      {"tab\there", "tab\\x09here"},
      {"del\x7f", "del\\x7f"},
      {std::string("nul\0x", 5), "nul\\x00x"},
      {"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"},  // valid UTF-8 stays
      {"c1 \xc2\x9b"
       "31m",
       "c1 \\xc2\\x9b31m"},                   // CSI as a C1 control
      {"latin1 caf\xe9", "latin1 caf\\xe9"},  // not UTF-8
      {"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
      {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
      {"cut \xe6\x97", "cut \\xe6\\x97"},
      {"back\\slash", "back\\\\slash"},
  };
  for (const auto& c : cases) EXPECT_EQ(escape_for_terminal(c.raw), c.want) << "raw: " << c.raw;
}

TEST(EscapeForTerminal, CutsLongTextAtTheLimitWithoutSplittingAnEscapeOrACharacter) {
  EXPECT_EQ(escape_for_terminal("0123456789", 10), "0123456789");
  EXPECT_EQ(escape_for_terminal("0123456789a", 10), "0123456...");
  EXPECT_EQ(escape_for_terminal("012345\x1b[1m", 10), "012345...");
  EXPECT_EQ(escape_for_terminal("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5),
            "\xc3\xa9\xc3\xa9...");
  EXPECT_EQ(display_width(escape_for_terminal(std::string(100, 'x'), 40)), 40u);
}

TEST(FormatAge, UsesTheLargestWholeUnit) {
  EXPECT_EQ(format_age(0s), "0s");
  EXPECT_EQ(format_age(59s), "59s");
  EXPECT_EQ(format_age(5min + 59s), "5m");
  EXPECT_EQ(format_age(2h + 59min), "2h");
  EXPECT_EQ(format_age(72h), "3d");
  EXPECT_EQ(format_age(-5s), "0s");  // a clock step: never a negative age
}

TEST(ParseDuration, AcceptsANumberAndAUnit) {
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("10m"), 10min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("2d"), 48h);
  EXPECT_EQ(parse_duration("1w"), 168h);
}

TEST(ParseDuration, RefusesAnythingElse) {
  for (const char* text :
       {"", "s", "10", "0s", "-5m", "5 m", "5M", "1.5h", "1h30m", "99999999999999999999d"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace floodgate::ctl
