// RecentMessages: what a source got through before its freeze is found by
// the source's spec, once, and only within the lookback.
#include <malloc.h>

#include <iostream>

#include <gtest/gtest.h>

#include "containment/recent_messages.hpp"

namespace floodgate::containment {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t k_t0 = 1'700'000'000'000;
TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{k_t0 + ms}}; }

policy::MessageFacts facts_from(const std::string& client, const std::string& script = {}) {
  policy::MessageFacts facts;
  facts.client_address = client;
  facts.client_ip = policy::IpAddress::parse(client);
  facts.sender = "web@example.com";
  facts.recipients = {"a@x.example", "b@y.example"};
  if (!script.empty()) facts.headers["x-php-originating-script"] = script;
  return facts;
}

IncidentMessage message(const std::string& queue_id, std::int64_t ms) {
  IncidentMessage m;
  m.queue_id = queue_id;
  m.time = at_ms(ms);
  m.outcome = MessageOutcome::Quarantined;  // add() must turn it into Slipped
  m.recipients = 2;
  return m;
}

policy::SourceSpec spec(const std::vector<std::string>& words) {
  std::string error;
  auto parsed = policy::parse_source_spec(words, error);
  EXPECT_TRUE(parsed) << error;
  return parsed.value_or(policy::SourceSpec{});
}

std::vector<std::string> queue_ids(const std::vector<IncidentMessage>& messages) {
  std::vector<std::string> ids;
  for (const auto& m : messages) ids.push_back(m.queue_id);
  return ids;
}

TEST(RecentMessages, TakeFromReturnsOnlyTheFrozenSourcesMessagesOldestFirstAsSlipped) {
  RecentMessages recent(seconds(600), 100);
  recent.add(message("A1", 0), facts_from("10.0.0.5", "12:contact.php"), at_ms(0));
  recent.add(message("B1", 10), facts_from("10.0.0.6"), at_ms(10));
  recent.add(message("A2", 20), facts_from("10.0.0.5", "12:contact.php"), at_ms(20));

  const auto taken = recent.take_from(spec({"client=10.0.0.5"}), at_ms(30));
  EXPECT_EQ(queue_ids(taken), (std::vector<std::string>{"A1", "A2"}));
  for (const auto& m : taken) EXPECT_EQ(m.outcome, MessageOutcome::Slipped);
  EXPECT_EQ(recent.size(), 1u);
}

TEST(RecentMessages, AMessageIsTakenOnceEvenWhenTwoFreezesNameIt) {
  RecentMessages recent(seconds(600), 100);
  recent.add(message("A1", 0), facts_from("10.0.0.5", "12:contact.php"), at_ms(0));
  EXPECT_EQ(recent.take_from(spec({"header:X-PHP-Originating-Script=12:contact.php"}), at_ms(1)).size(), 1u);
  EXPECT_TRUE(recent.take_from(spec({"client=10.0.0.5"}), at_ms(2)).empty());
}

