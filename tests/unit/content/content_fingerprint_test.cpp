// Behaviour of the content fingerprinter on constructed messages: MIME
// walking and decoding (the digest), near-duplicate band keys, fallbacks.
#include "policy/content_fingerprint.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "fingerprint_test_util.hpp"
#include "policy/minhash.hpp"

namespace floodgate::policy {
namespace {

using testing::Chunking;
using testing::encode_base64;
using testing::encode_quoted_printable;
using testing::fingerprint;
using testing::RawMessage;
using testing::to_crlf;

using Headers = std::vector<std::pair<std::string, std::string>>;

const std::string k_offer =
    "Dear friend,\n\nYou have been selected for an EXCLUSIVE offer: caf\xc3\xa9 "
    "cr\xc3\xa8me = 50% off!\nReply today.  Tabs\tand   spaces   everywhere.\n"
    "A long line that goes well past seventy-six columns so that quoted-printable "
    "needs a soft line break somewhere in the middle of it.\n";

ContentFingerprint plain(const std::string& text) {
  return fingerprint({{"Content-Type", " text/plain; charset=utf-8"}}, text);
}

ContentFingerprint encoded(const std::string& body, const std::string& encoding,
                           const std::string& type = "text/plain") {
  return fingerprint({{"Content-Type", " " + type + "; charset=utf-8"},
                      {"Content-Transfer-Encoding", " " + encoding}},
                     body);
}

// A multipart body from (part headers, part body) pairs.
std::string multipart_body(const std::string& boundary,
                           const std::vector<std::pair<std::string, std::string>>& parts,
                           bool close = true) {
  std::string body = "This is a multi-part message in MIME format.\r\n";
  for (const auto& [headers, content] : parts) {
    body += "\r\n--" + boundary + "\r\n" + headers + "\r\n" + content;
  }
  if (close) body += "\r\n--" + boundary + "--\r\n";
  return body;
}

Headers multipart_headers(const std::string& subtype, const std::string& boundary) {
  return {{"MIME-Version", " 1.0"},
          {"Content-Type", " multipart/" + subtype + "; boundary=\"" + boundary + "\""}};
}

TEST(ContentFingerprint, SameTextInPlainBase64AndQuotedPrintableMatches) {
  const auto as_plain = plain(k_offer);
  const auto as_base64 = encoded(encode_base64(k_offer), "base64");
  const auto as_qp = encoded(encode_quoted_printable(k_offer), "quoted-printable");
  ASSERT_TRUE(as_plain.present);
  // k_offer has enough tokens for MinHash (an exact digest before issue 5).
  EXPECT_EQ(as_plain.method, "minhash");
  EXPECT_EQ(as_plain.bands.size(), MinHashSketch::k_bands);
  EXPECT_EQ(as_base64.digest, as_plain.digest);
  EXPECT_EQ(as_qp.digest, as_plain.digest);
  EXPECT_EQ(as_base64.bands, as_plain.bands);
  EXPECT_EQ(as_qp.bands, as_plain.bands);
  EXPECT_TRUE(as_base64.present);
  EXPECT_TRUE(as_qp.present);
}

// A campaign's text, long enough for MinHash; {greeting}, {words} and {url}
// are where spammers vary it.
std::string campaign(const std::string& greeting, const std::string& words,
                     const std::string& url) {
  return greeting +
         "\n\nAre you paying too much for your mortgage? Rates have never been this low, "
         "and our network of lenders competes for your business. " + words +
         " Refinance today and cut your monthly payment, consolidate your debt, or take "
         "cash out for the home improvements you have always wanted. It takes two minutes "
         "to fill in our short form and there is no obligation at all. Visit " + url +
         " to get your free quote, or reply with REMOVE in the subject line to be taken "
         "off our list. This offer is open to homeowners in all fifty states.\n";
}

TEST(ContentFingerprint, HashBusterWordsKeepABandInCommon) {
  const auto original = plain(campaign("Dear John,", "", "http://rates.example.com/q"));
  const auto busted =
      plain(campaign("Dear John,", "zebra lantern quietly", "http://rates.example.com/q"));
  ASSERT_EQ(original.method, "minhash");
  ASSERT_EQ(busted.method, "minhash");
  EXPECT_NE(busted.digest, original.digest);
  std::size_t shared = 0;
  for (std::size_t i = 0; i < original.bands.size(); ++i) {
    shared += original.bands[i] == busted.bands[i];
  }
  EXPECT_GE(shared, 1u) << "got " << shared << " shared band keys, want at least 1";
}

TEST(ContentFingerprint, GreetingNameAndUrlQueryDoNotChangeTheFingerprint) {
  const auto reference = plain(campaign("Dear John Smith,", "", "http://rates.example.com/q?a=1"));
  const auto other =
      plain(campaign("Hi Maria,", "", "https://www.rates.example.com/landing?uid=8812&r=x"));
  EXPECT_EQ(other.digest, reference.digest);
  EXPECT_EQ(other.bands, reference.bands);
}

TEST(ContentFingerprint, UnrelatedTextsShareNoBand) {
  const auto mortgage = plain(campaign("Hello,", "", "http://rates.example.com/"));
  const auto minutes = plain(
      "Minutes of the committee meeting held on Tuesday. Present were the chair, the "
      "treasurer and four members. The treasurer reported that the accounts for the year "
      "are now with the auditors and should be back before the annual general meeting. The "
      "chair thanked everyone who helped with the summer fair, which raised more than last "
      "year. Next meeting in the library at seven.");
  ASSERT_EQ(minutes.method, "minhash");
  for (std::size_t i = 0; i < mortgage.bands.size(); ++i) {
    EXPECT_NE(minutes.bands[i], mortgage.bands[i]) << "band " << i;
  }
}

TEST(ContentFingerprint, ShortTextFallsBackToAnExactDigest) {
  const auto short_text = plain("Buy cheap pills now at http://pills.example.com/?id=3");
  ASSERT_TRUE(short_text.present);
  EXPECT_EQ(short_text.method, "exact");
  EXPECT_TRUE(short_text.bands.empty());
  EXPECT_EQ(plain("buy CHEAP pills now at www.pills.example.com/x").digest, short_text.digest);
  EXPECT_NE(plain("Buy cheap watches now at http://pills.example.com/").digest,
            short_text.digest);
}

TEST(ContentFingerprint, TextHiddenBeyondTheCapsSaysWhy) {
  std::string deep;
  for (int level = 0; level < 20; ++level) {
    deep += "--L" + std::to_string(level) + "\r\nContent-Type: multipart/mixed; boundary=L" +
            std::to_string(level + 1) + "\r\n\r\n";
  }
  deep += "--L20\r\nContent-Type: text/plain\r\n\r\ndeep words\r\n";
  const auto too_deep = fingerprint(multipart_headers("mixed", "L0"), deep);
  EXPECT_FALSE(too_deep.present);
  EXPECT_EQ(too_deep.unfingerprintable, "nesting too deep");

  // Parts with nothing to fingerprint (images would count: see
  // AttachmentsCountByTypeSizeAndHash), then text beyond the parts cap.
  std::vector<std::pair<std::string, std::string>> parts(600, {"Content-Type: text/plain\r\n", " "});
  parts.emplace_back("Content-Type: text/plain\r\n", "late words");
  const auto too_many = fingerprint(multipart_headers("mixed", "b"), multipart_body("b", parts));
  EXPECT_FALSE(too_many.present);
  EXPECT_EQ(too_many.unfingerprintable, "too many parts");
}

TEST(ContentFingerprint, TransferEncodingNameIsCaseInsensitive) {
  EXPECT_EQ(encoded(encode_base64(k_offer), "BASE64").digest, plain(k_offer).digest);
  EXPECT_EQ(encoded(encode_quoted_printable(k_offer), "Quoted-Printable").digest,
            plain(k_offer).digest);
}

TEST(ContentFingerprint, CaseAndWhitespaceDifferencesDoNotChangeDigest) {
  const auto reference = plain("hello world, buy now");
  EXPECT_EQ(plain("HELLO World,\r\n\r\n  Buy\tNOW  \r\n").digest, reference.digest);
  EXPECT_EQ(plain("\n\n   hello    world,\nbuy now\n\n\n").digest, reference.digest);
}

TEST(ContentFingerprint, DifferentTextGivesDifferentDigest) {
  EXPECT_NE(plain("hello world, buy now").digest, plain("hello world, buy later").digest);
  // Whitespace between words is folded, not removed.
  EXPECT_NE(plain("hello world").digest, plain("helloworld").digest);
}

TEST(ContentFingerprint, LfAndCrlfLineEndingsMatch) {
  const std::string body = multipart_body(
      "b1", {{"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n",
              encode_quoted_printable(k_offer)}});
  const auto crlf = fingerprint(multipart_headers("mixed", "b1"), body);
  std::string lf = body;
  std::erase(lf, '\r');
  ASSERT_TRUE(crlf.present);
  EXPECT_EQ(fingerprint(multipart_headers("mixed", "b1"), lf).digest, crlf.digest);
  EXPECT_EQ(crlf.digest, plain(k_offer).digest);
}

TEST(ContentFingerprint, DigestDoesNotDependOnChunkBoundaries) {
  const std::string inner = multipart_body(
      "inner", {{"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                 encode_base64(k_offer)},
                {"Content-Type: text/html; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: quoted-printable\r\n",
                 encode_quoted_printable("<p>Hello&nbsp;<b>there</b> &amp; bye</p>\n")}});
  const std::string body = multipart_body(
      "outer", {{"Content-Type: multipart/alternative; boundary=inner\r\n", inner},
                {"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n",
                 encode_base64(std::string(3000, '\x89'))}});
  // A line longer than the line buffer exercises piecewise processing too.
  const std::string long_line(20000, 'x');
  for (const RawMessage& message :
       {RawMessage{multipart_headers("mixed", "outer"), body},
        RawMessage{multipart_headers("mixed", "outer"), to_crlf(body)},
        RawMessage{{{"Content-Type", " text/plain"}}, k_offer + long_line + "\n" + k_offer}}) {
    const auto whole = fingerprint(message, Chunking::Whole);
    ASSERT_TRUE(whole.present);
    EXPECT_EQ(whole.method, "minhash");
    EXPECT_EQ(fingerprint(message, Chunking::ByteByByte).digest, whole.digest);
    EXPECT_EQ(fingerprint(message, Chunking::ByteByByte).bands, whole.bands);
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
      const auto random = fingerprint(message, Chunking::Random, seed);
      EXPECT_EQ(random.digest, whole.digest) << "seed " << seed;
      EXPECT_EQ(random.bands, whole.bands) << "seed " << seed;
    }
  }
}

TEST(ContentFingerprint, FoldedAndUnfoldedContentTypeHeadersMatch) {
  const std::string body = multipart_body("=_b 1", {{"Content-Type: text/plain\r\n", k_offer}});
  const auto unfolded =
      fingerprint({{"Content-Type", "multipart/mixed; boundary=\"=_b 1\""}}, body);
  const auto spaced =
      fingerprint({{"Content-Type", " multipart/mixed; boundary=\"=_b 1\""}}, body);
  const auto folded =
      fingerprint({{"content-type", " multipart/mixed;\r\n\tboundary=\"=_b 1\""}}, body);
  ASSERT_TRUE(unfolded.present);
  EXPECT_EQ(spaced.digest, unfolded.digest);
  EXPECT_EQ(folded.digest, unfolded.digest);
  EXPECT_EQ(unfolded.digest, plain(k_offer).digest);
}

TEST(ContentFingerprint, FoldedPartHeadersAreUnderstood) {
  const std::string body = multipart_body(
      "b", {{"Content-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding:\r\n"
             " base64\r\n",
             encode_base64(k_offer)}});
  EXPECT_EQ(fingerprint(multipart_headers("mixed", "b"), body).digest, plain(k_offer).digest);
}

TEST(ContentFingerprint, NestedMultipartTextIsFound) {
  const std::string alternative = multipart_body(
      "alt", {{"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
               encode_base64(k_offer)}});
  const std::string related = multipart_body(
      "rel", {{"Content-Type: multipart/alternative; boundary=alt\r\n", alternative}});
  const std::string mixed =
      multipart_body("mix", {{"Content-Type: multipart/related; boundary=\"rel\"\r\n", related}});
  EXPECT_EQ(fingerprint(multipart_headers("mixed", "mix"), mixed).digest, plain(k_offer).digest);
}

TEST(ContentFingerprint, AlternativeHashesPlainThenHtmlText) {
  const std::string body = multipart_body(
      "alt", {{"Content-Type: text/plain\r\n", "Buy cheap pills"},
              {"Content-Type: text/html\r\n", "<html><body><p>Buy <b>cheap</b> pills</p>"}});
  const auto both = fingerprint(multipart_headers("alternative", "alt"), body);
  EXPECT_EQ(both.digest, plain("buy cheap pills buy cheap pills").digest);
}

TEST(ContentFingerprint, HtmlTagsAreDroppedAndEntitiesDecoded) {
  const auto html = encoded(
      "<html><head><title>Offer</title><style>p { color: red }</style>"
      "<script>var x = '<b>';</script></head>\r\n<body><!-- hidden <b>comment</b> -->"
      "<p>Caf&#233; &amp; cr&#xE8;me&nbsp;&lt;50%&gt; &quot;off&quot; 3 < 4</p></body></html>",
      "7bit", "text/html");
  EXPECT_EQ(html.digest, plain("offer caf\xc3\xa9 & cr\xc3\xa8me <50%> \"off\" 3 < 4").digest);
}

TEST(ContentFingerprint, TheConfiguredPartCapStopsReading) {
  std::vector<std::pair<std::string, std::string>> parts(3, {"Content-Type: text/plain\r\n", " "});
  parts.emplace_back("Content-Type: text/plain\r\n", k_offer);
  ContentSettings settings;
  const RawMessage message{multipart_headers("mixed", "b"), multipart_body("b", parts)};
  EXPECT_TRUE(fingerprint(message, Chunking::Whole, 0, settings).present);
  settings.max_parts = 3;
  const auto capped = fingerprint(message, Chunking::Whole, 0, settings);
  EXPECT_FALSE(capped.present);
  EXPECT_EQ(capped.unfingerprintable, "too many parts");
}

TEST(ContentFingerprint, TheConfiguredHeaderCapCutsAContentTypeTooLongToKeep) {
  // A boundary parameter past the cap is lost: the body is then one text part.
  const std::string boundary(150, 'b');  // RFC 2046 allows 70; senders do longer
  const std::string body = multipart_body(boundary, {{"Content-Type: text/plain\r\n", k_offer}});
  ContentSettings settings;
  const RawMessage message{multipart_headers("mixed", boundary), body};
  const auto kept = fingerprint(message, Chunking::Whole, 0, settings);
  EXPECT_EQ(kept.digest, plain(k_offer).digest);
  settings.max_header_bytes = 128;
  EXPECT_NE(fingerprint(message, Chunking::Whole, 0, settings).digest, kept.digest);
}

// Issue 5: text parts are read in their charset, so the same words in
// Latin-1, KOI8-R or UTF-8 are one content.
TEST(ContentFingerprint, TheSameTextInAnotherCharsetIsTheSameContent) {
  const auto in_charset = [](const std::string& body, const std::string& encoding, const std::string& charset) {
    return fingerprint({{"Content-Type", " text/plain; charset=" + charset},
                        {"Content-Transfer-Encoding", " " + encoding}},
                       body);
  };
  // ASCII apart from the accented words (k_offer holds UTF-8 bytes itself).
  const std::string rest =
      " for everyone this week only, our premium watches are eighty percent off, reply today to claim yours\n";
  const std::string utf8 = "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e" + rest;
  const std::string latin1 = "Caf\xe9 cr\xe8me br\xfbl\xe9" "e" + rest;
  const auto as_utf8 = in_charset(encode_base64(utf8), "base64", "utf-8");
  const auto as_latin1 = in_charset(latin1, "8bit", "iso-8859-1");
  ASSERT_TRUE(as_utf8.present);
  EXPECT_EQ(as_latin1.digest, as_utf8.digest);
  EXPECT_EQ(as_latin1.bands, as_utf8.bands);
  // Read as raw bytes (an unknown charset), Latin-1 is other text.
  EXPECT_NE(in_charset(latin1, "8bit", "x-unknown-charset").digest, as_utf8.digest);

  // "Privet" in KOI8-R and in UTF-8.
  const std::string russian_koi8 = "\xf0\xd2\xc9\xd7\xc5\xd4" + rest;
  const std::string russian_utf8 = "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82" + rest;
  EXPECT_EQ(in_charset(russian_koi8, "8bit", "koi8-r").digest, in_charset(russian_utf8, "8bit", "UTF-8").digest);
}

// Issue 5: an attachment contributes its type, size class and a hash of its
// decoded bytes (one token), never its bytes as text.
TEST(ContentFingerprint, AttachmentsCountByTypeSizeAndHash) {
  const auto with = [](const std::string& type, const std::string& bytes, const std::string& text) {
    std::vector<std::pair<std::string, std::string>> parts;
    if (!text.empty()) parts.emplace_back("Content-Type: text/plain\r\n", text);
    parts.emplace_back("Content-Type: " + type + "\r\nContent-Transfer-Encoding: base64\r\n", encode_base64(bytes));
    return fingerprint(multipart_headers("mixed", "b"), multipart_body("b", parts));
  };
  const std::string jpeg(3000, '\xd8');
  std::string other_jpeg = jpeg;
  other_jpeg[1500] = 'x';

  // Image spam: no text, the same picture -> one fingerprint; another
  // picture of the same size -> another.
  const auto image = with("image/jpeg", jpeg, "");
  ASSERT_TRUE(image.present);
  EXPECT_EQ(image.method, "exact");
  EXPECT_EQ(with("image/jpeg; name=other.jpg", jpeg, "").digest, image.digest);
  EXPECT_NE(with("image/jpeg", other_jpeg, "").digest, image.digest);
  EXPECT_NE(with("image/png", jpeg, "").digest, image.digest);

  // With text: the attachment changes the fingerprint, not what the text says.
  const auto reference = fingerprint(multipart_headers("mixed", "b"),
                                     multipart_body("b", {{"Content-Type: text/plain\r\n", k_offer}}));
  const auto text_and_pdf = with("application/pdf", "%PDF-1.4 words inside a pdf", k_offer);
  EXPECT_NE(text_and_pdf.digest, reference.digest);
  EXPECT_EQ(with("application/pdf", "%PDF-1.4 words inside a pdf", k_offer).digest, text_and_pdf.digest);
  // Mostly the same shingles: still a near-duplicate of the text alone.
  std::size_t shared = 0;
  for (std::size_t band = 0; band < reference.bands.size(); ++band)
    shared += text_and_pdf.bands.at(band) == reference.bands[band] ? 1 : 0;
  EXPECT_GT(shared, 0u) << "the text with a PDF shares no band with the text alone";
  // The words inside an attached text file are not read as the message's.
  const std::string attached_notes = multipart_body(
      "b", {{"Content-Type: text/plain\r\n", k_offer},
            {"Content-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n",
             "a text file attached, not the message"}});
  const std::string inline_notes = multipart_body(
      "b", {{"Content-Type: text/plain\r\n", k_offer},
            {"Content-Type: text/plain\r\n", "a text file attached, not the message"}});
  EXPECT_NE(fingerprint(multipart_headers("mixed", "b"), attached_notes).digest,
            fingerprint(multipart_headers("mixed", "b"), inline_notes).digest);
}

TEST(ContentFingerprint, MessageWithoutTextHasNoFingerprint) {
  const struct {
    const char* name;
    Headers headers;
    std::string body;
  } cases[] = {
      {"empty body", {}, ""},
      {"whitespace only", {{"Content-Type", " text/plain"}}, " \r\n\t\r\n\r\n"},
      {"html without text", {{"Content-Type", " text/html"}}, "<html><br><img src=x></html>"},
      {"empty multipart", multipart_headers("mixed", "b"), "--b\r\n\r\n--b--\r\n"},
  };
  for (const auto& c : cases) {
    const auto result = fingerprint(c.headers, c.body);
    EXPECT_FALSE(result.present) << c.name;
    EXPECT_EQ(result.digest, 0u) << c.name;
    // No method without a fingerprint ("exact" before issue 5); the reason
    // says why instead.
    EXPECT_EQ(result.method, "") << c.name;
    EXPECT_TRUE(result.bands.empty()) << c.name;
    EXPECT_EQ(result.unfingerprintable, "no text") << c.name;
  }
}

TEST(ContentFingerprint, BodyWithoutMimeHeadersIsPlainText) {
  EXPECT_EQ(fingerprint({{"Subject", " hi"}}, k_offer).digest, plain(k_offer).digest);
}

TEST(ContentFingerprint, MalformedMimeStillGivesAFingerprint) {
  const std::string part = "Content-Type: text/plain\r\n\r\n" + k_offer;
  const struct {
    const char* name;
    Headers headers;
    std::string body;
    bool same_as_offer;  // the readable text is exactly k_offer
  } cases[] = {
      {"no closing delimiter", multipart_headers("mixed", "b"), "--b\r\n" + part, true},
      {"closing delimiter without CRLF", multipart_headers("mixed", "b"),
       "--b\r\n" + part + "\r\n--b--", true},
      {"delimiter with transport padding", multipart_headers("mixed", "b"),
       "--b \t\r\n" + part + "\r\n--b--  \r\n", true},
      {"unclosed inner multipart",
       multipart_headers("mixed", "out"),
       "--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\n" + part +
           "\r\n--out\r\nContent-Type: text/plain\r\n\r\n \r\n--out--\r\n",
       true},
      {"invalid base64 characters", {{"Content-Transfer-Encoding", " base64"}},
       "!!" + encode_base64(k_offer) + "@@##\r\n", true},
      {"truncated base64", {{"Content-Transfer-Encoding", " base64"}}, "SGVsbG8gd29y", false},
      {"invalid quoted-printable", {{"Content-Transfer-Encoding", " quoted-printable"}},
       "caf=C3=A9 =ZZ =4 = x =", false},
      {"boundary parameter missing", {{"Content-Type", " multipart/mixed"}},
       "--b\r\n" + part, false},
      {"binary junk with NULs", {{"Content-Type", " text/plain"}},
       std::string("a\0b\xff\xfe\r\r\r\0\0\n\x01 text", 16), false},
      {"part headers never end", multipart_headers("mixed", "b"),
       "--b\r\nContent-Type: text/plain\r\nX: " + std::string(50000, 'y') + "\r\n--b--\r\n",
       false},
      {"unknown transfer encoding", {{"Content-Transfer-Encoding", " x-uuencode"}}, k_offer,
       true},
      {"content type without subtype", {{"Content-Type", " text"}}, k_offer, true},
  };
  for (const auto& c : cases) {
    const auto result = fingerprint(c.headers, c.body);
    // Either a fingerprint made one of the two ways ("exact" for all of
    // them before issue 5, when there was no other method) or a reason.
    if (result.present) {
      EXPECT_TRUE(result.method == "minhash" || result.method == "exact")
          << c.name << ": got method " << result.method;
    } else {
      EXPECT_EQ(result.unfingerprintable, "no text") << c.name;
    }
    // Only the part whose headers never end has no text to read.
    EXPECT_EQ(result.present, std::string_view(c.name) != "part headers never end") << c.name;
    if (c.same_as_offer) {
      EXPECT_EQ(result.digest, plain(k_offer).digest) << c.name;
      EXPECT_EQ(result.bands, plain(k_offer).bands) << c.name;
    }
    // Whatever the damage, the result is the same however the body is cut.
    RawMessage message{c.headers, c.body};
    const auto bytewise = fingerprint(message, Chunking::ByteByByte);
    EXPECT_EQ(bytewise.digest, result.digest) << c.name;
    EXPECT_EQ(bytewise.bands, result.bands) << c.name;
    EXPECT_EQ(bytewise.method, result.method) << c.name;
    EXPECT_EQ(bytewise.present, result.present) << c.name;
  }
}

TEST(ContentFingerprint, QuotedPrintableSoftLineBreaksJoinWords) {
  EXPECT_EQ(encoded("vi=\r\nagr=61 =\r\nnow", "quoted-printable").digest,
            plain("viagra now").digest);
  // Transport padding after the '=' of a soft break is allowed.
  EXPECT_EQ(encoded("vi= \t\r\nagra", "quoted-printable").digest, plain("viagra").digest);
}

TEST(ContentFingerprint, BoundaryAsPrefixOfALineIsNotADelimiter) {
  const std::string body = "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--bb\r\nsecond\r\n--b--\r\n";
  EXPECT_EQ(fingerprint(multipart_headers("mixed", "b"), body).digest,
            plain("first --bb second").digest);
}

TEST(ContentFingerprint, MultipartNestedBeyondDepthCapTerminatesAndKeepsShallowText) {
  std::string body = "--L0\r\nContent-Type: text/plain\r\n\r\nshallow words\r\n";
  for (int level = 0; level < 200; ++level) {
    body += "--L" + std::to_string(level) + "\r\nContent-Type: multipart/mixed; boundary=L" +
            std::to_string(level + 1) + "\r\n\r\n";
  }
  body += "--L200\r\nContent-Type: text/plain\r\n\r\ndeep words\r\n";
  const auto result = fingerprint(multipart_headers("mixed", "L0"), body);
  ASSERT_TRUE(result.present);
  EXPECT_EQ(result.digest, plain("shallow words").digest);
}

TEST(ContentFingerprint, PartsBeyondPartsCapAreIgnored) {
  auto many_parts = [](int count, const std::string& last) {
    std::vector<std::pair<std::string, std::string>> parts;
    for (int i = 0; i < count; ++i) parts.emplace_back("\r\n", "w" + std::to_string(i));
    parts.emplace_back("\r\n", last);
    return multipart_body("b", parts);
  };
  const Headers headers = multipart_headers("mixed", "b");
  // 1000 parts is past the cap: what the last part says does not matter...
  EXPECT_EQ(fingerprint(headers, many_parts(1000, "one")).digest,
            fingerprint(headers, many_parts(1000, "two")).digest);
  // ...while with a few parts it does.
  EXPECT_NE(fingerprint(headers, many_parts(10, "one")).digest,
            fingerprint(headers, many_parts(10, "two")).digest);
}

TEST(ContentFingerprint, TextBeyondMaxTextBytesDoesNotChangeDigest) {
  ContentSettings settings;
  settings.max_text_bytes = 64;
  const std::string prefix(100, 'a');  // already past the cap
  const Headers headers = {{"Content-Type", " text/plain"}};
  const auto one = fingerprint(headers, prefix + " tail one", settings);
  const auto two = fingerprint(headers, prefix + " something else entirely", settings);
  ASSERT_TRUE(one.present);
  EXPECT_EQ(one.digest, two.digest);
  EXPECT_EQ(one.digest, fingerprint(headers, std::string(64, 'a'), settings).digest);
  // The cap counts normalised text: folded whitespace does not use it up.
  const auto spaced = fingerprint(headers, "x" + std::string(500, ' ') + "y", settings);
  EXPECT_EQ(spaced.digest, fingerprint(headers, "x y", settings).digest);
  // And a difference within the cap still shows.
  EXPECT_NE(fingerprint(headers, "b" + prefix, settings).digest, one.digest);
}

TEST(ContentFingerprint, CapAtAWordBoundaryDoesNotHashTheSeparatingSpace) {
  ContentSettings settings;
  settings.max_text_bytes = 5;
  const Headers headers = {{"Content-Type", " text/plain"}};
  EXPECT_EQ(fingerprint(headers, "hello world", settings).digest,
            fingerprint(headers, "hello", settings).digest);
}

TEST(ContentFingerprint, ZeroTextCapStillTellsWhetherThereWasText) {
  ContentSettings settings;
  settings.max_text_bytes = 0;
  const auto with_text = fingerprint({{"Content-Type", " text/plain"}}, "\r\n  hi", settings);
  const auto other_text = fingerprint({{"Content-Type", " text/plain"}}, "bye", settings);
  EXPECT_TRUE(with_text.present);
  EXPECT_EQ(with_text.digest, other_text.digest);
  EXPECT_FALSE(fingerprint({{"Content-Type", " text/plain"}}, " \r\n", settings).present);
}

TEST(ContentFingerprint, LongLinesWithoutBreaksAreReadInPieces) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "word" + std::to_string(i) + " ";
  std::string one_line_base64 = encode_base64(text);
  std::erase(one_line_base64, '\r');
  std::erase(one_line_base64, '\n');
  ContentSettings settings;
  settings.max_text_bytes = 1 << 20;
  const auto reference = fingerprint({{"Content-Type", " text/plain"}}, text, settings);
  EXPECT_EQ(fingerprint({{"Content-Transfer-Encoding", " base64"}}, one_line_base64, settings)
                .digest,
            reference.digest);
  std::string one_line_qp = encode_quoted_printable(text);
  EXPECT_EQ(fingerprint({{"Content-Transfer-Encoding", " quoted-printable"}}, one_line_qp,
                        settings)
                .digest,
            reference.digest);
}

TEST(ContentFingerprint, TwentyMegabyteBodiesFinishQuickly) {
  using Clock = std::chrono::steady_clock;
  // Generous enough for ASan builds on a slow CI machine.
  constexpr auto k_bound = std::chrono::seconds(10);
  std::string text;
  text.reserve(20 << 20);
  while (text.size() < (20u << 20)) text += "Cheap watches and more cheap watches\r\n";
  ContentSettings no_cap;
  no_cap.max_text_bytes = 64 << 20;  // make the whole body go through the pipeline

  auto start = Clock::now();
  const auto big_text = fingerprint(
      RawMessage{{{"Content-Type", " text/plain"}}, text}, Chunking::Random, 7, no_cap);
  EXPECT_TRUE(big_text.present);
  EXPECT_LT(Clock::now() - start, k_bound);

  const std::string attachment = multipart_body(
      "b", {{"Content-Type: text/plain\r\n", "see attached"},
            {"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n",
             encode_base64(std::string_view(text).substr(0, 15 << 20))}});
  start = Clock::now();
  const auto big_attachment =
      fingerprint(RawMessage{multipart_headers("mixed", "b"), attachment}, Chunking::Random, 7);
  EXPECT_LT(Clock::now() - start, k_bound);
  // The 15 MB attachment is one token (type, size class, hash of its first
  // MiB), whatever the chunking.
  EXPECT_NE(big_attachment.digest, plain("see attached").digest);
  EXPECT_EQ(fingerprint(RawMessage{multipart_headers("mixed", "b"), attachment}, Chunking::Whole).digest,
            big_attachment.digest);
}

TEST(ContentFingerprint, HeadersAfterTheBodyStartedAreIgnored) {
  auto fingerprinter = make_content_fingerprinter(ContentSettings{});
  fingerprinter->add_body_chunk("SGVsbG8=\r\n");
  fingerprinter->add_header("Content-Transfer-Encoding", " base64");
  EXPECT_EQ(fingerprinter->finish().digest, plain("SGVsbG8=").digest);
}

TEST(ContentFingerprint, FirstContentTypeHeaderWins) {
  EXPECT_EQ(fingerprint({{"Content-Type", " text/plain"}, {"Content-Type", " image/gif"}}, k_offer)
                .digest,
            plain(k_offer).digest);
}

}  // namespace
}  // namespace floodgate::policy
