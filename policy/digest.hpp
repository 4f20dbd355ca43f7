// Digests used wherever attacker-controlled text must become a counter key
// or member: the text itself never reaches Redis, only its 64-bit digest.
//
// XXH3 (libxxhash) is not cryptographic. That is enough here: an attacker who
// engineers a collision only merges two of its own counters, or splits its
// traffic, which it can do anyway by changing the text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace floodgate::policy {

std::uint64_t digest64(std::string_view text);
// 16 lower-case hex digits.
std::string to_hex(std::uint64_t value);
// The same 16 digits appended to `out`, without a string of their own.
void append_hex(std::string& out, std::uint64_t value);

}  // namespace floodgate::policy
