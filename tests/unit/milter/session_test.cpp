// MessageSession end to end without libmilter: the shipped configuration,
// the in-process counter store and a hand-driven clock.
#include "milter/session.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "policy/config_loader.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace floodgate::milter {
namespace {

using namespace std::chrono_literals;
using policy::Action;

std::shared_ptr<const policy::Config> shipped_config() {
  static const auto config = policy::load_config_file(FLOODGATE_SOURCE_DIR "/conf/floodgate.yaml");
  return config;
}

ratelimit::TimePoint at(std::chrono::milliseconds since_start) {
  return ratelimit::TimePoint(std::chrono::milliseconds(1'800'000'000'000) + since_start);
}

struct TestMessage {
  std::string client_address = "10.1.1.1";
  std::string sasl_user;
  std::string sender = "<web@example.com>";
  std::vector<std::string> recipients;
  std::vector<std::string> rejected_recipients;
  std::vector<std::pair<std::string, std::string>> headers = {{"Subject", "Hello"}};
  std::string body = "Dear friend,\r\nhave a look at this offer.\r\n";
};

std::vector<std::string> numbered_recipients(std::size_t count, std::size_t first = 0) {
  std::vector<std::string> recipients;
  for (std::size_t i = first; i < first + count; ++i)
    recipients.push_back("<friend" + std::to_string(i) + "@example.net>");
  return recipients;
}

class SessionTest : public ::testing::Test {
 protected:
  Decision send(const TestMessage& message, ratelimit::TimePoint now) { return send_to(m_counters, message, now); }

  static Decision send_to(ratelimit::CounterStore& counters, const TestMessage& message, ratelimit::TimePoint now,
                          std::shared_ptr<const policy::Config> config = shipped_config()) {
    ConnectionInfo connection;
    connection.client_address = message.client_address;
    connection.client_name = "unknown";
    MessageSession session(config, connection);
    if (!message.sasl_user.empty()) session.set_macro("{auth_authen}", message.sasl_user);
    session.set_sender(message.sender);
    for (const auto& recipient : message.recipients) session.add_recipient(recipient, false);
    for (const auto& recipient : message.rejected_recipients) session.add_recipient(recipient, true);
    for (const auto& [name, value] : message.headers) session.add_header(name, value);
    session.add_body_chunk(message.body);
    return session.decide(counters, now);
  }

