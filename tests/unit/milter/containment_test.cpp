// Containment through MessageSession and FreezeCache, with the in-process
// freeze store: a rule that fires freezes its source, the source's next
// messages get the containment action, early where the protocol allows.
#include <gtest/gtest.h>

#include "milter/freeze_cache.hpp"
#include "milter/session.hpp"
#include "policy/config_loader.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace floodgate::milter {
namespace {

using namespace std::chrono_literals;
using policy::Action;

const ratelimit::TimePoint k_start{1'800'000'000'000ms};

std::shared_ptr<const policy::Config> containment_config(const std::string& action) {
  return policy::load_config_text(R"(
outbound:
  client_networks: [10.0.0.0/8, 127.0.0.0/8]
quarantine: {mode: hold}
identities:
  client: {parts: [client_address]}
  php_script: {parts: [{header: X-PHP-Originating-Script}, client_address]}
rules:
  - {name: rcpts_per_client, signal: recipients, identity: client, window: 10m, threshold: 5, points: 20}
  - {name: rcpts_per_script, signal: recipients, identity: php_script, window: 10m, threshold: 8, points: 20}
containment:
  rules: [rcpts_per_client, rcpts_per_script]
  action: )" + action + R"(
  ttl: 1h
actions:
  quarantine: 20
)",
                                  "test.yaml");
}

struct Sent {
  Decision decision;
  std::optional<ActiveFreeze> early;  // what frozen_before_headers() said
};

class ContainmentTest : public ::testing::Test {
 protected:
  Sent send(const std::shared_ptr<const policy::Config>& config, const std::string& client, int recipients,
            ratelimit::TimePoint now, const std::string& script = {}, bool local = false) {
    ConnectionInfo connection;
    connection.client_address = client;
    connection.local_submission = local;
    MessageSession session(config, connection);
    session.set_sender("<web@example.com>");
    for (int i = 0; i < recipients; ++i) session.add_recipient("<r" + std::to_string(m_next++) + "@example.net>", false);
    Sent sent;
    sent.early = session.frozen_before_headers(*m_cache.snapshot(), now);
    if (!script.empty()) session.add_header("X-PHP-Originating-Script", " " + script);
    session.add_body_chunk("Hello " + std::to_string(m_next) + "\r\n");
    sent.decision = session.contain(session.decide(m_counters, now), &m_cache, now);
    return sent;
  }

  ratelimit::MemoryCounterStore m_counters;
  std::unique_ptr<ratelimit::FreezeStore> m_store = ratelimit::make_memory_freeze_store();
  FreezeCache m_cache{*m_store};
  int m_next = 0;
};

TEST_F(ContainmentTest, RuleThatFiresFreezesItsSourceAndStopsItsNextMessages) {
  const auto config = containment_config("quarantine");
  const Sent first = send(config, "10.9.9.9", 3, k_start);
  EXPECT_EQ(first.decision.action, Action::Accept);
  EXPECT_TRUE(first.decision.freezes_made.empty());

  const Sent tripping = send(config, "10.9.9.9", 3, k_start + 1s);  // 6 > 5
  EXPECT_EQ(tripping.decision.action, Action::Quarantine);
  EXPECT_EQ(tripping.decision.freezes_made, std::vector<std::string>{"client_address=10.9.9.9"});

  // One recipient, scoring nothing by itself: stopped by the freeze.
  const Sent after = send(config, "10.9.9.9", 1, k_start + 2s);
  EXPECT_EQ(after.decision.action, Action::Quarantine);
  EXPECT_EQ(after.decision.frozen_source, "client_address=10.9.9.9");
  EXPECT_EQ(after.decision.verdict.reasons.back(), "frozen(rcpts_per_client)");

  const Sent other = send(config, "10.8.8.8", 1, k_start + 2s);
  EXPECT_EQ(other.decision.action, Action::Accept);

  const auto active = m_store->active(k_start + 3s);
  ASSERT_TRUE(active);
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].rule, "rcpts_per_client");
  EXPECT_EQ((*active)[0].reason, "rcpts_per_client=6>5 (+20)");
  EXPECT_EQ((*active)[0].until, k_start + 1s + 1h);
}

TEST_F(ContainmentTest, FrozenSourceIsFrozenOnceNotAtEveryMessage) {
  const auto config = containment_config("quarantine");
  send(config, "10.9.9.9", 6, k_start);  // trips and freezes
  for (int i = 1; i <= 5; ++i) {
    const Sent again = send(config, "10.9.9.9", 2, k_start + std::chrono::seconds(i));  // still over 5
    EXPECT_TRUE(again.decision.freezes_made.empty()) << "message " << i;
    EXPECT_EQ(again.decision.action, Action::Quarantine);
  }
}

