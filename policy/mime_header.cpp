#include "policy/mime_header.hpp"

namespace floodgate::policy {

namespace {

bool is_header_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Splits "name=value" parameters after the media type. Quoted values may
// contain ';' and backslash escapes (RFC 2045 5.1 / RFC 822 quoted-string).
// Calls on_parameter(lower-case name, unquoted value) for each.
template <typename OnParameter>
void for_each_parameter(std::string_view params, OnParameter on_parameter) {
  std::size_t i = 0;
  while (i < params.size()) {
    // Parameter name.
    while (i < params.size() && (is_header_space(params[i]) || params[i] == ';')) ++i;
    const std::size_t name_start = i;
    while (i < params.size() && params[i] != '=' && params[i] != ';') ++i;
    const std::string name = lower_ascii(trim_header_space(params.substr(name_start, i - name_start)));
    if (i >= params.size() || params[i] == ';') continue;  // no value: ignore
    ++i;                                                   // '='
    while (i < params.size() && is_header_space(params[i])) ++i;
    std::string value;
    if (i < params.size() && params[i] == '"') {
      ++i;
      while (i < params.size() && params[i] != '"') {
        if (params[i] == '\\' && i + 1 < params.size()) ++i;
        // Folding inside a quoted string is not part of the value.
        if (params[i] != '\r' && params[i] != '\n') value.push_back(params[i]);
        ++i;
      }
      if (i < params.size()) ++i;  // closing quote
      while (i < params.size() && params[i] != ';') ++i;
    } else {
      const std::size_t value_start = i;
      while (i < params.size() && params[i] != ';') ++i;
      value = std::string(trim_header_space(params.substr(value_start, i - value_start)));
    }
    on_parameter(name, value);
  }
}

}  // namespace

std::string_view trim_header_space(std::string_view value) {
  while (!value.empty() && is_header_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_header_space(value.back())) value.remove_suffix(1);
  return value;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

ContentType parse_content_type(std::string_view value) {
  ContentType result;
  const std::size_t semicolon = value.find(';');
  std::string media_type = lower_ascii(trim_header_space(value.substr(0, semicolon)));
  // Inner folding or stray spaces ("text / html") are dropped, not kept.
  std::erase_if(media_type, is_header_space);
  const std::size_t slash = media_type.find('/');
  if (slash != std::string::npos && slash > 0 && slash + 1 < media_type.size()) {
    result.media_type = std::move(media_type);
  }
  if (semicolon == std::string_view::npos) return result;
  bool seen_boundary = false;
  bool seen_charset = false;
  // First occurrence wins, as for header fields.
  for_each_parameter(value.substr(semicolon + 1),
                     [&](const std::string& name, const std::string& param_value) {
                       if (name == "boundary" && !seen_boundary) {
                         seen_boundary = true;
                         if (param_value.size() <= k_max_boundary_length) {
                           result.boundary = param_value;
                         }
                       } else if (name == "charset" && !seen_charset) {
                         seen_charset = true;
                         const std::string_view charset = trim_header_space(param_value);
                         if (!charset.empty() && charset.size() <= k_max_charset_length) {
                           result.charset = lower_ascii(charset);
                         }
                       }
                     });
  return result;
}

bool is_attachment_disposition(std::string_view value) {
  const std::string_view token = trim_header_space(value.substr(0, value.find(';')));
  return equals_ignoring_case(token, "attachment");
}

}  // namespace floodgate::policy