TEST(RecentMessages, MessagesOlderThanTheLookbackAreForgotten) {
  RecentMessages recent(seconds(60), 100);
  recent.add(message("OLD", 0), facts_from("10.0.0.5"), at_ms(0));
  recent.add(message("NEW", 50'000), facts_from("10.0.0.5"), at_ms(50'000));
  EXPECT_EQ(queue_ids(recent.take_from(spec({"client=10.0.0.5"}), at_ms(70'000))),
            (std::vector<std::string>{"NEW"}));
}

TEST(RecentMessages, CapacityDropsTheOldestFirst) {
  RecentMessages recent(seconds(600), 2);
  recent.add(message("M1", 0), facts_from("10.0.0.5"), at_ms(0));
  recent.add(message("M2", 1), facts_from("10.0.0.5"), at_ms(1));
  recent.add(message("M3", 2), facts_from("10.0.0.5"), at_ms(2));
  EXPECT_EQ(queue_ids(recent.take_from(spec({"client=10.0.0.5"}), at_ms(3))),
            (std::vector<std::string>{"M2", "M3"}));
}

TEST(RecentMessages, HeaderSpecsMatchOnTheKeptHeaders) {
  RecentMessages recent(seconds(600), 100);
  recent.add(message("S1", 0), facts_from("10.0.0.5", "12:contact.php"), at_ms(0));
  recent.add(message("S2", 1), facts_from("10.0.0.5", "13:other.php"), at_ms(1));
  EXPECT_EQ(queue_ids(recent.take_from(spec({"header:X-PHP-Originating-Script=12:contact.php"}), at_ms(2))),
            (std::vector<std::string>{"S1"}));
}

}  // namespace
}  // namespace floodgate::containment

namespace floodgate::containment {
namespace {

// A message as the milter remembers it: an SMTP client with a reverse name,
// the three macros every connection has, three recipients in the sample.
policy::MessageFacts typical_facts(int n) {
  policy::MessageFacts facts = facts_from("10.0." + std::to_string(n % 250) + "." + std::to_string(n % 200 + 1));
  facts.client_name = "host" + std::to_string(n) + ".customer22.example.net";
  facts.helo = "host" + std::to_string(n) + ".customer22.example.net";
  facts.macros = {{"i", "01900004DF2"}, {"daemon_name", "smtpd-outbound"}, {"auth_authen", ""}};
  return facts;
}

IncidentMessage typical_message(int n) {
  IncidentMessage m = message("0190000" + std::to_string(1000 + n % 9000), n);
  m.recipient_addresses = {"first.recipient@example.org", "second.recipient@example.net",
                           "third.recipient@example.com"};
  m.sender = "web@example.com";
  m.subject = "Your account statement for November is ready";
  m.fingerprint = "minhash:00000000a14fb7a8";
  return m;
}

// The worker keeps up to 20,000 messages: at the 1.3 KB each this store used
// to take, that was 26 MB of a daemon that should fit in 64 MB.
TEST(RecentMessages, KeepsATypicalMessageInUnder800Bytes) {
  constexpr int k_messages = 5000;
  RecentMessages recent(seconds{3600}, k_messages);
  std::vector<std::pair<IncidentMessage, policy::MessageFacts>> inputs;
  for (int n = 0; n < k_messages; ++n) inputs.emplace_back(typical_message(n), typical_facts(n));
  const std::size_t before = ::mallinfo2().uordblks;
  for (auto& [m, facts] : inputs) recent.add(m, facts, at_ms(0));
  const std::size_t per_message = (::mallinfo2().uordblks - before) / k_messages;
  EXPECT_LT(per_message, 800U) << "got " << per_message << " bytes of heap per remembered message";
  std::cerr << per_message << " bytes of heap per remembered message\n";
  EXPECT_EQ(recent.take_from(spec({"client=10.0.7.8"}), at_ms(1)).size(), 5U) << "still found by their source (n = 7 mod 1000)";
}

}  // namespace
}  // namespace floodgate::containment

namespace floodgate::containment {
namespace {

TEST(RecentMessages, ATakenMessageComesBackWithEveryFieldAsAdded) {
  RecentMessages recent(seconds{600}, 10);
  IncidentMessage m = typical_message(1);
  m.subject = std::string("nul\0inside", 10) + std::string(300, 's');  // a length over one varint byte
  m.recipients = 4000;
  policy::MessageFacts facts = typical_facts(1);
  facts.sasl_user = "Web-User";
  facts.headers["x-php-originating-script"] = "33:mailer.php";
  recent.add(m, facts, at_ms(5));

  const auto taken = recent.take_from(spec({"sasl_user=web-user", "header:X-PHP-Originating-Script=33:mailer.php"}),
                                      at_ms(6));
  ASSERT_EQ(taken.size(), 1U);
  const IncidentMessage& got = taken[0];
  EXPECT_EQ(got.time, m.time);
  EXPECT_EQ(got.queue_id, m.queue_id);
  EXPECT_EQ(got.outcome, MessageOutcome::Slipped);
  EXPECT_EQ(got.recipients, 4000U);
  EXPECT_EQ(got.recipient_addresses, m.recipient_addresses);
  EXPECT_EQ(got.sender, m.sender);
  EXPECT_EQ(got.subject, m.subject);
  EXPECT_EQ(got.fingerprint, m.fingerprint);
}

TEST(RecentMessages, MacroAndClientNameSpecsMatchOnTheKeptFacts) {
  RecentMessages recent(seconds{600}, 10);
  recent.add(typical_message(1), typical_facts(1), at_ms(0));
  recent.add(typical_message(2), typical_facts(2), at_ms(0));
  EXPECT_EQ(recent.take_from(spec({"client_name=HOST2.customer22.example.net"}), at_ms(1)).size(), 1U);
  EXPECT_EQ(recent.take_from(spec({"macro:daemon_name=smtpd-outbound"}), at_ms(1)).size(), 1U);
  EXPECT_EQ(recent.size(), 0U);
}

}  // namespace
}  // namespace floodgate::containment
