// ContentFingerprinter: digests what a message says, fed as it streams in.
//
// The milter feeds every header and then the body in the chunks libmilter
// hands over; finish() returns the fingerprint. One fingerprinter serves one
// message and is not shared between threads.
//
// SECURITY: the input is the raw, attacker-controlled message. Cost is
// bounded whatever arrives: state does not grow with the body beyond
// ContentSettings::max_text_bytes of decoded text plus fixed-size buffers,
// and malformed MIME degrades to "fingerprint what can be read", never to
// an error.
//
// make_content_fingerprinter decodes the text parts (quoted-printable,
// base64, the part's charset to UTF-8 (policy/charset.hpp), HTML reduced to
// its visible text), sums up every other part -- an attachment, an image --
// as one token of its type, size class (bit length of its decoded size)
// and a hash of its first MiB, never its bytes, and tokenises the text
// (policy/text_tokens.hpp: case, whitespace, numbers, random tokens, URLs,
// addresses and the salutation folded away) and fills the fingerprint:
//   - `digest`: XXH3 of the token stream, always when `present`;
//   - method "minhash" with `bands`, the LSH band keys of the MinHash
//     signature of the token shingles (policy/minhash.hpp), when the text
//     has at least MinHashSketch::k_min_tokens tokens;
//   - method "exact" and no bands for shorter texts: only `digest` counts;
//   - !present with `unfingerprintable` saying why when there is neither
//     text nor an attachment.
#pragma once

#include <memory>
#include <string_view>

#include "policy/config.hpp"
#include "policy/message_facts.hpp"

namespace floodgate::policy {

class ContentFingerprinter {
 public:
  virtual ~ContentFingerprinter() = default;
  // A top-level header, name and value as the MTA passed them (value
  // unfolded or not; both must give the same result).
  virtual void add_header(std::string_view name, std::string_view value) = 0;
  // The next piece of the body (everything after the blank line).
  virtual void add_body_chunk(std::string_view chunk) = 0;
  virtual ContentFingerprint finish() = 0;
};

std::unique_ptr<ContentFingerprinter> make_content_fingerprinter(const ContentSettings& settings);
// The name from before near-duplicate matching (the fuzz target uses it);
// the same fingerprinter.
inline std::unique_ptr<ContentFingerprinter> make_exact_fingerprinter(
    const ContentSettings& settings) {
  return make_content_fingerprinter(settings);
}

}  // namespace floodgate::policy
