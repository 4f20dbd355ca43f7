#include "milter/log_escape.hpp"

namespace floodgate::milter {

std::string escape_log_value(std::string_view raw, std::size_t max_bytes) {
  static constexpr char k_hex[] = "0123456789abcdef";
  const bool truncated = raw.size() > max_bytes;
  if (truncated) raw = raw.substr(0, max_bytes);
  std::string escaped;
  escaped.reserve(raw.size() + 8);
  for (const char c : raw) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '"' && c != '\\') {
      escaped += c;
    } else {
      escaped += "\\x";
      escaped += k_hex[byte >> 4];
      escaped += k_hex[byte & 0xf];
    }
  }
  if (truncated) escaped += "...";
  return escaped;
}

std::string log_field(std::string_view key, std::string_view raw_value, std::size_t max_bytes) {
  std::string value = escape_log_value(raw_value, max_bytes);
  std::string field(key);
  field += '=';
  if (value.empty() || value.find_first_of(" =") != std::string::npos) {
    field += '"';
    field += value;
    field += '"';
  } else {
    field += value;
  }
  return field;
}

}  // namespace floodgate::milter
