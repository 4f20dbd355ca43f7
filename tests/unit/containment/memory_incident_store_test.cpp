// MemoryIncidentStore: the shared IncidentStoreContract, plus what only the
// memory store does (expiry measured on the caller's `now`, get() without a
// clock).
#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "containment/incident_store.hpp"
#include "incident_store_contract.hpp"

namespace floodgate::containment {
namespace {

using namespace std::chrono_literals;

using contract::IncidentStoreContract;

class MemoryBackend final : public contract::IncidentStoreBackend {
 public:
  std::unique_ptr<IncidentStore> make(IncidentLimits limits) override { return make_memory_incident_store(limits); }
};

INSTANTIATE_TEST_SUITE_P(Memory, IncidentStoreContract,
                         ::testing::Values(contract::BackendFactory{
                             "Memory", [] { return std::make_unique<MemoryBackend>(); }}),
                         contract::backend_name);

const TimePoint k_t0{std::chrono::milliseconds{1'795'787'101'000}};

Incident opened_at(TimePoint opened, std::chrono::milliseconds ttl) {
  Incident incident;
  incident.id = make_incident_id(opened, 1);
  incident.source = "client_address=192.0.2.7";
  incident.source_digest = "0123456789abcdef";
  incident.rule = "manual";
  incident.opened = opened;
  incident.until = opened + ttl;
  return incident;
}

TEST(MemoryIncidentStore, KeepsAnIncidentForRetentionAfterItsFreezeEnds) {
  IncidentLimits limits;
  limits.retention = 1h;
  auto store = make_memory_incident_store(limits);
  const Incident incident = opened_at(k_t0, 10min);
  ASSERT_TRUE(store->open(incident).has_value());

  EXPECT_EQ(store->list(std::nullopt, false, k_t0 + 70min)->size(), 1u) << "dropped at until + retention";
  EXPECT_EQ(store->list(std::nullopt, false, k_t0 + 70min + 1ms)->size(), 0u) << "kept after until + retention";
  EXPECT_FALSE(store->get(incident.id)->has_value());
}

TEST(MemoryIncidentStore, AClosedIncidentIsKeptForRetentionAfterItsClose) {
  IncidentLimits limits;
  limits.retention = 1h;
  auto store = make_memory_incident_store(limits);
  const Incident incident = opened_at(k_t0, 10h);
  ASSERT_TRUE(store->open(incident).has_value());
  ASSERT_EQ(store->close(incident.id, "unfrozen", k_t0 + 5min), true);
  EXPECT_EQ(store->list(std::nullopt, false, k_t0 + 65min)->size(), 1u);
  EXPECT_EQ(store->list(std::nullopt, false, k_t0 + 65min + 1ms)->size(), 0u) << "until, not the close, was used";
}

TEST(MemoryIncidentStore, GetAnswersUntilACallWithAClockDropsTheIncident) {
  IncidentLimits limits;
  limits.retention = 1s;
  auto store = make_memory_incident_store(limits);
  const Incident incident = opened_at(k_t0, 1s);
  ASSERT_TRUE(store->open(incident).has_value());
  // get() has no `now`: it answers what is held (documented).
  EXPECT_TRUE(store->get(incident.id)->has_value());
  ASSERT_TRUE(store->claim_notification("0123456789abcdef", NotificationEvent::Freeze, 1s, k_t0 + 1h).has_value());
  EXPECT_FALSE(store->get(incident.id)->has_value());
}

TEST(MemoryIncidentStore, NotificationClaimsFollowTheCallersClock) {
  auto store = make_memory_incident_store({});
  const std::string digest = "0123456789abcdef";
  EXPECT_EQ(store->claim_notification(digest, NotificationEvent::Freeze, 15min, k_t0), true);
  EXPECT_EQ(store->claim_notification(digest, NotificationEvent::Freeze, 15min, k_t0 + 15min - 1ms), false);
  EXPECT_EQ(store->claim_notification(digest, NotificationEvent::Freeze, 15min, k_t0 + 15min), true);
  EXPECT_EQ(store->claim_notification(digest, NotificationEvent::Freeze, 15min, k_t0 + 20min), false);
}

TEST(MemoryIncidentStore, LongTextIsCutToAThousandBytes) {
  auto store = make_memory_incident_store({});
  const std::string id = make_incident_id(k_t0, 2);
  IncidentMessage message;
  message.time = k_t0;
  message.subject = std::string(5000, 's');
  message.recipients = 1;
  ASSERT_TRUE(store->record(id, std::vector<IncidentMessage>{message}).has_value());
  const auto got = store->get(id);
  ASSERT_TRUE(got.has_value() && got->has_value());
  ASSERT_EQ((*got)->subjects.size(), 1u);
  EXPECT_EQ((*got)->subjects[0].text.size(), 1000u);
}

}  // namespace
}  // namespace floodgate::containment
