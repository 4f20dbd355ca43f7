// Tests for policy/scoring.hpp: classify() (outbound, exempt, out of scope),
// plan_counters() (which counters, with which keys and members) and score()
// (thresholds, points, reasons, bands). Configs are built directly in C++;
// the YAML loader is not involved.
#include "policy/scoring.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/digest.hpp"
#include "policy/identity.hpp"

namespace floodgate::policy {
namespace {

using namespace std::chrono_literals;
using Kind = IdentityPart::Kind;

// Identity indexes in test_config().
constexpr std::size_t k_by_address = 0;
constexpr std::size_t k_by_sender = 1;
constexpr std::size_t k_by_sasl_user = 2;     // SkipRule
constexpr std::size_t k_by_script = 3;        // client_address + header, Placeholder
constexpr std::size_t k_by_address_too = 4;   // same parts as k_by_address

IpNetwork network(std::string_view text) {
  auto parsed = IpNetwork::parse(text);
  if (!parsed) ADD_FAILURE() << "test setup: IpNetwork::parse(\"" << text << "\") failed";
  return parsed.value_or(IpNetwork{});
}

IdentityPart part(Kind kind, std::string name = {}) {
  IdentityPart result;
  result.kind = kind;
  result.name = std::move(name);
  return result;
}

Config test_config() {
  Config config;
  config.outbound.client_networks = {network("192.0.2.0/24"), network("2001:db8::/32")};
  config.outbound.authenticated = true;
  config.outbound.local_submission = true;
  config.identities = {
      {"client_address", {part(Kind::ClientAddress)}, MissingPartPolicy::SkipRule},
      {"sender", {part(Kind::Sender)}, MissingPartPolicy::SkipRule},
      {"sasl_user", {part(Kind::SaslUser)}, MissingPartPolicy::SkipRule},
      {"script", {part(Kind::ClientAddress), part(Kind::Header, "x-php-originating-script")},
       MissingPartPolicy::Placeholder},
      {"client_address_too", {part(Kind::ClientAddress)}, MissingPartPolicy::SkipRule},
  };
  config.bands = {{Action::Tag, 5}, {Action::Quarantine, 10}, {Action::Reject, 20}};
  return config;
}

Rule rule(std::string name, Signal signal, std::optional<std::size_t> identity,
          std::chrono::seconds window = 600s, std::uint64_t threshold = 0, int points = 1) {
  Rule result;
  result.name = std::move(name);
  result.signal = signal;
  result.identity = identity;
  result.window = window;
  result.threshold = threshold;
  result.points = points;
  return result;
}

// An exemption with one condition, e.g. exempt_by(&Exemption::senders, {"a@b"}).
template <typename T>
Exemption exempt_by(std::vector<T> Exemption::*condition, std::vector<T> values) {
  Exemption exemption;
  exemption.*condition = std::move(values);
  return exemption;
}

MessageFacts outbound_facts() {
  MessageFacts facts;
  facts.client_address = "192.0.2.10";
  facts.client_ip = IpAddress::parse(facts.client_address);
  facts.client_name = "web1.example.com";
  facts.sender = "alice@example.com";
  facts.recipients = {"bob@example.org", "carol@example.net"};
  return facts;
}

MessageFacts inbound_facts() {
  MessageFacts facts;
  facts.client_address = "198.51.100.20";
  facts.client_ip = IpAddress::parse(facts.client_address);
  facts.client_name = "mx.elsewhere.example";
  facts.sender = "someone@elsewhere.example";
  facts.recipients = {"alice@example.com"};
  return facts;
}

std::string identity_digest(const Config& config, std::size_t identity, const MessageFacts& facts) {
  const auto built = build_identity(config.identities[identity], facts);
  if (!built) ADD_FAILURE() << "test setup: identity " << config.identities[identity].name << " missing";
  return built ? built->digest : std::string{};
}

std::string_view to_string(RuleInput::Source source) {
  switch (source) {
    case RuleInput::Source::NotApplicable: return "NotApplicable";
    case RuleInput::Source::Immediate: return "Immediate";
    case RuleInput::Source::Counter: return "Counter";
  }
  return "?";
}

bool is_hex16(std::string_view text) {
  return text.size() == 16 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// ==== classify ============================================================================

struct ScopeCase {
  const char* what;
  MessageFacts facts;
  Scope want;
};

TEST(Classify, OutboundByEachConditionAndNotOutboundOtherwise) {
  MessageFacts by_network = inbound_facts();
  by_network.client_ip = IpAddress::parse("192.0.2.200");
  MessageFacts by_v6_network = inbound_facts();
  by_v6_network.client_ip = IpAddress::parse("2001:db8:5::1");
  MessageFacts by_mapped_network = inbound_facts();
  by_mapped_network.client_ip = IpAddress::parse("::ffff:192.0.2.200");
  MessageFacts by_sasl = inbound_facts();
  by_sasl.sasl_user = "alice";
  MessageFacts by_local = inbound_facts();
  by_local.client_ip.reset();
  by_local.local_submission = true;
  MessageFacts by_macro = inbound_facts();
  by_macro.macros = {{"daemon_name", "submission"}};
  MessageFacts other_macro_value = inbound_facts();
  other_macro_value.macros = {{"daemon_name", "smtpd"}};
  MessageFacts other_macro_name = inbound_facts();
  other_macro_name.macros = {{"i", "submission"}};
  MessageFacts next_to_network = inbound_facts();
  next_to_network.client_ip = IpAddress::parse("192.0.3.0");
  MessageFacts unknown_ip = inbound_facts();
  unknown_ip.client_ip.reset();

  Config config = test_config();
  config.outbound.macros = {{"daemon_name", {"submission", "smtps"}}};

  const ScopeCase cases[] = {
      {"client in outbound v4 network", by_network, Scope::Outbound},
      {"client in outbound v6 network", by_v6_network, Scope::Outbound},
      {"v4-mapped client in outbound v4 network", by_mapped_network, Scope::Outbound},
      {"SASL-authenticated", by_sasl, Scope::Outbound},
      {"local submission", by_local, Scope::Outbound},
      {"macro with a listed value", by_macro, Scope::Outbound},
      {"macro with another value", other_macro_value, Scope::NotOutbound},
      {"listed value in another macro", other_macro_name, Scope::NotOutbound},
      {"client just outside the network", next_to_network, Scope::NotOutbound},
      {"unknown client address", unknown_ip, Scope::NotOutbound},
      {"plain inbound", inbound_facts(), Scope::NotOutbound},
  };
  for (const auto& c : cases) {
    const Scope got = classify(config, c.facts);
    EXPECT_EQ(got, c.want) << c.what << ": got " << to_string(got) << ", want " << to_string(c.want);
  }
}

TEST(Classify, SaslUserIsNotOutboundWhenAuthenticatedScopeIsOff) {
  Config config = test_config();
  config.outbound.authenticated = false;
  MessageFacts facts = inbound_facts();
  facts.sasl_user = "alice";
  const Scope got = classify(config, facts);
  EXPECT_EQ(got, Scope::NotOutbound) << "got " << to_string(got) << ", want not-outbound";
}

TEST(Classify, LocalSubmissionIsNotOutboundWhenLocalScopeIsOff) {
  Config config = test_config();
  config.outbound.local_submission = false;
  MessageFacts facts = inbound_facts();
  facts.local_submission = true;
  const Scope got = classify(config, facts);
  EXPECT_EQ(got, Scope::NotOutbound) << "got " << to_string(got) << ", want not-outbound";
}

struct ExemptionCase {
  const char* what;
  Exemption exemption;
  MessageFacts facts;
  Scope want;
};

TEST(Classify, ExemptionByEachConditionKind) {
  MessageFacts facts = outbound_facts();
  facts.sasl_user = "Alice";
  facts.sender = "Alice@Example.COM";
  facts.client_name = "Web1.Example.COM";
  MessageFacts null_sender = facts;
  null_sender.sender.clear();

  const ExemptionCase cases[] = {
      {"client network matches",
       exempt_by(&Exemption::client_networks, {network("192.0.2.0/28")}), facts, Scope::Exempt},
      {"client network differs",
       exempt_by(&Exemption::client_networks, {network("192.0.2.128/25")}), facts, Scope::Outbound},
      {"sasl user matches, any case",
       exempt_by(&Exemption::sasl_users, {"ALICE"}), facts, Scope::Exempt},
      {"sasl user differs", exempt_by(&Exemption::sasl_users, {"bob"}), facts, Scope::Outbound},
      {"sender matches, any case",
       exempt_by(&Exemption::senders, {"alice@example.com"}), facts, Scope::Exempt},
      {"sender differs",
       exempt_by(&Exemption::senders, {"bob@example.com"}), facts, Scope::Outbound},
      {"null sender never matches a sender list",
       exempt_by(&Exemption::senders, {""}), null_sender, Scope::Outbound},
      {"sender domain matches, any case",
       exempt_by(&Exemption::sender_domains, {"EXAMPLE.com"}), facts, Scope::Exempt},
      {"sender domain differs",
       exempt_by(&Exemption::sender_domains, {"example.org"}), facts, Scope::Outbound},
      {"parent domain is another domain",
       exempt_by(&Exemption::sender_domains, {"com"}), facts, Scope::Outbound},
      {"null sender has no domain",
       exempt_by(&Exemption::sender_domains, {""}), null_sender, Scope::Outbound},
      {"client name matches, any case",
       exempt_by(&Exemption::client_names, {"web1.example.com"}), facts, Scope::Exempt},
      {"client name differs",
       exempt_by(&Exemption::client_names, {"web2.example.com"}), facts, Scope::Outbound},
      {"any of several values",
       exempt_by(&Exemption::senders, {"x@example.com", "alice@example.com"}), facts, Scope::Exempt},
  };
  for (const auto& c : cases) {
    Config config = test_config();
    config.exemptions = {c.exemption};
    const Scope got = classify(config, c.facts);
    EXPECT_EQ(got, c.want) << c.what << ": got " << to_string(got) << ", want " << to_string(c.want);
  }
}

TEST(Classify, ExemptionByHeaderOrMacroValue) {
  MessageFacts facts = outbound_facts();
  facts.headers["x-php-originating-script"] = " 33:newsletter.php ";
  facts.macros["daemon_name"] = "internal";
  using Match = Exemption::ValueMatch;
  const ExemptionCase cases[] = {
      {"header value matches, trimmed",
       exempt_by(&Exemption::headers, {Match{"x-php-originating-script", {"33:newsletter.php"}}}), facts,
       Scope::Exempt},
      {"header value differs",
       exempt_by(&Exemption::headers, {Match{"x-php-originating-script", {"33:contact.php"}}}), facts,
       Scope::Outbound},
      {"header value is case-sensitive",
       exempt_by(&Exemption::headers, {Match{"x-php-originating-script", {"33:NEWSLETTER.php"}}}), facts,
       Scope::Outbound},
      {"header absent", exempt_by(&Exemption::headers, {Match{"x-mailer", {"33:newsletter.php"}}}), facts,
       Scope::Outbound},
      {"every listed header must match",
       exempt_by(&Exemption::headers, {Match{"x-php-originating-script", {"33:newsletter.php"}},
                                       Match{"x-mailer", {"bulk"}}}),
       facts, Scope::Outbound},
      {"macro value matches", exempt_by(&Exemption::macros, {Match{"daemon_name", {"relay2", "internal"}}}),
       facts, Scope::Exempt},
      {"macro value differs", exempt_by(&Exemption::macros, {Match{"daemon_name", {"submission"}}}), facts,
       Scope::Outbound},
      {"macro absent", exempt_by(&Exemption::macros, {Match{"auth_authen", {"internal"}}}), facts,
       Scope::Outbound},
  };
  for (const auto& c : cases) {
    Config config = test_config();
    config.exemptions = {c.exemption};
    const Scope got = classify(config, c.facts);
    EXPECT_EQ(got, c.want) << c.what << ": got " << to_string(got) << ", want " << to_string(c.want);
  }
}

TEST(Classify, ExemptionRequiresAllItsConditions) {
  Config config = test_config();
  Exemption office_alice;
  office_alice.client_networks = {network("192.0.2.0/24")};
  office_alice.sasl_users = {"alice"};
  config.exemptions = {office_alice};

  MessageFacts both = outbound_facts();
  both.sasl_user = "alice";
  MessageFacts network_only = outbound_facts();
  network_only.sasl_user = "bob";
  MessageFacts user_only = inbound_facts();
  user_only.sasl_user = "alice";  // outbound by SASL, but from outside the network

  EXPECT_EQ(classify(config, both), Scope::Exempt) << "both conditions: got "
                                                  << to_string(classify(config, both)) << ", want exempt";
  EXPECT_EQ(classify(config, network_only), Scope::Outbound)
      << "network only: got " << to_string(classify(config, network_only)) << ", want outbound";
  EXPECT_EQ(classify(config, user_only), Scope::Outbound)
      << "sasl user only: got " << to_string(classify(config, user_only)) << ", want outbound";
}

TEST(Classify, AnyOneMatchingExemptionExempts) {
  Config config = test_config();
  config.exemptions = {exempt_by(&Exemption::senders, {"nobody@example.com"}),
                       exempt_by(&Exemption::sender_domains, {"example.com"})};
  const Scope got = classify(config, outbound_facts());
  EXPECT_EQ(got, Scope::Exempt) << "got " << to_string(got) << ", want exempt";
}

TEST(Classify, ExemptionDoesNotApplyToMessagesThatAreNotOutbound) {
  Config config = test_config();
  config.exemptions = {exempt_by(&Exemption::sender_domains, {"elsewhere.example"})};
  const Scope got = classify(config, inbound_facts());
  EXPECT_EQ(got, Scope::NotOutbound) << "got " << to_string(got) << ", want not-outbound";
}

// ==== plan_counters ===========================================================================

TEST(PlanCounters, RecipientsPerMessageIsImmediateAndNeedsNoCounter) {
  Config config = test_config();
  config.rules = {rule("rcpts_per_msg", Signal::RecipientsPerMessage, std::nullopt, 0s, 50, 10)};
  MessageFacts facts = outbound_facts();
  facts.recipients.assign(7, "x@example.org");

  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.rule_inputs.size(), 1u);
  EXPECT_EQ(plan.rule_inputs[0].source, RuleInput::Source::Immediate)
      << "got " << to_string(plan.rule_inputs[0].source) << ", want Immediate";
  EXPECT_EQ(plan.rule_inputs[0].immediate_value, 7u)
      << "got " << plan.rule_inputs[0].immediate_value << ", want 7";
  EXPECT_TRUE(plan.requests.empty()) << "got " << plan.requests.size() << " requests, want 0";
}

TEST(PlanCounters, PerSourceCountersAreKeyedOnTheIdentityDigest) {
  Config config = test_config();
  config.rules = {
      rule("msgs", Signal::Messages, k_by_address, 600s),
      rule("rcpts", Signal::Recipients, k_by_address, 3600s),
      rule("rejected", Signal::RejectedRecipients, k_by_sender, 600s),
  };
  MessageFacts facts = outbound_facts();
  facts.rejected_recipients = {"gone@example.org", "nobody@example.org", "x@example.org"};

  const CounterPlan plan = plan_counters(config, facts);
  const std::string address_tag = "{s" + identity_digest(config, k_by_address, facts) + "}";
  const std::string sender_tag = "{s" + identity_digest(config, k_by_sender, facts) + "}";
  const std::vector<CounterRequest> want = {
      {"fg:" + address_tag + ":msgs:client_address:600", CounterKind::Sum, 600s, 1, {}},
      {"fg:" + address_tag + ":rcpts:client_address:3600", CounterKind::Sum, 3600s, 2, {}},
      {"fg:" + sender_tag + ":rejrcpts:sender:600", CounterKind::Sum, 600s, 3, {}},
  };
  ASSERT_EQ(plan.requests.size(), want.size()) << "got " << plan.requests.size() << " requests";
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(plan.requests[i].key, want[i].key) << "request " << i;
    EXPECT_EQ(plan.requests[i].kind, want[i].kind) << "request " << i;
    EXPECT_EQ(plan.requests[i].window, want[i].window) << "request " << i;
    EXPECT_EQ(plan.requests[i].amount, want[i].amount) << "request " << i;
    EXPECT_EQ(plan.rule_inputs[i].source, RuleInput::Source::Counter)
        << "rule " << i << ": got " << to_string(plan.rule_inputs[i].source) << ", want Counter";
    EXPECT_EQ(plan.rule_inputs[i].counter_index, i) << "rule " << i;
  }
}

TEST(PlanCounters, KeysUseTheConfiguredPrefix) {
  Config config = test_config();
  config.redis.key_prefix = "floodgate-test";
  config.rules = {rule("msgs", Signal::Messages, k_by_address)};
  const CounterPlan plan = plan_counters(config, outbound_facts());
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_TRUE(plan.requests[0].key.starts_with("floodgate-test:{s"))
      << "got key " << plan.requests[0].key << ", want prefix floodgate-test:{s";
}

TEST(PlanCounters, RulesSharingSignalIdentityAndWindowShareOneCounter) {
  Config config = test_config();
  config.rules = {
      rule("msgs_warn", Signal::Messages, k_by_address, 600s, 100, 2),
      rule("msgs_block", Signal::Messages, k_by_address, 600s, 500, 20),
  };
  const CounterPlan plan = plan_counters(config, outbound_facts());
  ASSERT_EQ(plan.requests.size(), 1u) << "got " << plan.requests.size() << " requests, want 1";
  ASSERT_EQ(plan.rule_inputs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(plan.rule_inputs[i].source, RuleInput::Source::Counter) << "rule " << i;
    EXPECT_EQ(plan.rule_inputs[i].counter_index, 0u) << "rule " << i;
  }
}

TEST(PlanCounters, RulesDifferingInSignalIdentityOrWindowKeepSeparateCounters) {
  Config config = test_config();
  config.rules = {
      rule("base", Signal::Messages, k_by_address, 600s),
      rule("other_window", Signal::Messages, k_by_address, 3600s),
      rule("other_signal", Signal::Recipients, k_by_address, 600s),
      rule("other_identity", Signal::Messages, k_by_sender, 600s),
      // Same parts, different identity name: still its own counter.
      rule("same_parts", Signal::Messages, k_by_address_too, 600s),
  };
  const CounterPlan plan = plan_counters(config, outbound_facts());
  ASSERT_EQ(plan.requests.size(), 5u) << "got " << plan.requests.size() << " requests, want 5";
  std::vector<std::string> keys;
  for (const auto& request : plan.requests) keys.push_back(request.key);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end()) << "got a duplicate key";
  for (std::size_t i = 0; i < plan.rule_inputs.size(); ++i) {
    EXPECT_EQ(plan.rule_inputs[i].counter_index, i) << "rule " << config.rules[i].name;
  }
}

