// libFuzzer target for the content fingerprinter, the parser that sees the
// raw, attacker-controlled message body.
//
// Input layout: byte 0 picks the top-level Content-Type and transfer
// encoding, byte 1 seeds the chunk sizes, the rest is the body. Besides
// "no crash, no sanitizer report", it checks the one property every input
// must keep: the digest does not depend on how the body was chunked.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/content_fingerprint.hpp"
#include "tests/unit/content/fingerprinter_factory.hpp"

namespace {

using floodgate::policy::ContentFingerprint;
using floodgate::policy::ContentSettings;
using floodgate::policy::testing::make_fingerprinter_under_test;

constexpr std::string_view k_content_types[] = {
    "text/plain", "text/html; charset=utf-8", "multipart/mixed; boundary=b",
    "multipart/alternative;\r\n boundary=\"=_x\"", "multipart/mixed", "image/gif",
};
constexpr std::string_view k_encodings[] = {"7bit", "base64", "quoted-printable", "x-junk"};

ContentFingerprint run(std::uint8_t selector, std::string_view body, std::size_t chunk_seed) {
  ContentSettings settings;
  settings.max_text_bytes = 4096;  // small, so fuzzing reaches the cap
  auto fingerprinter = make_fingerprinter_under_test(settings);
  fingerprinter->add_header("Content-Type",
                            k_content_types[selector % std::size(k_content_types)]);
  fingerprinter->add_header("Content-Transfer-Encoding",
                            k_encodings[(selector / 8) % std::size(k_encodings)]);
  if (chunk_seed == 0) {
    fingerprinter->add_body_chunk(body);
  } else {
    std::size_t state = chunk_seed;
    while (!body.empty()) {
      state = state * 1103515245 + 12345;
      const std::size_t n = std::min(body.size(), (state >> 16) % 17);
      fingerprinter->add_body_chunk(body.substr(0, n));
      body.remove_prefix(n);
    }
  }
  return fingerprinter->finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  const ContentFingerprint whole = run(data[0], body, 0);
  const ContentFingerprint chunked = run(data[0], body, data[1] + 1u);
  if (whole.digest != chunked.digest || whole.present != chunked.present) std::abort();
  return 0;
}
