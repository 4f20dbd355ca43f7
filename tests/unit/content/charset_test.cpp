// CharsetDecoder: MIME charsets to UTF-8, streamed, with junk replaced.
#include "policy/charset.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "policy/mime_header.hpp"

namespace floodgate::policy {
namespace {

constexpr std::string_view k_fffd = "\xEF\xBF\xBD";

std::string decode_whole(std::string_view charset, std::string_view input) {
  CharsetDecoder decoder(charset);
  std::string out;
  decoder.decode(input, out);
  decoder.finish(out);
  return out;
}

std::string decode_in_pieces(std::string_view charset, std::string_view input, std::size_t piece) {
  CharsetDecoder decoder(charset);
  std::string out;
  while (!input.empty()) {
    const std::size_t n = std::min(piece, input.size());
    decoder.decode(input.substr(0, n), out);
    input.remove_prefix(n);
  }
  decoder.finish(out);
  return out;
}

// Every way of cutting the input in two, and byte by byte, must give what
// the whole input gives.
void expect_any_split_decodes_to(std::string_view charset, std::string_view input, std::string_view want) {
  EXPECT_EQ(decode_whole(charset, input), want) << "charset " << charset << ", whole";
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    CharsetDecoder decoder(charset);
    std::string got;
    decoder.decode(input.substr(0, cut), got);
    decoder.decode(input.substr(cut), got);
    decoder.finish(got);
    EXPECT_EQ(got, want) << "charset " << charset << ", cut at " << cut;
  }
  EXPECT_EQ(decode_in_pieces(charset, input, 1), want) << "charset " << charset << ", bytewise";
}

struct Case {
  std::string_view charset;
  std::string_view input;
  std::string_view want;
};

TEST(CharsetDecoder, ConvertsCommonMailCharsetsToUtf8WhereverTheInputIsCut) {
  const Case cases[] = {
      {"iso-8859-1", "caf\xE9 cr\xE8me", "café crème"},
      // Labelled Latin-1, written as windows-1252: curly quotes, not C1 controls.
      {"ISO-8859-1", "\x93quoted\x94", "“quoted”"},
      {"windows-1252", "\x80 5 \x96 \x85", "€ 5 – …"},
      {"koi8-r", "\xF0\xD2\xC9\xD7\xC5\xD4, \xCD\xC9\xD2", "Привет, мир"},
      {"utf-8", "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80", "héllo ✓ 😀"},
      {"us-ascii", "plain text\r\n", "plain text\r\n"},
      {"shift_jis", "\x82\xB1\x82\xF1\x82\xC9\x82\xBF\x82\xCD abc \x93\xFA\x96\x7B", "こんにちは abc 日本"},
      {"gb2312", "\xD6\xD0\xCE\xC4 and \xD6\xD0\xB9\xFA", "中文 and 中国"},
      {"iso-2022-jp", "\x1B$B$3$s\x1B(B ok", "こん ok"},
      {"utf-16le", std::string_view("h\0i\0", 4), "hi"},
  };
  for (const Case& c : cases) expect_any_split_decodes_to(c.charset, c.input, c.want);
}

TEST(CharsetDecoder, ReplacesInvalidBytesAndGoesOn) {
  const Case cases[] = {
      {"utf-8",
       "a\xFF"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
      {"utf-8", "\xC3(", "\xEF\xBF\xBD("},
      {"utf-8", "x\xED\xA0\x80y", "x\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDy"},  // a surrogate
      {"utf-8", "overlong \xC0\xAF.", "overlong \xEF\xBF\xBD\xEF\xBF\xBD."},
      {"windows-1252",
       "\x81"
       "a",
       "\xEF\xBF\xBD"
       "a"},  // unassigned in 1252
      {"shift_jis", "\x82\xB1\xFF\x82\xF1", "こ\xEF\xBF\xBDん"},
  };
  for (const Case& c : cases) expect_any_split_decodes_to(c.charset, c.input, c.want);
}

TEST(CharsetDecoder, CharacterCutOffAtTheEndBecomesOneReplacement) {
  expect_any_split_decodes_to("utf-8", "ok\xE2\x82", "ok\xEF\xBF\xBD");
  expect_any_split_decodes_to("shift_jis", "\x82\xB1\x82", "こ\xEF\xBF\xBD");
  expect_any_split_decodes_to("gb2312", "\xD6", "\xEF\xBF\xBD");
}

TEST(CharsetDecoder, UnknownCharsetPassesBytesThrough) {
  const std::string_view charsets[] = {"x-no-such-charset", "unknown-8bit", "utf-8//TRANSLIT",
                                       "../../etc/passwd",  "a b",          std::string_view("utf-8\0x", 7)};
  for (const std::string_view charset : charsets) {
    CharsetDecoder decoder(charset);
    EXPECT_FALSE(decoder.known()) << charset;
    EXPECT_EQ(decoder.iconv_name(), "") << charset;
    std::string out;
    decoder.decode("caf\xE9\xFF", out);
    decoder.finish(out);
    EXPECT_EQ(out, "caf\xE9\xFF") << charset;
  }
  EXPECT_TRUE(CharsetDecoder("koi8-r").known());
}

TEST(CharsetDecoder, FinishResetsForTheNextPart) {
  CharsetDecoder decoder("iso-2022-jp");
  std::string out;
  decoder.decode("\x1B$B$3", out);  // left in JIS X 0208 mode
  decoder.finish(out);
  out.clear();
  decoder.decode("ab", out);
  decoder.finish(out);
  EXPECT_EQ(out, "ab");
}

TEST(CharsetDecoder, LongRunsOfJunkAndLargeInputStayCorrect) {
  // Large enough to cross the output block many times in both paths.
  std::string input;
  std::string want;
  for (int i = 0; i < 20000; ++i) {
    input += "\xE9t\xE9 ";
    want += "été ";
  }
  EXPECT_EQ(decode_in_pieces("iso-8859-1", input, 4093), want);
  const std::string junk(100000, '\xFF');
  const std::string got = decode_in_pieces("utf-8", junk, 7);
  ASSERT_EQ(got.size(), junk.size() * k_fffd.size());
  EXPECT_EQ(got.substr(0, 6), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // An endless "incomplete" character cannot grow the held-back bytes.
  std::string lead_bytes(1000, '\xE2');
  EXPECT_EQ(decode_in_pieces("shift_jis", lead_bytes, 1).size() % k_fffd.size(), 0u);
}

TEST(CanonicalCharsetName, ResolvesMislabelsAndRejectsNonTokens) {
  EXPECT_EQ(canonical_charset_name(" UTF8 "), "utf-8");
  EXPECT_EQ(canonical_charset_name(""), "utf-8");
  EXPECT_EQ(canonical_charset_name("US-ASCII"), "utf-8");
  EXPECT_EQ(canonical_charset_name("Latin1"), "windows-1252");
  EXPECT_EQ(canonical_charset_name("gb2312"), "gb18030");
  EXPECT_EQ(canonical_charset_name("ks_c_5601-1987"), "cp949");
  EXPECT_EQ(canonical_charset_name("KOI8-R"), "koi8-r");
  EXPECT_EQ(canonical_charset_name("utf-8//IGNORE"), "");
  EXPECT_EQ(canonical_charset_name(std::string(41, 'a')), "");
}

TEST(ContentTypeCharset, ParsedLowerCaseWithUsAsciiDefault) {
  EXPECT_EQ(parse_content_type("text/plain").charset, "us-ascii");
  EXPECT_EQ(parse_content_type("text/plain; charset=UTF-8").charset, "utf-8");
  EXPECT_EQ(parse_content_type("text/html;\r\n charset=\"Windows-1252\"; x=y").charset, "windows-1252");
  EXPECT_EQ(parse_content_type("text/plain; charset=koi8-r; charset=utf-8").charset, "koi8-r");
  EXPECT_EQ(parse_content_type("text/plain; charset=\"\"").charset, "us-ascii");
  EXPECT_EQ(parse_content_type("text/plain; charset=" + std::string(41, 'x')).charset, "us-ascii");
  EXPECT_EQ(parse_content_type("garbage; charset=iso-8859-2").charset, "iso-8859-2");
}

}  // namespace
}  // namespace floodgate::policy
