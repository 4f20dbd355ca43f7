// Streaming Content-Transfer-Encoding decoders for MIME text parts.
//
// Each decoder takes the encoded body in pieces split anywhere and appends
// the decoded bytes to a caller's buffer; the result does not depend on
// where the input was split. Line endings reach the decoders as LF (the
// MIME walker strips the CR of CRLF).
//
// SECURITY: input is attacker-controlled. Nothing is an error: bytes that
// are not valid base64 are skipped, a malformed quoted-printable escape is
// kept literally (RFC 2045 6.7 suggests exactly that). Output never exceeds
// input length plus a few bytes of carried-over state, and no state grows.
//
// Not thread-safe; one per MIME part.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace floodgate::policy {

enum class TransferEncoding { Identity, QuotedPrintable, Base64 };

// "base64", "quoted-printable" (any case, surrounding whitespace ignored);
// anything else, including 7bit/8bit/binary and unknown tokens, is Identity.
TransferEncoding parse_transfer_encoding(std::string_view value);

class Base64Decoder {
 public:
  void decode(std::string_view in, std::string& out);
  // Emits the bytes of a trailing incomplete quantum (unpadded input).
  void finish(std::string& out);

 private:
  // Writes the bytes of the quantum held so far at `p`, resets it, and
  // returns the end of what was written (at most 2 bytes).
  char* flush(char* p);

  std::uint32_t m_bits = 0;
  int m_count = 0;  // sextets held in m_bits, 0..3
};

class QuotedPrintableDecoder {
 public:
  void decode(std::string_view in, std::string& out);
  // Emits whatever a cut-off escape left pending ("=" or "=4").
  void finish(std::string& out);

 private:
  enum class State { Text, Equals, EqualsHex, EqualsSpace };
  State m_state = State::Text;
  char m_first_hex = 0;
};

// Decodes according to the part's transfer encoding.
class TransferDecoder {
 public:
  explicit TransferDecoder(TransferEncoding encoding = TransferEncoding::Identity)
      : m_encoding(encoding) {}
  void decode(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  TransferEncoding m_encoding;
  Base64Decoder m_base64;
  QuotedPrintableDecoder m_qp;
};

}  // namespace floodgate::policy
