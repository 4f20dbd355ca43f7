#include "policy/digest.hpp"

#include <xxhash.h>

namespace floodgate::policy {

std::uint64_t digest64(std::string_view text) { return XXH3_64bits(text.data(), text.size()); }

std::string to_hex(std::uint64_t value) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string hex(16, '0');
  for (int i = 15; i >= 0; --i) {
    hex[static_cast<std::size_t>(i)] = k_digits[value & 0xf];
    value >>= 4;
  }
  return hex;
}

}  // namespace floodgate::policy
