// Attacker text as stored in Redis values: lowercase hex of the bytes, so
// any byte round-trips exactly and the stored JSON or hash stays plain
// ASCII. Shared by the freeze, incident and activity stores.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace floodgate::ratelimit {

std::string bytes_to_hex(std::string_view bytes);
// nullopt for an odd length or a character that is not 0-9 or a-f.
std::optional<std::string> hex_to_bytes(std::string_view hex);

}  // namespace floodgate::ratelimit