TEST(PlanCounters, DistinctRecipientMembersAreHashedLowerCasedAndDeduplicated) {
  Config config = test_config();
  config.rules = {rule("drcpts", Signal::DistinctRecipients, k_by_address)};
  MessageFacts facts = outbound_facts();
  facts.recipients = {"Bob@Example.ORG", "bob@example.org", "carol@example.net", "BOB@EXAMPLE.ORG"};

  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), 1u);
  const CounterRequest& request = plan.requests[0];
  EXPECT_EQ(request.kind, CounterKind::Distinct) << "got Sum, want Distinct";
  std::vector<std::string> want = {to_hex(digest64("bob@example.org")), to_hex(digest64("carol@example.net"))};
  std::sort(want.begin(), want.end());
  std::vector<std::string> got = request.members;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want) << "got " << got.size() << " members, want the 2 hashed lower-case addresses";
  EXPECT_TRUE(request.key.ends_with(":drcpts:client_address:600")) << "got key " << request.key;
}

TEST(PlanCounters, MissingIdentityPartWithSkipRuleMakesRuleNotApplicable) {
  Config config = test_config();
  config.rules = {rule("by_user", Signal::Messages, k_by_sasl_user)};
  MessageFacts unauthenticated = outbound_facts();  // no SASL user
  const CounterPlan plan = plan_counters(config, unauthenticated);
  ASSERT_EQ(plan.rule_inputs.size(), 1u);
  EXPECT_EQ(plan.rule_inputs[0].source, RuleInput::Source::NotApplicable)
      << "got " << to_string(plan.rule_inputs[0].source) << ", want NotApplicable";
  EXPECT_TRUE(plan.requests.empty()) << "got " << plan.requests.size() << " requests, want 0";

  MessageFacts authenticated = outbound_facts();
  authenticated.sasl_user = "alice";
  const CounterPlan with_user = plan_counters(config, authenticated);
  EXPECT_EQ(with_user.rule_inputs[0].source, RuleInput::Source::Counter)
      << "authenticated: got " << to_string(with_user.rule_inputs[0].source) << ", want Counter";
}

