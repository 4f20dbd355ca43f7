// The exact fingerprinter on real messages from the SpamAssassin public
// corpus (see data/README.md).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "fingerprint_test_util.hpp"
#include "policy/content_fingerprint.hpp"

namespace floodgate::policy {
namespace {

using testing::Chunking;
using testing::fingerprint;
using testing::parse_raw_message;
using testing::RawMessage;

const char* const k_samples[] = {
    "easy-ham-1-01875-plain-7bit-nonmime.eml",
    "spam-1-00022-mixed-qp-with-attachment.eml",
    "spam-2-00017-plain-qp.eml",
    "spam-2-00977-related-alternative-html-base64.eml",
    "spam-2-00565-alternative-qp.eml",
    "spam-2-00853-plain-base64.eml",
    "spam-2-00932-html-7bit.eml",
    "spam-2-01072-html-base64.eml",
};

RawMessage load(const std::string& name) {
  return parse_raw_message(testing::read_file(std::string(FLOODGATE_TEST_DATA_DIR) + "/" + name));
}

TEST(ContentCorpusSample, EverySampleHasTextAndAStableFingerprintUnderRechunking) {
  for (const char* name : k_samples) {
    const RawMessage message = load(name);
    const auto whole = fingerprint(message, Chunking::Whole);
    EXPECT_TRUE(whole.present) << name;
    EXPECT_EQ(fingerprint(message, Chunking::ByteByByte).digest, whole.digest) << name;
    for (std::uint32_t seed = 1; seed <= 10; ++seed) {
      EXPECT_EQ(fingerprint(message, Chunking::Random, seed).digest, whole.digest)
          << name << " seed " << seed;
    }
    // The corpus stores LF line endings; on the wire the MTA hands CRLF.
    RawMessage crlf = message;
    crlf.body = testing::to_crlf(message.body);
    EXPECT_EQ(fingerprint(crlf, Chunking::Random, 3).digest, whole.digest) << name;
  }
}

TEST(ContentCorpusSample, SampleDigestsArePairwiseDistinct) {
  std::set<std::uint64_t> digests;
  for (const char* name : k_samples) digests.insert(fingerprint(load(name)).digest);
  EXPECT_EQ(digests.size(), std::size(k_samples));
}

TEST(ContentCorpusSample, QuotedPrintableTextReencodedAsBase64KeepsItsDigest) {
  // The .as-base64 twins were re-encoded with Python's email package, an
  // independent decoder of the original quoted-printable.
  for (const std::string stem : {"spam-2-00017-plain-qp", "spam-2-00565-alternative-qp"}) {
    const auto original = fingerprint(load(stem + ".eml"));
    const auto reencoded = fingerprint(load(stem + ".as-base64.eml"), Chunking::Random, 5);
    ASSERT_TRUE(original.present) << stem;
    EXPECT_EQ(reencoded.digest, original.digest) << stem;
  }
}

TEST(ContentCorpusSample, HtmlSpamOfOnlyLinksAndImagesHasNoText) {
  // spam-2-00215 nests a base64 text/html part that holds nothing but <a>
  // and <img> tags: there is no text to fingerprint, which must be said as
  // present == false rather than as the digest of an empty string.
  const RawMessage message = load("spam-2-00215-html-base64-links-and-images-only.eml");
  EXPECT_FALSE(fingerprint(message).present);
  EXPECT_FALSE(fingerprint(message, Chunking::ByteByByte).present);
}

TEST(ContentCorpusSample, AttachmentOfARealMessageDoesNotCount) {
  // spam-1-00022 is a quoted-printable text part plus a base64
  // application/octet-stream part; dropping the attachment part keeps the
  // digest, changing a word of the text does not.
  const RawMessage message = load("spam-1-00022-mixed-qp-with-attachment.eml");
  const auto reference = fingerprint(message);
  const std::size_t attachment = message.body.find("Content-Type: application/octet-stream");
  ASSERT_NE(attachment, std::string::npos);
  const std::size_t delimiter = message.body.rfind("\n--", attachment);
  ASSERT_NE(delimiter, std::string::npos);
  RawMessage without_attachment = message;
  without_attachment.body = message.body.substr(0, delimiter + 1);
  EXPECT_EQ(fingerprint(without_attachment).digest, reference.digest);
}

}  // namespace
}  // namespace floodgate::policy
