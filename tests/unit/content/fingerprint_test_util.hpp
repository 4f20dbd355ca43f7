// Test helpers for the content fingerprinter: split a raw message into the
// headers and body the milter would pass, feed it in chosen chunks, and
// encode text the way mail clients do (base64, quoted-printable).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/content_fingerprint.hpp"

namespace floodgate::policy::testing {

struct RawMessage {
  // Name and value as libmilter hands them: value after the colon, with
  // its leading space and any folding kept.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Splits at the first empty line (LF or CRLF); continuation lines are
// appended to the previous header's value with their line break.
RawMessage parse_raw_message(std::string_view raw);

std::string read_file(const std::string& path);

// How the body is cut into add_body_chunk() calls.
enum class Chunking { Whole, ByteByByte, Random };

ContentFingerprint fingerprint(const RawMessage& message, Chunking chunking = Chunking::Whole,
                               std::uint32_t seed = 1,
                               ContentSettings settings = ContentSettings{});

// Convenience: a message from header lines and a body.
ContentFingerprint fingerprint(std::vector<std::pair<std::string, std::string>> headers,
                               std::string body, ContentSettings settings = ContentSettings{});

// Base64 with CRLF every 76 output characters.
std::string encode_base64(std::string_view data);
// Quoted-printable with soft breaks at 76 columns; LF in the text becomes a
// hard CRLF line break.
std::string encode_quoted_printable(std::string_view text);

// Converts bare LF line endings to CRLF.
std::string to_crlf(std::string_view text);

}  // namespace floodgate::policy::testing
