// RecentMessages: the outbound messages this instance let through lately,
// so that when a source is frozen -- by this instance, another one, or by
// hand -- the mail it got through before the freeze can be counted in its
// incident ("slipped") and cleared from the local Postfix queue.
//
// SUMMARY
// add() keeps each accepted (or tagged) message with the facts a source is
// matched on (client, SASL user, sender, headers of interest, macros) for
// `lookback`, at most `capacity` messages (the oldest go first). take_from()
// removes and returns those a source spec matches (policy::matches), so a
// message is counted and cleared once even if several freezes name it.
//
// LIMITS
// Per instance and in memory: what another instance accepted is that
// instance's to report (each clears its own Postfix's queue anyway), and a
// restart forgets. A message decided at the very moment its source is
// frozen here may miss the take; it is then neither counted as slipped nor
// cleared. The recipient list kept per message is a sample (the count is
// exact). Each message is kept packed, its strings in one allocation (~450
// bytes for a typical one, against ~1.4 KB as plain structs): up to
// `capacity` of them stay in memory. take_from() unpacks each to match it.
//
// THREAD SAFETY: safe for concurrent use (one mutex; add() is O(1)
// amortised, take_from() a scan, run once per freeze).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <deque>
#include <mutex>
#include <vector>

#include "containment/incident.hpp"
#include "policy/message_facts.hpp"
#include "policy/source_spec.hpp"

namespace floodgate::containment {

class RecentMessages {
 public:
  RecentMessages(std::chrono::seconds lookback, std::size_t capacity);

  // `facts` are copied without their recipient lists (the message carries
  // its sample); `message.outcome` is set to Slipped.
  void add(IncidentMessage message, const policy::MessageFacts& facts, TimePoint now);

  // The messages from `source` kept at `now` (not older than lookback),
  // oldest first; they are forgotten.
  std::vector<IncidentMessage> take_from(const policy::SourceSpec& source, TimePoint now);

  std::size_t size() const;

 private:
  // One remembered message: the strings of its IncidentMessage and of the
  // facts a SourceSpec can name (policy::identity_part_value), each
  // length-prefixed, in one string; the rest as plain fields.
  struct Kept {
    TimePoint time;
    std::uint64_t recipients = 0;
    std::optional<policy::IpAddress> client_ip;
    std::uint32_t recipient_addresses = 0;  // how many of each list `strings` holds
    std::uint32_t headers = 0;
    std::uint32_t macros = 0;
    std::string strings;
  };
  static Kept pack(const IncidentMessage& message, const policy::MessageFacts& facts);
  static void unpack(const Kept& kept, IncidentMessage& message, policy::MessageFacts& facts);
  void forget_old(TimePoint now);

  std::chrono::milliseconds m_lookback;
  std::size_t m_capacity;
  mutable std::mutex m_mutex;
  std::deque<Kept> m_messages;  // by time of add, oldest first
};

}  // namespace floodgate::containment
