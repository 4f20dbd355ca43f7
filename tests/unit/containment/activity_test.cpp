// ActivityRecorder (per-minute, per-source aggregation and its bounds), the
// in-process ActivityStore (ranking, windows, limit, identity filter) and
// the helpers the stores share.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "containment/activity.hpp"
#include "policy/source_spec.hpp"

namespace floodgate::containment {
namespace {

using policy::IdentityPart;
using ratelimit::CounterFailure;
using ratelimit::TimePoint;
using Kind = IdentityPart::Kind;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A minute boundary: 1'700'000'040'000 ms is minute 28'333'334 exactly.
constexpr std::int64_t k_t0 = 1'700'000'040'000;
constexpr std::int64_t k_minute0 = k_t0 / 60'000;

TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{ms}}; }

IdentityPart part(Kind kind) {
  IdentityPart part;
  part.kind = kind;
  return part;
}

policy::Config two_identity_config() {
  policy::Config config;
  config.identities.push_back({"client", {part(Kind::ClientAddress)}, {}});
  // Placeholder on purpose: activity still never counts a missing part.
  config.identities.push_back(
      {"sasl_user", {part(Kind::SaslUser)}, policy::MissingPartPolicy::Placeholder});
  return config;
}

policy::MessageFacts message(std::string client, std::string sasl_user, std::vector<std::string> recipients) {
  policy::MessageFacts facts;
  facts.client_address = std::move(client);
  facts.client_ip = policy::IpAddress::parse(facts.client_address);
  facts.sasl_user = std::move(sasl_user);
  facts.sender = "www-data@example.org";
  facts.recipients = std::move(recipients);
  return facts;
}

std::string digest_of(const policy::Config& config, std::size_t identity, const policy::MessageFacts& facts) {
  return policy::source_of(config.identities[identity], facts).value().digest();
}

// Keeps what it is given; fails while `failing`.
class RecordingActivityStore final : public ActivityStore {
 public:
  tl::expected<void, CounterFailure> add(const std::vector<Delta>& deltas) override {
    ++calls;
    if (failing) return tl::unexpected{CounterFailure{CounterFailure::Kind::Timeout, "test: redis is slow"}};
    added.insert(added.end(), deltas.begin(), deltas.end());
    return {};
  }
  tl::expected<std::vector<TopEntry>, CounterFailure> top(seconds, TopOrder, std::size_t, TimePoint) override {
    return std::vector<TopEntry>{};
  }
  const Delta* find(std::int64_t minute, const std::string& digest) const {
    for (const auto& delta : added) {
      if (delta.minute == minute && delta.source_digest == digest) return &delta;
    }
    return nullptr;
  }

  std::vector<Delta> added;
  int calls = 0;
  bool failing = false;
};

// ---- ActivityRecorder --------------------------------------------------------

TEST(ActivityRecorder, AggregatesMessagesAndRecipientsPerSourceAndMinute) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  const auto web1 = message("192.0.2.10", "", {"a@example.net", "b@example.net"});
  const auto web2 = message("192.0.2.11", "", {"c@example.net"});
  recorder.add(config, web1, 2, at_ms(k_t0));
  recorder.add(config, web1, 2, at_ms(k_t0 + 59'999));  // same minute
  recorder.add(config, web2, 1, at_ms(k_t0 + 30'000));
  recorder.add(config, web1, 2, at_ms(k_t0 + 60'000));  // the next one
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));

  ASSERT_EQ(store.added.size(), 3u) << "got " << store.added.size() << " deltas, want 3 (web1 x2 minutes, web2)";
  const auto* first = store.find(k_minute0, digest_of(config, 0, web1));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->identity, "client");
  EXPECT_EQ(first->source, "client_address=192.0.2.10");
  EXPECT_EQ(first->messages, 2u);
  EXPECT_EQ(first->recipients, 4u);
  EXPECT_EQ(first->recipient_addresses, (std::vector<std::string>{"a@example.net", "b@example.net"}));
  const auto* next = store.find(k_minute0 + 1, digest_of(config, 0, web1));
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->messages, 1u);
  const auto* other = store.find(k_minute0, digest_of(config, 0, web2));
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->messages, 1u);
  EXPECT_EQ(other->recipients, 1u);
}

