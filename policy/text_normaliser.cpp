#include "policy/text_normaliser.hpp"

#include <xxhash.h>

#include <new>

namespace floodgate::policy {

namespace {

bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

void free_state(XXH3_state_s* state) { XXH3_freeState(state); }

XXH3_state_s* new_state() {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  return state;
}

}  // namespace

TextNormaliser::TextNormaliser(std::size_t max_text_bytes)
    : m_max_text_bytes(max_text_bytes), m_state(new_state(), &free_state) {
  m_full = max_text_bytes == 0;
}

TextNormaliser::~TextNormaliser() = default;

void TextNormaliser::add(std::string_view text) {
  for (char ch : text) {
    if (m_full) {
      // Past the cap only "was there any text" can still change, and only
      // when the cap is 0 (otherwise reaching it took text).
      if (m_saw_text) return;
      if (!is_space(static_cast<unsigned char>(ch))) m_saw_text = true;
      continue;
    }
    const auto c = static_cast<unsigned char>(ch);
    if (is_space(c)) {
      // Leading whitespace is dropped; inner runs become one space, written
      // only when a following word proves the space is not trailing.
      if (m_emitted > 0) m_pending_space = true;
      continue;
    }
    m_saw_text = true;
    if (m_pending_space) {
      // A space followed by nothing that fits would end the hashed text with
      // a space; stop at the word boundary instead.
      if (m_emitted + 2 > m_max_text_bytes) {
        m_full = true;
        return;
      }
      put(' ');
      m_pending_space = false;
    }
    put(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
  }
}

void TextNormaliser::separate() {
  if (m_emitted > 0) m_pending_space = true;
}

void TextNormaliser::put(char c) {
  m_out[m_out_len++] = c;
  ++m_emitted;
  if (m_out_len == m_out.size()) flush();
  if (m_emitted >= m_max_text_bytes) m_full = true;
}

void TextNormaliser::flush() {
  if (m_out_len == 0) return;
  XXH3_64bits_update(m_state.get(), m_out.data(), m_out_len);
  m_out_len = 0;
}

std::uint64_t TextNormaliser::digest() {
  flush();
  return XXH3_64bits_digest(m_state.get());
}

}  // namespace floodgate::policy
