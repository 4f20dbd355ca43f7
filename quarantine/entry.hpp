// QuarantineEntry: what Floodgate keeps about a message it stopped, and the
// ids that name entries.
//
// An entry is the metadata below plus (in spool mode) the full message as
// the milter received it. In hold mode the message stays in the MTA's hold
// queue and the entry records where (queue id) so the CLI can list and
// release it with the MTA's own tool.
//
// SECURITY: every string except `id`, `mode` and `cause` is attacker-
// controlled and may hold any bytes (8-bit headers, NULs). The on-disk form
// keeps them byte for byte (see entry_json.hpp); ids are validated before
// they ever reach a path, so an id cannot name a file outside the spool.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::quarantine {

enum class EntryMode {
  Spool,  // the message is in the entry
  Hold,   // the message is in the MTA's hold queue (queue_id)
};

struct QuarantineEntry {
  std::string id;  // see is_valid_entry_id()
  std::chrono::system_clock::time_point time;
  EntryMode mode = EntryMode::Spool;
  std::string queue_id;
  std::string client_address;
  std::string client_name;
  std::string helo;
  std::string sasl_user;
  std::string sender;                   // envelope sender without <>, "" for <>
  std::vector<std::string> recipients;  // envelope recipients, all of them
  std::string subject;
  std::uint64_t size_bytes = 0;         // of the stored message (spool) or as seen (hold)
  int score = 0;
  std::vector<std::string> reasons;     // "rcpts_per_msg=200>50 (+10)", ...
  // What caused it: "score" (an action band) for now; containment adds
  // "freeze:<rule>" later.
  std::string cause = "score";
  std::string fingerprint;              // "exact:1a2b3c4d5e6f7a8b" or ""
  // The freeze that stopped it: the source's canonical spelling
  // (policy::SourceSpec::canonical(), which holds the client's values), ""
  // when the score band did. `unfreeze --release-quarantined` matches on it.
  std::string frozen_source;
};

// "20261127T101500Z-0123456789abcdef": UTC time of quarantine, then 64
// random bits in hex. Sortable by time; nothing else is an id.
std::string make_entry_id(std::chrono::system_clock::time_point time, std::uint64_t random_bits);
bool is_valid_entry_id(std::string_view text);

std::string_view to_string(EntryMode mode);

}  // namespace floodgate::quarantine
