#include "policy/digest.hpp"

#include <xxhash.h>

namespace floodgate::policy {

std::uint64_t digest64(std::string_view text) { return XXH3_64bits(text.data(), text.size()); }

void append_hex(std::string& out, std::uint64_t value) {
  static constexpr char k_digits[] = "0123456789abcdef";
  char hex[16];
  for (int i = 15; i >= 0; --i) {
    hex[i] = k_digits[value & 0xf];
    value >>= 4;
  }
  out.append(hex, sizeof hex);
}

std::string to_hex(std::uint64_t value) {
  std::string hex;
  append_hex(hex, value);
  return hex;
}

}  // namespace floodgate::policy
