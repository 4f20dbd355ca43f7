// MemoryIncidentStore: the IncidentStore of one process (tests, and a
// daemon without Redis).
//
// SUMMARY
// A map id -> the incident's record under one mutex, with the semantics of
// the Redis store (redis_incident_store.cpp), so that code tested against
// this one meets the same answers in production:
// - open() writes the opener's fields and never touches counts; record()
//   and record_queue_actions() on an unknown id create the record.
// - Samples: the first limits.recipient_sample distinct recipients and
//   limits.senders distinct senders are kept; recipient domains are counted
//   for at most 10 x recipient_sample distinct domains, subjects for
//   10 x subjects, fingerprints for 10 x fingerprints (the first ones met
//   get the slots; a tracked one is counted exactly). get() answers
//   recipients and senders in byte order, the counted lists most frequent
//   first then by text, subjects and fingerprints cut to their limit.
// - Queue ids must be 1-64 ASCII letters and digits (others, and "", are
//   not listed, as in Redis where they become members); the first
//   max_queue_ids are listed, the rest counted in queue_ids_not_listed.
// - close() answers true to the first closer of an opened incident only.
// - claim_notification(): the first claim per (digest, event) in
//   `interval`, measured on the caller's `now`.
//
// Expiry: a record is dropped once its end (closed time; else `until`; for
// one never opened, its newest message) plus limits.retention is before
// `now`. Only calls that are given a `now` (list, close,
// claim_notification) drop records; get() has no clock and answers a
// record until the next of those calls drops it -- a caller with a clock
// that cares uses list(). A record never opened that holds no message
// (only notification counts or queue actions) is kept until open() gives
// it an end. (The Redis store's keys expire by Redis' clock.)
//
// DIAGNOSTICS
// Refused as CounterFailure Protocol, as the Redis store refuses them: an id
// that is_valid_incident_id() rejects, and a source digest that is not 16
// lowercase hex digits in claim_notification().
//
// LIMITS
// Attacker text is kept up to k_max_text_bytes per value (longer values
// are cut), as in Redis. Records are bounded by the caps above; their
// number by retention.
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "containment/incident_store.hpp"

namespace floodgate::containment {
namespace {

using ratelimit::CounterFailure;

// The longest value kept of any attacker text (a subject, an address).
constexpr std::size_t k_max_text_bytes = 1000;
constexpr std::size_t k_max_queue_id_chars = 64;
// Domains, subjects and fingerprints are counted for this many times the
// number shown, so the top of the list is right for most bursts.
constexpr std::size_t k_counted_factor = 10;

tl::unexpected<CounterFailure> protocol(std::string detail) {
  return tl::unexpected{CounterFailure{CounterFailure::Kind::Protocol, std::move(detail)}};
}

bool is_digest(std::string_view text) {
  return text.size() == 16 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_listable_queue_id(std::string_view text) {
  return !text.empty() && text.size() <= k_max_queue_id_chars &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
         });
}

std::string bounded(std::string_view text) { return std::string(text.substr(0, k_max_text_bytes)); }

// The domain an address counts under: after the last '@', ASCII lower
// case; "" (not counted) when there is none.
std::string domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 == address.size()) return {};
  std::string domain = bounded(address.substr(at + 1));
  std::transform(domain.begin(), domain.end(), domain.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return domain;
}

// Counts for at most `cap` distinct texts; a text met when the cap is
// reached is not counted.
void count_into(std::map<std::string, std::uint64_t>& counts, std::string text, std::uint64_t by,
                std::size_t cap) {
  if (text.empty()) return;
  if (auto it = counts.find(text); it != counts.end()) {
    it->second += by;
  } else if (counts.size() < cap) {
    counts.emplace(std::move(text), by);
  }
}

void add_distinct(std::set<std::string>& kept, std::string text, std::size_t cap) {
  if (text.empty() || kept.size() >= cap) return;
  kept.insert(std::move(text));
}

// Most frequent first, ties by text; at most `limit`.
std::vector<CountedText> top(const std::map<std::string, std::uint64_t>& counts, std::size_t limit) {
  std::vector<CountedText> items;
  items.reserve(counts.size());
  for (const auto& [text, count] : counts) items.push_back({text, count});
  std::stable_sort(items.begin(), items.end(),
                   [](const CountedText& a, const CountedText& b) { return a.count > b.count; });
  if (items.size() > limit) items.resize(limit);
  return items;
}

struct Record {
  bool opened = false;
  Incident incident;  // the opener's fields, the counts and the close
  std::set<std::string> recipients;
  std::map<std::string, std::uint64_t> domains;
  std::map<std::string, std::uint64_t> subjects;
  std::map<std::string, std::uint64_t> fingerprints;
  std::set<std::string> senders;
  std::map<std::string, IncidentQueueEntry> queue_ids;
};

