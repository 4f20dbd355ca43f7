#include "fingerprint_test_util.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace floodgate::policy::testing {

RawMessage parse_raw_message(std::string_view raw) {
  RawMessage message;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    std::size_t end = raw.find('\n', pos);
    if (end == std::string_view::npos) end = raw.size();
    std::string_view line = raw.substr(pos, end - pos);
    const std::size_t next = end < raw.size() ? end + 1 : end;
    std::string_view bare = line;
    if (!bare.empty() && bare.back() == '\r') bare.remove_suffix(1);
    if (bare.empty()) {
      pos = next;
      break;
    }
    if ((bare[0] == ' ' || bare[0] == '\t') && !message.headers.empty()) {
      message.headers.back().second += "\r\n";
      message.headers.back().second += bare;
    } else if (const std::size_t colon = bare.find(':'); colon != std::string_view::npos) {
      message.headers.emplace_back(std::string(bare.substr(0, colon)),
                                   std::string(bare.substr(colon + 1)));
    }
    pos = next;
  }
  message.body = std::string(raw.substr(pos));
  return message;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

ContentFingerprint fingerprint(const RawMessage& message, Chunking chunking, std::uint32_t seed,
                               ContentSettings settings) {
  auto fingerprinter = make_content_fingerprinter(settings);
  for (const auto& [name, value] : message.headers) fingerprinter->add_header(name, value);
  const std::string_view body = message.body;
  switch (chunking) {
    case Chunking::Whole:
      fingerprinter->add_body_chunk(body);
      break;
    case Chunking::ByteByByte:
      for (std::size_t i = 0; i < body.size(); ++i) fingerprinter->add_body_chunk(body.substr(i, 1));
      break;
    case Chunking::Random: {
      std::mt19937 rng(seed);
      // Mostly small pieces, sometimes empty ones, sometimes large.
      std::uniform_int_distribution<std::size_t> size(0, 97);
      for (std::size_t i = 0; i < body.size();) {
        std::size_t n = size(rng);
        if (n > 90) n *= 211;
        n = std::min(n, body.size() - i);
        fingerprinter->add_body_chunk(body.substr(i, n));
        i += n;
      }
      break;
    }
  }
  return fingerprinter->finish();
}

ContentFingerprint fingerprint(std::vector<std::pair<std::string, std::string>> headers,
                               std::string body, ContentSettings settings) {
  return fingerprint(RawMessage{std::move(headers), std::move(body)}, Chunking::Whole, 1,
                     settings);
}

std::string encode_base64(std::string_view data) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t column = 0;
  auto put = [&](char c) {
    out.push_back(c);
    if (++column == 76) {
      out += "\r\n";
      column = 0;
    }
  };
  for (std::size_t i = 0; i < data.size(); i += 3) {
    std::uint32_t bits = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) bits |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (i + 2 < data.size()) bits |= static_cast<unsigned char>(data[i + 2]);
    put(k_alphabet[(bits >> 18) & 63]);
    put(k_alphabet[(bits >> 12) & 63]);
    put(i + 1 < data.size() ? k_alphabet[(bits >> 6) & 63] : '=');
    put(i + 2 < data.size() ? k_alphabet[bits & 63] : '=');
  }
  out += "\r\n";
  return out;
}

std::string encode_quoted_printable(std::string_view text) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  std::size_t column = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\r\n";
      column = 0;
      continue;
    }
    std::string piece;
    const bool line_end_next = i + 1 == text.size() || text[i + 1] == '\n';
    if ((c >= 33 && c <= 126 && c != '=') || (c == ' ' && !line_end_next)) {
      piece = std::string(1, static_cast<char>(c));
    } else {
      piece = {'=', k_hex[c >> 4], k_hex[c & 15]};
    }
    if (column + piece.size() > 75) {
      out += "=\r\n";
      column = 0;
    }
    out += piece;
    column += piece.size();
  }
  return out;
}

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 16);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace floodgate::policy::testing