  ratelimit::MemoryCounterStore m_counters;
};

TEST_F(SessionTest, ShippedConfigQuarantinesOneMessageToTwoHundredRecipients) {
  TestMessage message;
  message.recipients = numbered_recipients(200);
  const Decision decision = send(message, at(0ms));
  EXPECT_EQ(decision.scope, policy::Scope::Outbound);
  EXPECT_EQ(decision.action, Action::Quarantine) << "score " << decision.verdict.score;
  EXPECT_NE(decision.quarantine_reason.find("rcpts_per_msg=200>50 (+10)"), std::string::npos)
      << decision.quarantine_reason;
}

TEST_F(SessionTest, ShippedConfigQuarantinesSameContentToHundredsOfRecipientsHoweverSplit) {
  for (const std::size_t per_message : {1u, 7u, 50u}) {
    ratelimit::MemoryCounterStore counters;
    TestMessage message;
    message.client_address = "10.9.9." + std::to_string(per_message);
    std::size_t sent = 0;
    std::optional<std::size_t> first_quarantined_at;  // cumulative recipients
    for (int i = 0; sent < 300; ++i) {
      message.recipients = numbered_recipients(per_message, sent);
      sent += per_message;
      // The whole run takes under five minutes.
      const Decision decision = send_to(counters, message, at(std::chrono::milliseconds(i * 1000)));
      if (decision.action == Action::Quarantine && !first_quarantined_at) first_quarantined_at = sent;
      if (first_quarantined_at) {
        EXPECT_EQ(decision.action, Action::Quarantine) << "per_message=" << per_message << " sent=" << sent;
      }
    }
    ASSERT_TRUE(first_quarantined_at) << "per_message=" << per_message;
    // Quarantined from the message that takes the count past 100.
    EXPECT_GT(*first_quarantined_at, 100u) << "per_message=" << per_message;
    EXPECT_LE(*first_quarantined_at, 100u + per_message) << "per_message=" << per_message;
  }
}

TEST_F(SessionTest, ShippedConfigNeverActsOnANormalUser) {
  // Forty distinct messages an hour, one to five recipients each, for three
  // hours, from an authenticated user on the office network.
  for (int i = 0; i < 120; ++i) {
    TestMessage message;
    message.client_address = "192.168.1.20";
    message.sasl_user = "alice@example.com";
    message.sender = "<alice@example.com>";
    message.recipients = numbered_recipients(1 + i % 5, (i * 3) % 40);
    message.body = "Hi, about meeting number " + std::to_string(i) + ": see you at " +
                   std::to_string(9 + i % 8) + " o'clock. Item " + std::string(1, static_cast<char>('a' + i % 26)) +
                   std::to_string(i * 7919) + "\r\n";
    const Decision decision = send(message, at(std::chrono::milliseconds(i * 90'000)));
    EXPECT_EQ(decision.action, Action::Accept) << "message " << i << " reasons "
                                               << policy::join_reasons(decision.verdict.reasons);
    EXPECT_EQ(decision.verdict.score, 0) << "message " << i;
  }
}

TEST_F(SessionTest, InboundMailIsAcceptedUntouchedAndNotCounted) {
  TestMessage message;
  message.client_address = "203.0.113.5";
  message.recipients = numbered_recipients(200);
  const Decision decision = send(message, at(0ms));
  EXPECT_EQ(decision.scope, policy::Scope::NotOutbound);
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_EQ(decision.counter_state, "none");
  EXPECT_TRUE(decision.headers_to_add.empty());
}

TEST_F(SessionTest, MessageInTheTagBandGetsScoreAndReasonsHeaders) {
  TestMessage message;
  message.recipients = numbered_recipients(60);
  const Decision decision = send(message, at(0ms));
  ASSERT_EQ(decision.action, Action::Tag);
  ASSERT_EQ(decision.headers_to_add.size(), 2u);
  EXPECT_EQ(decision.headers_to_add[0], (std::pair<std::string, std::string>{"X-Floodgate-Score", "10"}));
  EXPECT_EQ(decision.headers_to_add[1],
            (std::pair<std::string, std::string>{"X-Floodgate-Reasons", "rcpts_per_msg=60>50 (+10)"}));
}

TEST_F(SessionTest, RecipientsRefusedByTheMtaAreCountedPerClient) {
  TestMessage message;
  message.recipients = numbered_recipients(1);
  message.rejected_recipients = numbered_recipients(21, 100);
  const Decision decision = send(message, at(0ms));
  EXPECT_EQ(policy::join_reasons(decision.verdict.reasons), "rejected_rcpts_per_client=21>20 (+10)");
  EXPECT_EQ(decision.action, Action::Tag);
}

TEST_F(SessionTest, ScriptHeaderKeysItsOwnCounter) {
  // The script named by PHP's header is a source of its own: its counter
  // fires alongside the per-client one.
  TestMessage message;
  message.headers.push_back({"X-PHP-Originating-Script", "33:contact-form.php"});
  message.recipients = numbered_recipients(101);
  const Decision decision = send(message, at(0ms));
  EXPECT_NE(policy::join_reasons(decision.verdict.reasons).find("same_content_rcpts_per_script=101>100"),
            std::string::npos)
      << policy::join_reasons(decision.verdict.reasons);
}

TEST_F(SessionTest, ExemptedScriptHeaderSkipsScoringAndCounting) {
  auto config = std::make_shared<policy::Config>(*policy::load_config_text(R"(
outbound:
  client_networks: [10.0.0.0/8]
exemptions:
  - headers: {X-PHP-Originating-Script: ["33:newsletter.php"]}
rules:
  - name: rcpts_per_msg
    signal: recipients_per_message
    threshold: 50
    points: 10
actions:
  tag: 5
)", "test.yaml"));
  TestMessage newsletter;
  newsletter.recipients = numbered_recipients(200);
  newsletter.headers.push_back({"X-PHP-Originating-Script", "33:newsletter.php"});
  const Decision exempted = send_to(m_counters, newsletter, at(0ms), config);
  EXPECT_EQ(exempted.scope, policy::Scope::Exempt);
  EXPECT_EQ(exempted.action, Action::Accept);

  TestMessage contact_form = newsletter;
  contact_form.headers.back().second = "33:contact.php";
  const Decision scored = send_to(m_counters, contact_form, at(0ms), config);
  EXPECT_EQ(scored.scope, policy::Scope::Outbound);
  EXPECT_EQ(scored.action, Action::Tag);
}

class FailingCounterStore final : public ratelimit::CounterStore {
 public:
  ratelimit::CounterResult apply(std::span<const policy::CounterRequest>, ratelimit::TimePoint) override {
    return tl::unexpected(ratelimit::CounterFailure{ratelimit::CounterFailure::Kind::Timeout, "redis timeout"});
  }
  std::string_view state_label() const override { return "unavailable"; }
};

std::shared_ptr<const policy::Config> config_with_failure_mode(policy::CounterFailureMode mode) {
  auto config = std::make_shared<policy::Config>(*shipped_config());
  config->redis.on_failure = mode;
  return config;
}

TEST_F(SessionTest, CounterFailureInTempfailModeTempfailsWithTheConfiguredReply) {
  FailingCounterStore failing;
  ConnectionInfo connection;
  connection.client_address = "10.1.1.1";
  MessageSession session(config_with_failure_mode(policy::CounterFailureMode::Tempfail), connection);
  session.add_recipient("<a@example.net>", false);
  session.add_body_chunk("hello\r\n");
  const Decision decision = session.decide(failing, at(0ms));
  EXPECT_EQ(decision.action, Action::Tempfail);
  ASSERT_TRUE(decision.reply);
  EXPECT_EQ(decision.reply->code, "451");
  EXPECT_EQ(decision.reply->status, "4.7.1");
  EXPECT_EQ(decision.counter_failure, "redis timeout");
}

TEST_F(SessionTest, CounterFailureInMonitorModeLetsTheMessageThroughEvenWithTempfailOnFailure) {
  FailingCounterStore failing;
  auto config = std::make_shared<policy::Config>(*config_with_failure_mode(policy::CounterFailureMode::Tempfail));
  config->monitor.everything = true;
  ConnectionInfo connection;
  connection.client_address = "10.1.1.1";
  MessageSession session(config, connection);
  session.add_recipient("<a@example.net>", false);
  session.add_body_chunk("hello\r\n");
  const Decision decision = session.decide(failing, at(0ms));
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_FALSE(decision.reply);
  EXPECT_EQ(decision.verdict.reasons, std::vector<std::string>{"counters_unavailable"});
}

TEST_F(SessionTest, CounterFailureInAcceptModeAcceptsWithAReason) {
  FailingCounterStore failing;
  ConnectionInfo connection;
  connection.client_address = "10.1.1.1";
  MessageSession session(config_with_failure_mode(policy::CounterFailureMode::Accept), connection);
  session.add_recipient("<a@example.net>", false);
  const Decision decision = session.decide(failing, at(0ms));
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_EQ(policy::join_reasons(decision.verdict.reasons), "counters_unavailable");
}

TEST_F(SessionTest, DecisionLogLineEscapesAttackerText) {
  ConnectionInfo connection;
  connection.client_address = "10.1.1.1";
  MessageSession session(shipped_config(), connection);
  session.set_macro("i", "4ABC123");
  session.set_sender("<evil\r\nqid=FORGED@example.com>");
  session.add_recipient("<a@example.net>", false);
  const Decision decision = session.decide(m_counters, at(0ms));
  const std::string line = format_decision_log(session, decision, 250us);
  EXPECT_EQ(line.rfind("qid=4ABC123 action=accept score=0 scope=outbound client=10.1.1.1", 0), 0u) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_NE(line.find("sender=\"evil\\x0d\\x0aqid=FORGED@example.com\""), std::string::npos) << line;
}

// The shipped config with monitoring edited in: the whole policy
// (`everything`), or the rules named in `monitored_rules`.
std::shared_ptr<const policy::Config> monitoring_config(bool everything, std::vector<std::string> monitored_rules,
                                                        bool add_header) {
  auto config = std::make_shared<policy::Config>(*shipped_config());
  config->monitor.everything = everything;
  config->monitor.add_header = add_header;
  for (auto& rule : config->rules) {
    if (std::find(monitored_rules.begin(), monitored_rules.end(), rule.name) != monitored_rules.end())
      rule.mode = policy::RuleMode::Monitor;
  }
  return config;
}

TEST_F(SessionTest, MonitorModeLetsTheTwoHundredRecipientMessageThroughAndLogsWhatItWouldHaveDone) {
  ConnectionInfo connection;
  connection.client_address = "10.1.1.1";
  MessageSession session(monitoring_config(true, {}, false), connection);
  session.set_macro("i", "4ABC123");
  session.set_sender("<web@example.com>");
  for (const auto& recipient : numbered_recipients(200)) session.add_recipient(recipient, false);
  session.add_body_chunk("Dear friend,\r\nhave a look at this offer.\r\n");
  const Decision decision = session.decide(m_counters, at(0ms));
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_TRUE(decision.headers_to_add.empty());
  ASSERT_TRUE(decision.verdict.monitor.has_value());
  EXPECT_EQ(decision.verdict.monitor->action, Action::Quarantine);
  const std::string line = format_decision_log(session, decision, 250us);
  EXPECT_NE(line.find(" action=accept score=0 "), std::string::npos) << line;
  EXPECT_NE(line.find(" monitor=quarantine monitor_score=50 "), std::string::npos) << line;
  EXPECT_NE(line.find(" monitor_reasons=\"rcpts_per_msg=200>50 (+10, monitor), rcpts_per_msg_high=200>150 (+20, "
                      "monitor), same_content_rcpts_per_client=200>100 (+20, exact, monitor)\" "),
            std::string::npos)
      << line;
}

TEST_F(SessionTest, MonitorModeNamesTheSourceItWouldHaveFrozenAndFreezesNothing) {
  const auto config = monitoring_config(true, {}, false);
  TestMessage message;
  message.client_address = "10.9.9.9";
  Decision decision;
  // The same text to 3 x 40 recipients: past the shipped same-content rule's 100.
  for (int i = 0; i < 3; ++i) {
    message.recipients = numbered_recipients(40, 40 * i);
    decision = send_to(m_counters, message, at(std::chrono::milliseconds(i)), config);
  }
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_TRUE(decision.freezes_made.empty());
  EXPECT_EQ(decision.monitor_would_freeze, std::vector<std::string>{"client_address=10.9.9.9"});
}

TEST_F(SessionTest, AMonitoredRuleIsReportedBesideTheEnforcedOnesAndItsHeaderSaysWhatItWouldDo) {
  // rcpts_per_msg_high and same_content_rcpts_per_client (+20 each)
  // monitored: 200 recipients are tagged by rcpts_per_msg (+10) alone, and
  // would be quarantined with them.
  TestMessage message;
  message.recipients = numbered_recipients(200);
  const Decision decision =
      send_to(m_counters, message, at(0ms),
              monitoring_config(false, {"rcpts_per_msg_high", "same_content_rcpts_per_client"}, true));
  ASSERT_EQ(decision.action, Action::Tag);
  EXPECT_EQ(decision.verdict.score, 10);
  ASSERT_EQ(decision.headers_to_add.size(), 3u);
  EXPECT_EQ(decision.headers_to_add[1],
            (std::pair<std::string, std::string>{"X-Floodgate-Reasons", "rcpts_per_msg=200>50 (+10)"}));
  EXPECT_EQ(decision.headers_to_add[2],
            (std::pair<std::string, std::string>{
                "X-Floodgate-Monitor",
                "quarantine score=50: rcpts_per_msg=200>50 (+10), rcpts_per_msg_high=200>150 (+20, monitor), "
                "same_content_rcpts_per_client=200>100 (+20, exact, monitor)"}));
}

TEST_F(SessionTest, MonitorHeaderIsLeftOffWhenTheMonitoredVerdictAgreesWithTheEnforcedOne) {
  TestMessage message;
  message.recipients = numbered_recipients(3);
  const Decision decision =
      send_to(m_counters, message, at(0ms), monitoring_config(false, {"rcpts_per_msg_high"}, true));
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_TRUE(decision.headers_to_add.empty());
}

}  // namespace
}  // namespace floodgate::milter
