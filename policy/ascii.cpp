#include "policy/ascii.hpp"

#include <algorithm>

namespace floodgate::policy {

std::string lower_ascii(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  });
  return lowered;
}

}  // namespace floodgate::policy
