// Which quarantine entries a list/release/delete applies to: the filters of
// `--source`, `--sender`, `--since`, `--reason` and `--limit`.
//
// Matching is on the stored bytes; the ASCII comparisons ignore case the
// way SMTP does (addresses, host names), never the locale's way.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "quarantine/entry.hpp"

namespace floodgate::ctl {

struct EntryFilter {
  // Client address, client name or SASL user, equal ignoring ASCII case.
  std::optional<std::string> source;
  // Envelope sender, equal ignoring ASCII case ("" or "<>" for the null sender).
  std::optional<std::string> sender;
  // Quarantined at most this long ago.
  std::optional<std::chrono::seconds> since;
  // Part of any reason or of the cause, ignoring ASCII case.
  std::optional<std::string> reason;
  // At most this many: the most recent ones.
  std::optional<std::size_t> limit;

  bool empty() const { return !source && !sender && !since && !reason && !limit; }
  bool matches(const quarantine::QuarantineEntry& entry, std::chrono::system_clock::time_point now) const;
};

// The entries (oldest first, as SpoolStore::list gives them) that pass the
// filter, still oldest first, cut to the `limit` most recent.
std::vector<quarantine::QuarantineEntry> select_entries(std::vector<quarantine::QuarantineEntry> entries,
                                                        const EntryFilter& filter,
                                                        std::chrono::system_clock::time_point now);

}  // namespace floodgate::ctl
