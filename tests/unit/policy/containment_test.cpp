#include "policy/containment.hpp"

#include <gtest/gtest.h>

namespace floodgate::policy {
namespace {

Config config_with_two_identity_rules() {
  Config config;
  IdentityPart address;
  address.kind = IdentityPart::Kind::ClientAddress;
  IdentityPart sasl_user;
  sasl_user.kind = IdentityPart::Kind::SaslUser;
  IdentityDefinition client{"client", {address}, MissingPartPolicy::SkipRule};
  IdentityDefinition user{"user", {sasl_user}, MissingPartPolicy::Placeholder};
  config.identities = {client, user};
  Rule big;
  big.name = "rcpts_per_msg";
  big.signal = Signal::RecipientsPerMessage;
  Rule per_client;
  per_client.name = "rcpts_per_client";
  per_client.signal = Signal::Recipients;
  per_client.identity = 0;
  Rule per_user;
  per_user.name = "msgs_per_user";
  per_user.signal = Signal::Messages;
  per_user.identity = 1;
  config.rules = {big, per_client, per_user};
  return config;
}

MessageFacts facts_from(const std::string& client, const std::string& sasl_user = {}) {
  MessageFacts facts;
  facts.client_address = client;
  facts.client_ip = IpAddress::parse(client);
  facts.sasl_user = sasl_user;
  return facts;
}

Verdict fired(std::vector<std::size_t> rules, int score) {
  Verdict verdict;
  verdict.score = score;
  verdict.fired_rules = rules;
  for (const auto rule : rules) verdict.reasons.push_back("reason" + std::to_string(rule));
  return verdict;
}

TEST(SourcesToFreeze, OnlyNamedContainmentRulesFreeze) {
  Config config = config_with_two_identity_rules();
  config.containment.rules = {1};
  const auto requests = sources_to_freeze(config, fired({0, 1, 2}, 60), facts_from("10.1.1.1", "bob"));
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].rule, 1u);
  EXPECT_EQ(requests[0].source.canonical(), "client_address=10.1.1.1");
  EXPECT_EQ(requests[0].reason, "reason1");
}

TEST(SourcesToFreeze, NothingFreezesWhenNoContainmentRuleFired) {
  Config config = config_with_two_identity_rules();
  config.containment.rules = {1};
  EXPECT_TRUE(sources_to_freeze(config, fired({0, 2}, 60), facts_from("10.1.1.1", "bob")).empty());
}

TEST(SourcesToFreeze, MinScoreFreezesEveryFiredRuleWithAnIdentity) {
  Config config = config_with_two_identity_rules();
  config.containment.min_score = 50;
  const auto below = sources_to_freeze(config, fired({0, 1, 2}, 49), facts_from("10.1.1.1", "bob"));
  EXPECT_TRUE(below.empty());
  const auto at = sources_to_freeze(config, fired({0, 1, 2}, 50), facts_from("10.1.1.1", "bob"));
  ASSERT_EQ(at.size(), 2u);  // the identity-less rule has no source
  EXPECT_EQ(at[0].source.canonical(), "client_address=10.1.1.1");
  EXPECT_EQ(at[1].source.canonical(), "sasl_user=bob");
}

TEST(SourcesToFreeze, MissingPartFreezesNothingEvenWithPlaceholderIdentities) {
  Config config = config_with_two_identity_rules();
  config.containment.rules = {2};
  // No SASL user: the placeholder identity counts "-", but "-" is no source.
  EXPECT_TRUE(sources_to_freeze(config, fired({2}, 60), facts_from("10.1.1.1")).empty());
}

TEST(Contain, GivesTheContainmentActionAndSaysWhichRuleFroze) {
  Config config = config_with_two_identity_rules();
  config.containment.action = Action::Tempfail;
  Verdict verdict = fired({}, 0);
  verdict.action = Action::Accept;
  const Verdict contained = contain(verdict, config.containment.action, "rcpts_per_client");
  EXPECT_EQ(contained.action, Action::Tempfail);
  EXPECT_EQ(contained.score, 0);
  EXPECT_EQ(contained.reasons, std::vector<std::string>{"frozen(rcpts_per_client)"});
}

TEST(Contain, NeverSoftensWhatTheMessageEarnedByItself) {
  Config config = config_with_two_identity_rules();
  config.containment.action = Action::Quarantine;
  Verdict verdict = fired({1}, 80);
  for (const auto& [earned, want] : {std::pair{Action::Accept, Action::Quarantine}, std::pair{Action::Tag, Action::Quarantine},
                                    std::pair{Action::Quarantine, Action::Quarantine},
                                    std::pair{Action::Tempfail, Action::Tempfail}, std::pair{Action::Reject, Action::Reject}}) {
    verdict.action = earned;
    EXPECT_EQ(contain(verdict, config.containment.action, "rcpts_per_client").action, want)
        << "earned " << to_string(earned);
  }
}

TEST(SourcesMonitorWouldFreeze, NamesWhatAMonitoredContainmentRuleWouldFreezeAndNothingEnforcedFreezesIt) {
  Config config = config_with_two_identity_rules();
  config.rules[2].mode = RuleMode::Monitor;
  config.containment.rules = {1, 2};
  // Enforced: rcpts_per_client fired; monitored: msgs_per_user fired too.
  Verdict verdict = fired({1}, 20);
  verdict.monitor = MonitorVerdict{Action::Quarantine, 40, {"reason1", "reason2"}, {1, 2}};
  const auto facts = facts_from("10.1.1.1", "bob");
  const auto enforced = sources_to_freeze(config, verdict, facts);
  ASSERT_EQ(enforced.size(), 1u);
  EXPECT_EQ(enforced[0].source.canonical(), "client_address=10.1.1.1");
  const auto would = sources_monitor_would_freeze(config, verdict, facts);
  ASSERT_EQ(would.size(), 1u) << "the client, frozen for real, is not named again";
  EXPECT_EQ(would[0].rule, 2u);
  EXPECT_EQ(would[0].source.canonical(), "sasl_user=bob");
}

TEST(SourcesMonitorWouldFreeze, NothingWithoutAMonitoredVerdict) {
  Config config = config_with_two_identity_rules();
  config.containment.rules = {1, 2};
  EXPECT_TRUE(sources_monitor_would_freeze(config, fired({1, 2}, 20), facts_from("10.1.1.1", "bob")).empty());
}

}  // namespace
}  // namespace floodgate::policy
