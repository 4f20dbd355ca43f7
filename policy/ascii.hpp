// ASCII helpers for protocol text (addresses, header names, MIME tokens):
// case folding that ignores the locale, as SMTP and MIME define it.
#pragma once

#include <string>
#include <string_view>

namespace floodgate::policy {

std::string lower_ascii(std::string_view text);

}  // namespace floodgate::policy