TEST(PlanCounters, MissingIdentityPartWithPlaceholderStillCounts) {
  Config config = test_config();
  config.rules = {rule("by_script", Signal::Messages, k_by_script)};
  const CounterPlan without_header = plan_counters(config, outbound_facts());
  MessageFacts with_header_facts = outbound_facts();
  with_header_facts.headers = {{"x-php-originating-script", "1000:mailer.php"}};
  const CounterPlan with_header = plan_counters(config, with_header_facts);

  ASSERT_EQ(without_header.requests.size(), 1u) << "no header: got no counter, want the placeholder's";
  ASSERT_EQ(with_header.requests.size(), 1u);
  EXPECT_NE(without_header.requests[0].key, with_header.requests[0].key)
      << "got the same key " << with_header.requests[0].key << " with and without the header";
}

TEST(PlanCounters, ContentRulesAreNotApplicableWithoutAFingerprint) {
  Config config = test_config();
  config.rules = {
      rule("copies", Signal::ContentCopies, std::nullopt),
      rule("crcpts", Signal::ContentRecipients, std::nullopt),
      rule("sources", Signal::ContentSources, k_by_address),
      rule("copies_per_source", Signal::ContentCopies, k_by_address),
  };
  MessageFacts facts = outbound_facts();
  facts.fingerprint = {};  // attachments only: nothing to fingerprint
  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.rule_inputs.size(), 4u);
  for (std::size_t i = 0; i < plan.rule_inputs.size(); ++i) {
    EXPECT_EQ(plan.rule_inputs[i].source, RuleInput::Source::NotApplicable)
        << config.rules[i].name << ": got " << to_string(plan.rule_inputs[i].source)
        << ", want NotApplicable";
  }
  EXPECT_TRUE(plan.requests.empty()) << "got " << plan.requests.size() << " requests, want 0";
}

