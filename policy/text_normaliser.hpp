// TextNormaliser: folds decoded message text into the canonical form the
// content fingerprint hashes, and hashes it as it goes (XXH3, 64 bit).
//
// Canonical form: ASCII letters lower-cased, every run of whitespace (space,
// tab, CR, LF, VT, FF) collapsed to one space, no leading or trailing space.
// Bytes >= 0x80 pass through untouched: no charset is decoded, so the same
// text in two charsets gives two digests.
//
// LIMITS: only the first `max_text_bytes` bytes of canonical text are
// hashed; full() says the cap was reached, so callers can stop decoding. The
// hashed text never ends in the space that separated it from text beyond
// the cap, so a prefix that ends at a word boundary hashes like the text cut
// there. Memory is a fixed buffer plus the XXH3 state.
//
// Not thread-safe; one per message.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

struct XXH3_state_s;

namespace floodgate::policy {

class TextNormaliser {
 public:
  explicit TextNormaliser(std::size_t max_text_bytes);
  ~TextNormaliser();
  TextNormaliser(const TextNormaliser&) = delete;
  TextNormaliser& operator=(const TextNormaliser&) = delete;

  // Decoded text, in order; may be split anywhere.
  void add(std::string_view text);
  // Marks the end of a text part: the next part's first word does not glue
  // onto this part's last word.
  void separate();

  // True once max_text_bytes of canonical text were produced.
  bool full() const { return m_full; }
  // True once any non-whitespace byte was seen (even beyond the cap).
  bool saw_text() const { return m_saw_text; }
  // XXH3-64 of the canonical text; call once, after the last add().
  std::uint64_t digest();

 private:
  void put(char c);
  void flush();

  std::size_t m_max_text_bytes;
  std::size_t m_emitted = 0;
  bool m_pending_space = false;
  bool m_saw_text = false;
  bool m_full = false;
  std::unique_ptr<XXH3_state_s, void (*)(XXH3_state_s*)> m_state;
  // Batches bytes so XXH3 is updated in blocks rather than per byte.
  std::array<char, 4096> m_out{};
  std::size_t m_out_len = 0;
};

}  // namespace floodgate::policy
