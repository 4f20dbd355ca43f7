// TextTokeniser: what folds away (case, numbers, random tokens, URL paths,
// address local parts, salutations) and what does not.
#include "policy/text_tokens.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace floodgate::policy {
namespace {

class Collect final : public TokenSink {
 public:
  void on_token(std::string_view token) override { tokens.emplace_back(token); }
  std::vector<std::string> tokens;
};

std::string joined(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& token : tokens) out += (out.empty() ? "" : " ") + token;
  return out;
}

std::string tokens_of(std::string_view text, std::size_t cap = 1 << 20) {
  Collect sink;
  TextTokeniser tokeniser(cap, sink);
  tokeniser.add(text);
  tokeniser.finish();
  return joined(sink.tokens);
}

TEST(TextTokens, FoldsCaseAndSplitsOnPunctuationAndWhitespace) {
  const struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"Buy NOW, while\tstocks\r\n  last!!!", "buy now while stocks last"},
      {"state-of-the-art", "state of the art"},
      {"caf\xc3\xa9 CR\xc3\x88ME", "caf\xc3\xa9 cr\xc3\x88me"},  // UTF-8 bytes kept, ASCII folded
      {"  \r\n ", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(tokens_of(c.text), c.want) << "text: " << c.text;
  }
}

TEST(TextTokens, NumbersAndRandomLookingTokensBecomeClasses) {
  const struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"only $49.95 for 2 weeks", "only <num> <num> for <num> weeks"},
      {"ref x7k2q9zz3", "ref <rand>"},
      {"id 5f4dcc3b5aa765d61d8327deb882cf99", "id <rand>"},
      {"blob aGVsbG8gd29ybGRoZWxsbw", "blob <rand>"},
      // Short mixes and long plain words are words.
      {"mp3 win2k internationalisation", "mp3 win2k internationalisation"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(tokens_of(c.text), c.want) << "text: " << c.text;
  }
}

TEST(TextTokens, UrlsAndAddressesBecomeTheirRegistrableDomain) {
  const struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"visit http://www.shop.example.co.uk/deal?id=1&u=2 now", "visit example.co.uk now"},
      {"(see <HTTPS://user:pw@Mail.Example.com:8080/x>).", "see example.com"},
      {"go to www.example.org/path today", "go to example.org today"},
      {"write to John.Smith+tag@sales.example.net!", "write to example.net"},
      {"mailto:bob@example.com", "example.com"},
      {"http://192.0.2.7/x", "192.0.2.7"},
      // Not addresses: no domain with a dot, or nothing before the @.
      {"@home user@localhost", "home user localhost"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(tokens_of(c.text), c.want) << "text: " << c.text;
  }
}

TEST(TextTokens, TrackingQueryAndPathDoNotChangeTokens) {
  EXPECT_EQ(tokens_of("click http://a.example.com/r?uid=1"),
            tokens_of("click https://b.example.com/other/path?uid=99&x=y#frag"));
}

TEST(TextTokens, SalutationLineIsNeutralised) {
  const std::string want = "<salutation> you won";
  for (const char* text : {"Dear John Smith,\nyou won", "Hi Anna,\n\nyou won", "Hello there!\nyou won",
                           "DEAR Friend:\r\nyou won", "Dear Sir / Madam\nyou won", "Hey,\nyou won"}) {
    EXPECT_EQ(tokens_of(text), want) << "text: " << text;
  }
  // Names stop at the line's end, or after k_max_salutation_names words.
  EXPECT_EQ(tokens_of("Hello\nyou won"), want);
  EXPECT_EQ(tokens_of("Dear a b c d e f"), "<salutation> e f");
  // Only at the start of a part.
  EXPECT_EQ(tokens_of("you won, dear John"), "you won dear john");
}

TEST(TextTokens, EachTextPartMayOpenWithASalutation) {
  Collect sink;
  TextTokeniser tokeniser(1 << 20, sink);
  tokeniser.add("Hi Bob,\nsale");
  tokeniser.separate();
  tokeniser.add("Hi Bob, sale");
  tokeniser.finish();
  EXPECT_EQ(joined(sink.tokens), "<salutation> sale <salutation> sale");
}

TEST(TextTokens, ResultDoesNotDependOnHowTextIsSplit) {
  const std::string text =
      "Dear Ann Lee,\r\nGet 50% off at http://shop.example.com/x?y=1 or mail "
      "deals@example.org, ref ab12cd34ef. " +
      std::string(300, 'z') + " end";
  const std::string whole = tokens_of(text);
  for (std::size_t piece = 1; piece <= 7; ++piece) {
    Collect sink;
    TextTokeniser tokeniser(1 << 20, sink);
    for (std::size_t i = 0; i < text.size(); i += piece) tokeniser.add(text.substr(i, piece));
    tokeniser.finish();
    EXPECT_EQ(joined(sink.tokens), whole) << "piece " << piece;
  }
}

TEST(TextTokens, LongWordsAreCutAtMaxWord) {
  const std::string long_word(TextTokeniser::k_max_word + 50, 'q');
  EXPECT_EQ(tokens_of(long_word + " tail"), std::string(TextTokeniser::k_max_word, 'q') + " tail");
}

TEST(TextTokens, CapStopsTheStreamAndCutsTheLastToken) {
  Collect sink;
  TextTokeniser tokeniser(12, sink);
  tokeniser.add("alpha beta gamma delta");
  EXPECT_TRUE(tokeniser.full());
  EXPECT_TRUE(tokeniser.saw_text());
  tokeniser.finish();
  EXPECT_EQ(joined(sink.tokens), "alpha beta g");
}

TEST(TextTokens, ZeroCapStillTellsWhetherThereWasText) {
  Collect sink;
  TextTokeniser with_text(0, sink);
  with_text.add(" \r\n.. x");
  EXPECT_TRUE(with_text.saw_text());
  TextTokeniser punctuation_only(0, sink);
  punctuation_only.add(" -- !! ");
  EXPECT_FALSE(punctuation_only.saw_text());
  EXPECT_TRUE(sink.tokens.empty());
}

TEST(TextTokens, PunctuationOnlyIsNoText) {
  Collect sink;
  TextTokeniser tokeniser(1 << 20, sink);
  tokeniser.add("-- | ** !!\r\n");
  tokeniser.finish();
  EXPECT_FALSE(tokeniser.saw_text());
}

TEST(RegistrableDomain, UsesThePublicSuffixList) {
  const struct {
    const char* host;
    const char* want;
  } cases[] = {
      {"www.example.com", "example.com"},
      {"a.b.example.co.uk", "example.co.uk"},
      {"Foo.Example.COM", "example.com"},
      {"example", "example"},
      {"co.uk", "co.uk"},
      {"10.0.0.1", "10.0.0.1"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(registrable_domain(c.host), c.want) << "host: " << c.host;
  }
}

}  // namespace
}  // namespace floodgate::policy
