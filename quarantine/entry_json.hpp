// QuarantineEntry <-> JSON: the metadata part of a spool entry file and the
// CLI's --json output.
//
// Attacker-controlled strings may hold any bytes. A string that is valid
// UTF-8 (NUL included; JSON escapes it) is written as a JSON string; any
// other is written as {"base64": "..."} so the file stays valid JSON and
// the bytes come back exactly. entry_from_json accepts both forms for every
// string field.
//
// The time is written twice: "time" (UTC, whole seconds, for people) and
// "time_unix_ns" (exact, what is read back). Unknown keys are ignored when
// reading (a newer writer may add some); a missing or mistyped key is an
// error naming the key, except "frozen_source", added later, which older
// entries lack (read as ""). Nothing throws.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "quarantine/entry.hpp"

namespace floodgate::quarantine {

nlohmann::json entry_to_json(const QuarantineEntry& entry);
tl::expected<QuarantineEntry, std::string> entry_from_json(const nlohmann::json& json);

// Exposed for tests and for other JSON writers of untrusted text.
bool is_valid_utf8(std::string_view bytes);
nlohmann::json bytes_to_json(std::string_view bytes);

}  // namespace floodgate::quarantine
