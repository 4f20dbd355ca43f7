#include "milter/log_escape.hpp"

#include <gtest/gtest.h>

namespace floodgate::milter {
namespace {

TEST(LogEscape, PrintableTextPassesThrough) {
  EXPECT_EQ(escape_log_value("user@example.com"), "user@example.com");
}

TEST(LogEscape, NewlinesAndControlCharactersCannotForgeALine) {
  const std::string escaped = escape_log_value("a\r\nqid=FAKE action=accept\x01");
  EXPECT_EQ(escaped, "a\\x0d\\x0aqid=FAKE action=accept\\x01");
  EXPECT_EQ(escaped.find('\n'), std::string::npos);
}

TEST(LogEscape, QuotesBackslashesAndEightBitBytesAreEscaped) {
  EXPECT_EQ(escape_log_value("\"\\\xe9"), "\\x22\\x5c\\xe9");
}

TEST(LogEscape, LongValuesAreCutWithAnEllipsis) {
  EXPECT_EQ(escape_log_value(std::string(10, 'a'), 4), "aaaa...");
  EXPECT_EQ(escape_log_value(std::string(4, 'a'), 4), "aaaa");
}

TEST(LogField, ValuesWithSpacesOrEqualsAreQuoted) {
  EXPECT_EQ(log_field("sender", "a@b"), "sender=a@b");
  EXPECT_EQ(log_field("reasons", "x=1 (+2)"), "reasons=\"x=1 (+2)\"");
  EXPECT_EQ(log_field("sasl_user", ""), "sasl_user=\"\"");
}

TEST(LogField, AQuoteInTheValueCannotCloseTheQuotedField) {
  EXPECT_EQ(log_field("helo", "a\" action=accept"), "helo=\"a\\x22 action=accept\"");
}

}  // namespace
}  // namespace floodgate::milter
