// seed_activity: test-only. Writes activity into a Redis as the daemons'
// ActivityRecorder flush would, for the `floodgatectl top` tests.
//
//   seed_activity REDIS_URL KEY_PREFIX HISTORY_SECONDS < deltas.json
//
// stdin is a JSON array of deltas:
//   {"minutes_ago": 0, "identity": "client",
//    "source": "client_address=192.0.2.7"      canonical text; its digest is computed
//      or "source_hex": "...", "digest": "..." any bytes, any digest (hostile data)
//    "messages": 3, "recipients": 5, "addresses": ["a@example.net", ...]}
// Minutes count back from the real clock (Redis expires keys by its own).
// Exit status 0 when Redis took everything, 1 otherwise (the reason on
// stderr).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "containment/activity.hpp"
#include "policy/source_spec.hpp"
#include "ratelimit/redis_url.hpp"

namespace {

using floodgate::containment::ActivityStore;

std::optional<std::string> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: seed_activity REDIS_URL KEY_PREFIX HISTORY_SECONDS < deltas.json\n";
    return 2;
  }
  auto endpoint = floodgate::ratelimit::parse_redis_url(argv[1]);
  if (!endpoint) {
    std::cerr << "seed_activity: " << endpoint.error() << "\n";
    return 2;
  }
  const auto history = std::chrono::seconds{std::atoll(argv[3])};
  auto store = floodgate::containment::make_redis_activity_store(
      floodgate::ratelimit::RedisFreezeStoreOptions{.endpoint = std::move(*endpoint),
                                                    .password = std::nullopt,
                                                    .connect_timeout = std::chrono::milliseconds{1000},
                                                    .command_timeout = std::chrono::milliseconds{1000},
                                                    .key_prefix = argv[2]},
      history);

  const nlohmann::json input = nlohmann::json::parse(std::cin);
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  const std::int64_t current = floodgate::containment::activity_minute(now);
  std::vector<ActivityStore::Delta> deltas;
  for (const auto& described : input) {
    ActivityStore::Delta delta;
    delta.minute = current - described.value("minutes_ago", 0);
    delta.identity = described.value("identity", "client");
    if (described.contains("source_hex")) {
      delta.source = from_hex(described["source_hex"].get<std::string>()).value();
      delta.source_digest = described["digest"].get<std::string>();
    } else {
      const auto spec = floodgate::policy::parse_canonical_source(described["source"].get<std::string>());
      if (!spec) {
        std::cerr << "seed_activity: not a canonical source: " << described["source"] << "\n";
        return 2;
      }
      delta.source = spec->canonical();
      delta.source_digest = spec->digest();
    }
    delta.messages = described.value("messages", 1);
    delta.recipient_addresses = described.value("addresses", std::vector<std::string>{});
    delta.recipients = described.value("recipients", delta.recipient_addresses.size());
    deltas.push_back(std::move(delta));
  }
  if (auto added = store->add(deltas); !added) {
    std::cerr << "seed_activity: " << added.error().detail << "\n";
    return 1;
  }
  return 0;
}