TEST(ActivityRecorder, MessageWithoutSaslUserIsNotCountedForTheSaslIdentity) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  recorder.add(config, message("192.0.2.10", "", {"a@example.net"}), 1, at_ms(k_t0));
  recorder.add(config, message("192.0.2.10", "bob", {"a@example.net"}), 1, at_ms(k_t0));
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  std::vector<std::string> identities;
  for (const auto& delta : store.added) identities.push_back(delta.identity + ":" + std::to_string(delta.messages));
  std::sort(identities.begin(), identities.end());
  EXPECT_EQ(identities, (std::vector<std::string>{"client:2", "sasl_user:1"}));
}

TEST(ActivityRecorder, RecipientsAreCaseFoldedForUniqueness) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  const auto facts = message("192.0.2.10", "", {"Bob@Example.NET", "bob@example.net", "BOB@EXAMPLE.NET"});
  recorder.add(config, facts, 3, at_ms(k_t0));
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  ASSERT_EQ(store.added.size(), 1u);
  EXPECT_EQ(store.added[0].recipients, 3u);
  EXPECT_EQ(store.added[0].recipient_addresses, std::vector<std::string>{"bob@example.net"});
}

TEST(ActivityRecorder, CountsTheFullRecipientCountNotTheCappedList) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  recorder.add(config, message("192.0.2.10", "", {"a@example.net", "b@example.net"}), 5000, at_ms(k_t0));
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  ASSERT_EQ(store.added.size(), 1u);
  EXPECT_EQ(store.added[0].recipients, 5000u);
  EXPECT_EQ(store.added[0].recipient_addresses.size(), 2u);
}

TEST(ActivityRecorder, KeepsAtMostTheCapOfDistinctRecipientsPerSourceAndMinute) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  const std::size_t cap = ActivityRecorder::k_max_unique_recipients;
  for (std::size_t batch = 0; batch < 3; ++batch) {
    std::vector<std::string> recipients;
    for (std::size_t i = 0; i < cap / 2 + 1; ++i) {
      recipients.push_back("user" + std::to_string(batch) + "." + std::to_string(i) + "@example.net");
    }
    recorder.add(config, message("192.0.2.10", "", recipients), recipients.size(), at_ms(k_t0));
  }
  recorder.add(config, message("192.0.2.10", "", {"late@example.net"}), 1, at_ms(k_t0 + 60'000));
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  ASSERT_EQ(store.added.size(), 2u);
  const auto* full = store.find(k_minute0, store.added[0].source_digest);
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->recipient_addresses.size(), cap) << "got " << full->recipient_addresses.size() << ", want the cap";
  EXPECT_EQ(full->recipients, 3 * (cap / 2 + 1));  // counted all the same
  const auto* next = store.find(k_minute0 + 1, store.added[0].source_digest);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->recipient_addresses, std::vector<std::string>{"late@example.net"});  // a new minute, a new set
}

TEST(ActivityRecorder, DropsNewSourcesBeyondTheBoundAndCountsThem) {
  const auto config = two_identity_config();
  ActivityRecorder recorder{2};
  recorder.add(config, message("192.0.2.1", "", {"a@example.net"}), 1, at_ms(k_t0));
  recorder.add(config, message("192.0.2.2", "", {"a@example.net"}), 1, at_ms(k_t0));
  recorder.add(config, message("192.0.2.3", "", {"a@example.net"}), 1, at_ms(k_t0));  // dropped
  recorder.add(config, message("192.0.2.4", "", {"a@example.net"}), 1, at_ms(k_t0));  // dropped
  recorder.add(config, message("192.0.2.1", "", {"a@example.net"}), 1, at_ms(k_t0));  // known: counted
  EXPECT_EQ(recorder.take_dropped(), 2u);
  EXPECT_EQ(recorder.take_dropped(), 0u) << "take_dropped must reset the count";
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  ASSERT_EQ(store.added.size(), 2u);
  std::uint64_t messages = 0;
  for (const auto& delta : store.added) messages += delta.messages;
  EXPECT_EQ(messages, 3u);

  // The bound is per flush: the next period has room again.
  recorder.add(config, message("192.0.2.3", "", {"a@example.net"}), 1, at_ms(k_t0));
  EXPECT_EQ(recorder.take_dropped(), 0u);
}

