// The building blocks of the content fingerprinter: transfer decoders, HTML
// text extraction, header parsing (tokens: text_tokens_test.cpp).
#include <gtest/gtest.h>

#include <string>

#include "policy/mime_decoders.hpp"
#include "policy/mime_header.hpp"
#include "policy/mime_html.hpp"

namespace floodgate::policy {
namespace {

// Decodes `in` cut at `cut`, so a split inside an escape or quantum shows.
template <typename Decoder>
std::string decode_split(std::string_view in, std::size_t cut) {
  Decoder decoder;
  std::string out;
  decoder.decode(in.substr(0, cut), out);
  decoder.decode(in.substr(cut), out);
  decoder.finish(out);
  return out;
}

std::string html_text(std::string_view html) {
  HtmlTextExtractor extractor;
  std::string out;
  extractor.extract(html, out);
  extractor.finish(out);
  return out;
}

TEST(ContentBase64Decoder, DecodesWhateverTheSplit) {
  const std::string encoded = "SGVs\r\nbG8s IHdv\ncmxkIQ==";
  for (std::size_t cut = 0; cut <= encoded.size(); ++cut) {
    EXPECT_EQ(decode_split<Base64Decoder>(encoded, cut), "Hello, world!") << "cut " << cut;
  }
}

TEST(ContentBase64Decoder, SkipsInvalidBytesAndKeepsAnUnpaddedTail) {
  EXPECT_EQ(decode_split<Base64Decoder>("S!G*V\x80sbG8", 3), "Hello");
  EXPECT_EQ(decode_split<Base64Decoder>("SGk=SGk=", 0), "HiHi");  // concatenated blocks
  EXPECT_EQ(decode_split<Base64Decoder>("S", 0), "");              // a lone sextet is no byte
}

TEST(ContentQuotedPrintableDecoder, DecodesEscapesAndSoftBreaksWhateverTheSplit) {
  const std::string encoded = "caf=C3=A9 cr=c3=a8me =3D 50%=\nof= \t\nf\n";
  for (std::size_t cut = 0; cut <= encoded.size(); ++cut) {
    EXPECT_EQ(decode_split<QuotedPrintableDecoder>(encoded, cut),
              "caf\xc3\xa9 cr\xc3\xa8me = 50%off\n")
        << "cut " << cut;
  }
}

TEST(ContentQuotedPrintableDecoder, KeepsMalformedEscapesLiterally) {
  EXPECT_EQ(decode_split<QuotedPrintableDecoder>("a=ZZb =4x =", 4), "a=ZZb =4x =");
  EXPECT_EQ(decode_split<QuotedPrintableDecoder>("=4=41", 2), "=4A");
  EXPECT_EQ(decode_split<QuotedPrintableDecoder>("= x", 1), "= x");
}

TEST(ContentTransferEncoding, ParsesKnownTokensAndDefaultsToIdentity) {
  EXPECT_EQ(parse_transfer_encoding(" Base64\r\n"), TransferEncoding::Base64);
  EXPECT_EQ(parse_transfer_encoding("quoted-printable"), TransferEncoding::QuotedPrintable);
  EXPECT_EQ(parse_transfer_encoding("8bit"), TransferEncoding::Identity);
  EXPECT_EQ(parse_transfer_encoding("x-garbage"), TransferEncoding::Identity);
}

TEST(ContentTypeHeader, ParsesMediaTypeAndBoundaryInAnyLayout) {
  const ContentType quoted = parse_content_type(" Multipart/Alternative;\r\n\tBOUNDARY=\"a;b c\"");
  EXPECT_EQ(quoted.media_type, "multipart/alternative");
  EXPECT_EQ(quoted.boundary, "a;b c");
  EXPECT_TRUE(quoted.is_multipart());
  const ContentType bare = parse_content_type("multipart/mixed; charset=x; boundary=abc ; x=y");
  EXPECT_EQ(bare.boundary, "abc");
  EXPECT_EQ(parse_content_type("multipart/mixed; boundary=\"q\\\"x\"").boundary, "q\"x");
}

TEST(ContentTypeHeader, InvalidOrMissingMeansTextPlain) {
  EXPECT_EQ(parse_content_type("").media_type, "text/plain");
  EXPECT_EQ(parse_content_type("garbage").media_type, "text/plain");
  EXPECT_EQ(parse_content_type("/html").media_type, "text/plain");
  EXPECT_TRUE(parse_content_type("TEXT/HTML; charset=\"utf-8\"").is_html());
  EXPECT_EQ(parse_content_type("multipart/mixed").boundary, "");
  EXPECT_EQ(parse_content_type("multipart/mixed; boundary=" + std::string(300, 'b')).boundary, "");
}

TEST(ContentDispositionHeader, RecognisesAttachment) {
  EXPECT_TRUE(is_attachment_disposition(" ATTACHMENT; filename=x.txt"));
  EXPECT_FALSE(is_attachment_disposition(" inline"));
  EXPECT_FALSE(is_attachment_disposition(""));
}

TEST(ContentHtmlText, DropsTagsCommentsScriptsAndStyles) {
  EXPECT_EQ(html_text("<p>a</p><p>b</p>"), " a  b ");
  EXPECT_EQ(html_text("x<!-- <p>hidden</p> -- -->y"), "x y");
  EXPECT_EQ(html_text("<SCRIPT type=x>if (a<b) alert('</p>')</Script >z"), "  z");
  EXPECT_EQ(html_text("<style>p{}</style>z"), "  z");
}

TEST(ContentHtmlText, DecodesCommonEntitiesAndLeavesOthers) {
  EXPECT_EQ(html_text("&amp;&lt;&gt;&quot;&apos;&nbsp;&#65;&#x42;&#233;"), "&<>\"' AB\xc3\xa9");
  EXPECT_EQ(html_text("a &amp b &copy; c &#0; &#xZZ; &"), "a & b &copy; c &#0; &#xZZ; &");
  EXPECT_EQ(html_text("3 < 4 and 5 <> 6"), "3 < 4 and 5 <> 6");
}

TEST(ContentHtmlText, ResultDoesNotDependOnSplit) {
  const std::string html = "<b>caf&eacute;&amp;<!-- c -->&#233;</b><script>x</script>t &lt";
  const std::string whole = html_text(html);
  for (std::size_t cut = 0; cut <= html.size(); ++cut) {
    HtmlTextExtractor extractor;
    std::string out;
    extractor.extract(std::string_view(html).substr(0, cut), out);
    extractor.extract(std::string_view(html).substr(cut), out);
    extractor.finish(out);
    EXPECT_EQ(out, whole) << "cut " << cut;
  }
}

}  // namespace
}  // namespace floodgate::policy
