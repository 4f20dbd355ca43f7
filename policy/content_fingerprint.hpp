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
// The exact fingerprinter (make_exact_fingerprinter) hashes the decoded,
// normalised text of the text parts; near-duplicate matching will replace it
// behind this interface.
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

std::unique_ptr<ContentFingerprinter> make_exact_fingerprinter(const ContentSettings& settings);

}  // namespace floodgate::policy