TEST(ActivityRecorder, TwoIdentitiesOfTheSamePartsCountAMessageOnce) {
  auto config = two_identity_config();
  config.identities.push_back({"client_again", {part(Kind::ClientAddress)}, {}});
  ActivityRecorder recorder;
  recorder.add(config, message("192.0.2.10", "", {"a@example.net"}), 1, at_ms(k_t0));
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  ASSERT_EQ(store.added.size(), 1u);
  EXPECT_EQ(store.added[0].identity, "client");
  EXPECT_EQ(store.added[0].messages, 1u);
}

TEST(ActivityRecorder, FlushForgetsWhatItHandedOverAndSkipsAnEmptyFlush) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  RecordingActivityStore store;
  ASSERT_TRUE(recorder.flush(store));
  EXPECT_EQ(store.calls, 0) << "an empty flush must not reach the store";
  recorder.add(config, message("192.0.2.10", "", {"a@example.net"}), 1, at_ms(k_t0));
  ASSERT_TRUE(recorder.flush(store));
  ASSERT_TRUE(recorder.flush(store));
  EXPECT_EQ(store.calls, 1);
  EXPECT_EQ(store.added.size(), 1u);
}

TEST(ActivityRecorder, StoreFailureIsReturnedAndTheAggregateDropped) {
  const auto config = two_identity_config();
  ActivityRecorder recorder;
  RecordingActivityStore store;
  store.failing = true;
  recorder.add(config, message("192.0.2.10", "", {"a@example.net"}), 1, at_ms(k_t0));
  auto flushed = recorder.flush(store);
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().kind, CounterFailure::Kind::Timeout);
  store.failing = false;
  ASSERT_TRUE(recorder.flush(store));
  EXPECT_EQ(store.calls, 1) << "got a retry of the dropped aggregate, want none";
  EXPECT_TRUE(store.added.empty());
}

// ---- Memory store ------------------------------------------------------------

ActivityStore::Delta delta(std::int64_t minute, std::string source, std::uint64_t messages, std::uint64_t recipients,
                           std::vector<std::string> addresses, std::string identity = "client") {
  policy::SourceSpec spec{{policy::SourcePart{part(Kind::ClientAddress), source}}};
  return ActivityStore::Delta{.minute = minute,
                              .identity = std::move(identity),
                              .source = spec.canonical(),
                              .source_digest = spec.digest(),
                              .messages = messages,
                              .recipients = recipients,
                              .recipient_addresses = std::move(addresses)};
}

std::vector<std::string> sources_of(const std::vector<TopEntry>& entries) {
  std::vector<std::string> sources;
  for (const auto& entry : entries) sources.push_back(entry.source);
  return sources;
}

// Three sources that each lead by one of the keys.
std::unique_ptr<ActivityStore> three_leaders() {
  auto store = make_memory_activity_store();
  EXPECT_TRUE(store->add({
      delta(k_minute0, "10.0.0.1", 50, 50, {"a@x", "b@x"}),                   // most messages
      delta(k_minute0, "10.0.0.2", 2, 400, {"a@x"}),                          // most recipients
      delta(k_minute0, "10.0.0.3", 10, 30, {"a@x", "b@x", "c@x", "d@x"}),     // most unique
  }));
  return store;
}