TEST(PlanCounters, ContentRulesAreKeyedOnTheFingerprint) {
  Config config = test_config();
  config.rules = {
      rule("copies", Signal::ContentCopies, std::nullopt, 3600s),
      rule("crcpts", Signal::ContentRecipients, std::nullopt, 3600s),
      rule("sources", Signal::ContentSources, k_by_address, 3600s),
      rule("copies_per_source", Signal::ContentCopies, k_by_address, 3600s),
  };
  MessageFacts facts = outbound_facts();
  facts.fingerprint = {0x0123456789abcdefULL, true, "exact", {}, {}};
  const std::string fp = "0123456789abcdef";
  const std::string source = identity_digest(config, k_by_address, facts);

  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), 4u);
  const std::vector<CounterRequest> want = {
      {"fg:{c" + fp + "}:copies:" + fp + ":3600", CounterKind::Sum, 3600s, 1, {}},
      {"fg:{c" + fp + "}:crcpts:" + fp + ":3600", CounterKind::Sum, 3600s, 2, {}},
      {"fg:{c" + fp + "}:srcs:" + fp + ":client_address:3600", CounterKind::Distinct, 3600s, 0, {source}},
      // Narrowed to one source: lives in the source's slot.
      {"fg:{s" + source + "}:copies:" + fp + ":client_address:3600", CounterKind::Sum, 3600s, 1, {}},
  };
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(plan.requests[i], want[i]) << config.rules[i].name << ": got key " << plan.requests[i].key
                                         << " amount " << plan.requests[i].amount << ", want key "
                                         << want[i].key << " amount " << want[i].amount;
    EXPECT_EQ(plan.rule_inputs[i].counter_index, i) << config.rules[i].name;
  }
}

