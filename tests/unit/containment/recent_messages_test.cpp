// RecentMessages: what a source got through before its freeze is found by
// the source's spec, once, and only within the lookback.
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