class MemoryIncidentStore final : public IncidentStore {
 public:
  explicit MemoryIncidentStore(IncidentLimits limits) : m_limits{limits} {}

  Result<void> open(const Incident& incident) override {
    if (!is_valid_incident_id(incident.id)) return protocol("open: not an incident id");
    const std::lock_guard lock{m_mutex};
    Record& record = m_records[incident.id];
    Incident& kept = record.incident;
    record.opened = true;
    kept.id = incident.id;
    kept.source = incident.source;
    kept.source_digest = incident.source_digest;
    kept.rule = incident.rule;
    kept.reason = incident.reason;
    kept.action = incident.action;
    kept.identity = incident.identity;
    kept.opened_by = incident.opened_by;
    kept.opened = incident.opened;
    kept.until = incident.until;
    kept.queue_clearing = incident.queue_clearing;
    return {};
  }

  Result<void> record(const std::string& id, std::span<const IncidentMessage> messages) override {
    if (!is_valid_incident_id(id)) return protocol("record: not an incident id");
    if (messages.empty()) return {};  // creates nothing, as in Redis
    const std::lock_guard lock{m_mutex};
    Record& record = m_records[id];
    Incident& counts = record.incident;
    counts.id = id;
    const std::size_t domain_cap = m_limits.recipient_sample * k_counted_factor;
    for (const auto& message : messages) {
      ++counts.messages;
      counts.recipients += message.recipients;
      switch (message.outcome) {
        case MessageOutcome::Slipped: ++counts.slipped; break;
        case MessageOutcome::Quarantined: ++counts.quarantined; break;
        case MessageOutcome::Tempfailed: ++counts.tempfailed; break;
        case MessageOutcome::Rejected: ++counts.rejected; break;
      }
      if (!counts.first_seen || message.time < *counts.first_seen) counts.first_seen = message.time;
      if (!counts.last_seen || message.time > *counts.last_seen) counts.last_seen = message.time;
      for (const auto& address : message.recipient_addresses) {
        add_distinct(record.recipients, bounded(address), m_limits.recipient_sample);
        count_into(record.domains, domain_of(address), 1, domain_cap);
      }
      count_into(record.subjects, bounded(message.subject), 1, m_limits.subjects * k_counted_factor);
      count_into(record.fingerprints, bounded(message.fingerprint), 1, m_limits.fingerprints * k_counted_factor);
      add_distinct(record.senders, bounded(message.sender), m_limits.senders);
      if (is_listable_queue_id(message.queue_id)) {
        list_queue_id(record, message.queue_id, message.outcome, message.time);
      }
    }
    return {};
  }

  Result<void> record_queue_actions(const std::string& id, std::span<const QueueAction> actions) override {
    if (!is_valid_incident_id(id)) return protocol("record_queue_actions: not an incident id");
    if (std::none_of(actions.begin(), actions.end(),
                     [](const QueueAction& action) { return is_listable_queue_id(action.queue_id); })) {
      return {};  // creates nothing, as in Redis
    }
    const std::lock_guard lock{m_mutex};
    Record& record = m_records[id];
    record.incident.id = id;
    for (const auto& action : actions) {
      if (!is_listable_queue_id(action.queue_id)) continue;
      // Queue clearing acts on accepted mail: one it names first is a
      // slipped message, as of the freeze.
      if (auto* entry = list_queue_id(record, action.queue_id, MessageOutcome::Slipped, record.incident.opened)) {
        entry->queue_action = bounded(action.result);
      }
    }
    return {};
  }

  Result<void> count_notification(const std::string& id, NotificationCount what) override {
    if (!is_valid_incident_id(id)) return protocol("count_notification: not an incident id");
    const std::lock_guard lock{m_mutex};
    Incident& incident = m_records[id].incident;
    incident.id = id;
    switch (what) {
      case NotificationCount::Sent: ++incident.notifications_sent; break;
      case NotificationCount::Suppressed: ++incident.notifications_suppressed; break;
      case NotificationCount::Failed: ++incident.notifications_failed; break;
    }
    return {};
  }

  Result<bool> close(const std::string& id, const std::string& reason, TimePoint now) override {
    if (!is_valid_incident_id(id)) return protocol("close: not an incident id");
    const std::lock_guard lock{m_mutex};
    drop_expired(now);
    const auto it = m_records.find(id);
    if (it == m_records.end() || !it->second.opened || it->second.incident.closed) return false;
    it->second.incident.closed = now;
    it->second.incident.close_reason = bounded(reason);
    return true;
  }

