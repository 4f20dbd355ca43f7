#include "policy/text_tokens.hpp"

#include <libpsl.h>

#include <algorithm>
#include <array>

namespace floodgate::policy {

namespace {

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }

// Byte classes in one table: every byte of the text is classified, so a
// load beats a chain of comparisons.
constexpr unsigned char k_space = 1;
constexpr unsigned char k_word = 2;
constexpr std::array<unsigned char, 256> k_byte_class = [] {
  std::array<unsigned char, 256> table{};
  for (unsigned c = 0; c < 256; ++c) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f') table[c] = k_space;
    // Bytes >= 0x80 are parts of UTF-8 (or other 8-bit) letters: no charset
    // is decoded, so they are kept inside words rather than split on.
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80) table[c] = k_word;
  }
  return table;
}();
bool is_space(unsigned char c) { return k_byte_class[c] == k_space; }
bool is_word_byte(unsigned char c) { return k_byte_class[c] == k_word; }
bool is_host_byte(unsigned char c) { return is_word_byte(c) || c == '-' || c == '.'; }
char fold(char c) {
  const auto u = static_cast<unsigned char>(c);
  return is_upper(u) ? static_cast<char>(u - 'A' + 'a') : c;
}
std::string folded(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), fold);
  return out;
}
// The same into a caller's buffer, reused from word to word.
void fold_into(std::string_view text, std::string& out) {
  out.resize(text.size());
  std::transform(text.begin(), text.end(), out.begin(), fold);
}

// Punctuation that wraps a URL or an address in running text:
// "(see <http://x.example/>)." or "mail me: bob@x.example!".
bool is_wrapping(unsigned char c) {
  return !is_word_byte(c) && c != '/' && c != '@' && c != '-' && c != '_' && c != '=' && c != '%' &&
         c != '&' && c != '#' && c != '~' && c != '+';
}
std::string_view strip_wrapping(std::string_view word) {
  while (!word.empty() && is_wrapping(static_cast<unsigned char>(word.front()))) word.remove_prefix(1);
  while (!word.empty() && is_wrapping(static_cast<unsigned char>(word.back()))) word.remove_suffix(1);
  return word;
}

bool ends_salutation(std::string_view word) {
  if (word.empty()) return false;
  const char last = word.back();
  return last == ',' || last == ':' || last == '!' || last == '.' || last == ';';
}

constexpr std::array<std::string_view, 8> k_greetings = {"dear",      "hi",        "hello", "hey",
                                                         "greetings", "attention", "attn",  "howdy"};

bool is_greeting(std::string_view word) {
  while (!word.empty() && !is_word_byte(static_cast<unsigned char>(word.back()))) word.remove_suffix(1);
  const std::string lower = folded(word);
  return std::find(k_greetings.begin(), k_greetings.end(), lower) != k_greetings.end();
}

// The host of a URL or the domain of an address, from `text` (folded,
// starting where the host starts): up to the first byte a host cannot hold.
std::string_view host_prefix(std::string_view text) {
  std::size_t end = 0;
  while (end < text.size() && is_host_byte(static_cast<unsigned char>(text[end]))) ++end;
  std::string_view host = text.substr(0, end);
  while (!host.empty() && (host.back() == '.' || host.back() == '-')) host.remove_suffix(1);
  while (!host.empty() && (host.front() == '.' || host.front() == '-')) host.remove_prefix(1);
  return host;
}

// The host of `url` (folded, wrapping stripped), or "" when it is not a URL.
std::string_view url_host(std::string_view url) {
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else if (url.starts_with("https://")) {
    url.remove_prefix(8);
  } else if (!url.starts_with("www.")) {
    return {};
  }
  // "user:password@host" in front of the host.
  const std::size_t end_of_authority = url.find_first_of("/?#");
  const std::size_t at = url.substr(0, end_of_authority).rfind('@');
  if (at != std::string_view::npos) url.remove_prefix(at + 1);
  return host_prefix(url);
}

// False when neither url_host() nor address_domain() can find a host in
// `word` (wrapping stripped, not folded): no "http", "www." in front and no
// '@'. Most words are plain words, and this spares folding a copy of each.
bool could_name_a_host(std::string_view word) {
  // A loop, not find(): words are short, and memchr's call cost more.
  if (std::any_of(word.begin(), word.end(), [](char c) { return c == '@'; })) return true;
  if (word.size() < 4) return false;
  char prefix[4];
  std::transform(word.begin(), word.begin() + 4, prefix, fold);
  const std::string_view start(prefix, 4);
  return start == "http" || start == "www.";
}

// The domain of the address `word` (folded, wrapping stripped), or "".
std::string_view address_domain(std::string_view word) {
  if (word.starts_with("mailto:")) word.remove_prefix(7);
  const std::size_t at = word.find('@');
  if (at == std::string_view::npos || at == 0) return {};
  const std::string_view domain = host_prefix(word.substr(at + 1));
  if (domain.find('.') == std::string_view::npos) return {};
  return domain;
}

const psl_ctx_t* suffix_list() {
  // The list compiled into libpsl, else the one Debian's publicsuffix
  // package installs; loaded once, kept for the life of the process.
  static const psl_ctx_t* const k_list = [] {
    const psl_ctx_t* list = psl_builtin();
    return list != nullptr ? list : psl_latest(nullptr);
  }();
  return k_list;
}

bool is_numeric_address(std::string_view host) {
  return std::all_of(host.begin(), host.end(),
                     [](char c) { return is_digit(static_cast<unsigned char>(c)) || c == '.'; });
}

