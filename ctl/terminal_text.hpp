// Text that floodgatectl prints: escaping of attacker-controlled strings for
// a terminal, ages and durations as people type them ("5m", "2h", "3d").
//
// SECURITY: every field of a quarantine entry except its id, mode and cause
// comes from the SMTP client or the message. escape_for_terminal() makes it
// unable to move the cursor, change colours or forge an output line: C0 and
// C1 control characters, DEL, and bytes that are not valid UTF-8 become
// \xNN (backslash itself becomes \\); valid UTF-8 text passes, so a subject
// in another script stays readable.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::ctl {

// At most `max_characters` characters of output (0: no limit); a cut string
// ends with "...". Escapes count as the characters they print.
std::string escape_for_terminal(std::string_view raw, std::size_t max_characters = 0);

// Characters (not bytes) `text` takes on the terminal, for table columns;
// `text` is already escaped, so valid UTF-8.
std::size_t display_width(std::string_view text);

// Rows of already escaped cells, the first the heading, in columns two
// spaces apart; a right-aligned column is padded on the left.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<bool>& right_aligned);

// "45s", "5m", "2h", "3d": the largest whole unit, rounded down; a time in
// the future shows as "0s".
std::string format_age(std::chrono::system_clock::duration age);

// "1 entry", "3 entries", "2 recipients": `noun` is a plain English noun.
std::string count_text(std::size_t count, std::string_view noun);

// "2026-11-27 10:15:00 UTC"
std::string format_utc(std::chrono::system_clock::time_point time);

// "30s", "10m", "1h", "1d", "2w": a positive whole number and one unit.
// std::nullopt for anything else (no unit, zero, overflow).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

}  // namespace floodgate::ctl
