// TextTokeniser: turns decoded message text into the token stream the
// content fingerprint shingles, in a stream, with the variations spammers
// use to defeat exact hashes folded away.
//
// Tokens: text is split into words on whitespace, then each word into
// tokens on ASCII non-alphanumerics (bytes >= 0x80 count as letters, so
// UTF-8 words stay whole; no charset is decoded). ASCII letters are
// lower-cased. Then:
//   - a run of digits becomes k_number_token ("10", "2002", "$49.95" -> 2);
//   - a random-looking token becomes k_random_token: letters and digits
//     mixed in 8 or more characters ("x7k2q9zz", tracking ids, hex), or 16
//     or more characters of mixed-case letters (base64);
//   - a URL (http://, https://, www.) becomes its registrable host
//     ("http://a.b.example.co.uk/x?id=1" -> "example.co.uk"), an email
//     address its domain's registrable part, through the public suffix list
//     (libpsl); scheme, user, port, path and query are dropped;
//   - a salutation at the start of a text part ("Dear John Smith,",
//     "Hi Anna,", "Hello there") becomes k_salutation_token: the greeting
//     word and up to k_max_salutation_names further words on its line, up
//     to the first one ending in ',', ':', '!' or '.'.
//
// LIMITS: a word longer than k_max_word bytes is cut there (the rest is
// ignored); only the first `max_text_bytes` of the token stream (tokens
// joined by one space) are produced: the token that does not fit is cut to
// the room left and full() turns true, so callers can stop decoding. Memory
// is one word buffer. The result does not depend on how the text is split
// into add() calls.
//
// SECURITY: the text is attacker-controlled; nothing here grows with it.
//
// Not thread-safe; one per message.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace floodgate::policy {

// Receives the tokens in order.
class TokenSink {
 public:
  virtual ~TokenSink() = default;
  virtual void on_token(std::string_view token) = 0;
};

class TextTokeniser {
 public:
  // Class tokens contain characters a split token never has, so "<num>"
  // in the text cannot forge one.
  static constexpr std::string_view k_number_token = "<num>";
  static constexpr std::string_view k_random_token = "<rand>";
  static constexpr std::string_view k_salutation_token = "<salutation>";
  static constexpr std::size_t k_max_word = 256;
  static constexpr std::size_t k_max_salutation_names = 4;

  // `sink` must outlive the tokeniser.
  TextTokeniser(std::size_t max_text_bytes, TokenSink& sink);

  // Decoded text, in order; may be split anywhere.
  void add(std::string_view text);
  // End of a text part: ends the current word; the next part may open with
  // a salutation again.
  void separate();
  // End of the text; call once, after the last add().
  void finish() { end_word(); }

  // True once max_text_bytes of token stream were produced.
  bool full() const { return m_full; }
  // True once a token was produced or, past the cap, would have been.
  bool saw_text() const { return m_saw_text; }

 private:
  enum class Salutation { AtPartStart, InName, Done };

  void end_word();
  void on_word(std::string_view word);
  void split_word(std::string_view word);
  // registrable_domain(), remembered for the last few hosts: a message
  // names the same few hosts over and over, and each lookup in the public
  // suffix list costs more than the rest of the word.
  std::string_view registrable_domain_of(std::string_view host);
  void emit(std::string_view token);

  std::size_t m_max_text_bytes;
  TokenSink& m_sink;
  std::size_t m_emitted = 0;
  bool m_full = false;
  bool m_saw_text = false;
  std::string m_word;     // at most k_max_word bytes
  std::string m_scratch;  // a word or token folded to lower case, reused
  std::array<std::pair<std::string, std::string>, 4> m_recent_domains;  // host, its registrable domain
  std::size_t m_next_domain_slot = 0;
  bool m_newline_before_word = false;
  bool m_newline_pending = false;
  Salutation m_salutation = Salutation::AtPartStart;
  std::size_t m_salutation_names = 0;
};

// The registrable domain of a host name ("www.shop.example.co.uk" ->
// "example.co.uk"), lower-cased; the host itself when it has none (an IP
// address, a public suffix, a name libpsl rejects). Safe to call from any
// thread: the suffix list is loaded once and only read.
std::string registrable_domain(std::string_view host);

}  // namespace floodgate::policy
