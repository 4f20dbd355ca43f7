// seed_incident: test-only. Writes incidents into a Redis through the real
// Redis incident store, as the daemons will, for the `floodgatectl
// incidents` / `incident` tests.
//
//   seed_incident REDIS_URL KEY_PREFIX < incidents.json
//
// stdin is a JSON array of incidents; every key is optional:
//   {"opened_seconds_ago": 600, "ttl_seconds": 3600, "random": 1,
//    "open": true,                      false: record only (no open())
//    "source": "client_address=192.0.2.7", "source_hex": "..." (any bytes),
//    "source_digest": "0123456789abcdef", "rule": "...", "reason": "...",
//    "action": "quarantine", "identity": {"client_address": "192.0.2.7"},
//    "opened_by": "mx1.example.org", "queue_clearing": "hold",
//    "messages": [{"seconds_ago": 30, "repeat": 1, "queue_id": "4AbC1",
//                  "outcome": "quarantined", "recipients": 3,
//                  "addresses": ["a@example.net"], "sender": "...",
//                  "subject": "..." or "subject_hex": "...", "fingerprint": "..."}],
//    "queue_actions": [{"queue_id": "4AbC1", "result": "held"}],
//    "notifications": ["sent", "suppressed", "failed"],
//    "close": {"reason": "unfrozen", "seconds_ago": 60}}
// Times count back from the real clock (Redis expires keys by its own).
// Prints each incident's id on a line of its own. Exit status 0 when Redis
// took everything, 1 otherwise (the reason on stderr), 2 for bad input.
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "containment/incident_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace {

using Json = nlohmann::json;
using namespace floodgate::containment;
using floodgate::ratelimit::TimePoint;

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

// `name`, or the bytes of `name`_hex, or `fallback`.
std::string text(const Json& object, const std::string& name, const std::string& fallback) {
  if (object.contains(name + "_hex")) return from_hex(object[name + "_hex"].get<std::string>());
  return object.value(name, fallback);
}

TimePoint ago(TimePoint now, const Json& object, const char* name, std::int64_t fallback) {
  return now - std::chrono::seconds{object.value(name, fallback)};
}

bool check(const IncidentStore::Result<void>& result) {
  if (!result) std::cerr << "seed_incident: " << result.error().detail << "\n";
  return result.has_value();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: seed_incident REDIS_URL KEY_PREFIX < incidents.json\n";
    return 2;
  }
  auto endpoint = floodgate::ratelimit::parse_redis_url(argv[1]);
  if (!endpoint) {
    std::cerr << "seed_incident: " << endpoint.error() << "\n";
    return 2;
  }
  auto store = make_redis_incident_store(
      floodgate::ratelimit::RedisFreezeStoreOptions{.endpoint = std::move(*endpoint),
                                                    .password = std::nullopt,
                                                    .connect_timeout = std::chrono::milliseconds{1000},
                                                    .command_timeout = std::chrono::milliseconds{5000},
                                                    .key_prefix = argv[2]},
      IncidentLimits{});

  const Json input = Json::parse(std::cin);
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  for (const auto& described : input) {
    Incident incident;
    incident.opened = ago(now, described, "opened_seconds_ago", 600);
    incident.until = incident.opened + std::chrono::seconds{described.value("ttl_seconds", 3600)};
    incident.id = make_incident_id(incident.opened, described.value("random", 1u));
    incident.source = text(described, "source", "client_address=192.0.2.7");
    incident.source_digest = described.value("source_digest", "0123456789abcdef");
    incident.rule = described.value("rule", "same_content_rcpts_per_client");
    incident.reason = described.value("reason", "same_content_rcpts_per_client=101>100 (+20)");
    const std::string action = described.value("action", "quarantine");
    for (const auto candidate : {floodgate::policy::Action::Quarantine, floodgate::policy::Action::Tempfail,
                                 floodgate::policy::Action::Reject}) {
      if (floodgate::policy::to_string(candidate) == action) incident.action = candidate;
    }
    incident.identity = described.value("identity", std::map<std::string, std::string>{});
    incident.opened_by = described.value("opened_by", "mx1.example.org");
    incident.queue_clearing = described.value("queue_clearing", "off");
    if (described.value("open", true) && !check(store->open(incident))) return 1;

    std::vector<IncidentMessage> messages;
    for (const auto& m : described.value("messages", Json::array())) {
      IncidentMessage message;
      message.time = ago(now, m, "seconds_ago", 30);
      message.queue_id = m.value("queue_id", "");
      const auto outcome = parse_message_outcome(m.value("outcome", "quarantined"));
      if (!outcome) {
        std::cerr << "seed_incident: not an outcome: " << m["outcome"] << "\n";
        return 2;
      }
      message.outcome = *outcome;
      message.recipient_addresses = m.value("addresses", std::vector<std::string>{});
      message.recipients = m.value("recipients", message.recipient_addresses.size());
      message.sender = m.value("sender", "www-data@web1.example.org");
      message.subject = text(m, "subject", "Buy now");
      message.fingerprint = m.value("fingerprint", "exact:0a1b2c3d");
      for (int i = 0; i < m.value("repeat", 1); ++i) messages.push_back(message);
    }
    if (!messages.empty() && !check(store->record(incident.id, messages))) return 1;

    std::vector<QueueAction> actions;
    for (const auto& a : described.value("queue_actions", Json::array())) {
      actions.push_back({a.value("queue_id", ""), a.value("result", "held")});
    }
    if (!actions.empty() && !check(store->record_queue_actions(incident.id, actions))) return 1;

    for (const auto& what : described.value("notifications", std::vector<std::string>{})) {
      const NotificationCount count = what == "sent"         ? NotificationCount::Sent
                                      : what == "suppressed" ? NotificationCount::Suppressed
                                                             : NotificationCount::Failed;
      if (!check(store->count_notification(incident.id, count))) return 1;
    }
    if (described.contains("close")) {
      const auto& close = described["close"];
      const auto closed = store->close(incident.id, close.value("reason", "unfrozen"), ago(now, close, "seconds_ago", 0));
      if (!closed) {
        std::cerr << "seed_incident: " << closed.error().detail << "\n";
        return 1;
      }
    }
    std::cout << incident.id << "\n";
  }
  return 0;
}
