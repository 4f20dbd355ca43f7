// ASCII helpers for protocol text (addresses, header names, MIME tokens):
// case folding and trimming that ignore the locale, as SMTP and MIME define them.
#pragma once

#include <string>
#include <string_view>

namespace floodgate::policy {

std::string lower_ascii(std::string_view text);
// Without leading and trailing spaces, tabs, CR and LF.
std::string_view trim_whitespace(std::string_view text);

}  // namespace floodgate::policy
