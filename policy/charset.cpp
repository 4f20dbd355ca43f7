// CharsetDecoder on glibc iconv. The decoder converts in blocks through a
// fixed output buffer; the only state kept between calls is iconv's own and
// the few bytes of a character cut by a chunk boundary.
//
// For charsets where every byte below 0x80 is ASCII and nothing else
// (UTF-8, ISO-8859-x, windows-125x, KOI8), ASCII runs are copied straight
// through and only the runs of high bytes go to iconv: mail text is mostly
// ASCII, and that keeps decoding near memcpy speed. In such a charset a
// high-byte run that ends at an ASCII byte cannot be an incomplete
// character, so "incomplete" there means invalid.
#include "policy/charset.hpp"

#include <iconv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "policy/ascii.hpp"

namespace floodgate::policy {

namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8
const iconv_t k_no_iconv = reinterpret_cast<iconv_t>(-1);
constexpr std::size_t k_iconv_failed = static_cast<std::size_t>(-1);
constexpr std::size_t k_output_block = 4096;

bool is_charset_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':';
}

// Labels that name something other than what the sender's software wrote.
// Mail clients label windows-1252 text "iso-8859-1" (curly quotes in 0x80-
// 0x9F, which are C1 controls in Latin-1), GBK text "gb2312", and Outlook
// writes "ks_c_5601-1987" for CP949; the supersets decode the real text and
// the same bytes everywhere else. 8-bit text labelled us-ascii is UTF-8
// far more often than anything else; reading it as UTF-8 keeps it.
struct Alias {
  std::string_view label;
  std::string_view canonical;
};
constexpr Alias k_aliases[] = {
    {"us-ascii", "utf-8"},
    {"ascii", "utf-8"},
    {"ansi_x3.4-1968", "utf-8"},
    {"utf8", "utf-8"},
    {"iso-8859-1", "windows-1252"},
    {"iso8859-1", "windows-1252"},
    {"iso_8859-1", "windows-1252"},
    {"latin1", "windows-1252"},
    {"l1", "windows-1252"},
    {"cp819", "windows-1252"},
    {"cp1252", "windows-1252"},
    {"gb2312", "gb18030"},
    {"gbk", "gb18030"},
    {"x-gbk", "gb18030"},
    {"euc-cn", "gb18030"},
    {"ks_c_5601-1987", "cp949"},
    {"euc-kr", "cp949"},
    {"shift_jis", "cp932"},
    {"sjis", "cp932"},
    {"x-sjis", "cp932"},
    {"windows-31j", "cp932"},
};

bool is_ascii_compatible(std::string_view canonical) {
  return canonical == "utf-8" || canonical.starts_with("iso-8859-") || canonical.starts_with("windows-125") ||
         canonical.starts_with("koi8-");
}

// Length of the run of bytes below 0x80 at the start of [data, data+size),
// eight bytes at a time: mail text is mostly ASCII.
std::size_t ascii_prefix(const char* data, std::size_t size) {
  constexpr std::uint64_t k_high_bits = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, sizeof word);
    if ((word & k_high_bits) != 0) break;
  }
  while (i < size && static_cast<unsigned char>(data[i]) < 0x80) ++i;
  return i;
}

std::string upper_ascii(std::string_view text) {
  std::string result(text);
  for (char& c : result) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return result;
}

}  // namespace

std::string canonical_charset_name(std::string_view charset) {
  while (!charset.empty() && (charset.front() == ' ' || charset.front() == '\t')) {
    charset.remove_prefix(1);
  }
  while (!charset.empty() && (charset.back() == ' ' || charset.back() == '\t')) {
    charset.remove_suffix(1);
  }
  if (charset.empty()) return "utf-8";  // no charset: us-ascii, read as UTF-8
  if (charset.size() > k_max_charset_name) return "";
  const std::string name = lower_ascii(charset);
  if (!std::all_of(name.begin(), name.end(), is_charset_token_char)) return "";
  for (const Alias& alias : k_aliases) {
    if (name == alias.label) return std::string(alias.canonical);
  }
  return name;
}

struct CharsetDecoder::State {
  iconv_t cd = k_no_iconv;
  std::string iconv_name;
  bool ascii_compatible = false;
  char pending[k_max_pending_bytes] = {};
  std::size_t pending_size = 0;

  ~State() {
    if (cd != k_no_iconv) iconv_close(cd);
  }

