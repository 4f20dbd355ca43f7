// CharsetDecoder: turns the text of one MIME part, in the charset its
// Content-Type names, into UTF-8, as the part streams in.
//
// Usage, one decoder per text part:
//
//   CharsetDecoder decoder(content_type.charset);   // e.g. "koi8-r"
//   std::string utf8;
//   decoder.decode(first_piece, utf8);              // appends UTF-8 to utf8
//   decoder.decode(next_piece, utf8);               // pieces may split a character
//   decoder.finish(utf8);                           // end of the part
//
// Input may be cut anywhere, even inside a multibyte character: the bytes of
// an incomplete character are held back (at most k_max_pending_bytes) and
// completed by the next decode(); the output does not depend on where the
// cuts fall. finish() turns a character still incomplete at the end into
// U+FFFD and resets the decoder for reuse.
//
// Errors are never fatal: a byte sequence that is invalid in the charset
// becomes U+FFFD (EF BF BD) and decoding goes on with the next byte.
// Charset names are matched case-insensitively, with a few aliases where
// senders mislabel ("iso-8859-1" and "us-ascii" text is read as what mail
// clients actually write: windows-1252 and UTF-8 respectively, see
// charset.cpp). A charset that glibc's iconv does not know, or a name that
// is not a plain charset token, makes the decoder a pass-through: bytes are
// appended unchanged and known() is false, so the caller may say so in logs.
// UTF-8 input (and us-ascii) is validated, not copied blindly: invalid
// sequences become U+FFFD there too.
//
// LIMITS: memory is fixed (a small pending buffer plus glibc's iconv state);
// the output grows by at most 3 bytes per input byte (U+FFFD for every byte,
// or a BMP character from one byte), and bounding it is the caller's job:
// feed only as much input as you mean to keep.
//
// SECURITY: the charset name and the bytes are attacker-controlled. The name
// reaches iconv_open() only when it is at most k_max_charset_name bytes of
// [a-z0-9._:-] (no "//TRANSLIT"-style suffixes, no paths); conversion is
// always to UTF-8.
//
// Not thread-safe: one decoder per part; different decoders may be used on
// different threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace floodgate::policy {

inline constexpr std::size_t k_max_charset_name = 40;

class CharsetDecoder {
 public:
  // Bytes of one incomplete character held between decode() calls; longer
  // "incomplete" input is treated as invalid (no real charset needs more).
  static constexpr std::size_t k_max_pending_bytes = 16;

  // charset: the Content-Type parameter as given (any case, surrounding
  // space ignored); empty means us-ascii.
  explicit CharsetDecoder(std::string_view charset);
  ~CharsetDecoder();
  CharsetDecoder(CharsetDecoder&&) noexcept;
  CharsetDecoder& operator=(CharsetDecoder&&) noexcept;
  CharsetDecoder(const CharsetDecoder&) = delete;
  CharsetDecoder& operator=(const CharsetDecoder&) = delete;

  // Appends the UTF-8 of `input` to `out`.
  void decode(std::string_view input, std::string& out);
  // Ends the part: flushes a held-back incomplete character as U+FFFD.
  void finish(std::string& out);

  // False when the charset is unknown and bytes pass through unchanged.
  bool known() const;
  // The iconv name used ("UTF-8", "WINDOWS-1252", ...), empty if !known().
  const std::string& iconv_name() const;

 private:
  struct State;
  std::unique_ptr<State> m_state;
};

// The canonical lower-case name a charset parameter stands for ("latin1"
// -> "windows-1252", "UTF8" -> "utf-8"); "" when the name is not a plain
// charset token. Exposed for tests and logs.
std::string canonical_charset_name(std::string_view charset);

}  // namespace floodgate::policy