TEST(PlanCounters, NearDuplicateContentRulesReadOneCounterPerBand) {
  Config config = test_config();
  config.rules = {
      rule("copies", Signal::ContentCopies, std::nullopt, 3600s),
      rule("sources", Signal::ContentSources, k_by_address, 3600s),
  };
  MessageFacts facts = outbound_facts();
  facts.fingerprint = {0x0123456789abcdefULL, true, "minhash", {0x1111, 0x2222, 0x3333}, {}};
  const std::string source = identity_digest(config, k_by_address, facts);

  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), 6u);
  const std::vector<std::string> bands = {"b0000000000001111", "b0000000000002222", "b0000000000003333"};
  for (std::size_t band = 0; band < bands.size(); ++band) {
    const std::size_t copies = band == 0 ? plan.rule_inputs[0].counter_index
                                         : plan.rule_inputs[0].more_counter_indices[band - 1];
    EXPECT_EQ(plan.requests[copies].key, "fg:{c" + bands[band] + "}:copies:" + bands[band] + ":3600");
    const std::size_t sources = band == 0 ? plan.rule_inputs[1].counter_index
                                          : plan.rule_inputs[1].more_counter_indices[band - 1];
    EXPECT_EQ(plan.requests[sources].key, "fg:{c" + bands[band] + "}:srcs:" + bands[band] + ":client_address:3600");
    EXPECT_EQ(plan.requests[sources].members, std::vector<std::string>{source});
  }
  // The exact digest is not a key when bands are there: a reworded copy
  // must meet its original on a band, not miss it on the digest.
  for (const auto& request : plan.requests) EXPECT_EQ(request.key.find("0123456789abcdef"), std::string::npos);
}

TEST(Scoring, ANearDuplicateContentRuleTakesItsHighestBandCounter) {
  Config config = test_config();
  config.rules = {rule("copies", Signal::ContentCopies, std::nullopt, 3600s)};
  config.rules[0].threshold = 10;
  MessageFacts facts = outbound_facts();
  facts.fingerprint = {1, true, "minhash", {0xa, 0xb, 0xc}, {}};
  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), 3u);
  // Only the second band has seen this campaign before (a reworded copy
  // shares one band with the earlier ones).
  const std::vector<std::uint64_t> values = {1, 12, 1};
  const Verdict verdict = score(config, plan, values);
  ASSERT_EQ(verdict.reasons.size(), 1u);
  EXPECT_EQ(verdict.reasons[0], "copies=12>10 (+1)");
}

TEST(Scoring, AContentRuleOnAnExactFingerprintSaysSoInItsReason) {
  Config config = test_config();
  config.rules = {rule("copies", Signal::ContentCopies, std::nullopt, 3600s, 10),
                  rule("msgs", Signal::Messages, k_by_address, 3600s, 10)};
  MessageFacts facts = outbound_facts();
  facts.fingerprint = {7, true, "exact", {}, {}};
  const CounterPlan plan = plan_counters(config, facts);
  const std::vector<std::uint64_t> values = {12, 12};
  const Verdict verdict = score(config, plan, values);
  EXPECT_EQ(verdict.reasons, (std::vector<std::string>{"copies=12>10 (+1, exact)", "msgs=12>10 (+1)"}));
}

TEST(PlanCounters, ContentRecipientDomainsCountsDistinctDomainsLowerCased) {
  Config config = test_config();
  config.rules = {rule("domains", Signal::ContentRecipientDomains, std::nullopt, 3600s)};
  MessageFacts facts = outbound_facts();
  facts.recipients = {"a@Example.COM", "b@example.com", "c@other.example"};
  facts.fingerprint = {0x42, true, "exact", {}, {}};
  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].key, "fg:{c0000000000000042}:cdoms:0000000000000042:3600");
  EXPECT_EQ(plan.requests[0].kind, CounterKind::Distinct);
  std::vector<std::string> want = {to_hex(digest64("example.com")), to_hex(digest64("other.example"))};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(plan.requests[0].members, want);
}

TEST(PlanCounters, AttackerTextNeverAppearsInKeysOrMembers) {
  // Every rule kind, fed a sender, recipients and a header built to break a
  // key: braces that would move the Redis Cluster hash tag, separators,
  // newlines, spaces.
  Config config = test_config();
  config.identities.push_back({"sender_and_header",
                               {part(Kind::Sender), part(Kind::Header, "x-php-originating-script"),
                                part(Kind::SenderDomain), part(Kind::SaslUser)},
                               MissingPartPolicy::Placeholder});
  const std::size_t k_attacker = config.identities.size() - 1;
  config.rules = {
      rule("msgs", Signal::Messages, k_attacker),
      rule("rcpts", Signal::Recipients, k_by_sender),
      rule("drcpts", Signal::DistinctRecipients, k_attacker),
      rule("rejected", Signal::RejectedRecipients, k_attacker),
      rule("copies", Signal::ContentCopies, std::nullopt),
      rule("copies_src", Signal::ContentCopies, k_attacker),
      rule("crcpts_src", Signal::ContentRecipients, k_by_sender),
      rule("sources", Signal::ContentSources, k_attacker),
  };
  MessageFacts facts = outbound_facts();
  facts.sender = "evil}{x@y";
  facts.sasl_user = "evil:user";
  facts.recipients = {"EVIL}{R@x", "victim\r\nRCPT TO:<z@q>"};
  facts.rejected_recipients = {"evil}{gone@x"};
  facts.headers = {{"x-php-originating-script", "evil.php\r\nX-Injected: {yes}"}};
  facts.fingerprint = {42, true, "exact", {}, {}};

  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), config.rules.size()) << "want one counter per rule";

  const std::string_view forbidden[] = {"evil", "EVIL", "x@y", "victim", "X-Injected", "\r", "\n",
                                        " ", "@", "<", "}{"};
  for (const auto& request : plan.requests) {
    // Shape: fg:{<s|c><16 hex>}:<what>:<window>, exactly one hash tag.
    EXPECT_TRUE(request.key.starts_with("fg:{")) << "got key " << request.key;
    EXPECT_EQ(std::count(request.key.begin(), request.key.end(), '{'), 1) << "got key " << request.key;
    EXPECT_EQ(std::count(request.key.begin(), request.key.end(), '}'), 1) << "got key " << request.key;
    const auto close = request.key.find('}');
    ASSERT_NE(close, std::string::npos);
    EXPECT_EQ(close, 4u + 1u + 16u) << "got key " << request.key << ", want a 17-character hash tag";
    EXPECT_TRUE(is_hex16(std::string_view(request.key).substr(5, 16))) << "got key " << request.key;
    for (const auto text : forbidden) {
      EXPECT_EQ(request.key.find(text), std::string::npos)
          << "got key \"" << request.key << "\" containing attacker text \"" << text << "\"";
    }
    for (const auto& member : request.members) {
      EXPECT_TRUE(is_hex16(member)) << "got member \"" << member << "\", want 16 hex digits";
    }
  }
}