  Result<std::optional<Incident>> get(const std::string& id) override {
    if (!is_valid_incident_id(id)) return protocol("get: not an incident id");
    const std::lock_guard lock{m_mutex};
    const auto it = m_records.find(id);
    if (it == m_records.end()) return std::optional<Incident>{};
    return std::optional<Incident>{complete(it->second)};
  }

  Result<std::vector<Incident>> list(std::optional<TimePoint> since, bool open_only, TimePoint now) override {
    std::vector<Incident> incidents;
    {
      const std::lock_guard lock{m_mutex};
      drop_expired(now);
      for (const auto& [id, record] : m_records) {
        // As the Redis index: only opened incidents are listed.
        if (!record.opened) continue;
        if (since && record.incident.opened < *since) continue;
        if (open_only && !record.incident.is_open(now)) continue;
        incidents.push_back(complete(record));
      }
    }
    // Newest first, ties by id, newest first too (as ZREVRANGEBYSCORE answers).
    std::sort(incidents.begin(), incidents.end(), [](const Incident& a, const Incident& b) {
      return a.opened != b.opened ? a.opened > b.opened : a.id > b.id;
    });
    return incidents;
  }

  Result<bool> claim_notification(const std::string& source_digest, NotificationEvent event,
                                  std::chrono::seconds interval, TimePoint now) override {
    if (!is_digest(source_digest)) {
      return protocol("claim_notification: source digest is not 16 lowercase hex digits");
    }
    if (interval <= std::chrono::seconds::zero()) return true;
    const std::lock_guard lock{m_mutex};
    drop_expired(now);
    const TimePoint expires = now + std::chrono::duration_cast<std::chrono::milliseconds>(interval);
    auto [it, inserted] = m_claims.try_emplace({source_digest, event}, expires);
    if (inserted) return true;
    if (now < it->second) return false;
    it->second = expires;
    return true;
  }

 private:
  // The entry for `queue_id`, listed now if there is room; nullptr (and
  // counted as not listed) when the list is full.
  IncidentQueueEntry* list_queue_id(Record& record, const std::string& queue_id, MessageOutcome outcome,
                                    TimePoint time) {
    if (auto it = record.queue_ids.find(queue_id); it != record.queue_ids.end()) return &it->second;
    if (record.queue_ids.size() >= m_limits.max_queue_ids) {
      ++record.incident.queue_ids_not_listed;
      return nullptr;
    }
    auto& entry = record.queue_ids[queue_id];
    entry = IncidentQueueEntry{.queue_id = queue_id, .outcome = outcome, .time = time, .queue_action = {}};
    return &entry;
  }

  Incident complete(const Record& record) const {
    Incident incident = record.incident;
    incident.recipient_sample.assign(record.recipients.begin(), record.recipients.end());
    incident.recipient_domains = top(record.domains, record.domains.size());
    incident.subjects = top(record.subjects, m_limits.subjects);
    incident.fingerprints = top(record.fingerprints, m_limits.fingerprints);
    incident.senders.assign(record.senders.begin(), record.senders.end());
    incident.queue_ids.clear();
    for (const auto& [queue_id, entry] : record.queue_ids) incident.queue_ids.push_back(entry);
    std::stable_sort(incident.queue_ids.begin(), incident.queue_ids.end(),
                     [](const IncidentQueueEntry& a, const IncidentQueueEntry& b) { return a.time < b.time; });
    return incident;
  }

  // Called with m_mutex held.
  void drop_expired(TimePoint now) {
    const auto retention = std::chrono::duration_cast<std::chrono::milliseconds>(m_limits.retention);
    std::erase_if(m_records, [&](const auto& entry) {
      const Record& record = entry.second;
      const Incident& incident = record.incident;
      TimePoint end = incident.until;
      if (incident.closed) {
        end = *incident.closed;
      } else if (!record.opened) {
        // Nothing known of the freeze yet: its newest message stands for
        // it. With no message either (only notification counts or queue
        // actions), the record waits for open() (see Expiry above).
        if (!incident.last_seen) return false;
        end = *incident.last_seen;
      }
      return end + retention < now;
    });
    std::erase_if(m_claims, [&](const auto& entry) { return entry.second <= now; });
  }

  IncidentLimits m_limits;
  std::mutex m_mutex;
  std::map<std::string, Record, std::less<>> m_records;
  // (digest, event) -> when the claim lapses.
  std::map<std::pair<std::string, NotificationEvent>, TimePoint> m_claims;
};

}  // namespace

std::unique_ptr<IncidentStore> make_memory_incident_store(IncidentLimits limits) {
  return std::make_unique<MemoryIncidentStore>(limits);
}

}  // namespace floodgate::containment
