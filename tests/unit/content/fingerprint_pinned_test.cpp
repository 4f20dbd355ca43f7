// The content fingerprint's exact output pinned: digests and band keys are
// Redis counter keys, so a change to any of them restarts every content
// counter from zero. These values were produced by the fingerprinter before
// its hot path was reworked for speed (runs instead of bytes, lines read in
// place); any rework must reproduce them bit for bit, however the body is
// chunked.
#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "fingerprint_test_util.hpp"
#include "policy/content_fingerprint.hpp"

namespace floodgate::policy {
namespace {

using testing::Chunking;
using testing::fingerprint;
using testing::parse_raw_message;
using testing::RawMessage;

std::string hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016" PRIx64, value);
  return text;
}

// "method digest band,band,..." or "none reason".
std::string summary(const ContentFingerprint& fp) {
  if (!fp.present) return "none " + fp.unfingerprintable;
  std::string text = fp.method + " " + hex(fp.digest) + " ";
  for (std::size_t i = 0; i < fp.bands.size(); ++i) text += (i > 0 ? "," : "") + hex(fp.bands[i]);
  return text;
}

void expect_pinned(const RawMessage& message, const std::string& want, const std::string& what) {
  EXPECT_EQ(summary(fingerprint(message, Chunking::Whole)), want) << what << " (whole body)";
  EXPECT_EQ(summary(fingerprint(message, Chunking::ByteByByte)), want) << what << " (byte by byte)";
  for (std::uint32_t seed = 1; seed <= 3; ++seed) {
    EXPECT_EQ(summary(fingerprint(message, Chunking::Random, seed)), want)
        << what << " (random chunks, seed " << seed << ")";
  }
  RawMessage crlf = message;
  crlf.body = testing::to_crlf(message.body);
  EXPECT_EQ(summary(fingerprint(crlf, Chunking::Random, 7)), want) << what << " (CRLF)";
}

struct Pinned {
  const char* file;
  const char* want;
};

const Pinned k_samples[] = {
    {"easy-ham-1-01875-plain-7bit-nonmime.eml",
     "minhash b7f2765719dc7c70 8ac52cc99ab81bd4,bc36c85e88d59c5e,44b7516562812a44,95b3b6e434e61bf6,"
     "86457cd47bfc0f32,9145a8ea46f0bfcd,531406cf94422b47,05104130d90d78e2"},
    {"spam-1-00022-mixed-qp-with-attachment.eml",
     "minhash ff523862bafa4325 2128c41011b9d60e,ff3cc1e333fa4f8e,f7922d0bb0d92900,e6f82eed14e768df,"
     "9ad4696fc82bfe93,6601266c70f55d85,68967734d75fa323,fc6708c0a5e44954"},
    {"spam-2-00017-plain-qp.as-base64.eml",
     "minhash 8c4d44972b95e32b 745b805004e11ed6,77dd92520113e9cd,083ebc6d96387be6,a88900bb6c36c02f,"
     "f3b93a8929bba9b9,f94754608fa7fd53,ca9d9d03c077b016,6ced84bb104eb296"},
    {"spam-2-00017-plain-qp.eml",
     "minhash 8c4d44972b95e32b 745b805004e11ed6,77dd92520113e9cd,083ebc6d96387be6,a88900bb6c36c02f,"
     "f3b93a8929bba9b9,f94754608fa7fd53,ca9d9d03c077b016,6ced84bb104eb296"},
    {"spam-2-00215-html-base64-links-and-images-only.eml", "none no text"},
    {"spam-2-00565-alternative-qp.as-base64.eml",
     "minhash f511d2cfc6947f95 9b5322056437e322,e73f030414aa66aa,520ffe54b50d4f0e,2ae3ef402c62175c,"
     "8c9c8e3840cdae08,14390f6e350e5692,aade03cdc9eef70f,eed655f4d2756d81"},
    {"spam-2-00565-alternative-qp.eml",
     "minhash f511d2cfc6947f95 9b5322056437e322,e73f030414aa66aa,520ffe54b50d4f0e,2ae3ef402c62175c,"
     "8c9c8e3840cdae08,14390f6e350e5692,aade03cdc9eef70f,eed655f4d2756d81"},
    {"spam-2-00853-plain-base64.eml",
     "minhash 7ae40709194df12d c863ab02a45cae24,109b3da5e9f0b8b8,1262c4925ca533c2,5c31f758e9ca5a89,"
     "0ad2aa5bcf48d1dd,1eb96bd33e949b91,a64098b16268eba0,37ab2a673bd7c552"},
    {"spam-2-00932-html-7bit.eml",
     "minhash 4a0f17fc76a71daf 69849cf37260c1dc,cf5d1bdd1988d067,1a6e731642b80679,19ffd8437034a1be,"
     "730b51215d727305,d0c1744603e1e3e0,f4cb800d50f24b52,f2d780262fbaea08"},
    {"spam-2-00977-related-alternative-html-base64.eml",
     "minhash aa52f09590498429 4f76464ace07b021,11a689fdd1d615d5,55fba0fe9cc4edc3,d6246e6e745c0746,"
     "34332bc9b341fb5e,7a91af525964c492,3b6ef67a5ca16d7d,542850bf03e40d2e"},
    {"spam-2-01072-html-base64.eml",
     "minhash 427a87698244ee23 36134d58a4473b13,ff80fc97256d8cc3,3bb37b8a87a943a0,78373b189cdcd4cb,"
     "e4eb261706c87609,c375c258b4f42aec,32dc55dc790604bc,90dc9d0bb5e0c4d8"},
};

TEST(ContentFingerprintPinned, SampleMessagesKeepTheirDigestsAndBandKeys) {
  for (const Pinned& sample : k_samples) {
    const RawMessage message =
        parse_raw_message(testing::read_file(std::string(FLOODGATE_TEST_DATA_DIR) + "/" + sample.file));
    expect_pinned(message, sample.want, sample.file);
  }
}

// Hostile and odd input through every decoder path the samples may miss:
// QP escapes cut and malformed, soft breaks with padding, base64 with
// padding mid-stream, HTML entities (named, numeric, legacy, unknown, cut),
// comments, script and style, a lone '<', a line longer than the walker's
// line buffer, 8-bit text in a legacy charset, URLs, addresses, a
// salutation, and an attachment.
RawMessage hostile_message() {
  RawMessage message;
  message.headers = {{"MIME-Version", " 1.0"},
                     {"Content-Type", " multipart/mixed;\r\n\tboundary=\"==outer==\""}};
  std::string body = "preamble\n--==outer==\n";
  body += "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n";
  body += "Dear John Smith, caf=C3=A9 =3D 50% off=\n soft=20 \nbad =ZZ escape =4 cut =\t \n";
  body += "and =e9 lower hex, tab=09ends and = not a break\n";
  body += "Visit http://user:pw@Shop.Example.CO.UK:8080/x?id=1 or mail Bob@Mail.Example.com! x7k2q9zz 2002\n";
  body += std::string(9000, 'a') + " " + std::string(300, 'b') + " tail words after the long line\n";
  body += "--==outer==\n";
  body += "Content-Type: text/html; charset=windows-1252\nContent-Transfer-Encoding: quoted-printable\n\n";
  body += "<html><head><style>p {color: red}</style><script>var a = '</scr' + 'ipt>';</script></head>\n";
  body += "<body><p>Hello&nbsp;there &amp; &lt;friends&gt; &quot;q&quot; &apos;a&apos; &copy; &#233;&#xE9;&#0;";
  body += "&#x110000; &amp &unknown; a < b <!-- hidden -- comment --> shown =93quoted=94 =E9t=E9</p>\n";
  body += "<a href=\"http://www.example.org/path\">link</a> &#169 &#x; &\n";
  body += "--==outer==\n";
  body += "Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: base64\n\n";
  body += "8NLJ18XUIMzP1MXSxcEg0NLJ18XU=\n0NLJ18XU\n";
  body += "--==outer==\n";
  body += "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=a.bin\n"
          "Content-Transfer-Encoding: base64\n\n";
  body += "AAECAwQFBgcICQoLDA0ODw==\n";
  body += "--==outer==--\nepilogue\n";
  message.body = std::move(body);
  return message;
}

TEST(ContentFingerprintPinned, HostileMessageKeepsItsDigestAndBandKeys) {
  expect_pinned(hostile_message(),
                "minhash cee69d3c6289105e ca0eb9c8b988eaa0,95b249e15b4fa73a,2f703b0f0bb49578,f8984e035f75d5ba,"
                "8aac39e74493bd1a,65641ef904e0d90c,43428fa98cb135f5,a3e425ffcab7f245",
                "hostile message");
}

// A text too short for MinHash: the exact method, digest only.
TEST(ContentFingerprintPinned, ShortTextKeepsItsExactDigest) {
  RawMessage message;
  message.headers = {{"Content-Type", " text/html; charset=iso-8859-1"}};
  message.body = "<b>Hi&nbsp;Anna,</b> caf\xe9 &#8364;5 <i>only</i>\n";
  expect_pinned(message, "exact eb6125f9d34c0df2 ", "short text");
}

}  // namespace
}  // namespace floodgate::policy