TEST(PlanCounters, OneRuleInputPerRuleInConfigOrder) {
  Config config = test_config();
  config.rules = {
      rule("by_user", Signal::Messages, k_by_sasl_user),  // NotApplicable: no SASL user
      rule("rcpts_per_msg", Signal::RecipientsPerMessage, std::nullopt),
      rule("msgs", Signal::Messages, k_by_address),
  };
  const CounterPlan plan = plan_counters(config, outbound_facts());
  const RuleInput::Source want[] = {RuleInput::Source::NotApplicable, RuleInput::Source::Immediate,
                                    RuleInput::Source::Counter};
  ASSERT_EQ(plan.rule_inputs.size(), std::size(want));
  for (std::size_t i = 0; i < std::size(want); ++i) {
    EXPECT_EQ(plan.rule_inputs[i].source, want[i])
        << config.rules[i].name << ": got " << to_string(plan.rule_inputs[i].source) << ", want "
        << to_string(want[i]);
  }
  EXPECT_EQ(plan.rule_inputs[2].counter_index, 0u);
}

// ==== score ===================================================================================

// A plan whose rules all read one counter each, in order.
CounterPlan counter_plan(std::size_t rules) {
  CounterPlan plan;
  for (std::size_t i = 0; i < rules; ++i) {
    plan.requests.push_back({"k" + std::to_string(i), CounterKind::Sum, 600s, 1, {}});
    plan.rule_inputs.push_back({RuleInput::Source::Counter, 0, i, {}, false, std::nullopt});
  }
  return plan;
}

struct ThresholdCase {
  std::uint64_t threshold;
  std::uint64_t value;
  bool want_fired;
};

TEST(Scoring, ThresholdIsStrict) {
  const ThresholdCase cases[] = {
      {50, 49, false}, {50, 50, false}, {50, 51, true}, {0, 0, false}, {0, 1, true},
  };
  for (const auto& c : cases) {
    Config config = test_config();
    config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, c.threshold, 3)};
    const std::uint64_t values[] = {c.value};
    const Verdict verdict = score(config, counter_plan(1), values);
    const bool fired = !verdict.reasons.empty();
    EXPECT_EQ(fired, c.want_fired) << "value " << c.value << " threshold " << c.threshold << ": got fired="
                                   << fired << ", want " << c.want_fired;
    EXPECT_EQ(verdict.score, c.want_fired ? 3 : 0)
        << "value " << c.value << " threshold " << c.threshold << ": got score " << verdict.score;
  }
}

TEST(Scoring, ReasonIsFormattedAsNameValueThresholdPoints) {
  Config config = test_config();
  config.rules = {rule("rcpts_per_msg", Signal::RecipientsPerMessage, std::nullopt, 0s, 50, 10)};
  MessageFacts facts = outbound_facts();
  facts.recipients.assign(200, "x@example.org");
  const CounterPlan plan = plan_counters(config, facts);
  const Verdict verdict = score(config, plan, {});
  ASSERT_EQ(verdict.reasons.size(), 1u);
  EXPECT_EQ(verdict.reasons[0], "rcpts_per_msg=200>50 (+10)")
      << "got \"" << verdict.reasons[0] << "\", want \"rcpts_per_msg=200>50 (+10)\"";
  EXPECT_EQ(verdict.score, 10);
}

TEST(Scoring, PointsOfFiredRulesAreSummedIncludingNegativeOnes) {
  Config config = test_config();
  config.rules = {
      rule("msgs", Signal::Messages, k_by_address, 600s, 10, 7),
      rule("rcpts", Signal::Recipients, k_by_address, 600s, 10, 5),
      rule("trusted_bonus", Signal::Messages, k_by_sender, 600s, 0, -4),
      rule("quiet", Signal::RejectedRecipients, k_by_address, 600s, 10, 100),  // does not fire
  };
  const std::uint64_t values[] = {11, 99, 1, 10};
  const Verdict verdict = score(config, counter_plan(4), values);
  EXPECT_EQ(verdict.score, 8) << "got " << verdict.score << ", want 7+5-4 = 8";
  const std::vector<std::string> want_reasons = {"msgs=11>10 (+7)", "rcpts=99>10 (+5)",
                                                 "trusted_bonus=1>0 (-4)"};
  EXPECT_EQ(verdict.reasons, want_reasons) << "got \"" << join_reasons(verdict.reasons) << "\"";
  EXPECT_EQ(verdict.action, Action::Tag) << "got " << to_string(verdict.action) << ", want tag";
}

TEST(Scoring, NegativePointsCanTakeTheScoreBelowZero) {
  Config config = test_config();
  config.rules = {rule("allow", Signal::Messages, k_by_address, 600s, 0, -3)};
  const std::uint64_t values[] = {5};
  const Verdict verdict = score(config, counter_plan(1), values);
  EXPECT_EQ(verdict.score, -3) << "got " << verdict.score << ", want -3";
  EXPECT_EQ(verdict.action, Action::Accept) << "got " << to_string(verdict.action) << ", want accept";
}

