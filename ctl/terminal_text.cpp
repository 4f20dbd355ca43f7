#include "ctl/terminal_text.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <limits>

namespace floodgate::ctl {
namespace {

// Length of the valid UTF-8 sequence starting at `at` (1-4), or 0 if the
// bytes there are not one (overlong forms and surrogates included).
std::size_t utf8_sequence_length(std::string_view text, std::size_t at, std::uint32_t& code_point) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  std::size_t length;
  std::uint32_t minimum;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  } else if ((lead & 0xe0) == 0xc0) {
    length = 2;
    minimum = 0x80;
    code_point = lead & 0x1f;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3;
    minimum = 0x800;
    code_point = lead & 0x0f;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4;
    minimum = 0x10000;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(at + i) & 0x3f);
  }
  if (code_point < minimum || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff))
    return 0;
  return length;
}

std::string hex_escape(unsigned char byte) {
  char text[5];
  std::snprintf(text, sizeof text, "\\x%02x", byte);
  return text;
}

}  // namespace

std::string escape_for_terminal(std::string_view raw, std::size_t max_characters) {
  // Escaped pieces with their widths, so that a cut never splits an escape
  // or a UTF-8 sequence.
  std::string out;
  std::size_t characters = 0;
  std::size_t cut_bytes = 0;  // length of `out` when it last fitted max - 3
  bool cut_seen = false;
  for (std::size_t at = 0; at < raw.size();) {
    std::uint32_t code_point = 0;
    std::size_t length = utf8_sequence_length(raw, at, code_point);
    std::string piece;
    if (length == 0) {
      piece = hex_escape(static_cast<unsigned char>(raw[at]));
      length = 1;
    } else if (code_point < 0x20 || code_point == 0x7f || (code_point >= 0x80 && code_point < 0xa0)) {
      // C1 controls are escaped as their bytes, so \xc2\x9b shows what was there.
      for (std::size_t i = 0; i < length; ++i) piece += hex_escape(static_cast<unsigned char>(raw[at + i]));
    } else if (code_point == '\\') {
      piece = "\\\\";
    } else {
      piece.assign(raw.substr(at, length));
    }
    const std::size_t width = code_point >= 0xa0 && piece.size() == length ? 1 : piece.size();
    if (max_characters != 0 && !cut_seen &&
        characters + width > (max_characters > 3 ? max_characters - 3 : 0)) {
      cut_bytes = out.size();
      cut_seen = true;
    }
    out += piece;
    characters += width;
    at += length;
    if (max_characters != 0 && characters > max_characters) {
      out.resize(cut_bytes);
      out += "...";
      return out;
    }
  }
  return out;
}

std::size_t display_width(std::string_view text) {
  std::size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xc0) != 0x80) ++width;  // count lead bytes only
  }
  return width;
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<bool>& right_aligned) {
  if (rows.empty()) return;
  std::vector<std::size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], display_width(row[c]));
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::string padding(widths[c] - display_width(row[c]), ' ');
      if (c > 0) line += "  ";
      line += right_aligned[c] ? padding + row[c] : row[c] + (c + 1 < row.size() ? padding : "");
    }
    out << line << "\n";
  }
}

std::string format_age(std::chrono::system_clock::duration age) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(age).count();
  if (seconds < 60) return std::to_string(seconds < 0 ? 0 : seconds) + "s";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m";
  if (seconds < 86400) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

std::string count_text(std::size_t count, std::string_view noun) {
  std::string text = std::to_string(count) + " " + std::string(noun);
  if (count == 1) return text;
  if (text.back() == 'y') {
    text.back() = 'i';
    return text + "es";
  }
  return text + "s";
}

std::string format_utc(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(time));
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  std::int64_t unit;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    case 'w':
      unit = 7 * 86400;
      break;
    default:
      return std::nullopt;
  }
  std::int64_t count = 0;
  // Years of seconds fit easily; refuse what would overflow time_point maths.
  constexpr std::int64_t k_limit = std::numeric_limits<std::int64_t>::max() / 1'000'000'000 / 86400 / 7;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    count = count * 10 + (c - '0');
    if (count > k_limit) return std::nullopt;
  }
  if (count == 0) return std::nullopt;
  return std::chrono::seconds(count * unit);
}

}  // namespace floodgate::ctl
