#include "policy/mime_decoders.hpp"

#include "policy/mime_header.hpp"

namespace floodgate::policy {

namespace {

// Value of a base64 alphabet byte, -1 for anything else.
int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  // Lower-case hex is not legal QP but common enough in the wild.
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

TransferEncoding parse_transfer_encoding(std::string_view value) {
  const std::string token = lower_ascii(trim_header_space(value));
  if (token == "base64") return TransferEncoding::Base64;
  if (token == "quoted-printable") return TransferEncoding::QuotedPrintable;
  return TransferEncoding::Identity;
}

// Output is written through a pointer into `out`, grown once per call to
// the most the call can produce, and trimmed after: appending byte by byte
// was the largest cost of fingerprinting an encoded part.
void Base64Decoder::decode(std::string_view in, std::string& out) {
  // Every input byte adds at most one sextet, and the (at most 3) sextets
  // carried in make at most 3 more bytes: never more than in.size() + 3.
  const std::size_t old_size = out.size();
  out.resize(old_size + in.size() + 3);
  char* const begin = out.data();
  char* p = begin + old_size;
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '=') {
      // Padding ends a quantum; some senders concatenate padded blocks, so
      // decoding continues with a fresh quantum afterwards.
      p = flush(p);
      continue;
    }
    const int v = base64_value(c);
    if (v < 0) continue;
    m_bits = (m_bits << 6) | static_cast<std::uint32_t>(v);
    if (++m_count == 4) {
      p[0] = static_cast<char>((m_bits >> 16) & 0xff);
      p[1] = static_cast<char>((m_bits >> 8) & 0xff);
      p[2] = static_cast<char>(m_bits & 0xff);
      p += 3;
      m_bits = 0;
      m_count = 0;
    }
  }
  out.resize(static_cast<std::size_t>(p - begin));
}

char* Base64Decoder::flush(char* p) {
  // Two sextets carry one byte, three carry two; a lone sextet carries none.
  if (m_count == 2) {
    *p++ = static_cast<char>((m_bits >> 4) & 0xff);
  } else if (m_count == 3) {
    *p++ = static_cast<char>((m_bits >> 10) & 0xff);
    *p++ = static_cast<char>((m_bits >> 2) & 0xff);
  }
  m_bits = 0;
  m_count = 0;
  return p;
}

void Base64Decoder::finish(std::string& out) {
  char tail[2];
  out.append(tail, static_cast<std::size_t>(flush(tail) - tail));
}

void QuotedPrintableDecoder::decode(std::string_view in, std::string& out) {
  std::size_t i = 0;
  while (i < in.size()) {
    if (m_state == State::Text) {
      // Plain text up to the next escape goes over in one append.
      // Escapes are dense in encoded HTML: a plain loop beats memchr's call.
      std::size_t end = i;
      while (end < in.size() && in[end] != '=') ++end;
      out.append(in.data() + i, end - i);
      if (end == in.size()) return;
      m_state = State::Equals;
      i = end + 1;
      continue;
    }
    const char ch = in[i];
    const auto c = static_cast<unsigned char>(ch);
    switch (m_state) {
      case State::Text:
        break;  // handled above
      case State::Equals:
        if (c == '\n') {
          m_state = State::Text;  // soft line break
        } else if (c == ' ' || c == '\t' || c == '\r') {
          // Transport padding between "=" and the line end (RFC 2045 6.7
          // rule 3): still a soft break if the line ends here.
          m_state = State::EqualsSpace;
        } else if (hex_value(c) >= 0) {
          m_first_hex = ch;
          m_state = State::EqualsHex;
        } else {
          const char kept[2] = {'=', ch};
          out.append(kept, 2);
          m_state = State::Text;
        }
        break;
      case State::EqualsHex:
        m_state = State::Text;
        if (hex_value(c) >= 0) {
          out.push_back(static_cast<char>(hex_value(static_cast<unsigned char>(m_first_hex)) * 16 +
                                          hex_value(c)));
        } else {
          const char kept[2] = {'=', m_first_hex};
          out.append(kept, 2);
          // Re-read this byte as text: it may itself start an escape.
          continue;
        }
        break;
      case State::EqualsSpace:
        if (c == '\n') {
          m_state = State::Text;
        } else if (c != ' ' && c != '\t' && c != '\r') {
          // Not a soft break after all; the swallowed padding was whitespace
          // and whitespace runs collapse later, so one space stands for it.
          out.append("= ", 2);
          m_state = State::Text;
          continue;  // re-read this byte as text
        }
        break;
    }
    ++i;
  }
}

void QuotedPrintableDecoder::finish(std::string& out) {
  if (m_state == State::Equals || m_state == State::EqualsSpace) {
    out.push_back('=');
  } else if (m_state == State::EqualsHex) {
    out.push_back('=');
    out.push_back(m_first_hex);
  }
  m_state = State::Text;
}

void TransferDecoder::decode(std::string_view in, std::string& out) {
  switch (m_encoding) {
    case TransferEncoding::Identity:
      out.append(in);
      break;
    case TransferEncoding::QuotedPrintable:
      m_qp.decode(in, out);
      break;
    case TransferEncoding::Base64:
      m_base64.decode(in, out);
      break;
  }
}

void TransferDecoder::finish(std::string& out) {
  switch (m_encoding) {
    case TransferEncoding::Identity:
      break;
    case TransferEncoding::QuotedPrintable:
      m_qp.finish(out);
      break;
    case TransferEncoding::Base64:
      m_base64.finish(out);
      break;
  }
}

}  // namespace floodgate::policy
