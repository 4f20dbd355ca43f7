// HtmlTextExtractor: reduces an HTML text part to the words a reader sees,
// crudely and in a stream, for the content fingerprint.
//
// Tags become a space (so "<p>a</p><p>b</p>" reads "a b"), comments and the
// contents of <script> and <style> are dropped, and the common entities
// (&amp; &lt; &gt; &quot; &apos; &nbsp; and numeric &#NN; / &#xHH;) are
// decoded; &nbsp; becomes a plain space so it folds with other whitespace.
// This is not an HTML parser: a '>' inside a quoted attribute ends the tag
// early. That is fine for hashing, where only consistency matters.
//
// SECURITY: input is attacker-controlled; state is a few fixed-size fields,
// and output grows by at most a dozen bytes over the input.
//
// Not thread-safe; one per HTML part.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace floodgate::policy {

class HtmlTextExtractor {
 public:
  void extract(std::string_view html, std::string& out);
  // Emits what a cut-off entity or "<" left pending.
  void finish(std::string& out);

 private:
  enum class State { Text, LessThan, Tag, Comment, Entity, RawText };

  void on_byte(char c, std::string& out);
  void end_tag(std::string& out);
  void end_entity(bool terminated, std::string& out);

  // Tag and entity names longer than this are not ones we act on.
  static constexpr std::size_t k_max_name = 16;

  State m_state = State::Text;
  std::array<char, k_max_name> m_name{};
  std::size_t m_name_len = 0;
  bool m_name_done = false;
  int m_dashes = 0;                // Comment: consecutive '-' just seen
  std::string_view m_raw_end;      // RawText: "</script" or "</style"
  std::size_t m_raw_matched = 0;   // RawText: how much of m_raw_end matched
};

}  // namespace floodgate::policy