  // Converts [data, data+size) with iconv, appending to out. When
  // `may_be_cut` and the input ends inside a character, returns how many
  // trailing bytes were left unconverted; otherwise 0.
  std::size_t convert(const char* data, std::size_t size, bool may_be_cut, std::string& out) {
    // iconv's prototype takes char** for input it does not modify.
    char* in = const_cast<char*>(data);
    std::size_t in_left = size;
    char buffer[k_output_block];
    while (in_left > 0) {
      char* out_ptr = buffer;
      std::size_t out_left = sizeof buffer;
      const std::size_t result = iconv(cd, &in, &in_left, &out_ptr, &out_left);
      const int error = errno;
      out.append(buffer, static_cast<std::size_t>(out_ptr - buffer));
      if (result != k_iconv_failed) break;
      if (error == E2BIG) continue;
      if (error == EINVAL && may_be_cut && in_left <= k_max_pending_bytes) return in_left;
      // EILSEQ, or a character cut where no cut can be: one byte of junk.
      out.append(k_replacement);
      ++in;
      --in_left;
    }
    return 0;
  }

  // Converts a block; returns the size of an incomplete tail left over.
  std::size_t convert_block(const char* data, std::size_t size, std::string& out) {
    if (!ascii_compatible) return convert(data, size, true, out);
    while (size > 0) {
      const std::size_t ascii = ascii_prefix(data, size);
      out.append(data, ascii);
      data += ascii;
      size -= ascii;
      std::size_t high = 0;
      while (high < size && static_cast<unsigned char>(data[high]) >= 0x80) ++high;
      if (high == 0) break;
      const bool at_end = high == size;
      const std::size_t left = convert(data, high, at_end, out);
      if (left > 0) return left;
      data += high;
      size -= high;
    }
    return 0;
  }

  void keep_pending(const char* tail, std::size_t size) {
    std::memmove(pending, tail, size);  // tail may point into pending itself
    pending_size = size;
  }
};

CharsetDecoder::CharsetDecoder(std::string_view charset) : m_state(std::make_unique<State>()) {
  const std::string canonical = canonical_charset_name(charset);
  if (canonical.empty()) return;
  const std::string iconv_name = upper_ascii(canonical);
  m_state->cd = iconv_open("UTF-8", iconv_name.c_str());
  if (m_state->cd == k_no_iconv) return;
  m_state->iconv_name = iconv_name;
  m_state->ascii_compatible = is_ascii_compatible(canonical);
}

CharsetDecoder::~CharsetDecoder() = default;
CharsetDecoder::CharsetDecoder(CharsetDecoder&&) noexcept = default;
CharsetDecoder& CharsetDecoder::operator=(CharsetDecoder&&) noexcept = default;

bool CharsetDecoder::known() const { return m_state->cd != k_no_iconv; }

const std::string& CharsetDecoder::iconv_name() const { return m_state->iconv_name; }

void CharsetDecoder::decode(std::string_view input, std::string& out) {
  State& state = *m_state;
  if (state.cd == k_no_iconv) {
    out.append(input);
    return;
  }
  // Complete a character held back from the last call: the pending bytes
  // plus a few new ones go through a small staging buffer, so the rest of
  // the input is converted in place, never copied.
  constexpr std::size_t k_top_up = 32;
  while (state.pending_size > 0 && !input.empty()) {
    char stage[k_max_pending_bytes + k_top_up];
    const std::size_t added = std::min(input.size(), k_top_up);
    std::memcpy(stage, state.pending, state.pending_size);
    std::memcpy(stage + state.pending_size, input.data(), added);
    const std::size_t size = state.pending_size + added;
    input.remove_prefix(added);
    state.pending_size = 0;
    const std::size_t left = state.convert_block(stage, size, out);
    state.keep_pending(stage + size - left, left);
  }
  if (input.empty()) return;
  const std::size_t left = state.convert_block(input.data(), input.size(), out);
  state.keep_pending(input.data() + input.size() - left, left);
}

void CharsetDecoder::finish(std::string& out) {
  State& state = *m_state;
  if (state.cd == k_no_iconv) return;
  if (state.pending_size > 0) out.append(k_replacement);
  state.pending_size = 0;
  // Back to the initial shift state (ISO-2022-JP and friends), ready for reuse.
  char buffer[64];
  char* out_ptr = buffer;
  std::size_t out_left = sizeof buffer;
  iconv(state.cd, nullptr, nullptr, &out_ptr, &out_left);
  out.append(buffer, static_cast<std::size_t>(out_ptr - buffer));
}

}  // namespace floodgate::policy