TEST(Scoring, RuleReadsTheCounterItsInputPointsTo) {
  // Two rules sharing one counter both read it.
  Config config = test_config();
  config.rules = {
      rule("warn", Signal::Messages, k_by_address, 600s, 100, 2),
      rule("block", Signal::Messages, k_by_address, 600s, 500, 20),
  };
  const CounterPlan plan = plan_counters(config, outbound_facts());
  ASSERT_EQ(plan.requests.size(), 1u);
  const std::uint64_t values[] = {501};
  const Verdict verdict = score(config, plan, values);
  EXPECT_EQ(verdict.score, 22) << "got " << verdict.score << ", want 22";
  EXPECT_EQ(verdict.action, Action::Reject) << "got " << to_string(verdict.action) << ", want reject";
}

TEST(Scoring, NotApplicableRulesAreSkipped) {
  Config config = test_config();
  config.rules = {
      rule("by_user", Signal::Messages, k_by_sasl_user, 600s, 0, 50),
      rule("copies", Signal::ContentCopies, std::nullopt, 600s, 0, 50),
      rule("msgs", Signal::Messages, k_by_address, 600s, 0, 1),
  };
  const CounterPlan plan = plan_counters(config, outbound_facts());  // no SASL user, no fingerprint
  ASSERT_EQ(plan.requests.size(), 1u) << "want only the msgs counter";
  const std::uint64_t values[] = {1};
  const Verdict verdict = score(config, plan, values);
  EXPECT_EQ(verdict.score, 1) << "got " << verdict.score << " (" << join_reasons(verdict.reasons)
                              << "), want 1";
  EXPECT_EQ(verdict.reasons, std::vector<std::string>{"msgs=1>0 (+1)"});
}

TEST(Scoring, NothingFiredIsAcceptWithNoReasons) {
  Config config = test_config();
  config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, 100, 50)};
  const std::uint64_t values[] = {3};
  const Verdict verdict = score(config, counter_plan(1), values);
  EXPECT_EQ(verdict.action, Action::Accept) << "got " << to_string(verdict.action);
  EXPECT_EQ(verdict.score, 0);
  EXPECT_TRUE(verdict.reasons.empty()) << "got \"" << join_reasons(verdict.reasons) << "\"";
}

struct BandCase {
  int score;
  Action want;
};

TEST(Scoring, HighestReachedBandPicksTheAction) {
  const Config config = test_config();  // tag 5, quarantine 10, reject 20
  const BandCase cases[] = {
      {-10, Action::Accept}, {0, Action::Accept},      {4, Action::Accept},
      {5, Action::Tag},      {9, Action::Tag},         {10, Action::Quarantine},
      {19, Action::Quarantine}, {20, Action::Reject},  {1000, Action::Reject},
  };
  for (const auto& c : cases) {
    const Action got = action_for_score(config, c.score);
    EXPECT_EQ(got, c.want) << "score " << c.score << ": got " << to_string(got) << ", want "
                           << to_string(c.want);
  }
}

TEST(Scoring, MessageAboveQuarantineBandIsQuarantined) {
  Config config = test_config();
  config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, 10, 12)};
  const std::uint64_t values[] = {11};
  const Verdict verdict = score(config, counter_plan(1), values);
  EXPECT_EQ(verdict.action, Action::Quarantine) << "got " << to_string(verdict.action)
                                                << ", want quarantine";
}

TEST(Scoring, TempfailBandIsPickedLikeAnyOther) {
  Config config = test_config();
  config.bands = {{Action::Tag, 5}, {Action::Tempfail, 15}, {Action::Reject, 30}};
  EXPECT_EQ(action_for_score(config, 14), Action::Tag);
  EXPECT_EQ(action_for_score(config, 15), Action::Tempfail);
  EXPECT_EQ(action_for_score(config, 29), Action::Tempfail);
  EXPECT_EQ(action_for_score(config, 30), Action::Reject);
}

TEST(Scoring, NoBandsMeansAccept) {
  Config config = test_config();
  config.bands.clear();
  const Action got = action_for_score(config, 1000);
  EXPECT_EQ(got, Action::Accept) << "got " << to_string(got) << ", want accept";
}

TEST(Scoring, JoinReasonsSeparatesWithCommaSpace) {
  const struct {
    std::vector<std::string> reasons;
    std::string want;
  } cases[] = {
      {{}, ""},
      {{"rcpts_per_msg=200>50 (+10)"}, "rcpts_per_msg=200>50 (+10)"},
      {{"a=2>1 (+1)", "b=3>1 (-2)", "c=9>1 (+5)"}, "a=2>1 (+1), b=3>1 (-2), c=9>1 (+5)"},
  };
  for (const auto& c : cases) {
    const std::string got = join_reasons(c.reasons);
    EXPECT_EQ(got, c.want) << "got \"" << got << "\", want \"" << c.want << "\"";
  }
}

TEST(Scoring, EndToEndBurstFromOneClientIsRejected) {
  Config config = test_config();
  config.rules = {
      rule("rcpts_per_msg", Signal::RecipientsPerMessage, std::nullopt, 0s, 50, 10),
      rule("msgs_10m", Signal::Messages, k_by_address, 600s, 100, 10),
      rule("drcpts_1h", Signal::DistinctRecipients, k_by_address, 3600s, 1000, 5),
  };
  MessageFacts facts = outbound_facts();
  facts.recipients.assign(60, "x@example.org");
  ASSERT_EQ(classify(config, facts), Scope::Outbound);
  const CounterPlan plan = plan_counters(config, facts);
  ASSERT_EQ(plan.requests.size(), 2u);
  const std::uint64_t values[] = {101, 1000};
  const Verdict verdict = score(config, plan, values);
  EXPECT_EQ(verdict.score, 20) << "got " << verdict.score;
  EXPECT_EQ(verdict.action, Action::Reject) << "got " << to_string(verdict.action);
  EXPECT_EQ(join_reasons(verdict.reasons), "rcpts_per_msg=60>50 (+10), msgs_10m=101>100 (+10)");
}

// ---- Monitor mode ----------------------------------------------------------

TEST(Scoring, WithNothingMonitoredThereIsNoMonitorVerdict) {
  Config config = test_config();
  config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, 10, 12)};
  const std::uint64_t values[] = {11};
  EXPECT_FALSE(score(config, counter_plan(1), values).monitor.has_value());
}

