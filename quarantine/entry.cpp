#include "quarantine/entry.hpp"

#include <ctime>
#include <cstdio>

namespace floodgate::quarantine {
namespace {

// "YYYYMMDDTHHMMSSZ-" + 16 hex digits.
constexpr std::size_t k_time_length = 16;
constexpr std::size_t k_entry_id_length = k_time_length + 1 + 16;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

int two_digits(std::string_view text, std::size_t at) {
  return (text[at] - '0') * 10 + (text[at + 1] - '0');
}

}  // namespace

std::string make_entry_id(std::chrono::system_clock::time_point time, std::uint64_t random_bits) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  const std::time_t t = std::chrono::system_clock::to_time_t(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d%02d%02dT%02d%02d%02dZ-%016llx", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<unsigned long long>(random_bits));
  return text;
}

// Strict on purpose: ids arrive from the command line and become file
// names, so anything but the exact shape (no '/', no '.', no NUL, no
// uppercase twin of a valid id) is refused before a path is built.
bool is_valid_entry_id(std::string_view text) {
  if (text.size() != k_entry_id_length) return false;
  for (std::size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14}) {
    if (!is_digit(text[i])) return false;
  }
  if (text[8] != 'T' || text[15] != 'Z' || text[16] != '-') return false;
  for (std::size_t i = k_time_length + 1; i < k_entry_id_length; ++i) {
    if (!is_lower_hex(text[i])) return false;
  }
  const int month = two_digits(text, 4);
  const int day = two_digits(text, 6);
  const int hour = two_digits(text, 9);
  const int minute = two_digits(text, 11);
  const int second = two_digits(text, 13);
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60;
}

std::string_view to_string(EntryMode mode) {
  switch (mode) {
    case EntryMode::Spool:
      return "spool";
    case EntryMode::Hold:
      return "hold";
  }
  return "unknown";
}

}  // namespace floodgate::quarantine