TEST_F(ContainmentTest, ScriptFrozenFirstStillLetsTheClientRuleFreezeTheClient) {
  const auto config = containment_config("quarantine");
  // The script is frozen already (by hand, say).
  const std::string script_source = "client_address=10.6.6.6 header:x-php-originating-script=33:form.php";
  ratelimit::Freeze freeze;
  freeze.source = script_source;
  const auto source = *policy::parse_canonical_source(script_source);
  freeze.source_digest = source.digest();
  freeze.rule = "manual";
  freeze.until = k_start + 1h;
  std::string error;
  m_cache.freeze(freeze, source, k_start, error);

  // Stopped by the script's freeze, and its 6 recipients trip the client rule.
  const Sent stopped = send(config, "10.6.6.6", 6, k_start + 1s, "33:form.php");
  EXPECT_EQ(stopped.decision.frozen_source, script_source);
  EXPECT_EQ(stopped.decision.freezes_made, std::vector<std::string>{"client_address=10.6.6.6"});
  // So the client's other scripts are stopped too.
  const Sent other = send(config, "10.6.6.6", 1, k_start + 2s, "33:other.php");
  EXPECT_EQ(other.decision.action, Action::Quarantine);
  EXPECT_EQ(other.decision.frozen_source, "client_address=10.6.6.6");
}

TEST_F(ContainmentTest, RejectFreezeIsDecidedBeforeTheHeaders) {
  const auto config = containment_config("reject");
  send(config, "10.9.9.9", 6, k_start);
  const Sent next = send(config, "10.9.9.9", 1, k_start + 1s);
  ASSERT_TRUE(next.early);
  ConnectionInfo connection;
  connection.client_address = "10.9.9.9";
  MessageSession session(config, connection);
  const Decision refused = session.refuse_frozen(*next.early);
  EXPECT_EQ(refused.action, Action::Reject);
  ASSERT_TRUE(refused.reply);
  EXPECT_EQ(refused.reply->code, "550");
  EXPECT_EQ(refused.verdict.reasons, std::vector<std::string>{"frozen(rcpts_per_client)"});
}

TEST_F(ContainmentTest, ScriptFreezeWaitsForTheHeadersAndSparesTheSameClientsOtherScripts) {
  const auto config = policy::load_config_text(R"(
outbound: {client_networks: [10.0.0.0/8]}
quarantine: {mode: hold}
identities:
  php_script: {parts: [{header: X-PHP-Originating-Script}, client_address]}
rules:
  - {name: rcpts_per_script, signal: recipients, identity: php_script, window: 10m, threshold: 8, points: 20}
containment: {rules: [rcpts_per_script], action: reject}
actions: {quarantine: 20}
)",
                                               "test.yaml");
  const Sent tripping = send(config, "10.7.7.7", 9, k_start, "33:form.php");
  EXPECT_EQ(tripping.decision.freezes_made,
            std::vector<std::string>{"client_address=10.7.7.7 header:x-php-originating-script=33:form.php"});

  const Sent same_script = send(config, "10.7.7.7", 1, k_start + 1s, "33:form.php");
  EXPECT_FALSE(same_script.early);  // the script is only known from the headers
  EXPECT_EQ(same_script.decision.action, Action::Reject);
  ASSERT_TRUE(same_script.decision.reply);
  EXPECT_EQ(same_script.decision.reply->code, "550");

  const Sent other_script = send(config, "10.7.7.7", 1, k_start + 1s, "33:newsletter.php");
  EXPECT_EQ(other_script.decision.action, Action::Accept);
}

// Regression: the freeze's own action used to be replaced by the config's,
// so a manual `--action reject` freeze gave a generic 451 at DATA.
TEST_F(ContainmentTest, ManualFreezeKeepsItsOwnAction) {
  const auto config = containment_config("quarantine");
  ratelimit::Freeze freeze;
  freeze.source = "client_address=10.3.3.3";
  const auto source = *policy::parse_canonical_source(freeze.source);
  freeze.source_digest = source.digest();
  freeze.rule = "manual";
  freeze.action = Action::Reject;
  freeze.since = k_start;
  freeze.until = k_start + 1h;
  std::string error;
  m_cache.freeze(freeze, source, k_start, error);

  const Sent next = send(config, "10.3.3.3", 1, k_start + 1s);
  ASSERT_TRUE(next.early);
  ConnectionInfo connection;
  connection.client_address = "10.3.3.3";
  const Decision refused = MessageSession(config, connection).refuse_frozen(*next.early);
  EXPECT_EQ(refused.action, Action::Reject);
  ASSERT_TRUE(refused.reply);
  EXPECT_EQ(refused.reply->code, "550");
  EXPECT_EQ(next.decision.action, Action::Reject);  // and at end-of-message alike
}

