// CounterRequest: one counter the policy needs bumped and read for a message.
//
// The policy core turns a message into a list of CounterRequests
// (policy/scoring.hpp: plan_counters), a CounterStore (ratelimit/) applies
// them all in one round trip and returns each counter's value, and the core
// scores those values. The request carries no attacker-controlled text: keys
// and members are hashes made by the core.
//
// Sliding-window semantics (shared by every store, see
// ratelimit/sliding_window.hpp): a window of W is cut into k_window_slots
// slots; a Sum is the total of the slots inside the window plus the oldest
// slot weighted by how much of it still overlaps; a Distinct is the
// cardinality of the union of the slots overlapping the window.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace floodgate::policy {

enum class CounterKind {
  Sum,       // add `amount`, read the windowed total
  Distinct,  // add `members`, read the windowed number of distinct members
};

struct CounterRequest {
  // "<prefix>:{<hash tag>}:<what>:<window seconds>". The hash tag keeps one
  // source's (or one fingerprint's) counters in one Redis Cluster slot.
  std::string key;
  CounterKind kind = CounterKind::Sum;
  std::chrono::seconds window{600};
  std::uint64_t amount = 0;          // Sum only
  std::vector<std::string> members;  // Distinct only: hex hashes, never raw text

  friend bool operator==(const CounterRequest&, const CounterRequest&) = default;
};

}  // namespace floodgate::policy
