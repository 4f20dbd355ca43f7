// Parsing of the few MIME header fields the content fingerprinter needs:
// Content-Type (media type, boundary, charset), Content-Transfer-Encoding,
// Content-Disposition.
//
// Values arrive as the MTA or the message gave them: with or without the
// leading space, folded (CRLF + whitespace) or unfolded; all parse alike.
// Malformed values never fail: RFC 2045 5.2 says a syntactically invalid
// Content-Type means text/plain, and that is what parse_content_type returns.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/ascii.hpp"  // lower_ascii, shared with identities

namespace floodgate::policy {

// RFC 2046 5.1.1 caps a boundary at 70 characters; we allow slack for
// sloppy senders, and treat anything longer as no boundary at all.
inline constexpr std::size_t k_max_boundary_length = 200;
// Real charset names are short ("windows-1252", "iso-2022-jp"); a longer
// one is junk and counts as not given.
inline constexpr std::size_t k_max_charset_length = 40;

struct ContentType {
  std::string media_type = "text/plain";  // lower-case "type/subtype"
  std::string boundary;                   // empty: none given (or too long)
  // Lower-case, as given (aliases are resolved by CharsetDecoder, see
  // policy/charset.hpp); "us-ascii" when none is given, empty or too long
  // (RFC 2045 5.2's default).
  std::string charset = "us-ascii";

  bool is_multipart() const { return media_type.starts_with("multipart/"); }
  bool is_text() const { return media_type == "text/plain" || media_type == "text/html"; }
  bool is_html() const { return media_type == "text/html"; }
};

ContentType parse_content_type(std::string_view value);

// True when Content-Disposition says "attachment".
bool is_attachment_disposition(std::string_view value);

// Drops leading and trailing space, tab, CR and LF (folding included).
std::string_view trim_header_space(std::string_view value);

// Case-insensitive ASCII comparison, for header names.
bool equals_ignoring_case(std::string_view a, std::string_view b);

}  // namespace floodgate::policy