TEST(Scoring, AMonitoredRuleAddsNothingToTheEnforcedVerdictButCountsInTheMonitoredOne) {
  Config config = test_config();
  config.rules = {
      rule("msgs", Signal::Messages, k_by_address, 600s, 10, 6),       // enforced: tag (>= 5)
      rule("new_rule", Signal::Recipients, k_by_address, 600s, 10, 8),  // monitored
  };
  config.rules[1].mode = RuleMode::Monitor;
  const std::uint64_t values[] = {11, 50};
  const Verdict verdict = score(config, counter_plan(2), values);
  EXPECT_EQ(verdict.score, 6);
  EXPECT_EQ(verdict.action, Action::Tag);
  EXPECT_EQ(verdict.reasons, std::vector<std::string>{"msgs=11>10 (+6)"});
  EXPECT_EQ(verdict.fired_rules, std::vector<std::size_t>{0});
  ASSERT_TRUE(verdict.monitor.has_value());
  EXPECT_EQ(verdict.monitor->score, 14);
  EXPECT_EQ(verdict.monitor->action, Action::Quarantine) << "what enforcing new_rule too would do (>= 10)";
  EXPECT_EQ(verdict.monitor->reasons, (std::vector<std::string>{"msgs=11>10 (+6)", "new_rule=50>10 (+8, monitor)"}));
  EXPECT_EQ(verdict.monitor->fired_rules, (std::vector<std::size_t>{0, 1}));
}

TEST(Scoring, AMonitoredRuleThatDoesNotFireLeavesTheMonitoredVerdictEqualToTheEnforcedOne) {
  Config config = test_config();
  config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, 10, 6),
                  rule("new_rule", Signal::Recipients, k_by_address, 600s, 100, 8)};
  config.rules[1].mode = RuleMode::Monitor;
  const std::uint64_t values[] = {11, 50};
  const Verdict verdict = score(config, counter_plan(2), values);
  ASSERT_TRUE(verdict.monitor.has_value());
  EXPECT_EQ(verdict.monitor->action, verdict.action);
  EXPECT_EQ(verdict.monitor->score, verdict.score);
  EXPECT_EQ(verdict.monitor->reasons, verdict.reasons);
}

TEST(Scoring, MonitoringEverythingAcceptsAndReportsWhatThePolicyWouldHaveDone) {
  Config config = test_config();
  config.monitor.everything = true;
  config.bands.insert(config.bands.begin(), {Action::Tag, -100});  // even a band at any score is not applied
  config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, 10, 25)};
  const std::uint64_t values[] = {11};
  const Verdict verdict = score(config, counter_plan(1), values);
  EXPECT_EQ(verdict.action, Action::Accept);
  EXPECT_EQ(verdict.score, 0);
  EXPECT_TRUE(verdict.reasons.empty());
  EXPECT_TRUE(verdict.fired_rules.empty());
  ASSERT_TRUE(verdict.monitor.has_value());
  EXPECT_EQ(verdict.monitor->action, Action::Reject);
  EXPECT_EQ(verdict.monitor->score, 25);
  EXPECT_EQ(verdict.monitor->reasons, std::vector<std::string>{"msgs=11>10 (+25, monitor)"});
}

TEST(Scoring, EvaluateRulesGivesEveryRulesValueWhetherItFiredOrNot) {
  Config config = test_config();
  config.rules = {rule("msgs", Signal::Messages, k_by_address, 600s, 10, 6),
                  rule("by_user", Signal::Messages, k_by_sasl_user, 600s, 0, 50),
                  rule("rcpts", Signal::Recipients, k_by_address, 600s, 100, 8)};
  config.rules[2].mode = RuleMode::Monitor;
  const CounterPlan plan = plan_counters(config, outbound_facts());  // no SASL user: by_user does not apply
  std::vector<std::uint64_t> values(plan.requests.size(), 0);
  values[plan.rule_inputs[0].counter_index] = 11;
  values[plan.rule_inputs[2].counter_index] = 40;
  const auto evaluations = evaluate_rules(config, plan, values);
  ASSERT_EQ(evaluations.size(), 3u);
  EXPECT_TRUE(evaluations[0].applies);
  EXPECT_EQ(evaluations[0].value, 11u);
  EXPECT_TRUE(evaluations[0].fired);
  EXPECT_FALSE(evaluations[0].monitored);
  EXPECT_FALSE(evaluations[1].applies);
  EXPECT_FALSE(evaluations[1].fired);
  EXPECT_TRUE(evaluations[2].applies);
  EXPECT_EQ(evaluations[2].value, 40u);
  EXPECT_FALSE(evaluations[2].fired);
  EXPECT_TRUE(evaluations[2].monitored);
}

// ---- Per-source threshold overrides ------------------------------------------

TEST(Scoring, ASourcesOwnThresholdReplacesTheRulesForThatSourceOnly) {
  Config config = test_config();
  config.rules = {rule("msgs_per_sender", Signal::Messages, k_by_sender, 600s, 10, 20)};
  config.overrides.by_rule[0]["sender=newsletter@example.com"] = 5000;
  MessageFacts newsletter = outbound_facts();
  newsletter.sender = "newsletter@example.com";
  const CounterPlan newsletter_plan = plan_counters(config, newsletter);
  ASSERT_EQ(newsletter_plan.rule_inputs[0].threshold_override, std::optional<std::uint64_t>(5000));
  const std::uint64_t busy[] = {300};
  Verdict verdict = score(config, newsletter_plan, busy);
  EXPECT_TRUE(verdict.reasons.empty()) << "300 messages are within the newsletter's 5000";
  const std::uint64_t very_busy[] = {6000};
  verdict = score(config, newsletter_plan, very_busy);
  EXPECT_EQ(verdict.reasons, std::vector<std::string>{"msgs_per_sender=6000>5000 (+20, override)"});

  // Anyone else keeps the rule's threshold.
  const CounterPlan alice_plan = plan_counters(config, outbound_facts());
  EXPECT_FALSE(alice_plan.rule_inputs[0].threshold_override.has_value());
  verdict = score(config, alice_plan, busy);
  EXPECT_EQ(verdict.reasons, std::vector<std::string>{"msgs_per_sender=300>10 (+20)"});
}

}  // namespace
}  // namespace floodgate::policy