TEST_F(ContainmentTest, LocalSubmissionIsNeverRefusedBeforeTheHeaders) {
  const auto config = containment_config("reject");
  send(config, "127.0.0.1", 6, k_start, {}, /*local=*/true);
  const Sent next = send(config, "127.0.0.1", 1, k_start + 1s, {}, /*local=*/true);
  EXPECT_FALSE(next.early);
  EXPECT_EQ(next.decision.action, Action::Reject);  // decided at end-of-message instead
}

class UnavailableFreezeStore final : public ratelimit::FreezeStore {
 public:
  tl::expected<bool, ratelimit::CounterFailure> freeze(const ratelimit::Freeze&, ratelimit::TimePoint) override {
    return tl::unexpected(ratelimit::CounterFailure{ratelimit::CounterFailure::Kind::Unavailable, "redis down"});
  }
  tl::expected<bool, ratelimit::CounterFailure> unfreeze(std::string_view) override {
    return tl::unexpected(ratelimit::CounterFailure{ratelimit::CounterFailure::Kind::Unavailable, "redis down"});
  }
  tl::expected<std::vector<ratelimit::Freeze>, ratelimit::CounterFailure> active(ratelimit::TimePoint) override {
    return tl::unexpected(ratelimit::CounterFailure{ratelimit::CounterFailure::Kind::Unavailable, "redis down"});
  }
};

TEST(FreezeCache, FreezeHoldsLocallyWhenTheStoreIsDown) {
  UnavailableFreezeStore store;
  FreezeCache cache(store);
  ratelimit::Freeze freeze;
  freeze.source = "client_address=10.1.1.1";
  freeze.source_digest = policy::parse_canonical_source(freeze.source)->digest();
  freeze.rule = "manual";
  freeze.until = k_start + 1h;
  std::string error;
  cache.freeze(freeze, *policy::parse_canonical_source(freeze.source), k_start, error);
  EXPECT_EQ(error, "redis down");
  cache.refresh(k_start + 1s);  // the store still fails: the freeze stays
  ASSERT_EQ(cache.snapshot()->size(), 1u);
  cache.refresh(k_start + 2h);  // expired
  EXPECT_TRUE(cache.snapshot()->empty());
}

TEST(FreezeCache, UnfreezeByAnotherInstanceTakesEffectAtTheNextRefresh) {
  auto store = ratelimit::make_memory_freeze_store();
  FreezeCache here(*store);
  ratelimit::Freeze freeze;
  freeze.source = "client_address=10.1.1.1";
  const auto source = *policy::parse_canonical_source(freeze.source);
  freeze.source_digest = source.digest();
  freeze.rule = "manual";
  freeze.since = k_start;
  freeze.until = k_start + 1h;
  std::string error;
  EXPECT_TRUE(here.freeze(freeze, source, k_start, error));
  here.refresh(k_start + 1s);
  ASSERT_EQ(here.snapshot()->size(), 1u);
  ASSERT_TRUE(*store->unfreeze(freeze.source_digest));  // ops, through floodgatectl
  here.refresh(k_start + 2s);
  EXPECT_TRUE(here.snapshot()->empty());
}

TEST(FreezeCache, FreezeMadeElsewhereArrivesWithTheNextRefresh) {
  auto store = ratelimit::make_memory_freeze_store();
  FreezeCache here(*store);
  ratelimit::Freeze freeze;
  freeze.source = "client_address=10.1.1.1";
  freeze.source_digest = policy::parse_canonical_source(freeze.source)->digest();
  freeze.rule = "manual";
  freeze.until = k_start + 1h;
  ASSERT_TRUE(*store->freeze(freeze, k_start));
  EXPECT_TRUE(here.snapshot()->empty());
  here.refresh(k_start + 1s);
  EXPECT_EQ(here.snapshot()->size(), 1u);
}

}  // namespace
}  // namespace floodgate::milter
