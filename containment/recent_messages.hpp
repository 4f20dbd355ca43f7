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
// exact).
//
// THREAD SAFETY: safe for concurrent use (one mutex; add() is O(1)
// amortised, take_from() a scan, run once per freeze).
#pragma once

#include <chrono>
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
  struct Kept {
    IncidentMessage message;
    policy::MessageFacts facts;
  };
  void forget_old(TimePoint now);

  std::chrono::milliseconds m_lookback;
  std::size_t m_capacity;
  mutable std::mutex m_mutex;
  std::deque<Kept> m_messages;  // by time of add, oldest first
};

}  // namespace floodgate::containment
