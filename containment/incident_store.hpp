// IncidentStore: where incidents live, shared by every Floodgate instance
// on one Redis (and by floodgatectl), plus the per-source notification
// rate limit.
//
// Contract, as for CounterStore: failures are values (CounterFailure),
// never exceptions; `now` is the caller's; implementations are safe for
// concurrent use. Unknown ids are not errors: get() answers nullopt, and
// record()/close() on an id that was never opened create what they need
// (a message may be recorded by another instance a moment before the
// opener's open() lands), so open() must never reset counts.
//
// Bounds: samples and lists are capped by IncidentLimits whatever the
// number of messages (a burst is 100,000s of messages); counts are exact.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "containment/incident.hpp"
#include "ratelimit/freeze_store.hpp"

namespace floodgate::containment {

struct IncidentLimits {
  std::size_t recipient_sample = 20;  // distinct recipients kept (and domains counted, at most 10x that)
  std::size_t subjects = 10;          // shown; up to 10x that distinct subjects are counted
  std::size_t fingerprints = 20;
  std::size_t senders = 20;
  std::size_t max_queue_ids = 1000;
  // Kept this long after the freeze ends (closed, or `until` passed).
  std::chrono::seconds retention{30 * 24 * 3600};
};
IncidentLimits incident_limits(const policy::IncidentSettings& settings);

enum class NotificationCount { Sent, Suppressed, Failed };
enum class NotificationEvent { Freeze, Unfreeze };
std::string_view to_string(NotificationEvent event);

class IncidentStore {
 public:
  virtual ~IncidentStore() = default;

  template <typename T>
  using Result = tl::expected<T, ratelimit::CounterFailure>;

  // Writes what the opener knows: id, source, rule, reason, action,
  // identity, opened_by, opened, until, queue_clearing. Counts, samples and
  // lists in `incident` are ignored (record() owns them). Adds the id to the
  // index that list() reads.
  virtual Result<void> open(const Incident& incident) = 0;

  // Adds messages: counts by outcome, recipients, first/last seen, samples,
  // subjects, fingerprints, senders, queue ids (with their outcome). One
  // store round trip per call whatever the number of messages.
  virtual Result<void> record(const std::string& id, std::span<const IncidentMessage> messages) = 0;

  // Sets each queue id's queue_action (adding the queue id if unknown).
  virtual Result<void> record_queue_actions(const std::string& id, std::span<const QueueAction> actions) = 0;

  virtual Result<void> count_notification(const std::string& id, NotificationCount what) = 0;

  // Marks it closed at `now` with `reason`. true: this call closed it (so
  // exactly one of several instances noticing the end tells the
  // postmaster); false: it was closed already (or never opened).
  virtual Result<bool> close(const std::string& id, const std::string& reason, TimePoint now) = 0;

  virtual Result<std::optional<Incident>> get(const std::string& id) = 0;

  // Incidents opened at or after `since` (all when nullopt), newest first;
  // with `open_only`, only those open at `now`. Each is complete, as get()
  // gives it.
  virtual Result<std::vector<Incident>> list(std::optional<TimePoint> since, bool open_only, TimePoint now) = 0;

  // The notification rate limit: true (and remembered for `interval`) when
  // no notification for this source and event was claimed in the last
  // `interval`; false otherwise. An interval of 0 always answers true.
  virtual Result<bool> claim_notification(const std::string& source_digest, NotificationEvent event,
                                          std::chrono::seconds interval, TimePoint now) = 0;
};

// In-process: tests, and a daemon without Redis.
std::unique_ptr<IncidentStore> make_memory_incident_store(IncidentLimits limits);

// Keys under `<key_prefix>:{freezes}:` (one hash tag with the freezes, so a
// cluster keeps them on one node). Options as the freeze store's.
std::unique_ptr<IncidentStore> make_redis_incident_store(ratelimit::RedisFreezeStoreOptions options,
                                                         IncidentLimits limits);

}  // namespace floodgate::containment
