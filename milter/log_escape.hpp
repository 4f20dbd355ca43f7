// Escaping of attacker-controlled text for log lines.
//
// Log lines are key=value; a value from the SMTP client or the message
// (sender, HELO, header values, reasons quoting them) must not be able to
// forge a second line or a second key. escape_log_value() makes any byte
// string safe: printable ASCII except '"' and '\' passes through, everything
// else (control characters, newlines, 8-bit bytes) becomes \xNN; the result
// is cut at `max_bytes` input bytes with a trailing "...".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace floodgate::milter {

constexpr std::size_t k_default_log_value_bytes = 256;

std::string escape_log_value(std::string_view raw, std::size_t max_bytes = k_default_log_value_bytes);

// key=value, with the value escaped and double-quoted when it is empty or
// holds a space or '='.
std::string log_field(std::string_view key, std::string_view raw_value,
                      std::size_t max_bytes = k_default_log_value_bytes);

}  // namespace floodgate::milter