TEST(MemoryActivityStore, RanksByEachOrder) {
  struct Case {
    TopOrder order;
    std::vector<std::string> want;
  };
  const Case cases[] = {
      {TopOrder::Messages, {"client_address=10.0.0.1", "client_address=10.0.0.3", "client_address=10.0.0.2"}},
      {TopOrder::Recipients, {"client_address=10.0.0.2", "client_address=10.0.0.1", "client_address=10.0.0.3"}},
      {TopOrder::UniqueRecipients,
       {"client_address=10.0.0.3", "client_address=10.0.0.1", "client_address=10.0.0.2"}},
  };
  auto store = three_leaders();
  for (const auto& c : cases) {
    auto top = store->top(seconds{600}, c.order, 20, at_ms(k_t0));
    ASSERT_TRUE(top);
    EXPECT_EQ(sources_of(*top), c.want) << "by " << to_string(c.order);
  }
  auto top = store->top(seconds{600}, TopOrder::Messages, 20, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_EQ((*top)[1].messages, 10u);
  EXPECT_EQ((*top)[1].recipients, 30u);
  EXPECT_EQ((*top)[1].unique_recipients, 4u);
  EXPECT_EQ((*top)[1].identity, "client");
}

TEST(MemoryActivityStore, TiesAreOrderedBySourceText) {
  auto store = make_memory_activity_store();
  ASSERT_TRUE(store->add({delta(k_minute0, "10.0.0.9", 5, 5, {}), delta(k_minute0, "10.0.0.1", 5, 5, {}),
                          delta(k_minute0, "10.0.0.5", 5, 5, {})}));
  auto top = store->top(seconds{60}, TopOrder::Messages, 20, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_EQ(sources_of(*top), (std::vector<std::string>{"client_address=10.0.0.1", "client_address=10.0.0.5",
                                                        "client_address=10.0.0.9"}));
}

TEST(MemoryActivityStore, WindowIsWholeMinutesEndingWithTheCurrentOne) {
  auto store = make_memory_activity_store();
  // One message per minute from minute0 - 10 to minute0 + 1 (a clock ahead).
  std::vector<ActivityStore::Delta> deltas;
  for (std::int64_t m = -10; m <= 1; ++m) deltas.push_back(delta(k_minute0 + m, "10.0.0.1", 1, 1, {}));
  ASSERT_TRUE(store->add(deltas));
  struct Case {
    seconds window;
    std::uint64_t want;
  };
  const Case cases[] = {{seconds{1}, 1}, {seconds{60}, 1}, {seconds{61}, 2}, {seconds{600}, 10}, {seconds{3600}, 11}};
  const TimePoint now = at_ms(k_t0 + 59'000);  // late in minute0
  for (const auto& c : cases) {
    auto top = store->top(c.window, TopOrder::Messages, 20, now);
    ASSERT_TRUE(top);
    ASSERT_EQ(top->size(), 1u);
    EXPECT_EQ((*top)[0].messages, c.want) << "window " << c.window.count() << "s: got " << (*top)[0].messages
                                          << " messages, want " << c.want;
  }
}

TEST(MemoryActivityStore, EmptyWindowGivesNoEntries) {
  auto store = make_memory_activity_store();
  ASSERT_TRUE(store->add({delta(k_minute0 - 30, "10.0.0.1", 1, 1, {})}));
  auto top = store->top(seconds{600}, TopOrder::Messages, 20, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_TRUE(top->empty()) << "got " << top->size() << " entries, want none";
}

TEST(MemoryActivityStore, LimitKeepsTheFirst) {
  auto store = three_leaders();
  auto top = store->top(seconds{600}, TopOrder::Messages, 2, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_EQ(sources_of(*top), (std::vector<std::string>{"client_address=10.0.0.1", "client_address=10.0.0.3"}));
  auto none = store->top(seconds{600}, TopOrder::Messages, 0, at_ms(k_t0));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(MemoryActivityStore, SumsMinutesAndUnitesTheirRecipients) {
  auto store = make_memory_activity_store();
  ASSERT_TRUE(store->add({delta(k_minute0 - 1, "10.0.0.1", 3, 6, {"a@x", "b@x"})}));
  ASSERT_TRUE(store->add({delta(k_minute0, "10.0.0.1", 2, 4, {"b@x", "c@x"})}));
  auto top = store->top(seconds{120}, TopOrder::Messages, 20, at_ms(k_t0));
  ASSERT_TRUE(top);
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].messages, 5u);
  EXPECT_EQ((*top)[0].recipients, 10u);
  EXPECT_EQ((*top)[0].unique_recipients, 3u) << "b@x in two minutes must count once";
}

TEST(MemoryActivityStore, IdentityFilterAppliesBeforeTheLimit) {
  auto store = make_memory_activity_store();
  ASSERT_TRUE(store->add({delta(k_minute0, "10.0.0.1", 90, 1, {}), delta(k_minute0, "10.0.0.2", 80, 1, {}),
                          delta(k_minute0, "10.0.0.3", 5, 1, {}, "php_script"),
                          delta(k_minute0, "10.0.0.4", 4, 1, {}, "php_script")}));
  auto top = store->top_for_identity("php_script", seconds{60}, TopOrder::Messages, 1, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_EQ(sources_of(*top), std::vector<std::string>{"client_address=10.0.0.3"});
  auto all = store->top_for_identity("", seconds{60}, TopOrder::Messages, 20, at_ms(k_t0));
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 4u);
}

TEST(MemoryActivityStore, RefusesADigestThatIsNotSixteenLowercaseHexDigits) {
  auto store = make_memory_activity_store();
  for (const std::string digest : {"", "0123456789ABCDEF", "0123456789abcde", "../../etc/passwd:x", "0123456789abcdeg"}) {
    auto bad = delta(k_minute0, "10.0.0.1", 1, 1, {});
    bad.source_digest = digest;
    auto added = store->add({delta(k_minute0, "10.0.0.2", 1, 1, {}), bad});
    ASSERT_FALSE(added) << "digest '" << digest << "' accepted";
    EXPECT_EQ(added.error().kind, CounterFailure::Kind::Protocol);
  }
  auto top = store->top(seconds{60}, TopOrder::Messages, 20, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_TRUE(top->empty()) << "a refused batch must add nothing";
}

// A store that only implements top(): the interface's default filter.
class TopOnlyStore final : public ActivityStore {
 public:
  tl::expected<void, CounterFailure> add(const std::vector<Delta>& deltas) override { return m_inner->add(deltas); }
  tl::expected<std::vector<TopEntry>, CounterFailure> top(seconds window, TopOrder order, std::size_t limit,
                                                          TimePoint now) override {
    return m_inner->top(window, order, limit, now);
  }

 private:
  std::unique_ptr<ActivityStore> m_inner = make_memory_activity_store();
};

TEST(ActivityStore, DefaultIdentityFilterAppliesBeforeTheLimit) {
  TopOnlyStore store;
  ASSERT_TRUE(store.add({delta(k_minute0, "10.0.0.1", 90, 1, {}), delta(k_minute0, "10.0.0.3", 5, 1, {}, "php_script"),
                         delta(k_minute0, "10.0.0.4", 4, 1, {}, "php_script")}));
  auto top = store.top_for_identity("php_script", seconds{60}, TopOrder::Messages, 1, at_ms(k_t0));
  ASSERT_TRUE(top);
  EXPECT_EQ(sources_of(*top), std::vector<std::string>{"client_address=10.0.0.3"});
}

// ---- Shared helpers ----------------------------------------------------------

TEST(TopOrder, ParsesWhatItPrintsAndNothingElse) {
  for (const TopOrder order : {TopOrder::Messages, TopOrder::Recipients, TopOrder::UniqueRecipients}) {
    EXPECT_EQ(parse_top_order(to_string(order)), order) << to_string(order);
  }
  for (const char* bad : {"", "Messages", "unique_recipients", "rcpts", "messages "}) {
    EXPECT_FALSE(parse_top_order(bad).has_value()) << "'" << bad << "' parsed";
  }
}

TEST(ActivityMinute, FloorsToTheMinute) {
  EXPECT_EQ(activity_minute(at_ms(k_t0)), k_minute0);
  EXPECT_EQ(activity_minute(at_ms(k_t0 + 59'999)), k_minute0);
  EXPECT_EQ(activity_minute(at_ms(k_t0 - 1)), k_minute0 - 1);
  EXPECT_EQ(activity_minute(at_ms(0)), 0);
  EXPECT_EQ(activity_minute(at_ms(-1)), -1);
  EXPECT_EQ(activity_minute(at_ms(-60'000)), -1);
  EXPECT_EQ(activity_minute(at_ms(-60'001)), -2);
}

TEST(WindowMinutes, RoundsUpToWholeMinutesAndIsNeverZero) {
  EXPECT_EQ(window_minutes(seconds{0}), 1);
  EXPECT_EQ(window_minutes(seconds{30}), 1);
  EXPECT_EQ(window_minutes(seconds{60}), 1);
  EXPECT_EQ(window_minutes(seconds{61}), 2);
  EXPECT_EQ(window_minutes(seconds{600}), 10);
  EXPECT_EQ(window_minutes(seconds{3600}), 60);
}

}  // namespace
}  // namespace floodgate::containment