// What decides a token's class, gathered byte by byte: all digits is a
// number; letters and digits mixed in 8 or more characters, or 16 or more
// characters of mixed-case letters, look random.
struct TokenShape {
  std::size_t digits = 0;
  std::size_t letters = 0;  // anything else: ASCII letters and bytes >= 0x80
  std::size_t upper_after_first = 0;
  std::size_t lower = 0;

  void add(unsigned char c, bool after_first) {
    if (is_digit(c)) {
      ++digits;
      return;
    }
    ++letters;
    if (is_upper(c) && after_first) ++upper_after_first;
    if (is_lower(c)) ++lower;
  }
  bool looks_random(std::size_t size) const {
    if (digits > 0 && letters > 0 && size >= 8) return true;
    return size >= 16 && upper_after_first > 0 && lower > 0;
  }
};

}  // namespace

std::string registrable_domain(std::string_view host) {
  std::string name = folded(host);
  if (name.empty() || is_numeric_address(name)) return name;
  if (const psl_ctx_t* list = suffix_list()) {
    if (const char* registrable = psl_registrable_domain(list, name.c_str())) {
      return std::string(registrable);
    }
  }
  return name;
}

TextTokeniser::TextTokeniser(std::size_t max_text_bytes, TokenSink& sink)
    : m_max_text_bytes(max_text_bytes), m_sink(sink), m_full(max_text_bytes == 0) {
  m_word.reserve(k_max_word);
}

void TextTokeniser::add(std::string_view text) {
  if (m_full) {
    // Past the cap only "was there any text" can still change.
    if (m_saw_text) return;
    m_saw_text = std::any_of(text.begin(), text.end(),
                             [](char c) { return is_word_byte(static_cast<unsigned char>(c)); });
    return;
  }
  for (std::size_t i = 0; i < text.size() && !m_full;) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (is_space(c)) {
      end_word();
      if (c == '\n') m_newline_pending = true;
      ++i;
      continue;
    }
    // The rest of the word in this piece.
    std::size_t end = i + 1;
    while (end < text.size() && !is_space(static_cast<unsigned char>(text[end]))) ++end;
    if (m_word.empty()) {
      m_newline_before_word = m_newline_pending;
      m_newline_pending = false;
    }
    const std::size_t room = k_max_word - m_word.size();
    m_word.append(text.substr(i, std::min(room, end - i)));
    i = end;
  }
}

void TextTokeniser::separate() {
  end_word();
  m_salutation = Salutation::AtPartStart;
  m_salutation_names = 0;
  m_newline_pending = true;
}

void TextTokeniser::end_word() {
  if (m_word.empty()) return;
  on_word(m_word);
  m_word.clear();
}

void TextTokeniser::on_word(std::string_view word) {
  switch (m_salutation) {
    case Salutation::AtPartStart:
      m_salutation = Salutation::Done;
      if (is_greeting(word)) {
        emit(k_salutation_token);
        if (!ends_salutation(word)) m_salutation = Salutation::InName;
        return;
      }
      break;
    case Salutation::InName:
      if (m_newline_before_word) {
        m_salutation = Salutation::Done;
        break;
      }
      ++m_salutation_names;
      if (ends_salutation(word) || m_salutation_names == k_max_salutation_names) {
        m_salutation = Salutation::Done;
      }
      return;
    case Salutation::Done:
      break;
  }
  const std::string_view stripped = strip_wrapping(word);
  if (could_name_a_host(stripped)) {
    fold_into(stripped, m_scratch);
    std::string_view host = url_host(m_scratch);
    if (host.empty()) host = address_domain(m_scratch);
    if (!host.empty()) {
      emit(registrable_domain_of(host));
      return;
    }
  }
  split_word(word);
}

std::string_view TextTokeniser::registrable_domain_of(std::string_view host) {
  for (const auto& [known_host, domain] : m_recent_domains) {
    if (!known_host.empty() && known_host == host) return domain;
  }
  auto& [known_host, domain] = m_recent_domains[m_next_domain_slot];
  m_next_domain_slot = (m_next_domain_slot + 1) % m_recent_domains.size();
  known_host.assign(host);
  domain = registrable_domain(host);
  return domain;
}

void TextTokeniser::split_word(std::string_view word) {
  std::size_t i = 0;
  while (i < word.size() && !m_full) {
    if (!is_word_byte(static_cast<unsigned char>(word[i]))) {
      ++i;
      continue;
    }
    // One pass finds the token's end and what looks_random() needs.
    TokenShape shape;
    std::size_t end = i;
    for (; end < word.size(); ++end) {
      const auto c = static_cast<unsigned char>(word[end]);
      if (!is_word_byte(c)) break;
      shape.add(c, end > i);
    }
    const std::string_view token = word.substr(i, end - i);
    i = end;
    if (shape.digits == token.size()) {
      emit(k_number_token);
    } else if (shape.looks_random(token.size())) {
      emit(k_random_token);
    } else {
      fold_into(token, m_scratch);
      emit(m_scratch);
    }
  }
}

void TextTokeniser::emit(std::string_view token) {
  m_saw_text = true;
  if (m_full || token.empty()) return;
  const std::size_t separator = m_emitted > 0 ? 1 : 0;
  const std::size_t room = m_max_text_bytes - m_emitted;
  if (separator + token.size() >= room) {
    // The last token is cut to the room left, so a cap that falls inside a
    // word still fingerprints the text up to it.
    if (room > separator) m_sink.on_token(token.substr(0, room - separator));
    m_emitted = m_max_text_bytes;
    m_full = true;
    return;
  }
  m_sink.on_token(token);
  m_emitted += separator + token.size();
}

}  // namespace floodgate::policy
