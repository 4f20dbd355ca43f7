// Tests for the YAML config loader: the shipped file loads with the policy
// its comments promise, defaults fill what a file leaves out, and every kind
// of mistake is reported once, with the file, line and key an admin needs.
#include "policy/config_loader.hpp"
#include "tests/unit/config/config_issues.hpp"

#include <gmock/gmock.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace floodgate::policy {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

const std::string k_shipped_config = std::string(FLOODGATE_SOURCE_DIR) + "/conf/floodgate.yaml";

// A file under the test's temporary directory holding `text`.
std::string write_temp_file(const std::string& name, std::string_view text) {
  const std::string path = ::testing::TempDir() + "/floodgate_config_test_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return path;
}

std::vector<std::string> rule_names(const Config& config) {
  std::vector<std::string> names;
  for (const auto& rule : config.rules) names.push_back(rule.name);
  return names;
}

const Rule& rule_named(const Config& config, const std::string& name) {
  auto it = std::find_if(config.rules.begin(), config.rules.end(),
                         [&](const Rule& rule) { return rule.name == name; });
  if (it == config.rules.end()) throw std::runtime_error("no rule " + name);
  return *it;
}

// ---- The shipped configuration ---------------------------------------------

TEST(ConfigLoader, LoadsShippedConfigWithItsSettings) {
  const auto config = load_config_file(k_shipped_config);

  EXPECT_EQ(config->source_file, k_shipped_config);
  EXPECT_EQ(config->milter_socket, "inet:8890@127.0.0.1");
  EXPECT_EQ(config->log.level, "info");
  EXPECT_EQ(config->redis.url, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(config->redis.password_file, "");
  EXPECT_EQ(config->redis.connect_timeout, 200ms);
  EXPECT_EQ(config->redis.command_timeout, 200ms);
  EXPECT_EQ(config->redis.pool_size, 8u);
  EXPECT_EQ(config->redis.key_prefix, "fg");
  EXPECT_EQ(config->redis.on_failure, CounterFailureMode::Local);
  EXPECT_EQ(config->redis.retry_interval, 5s);
  EXPECT_EQ(config->content.max_text_bytes, 262144u);
  EXPECT_THAT(config->outbound.client_networks, SizeIs(6));
  EXPECT_TRUE(config->outbound.authenticated);
  EXPECT_TRUE(config->outbound.local_submission);
  EXPECT_THAT(config->outbound.macros, IsEmpty());
  EXPECT_THAT(config->exemptions, IsEmpty());
  EXPECT_EQ(config->replies.tempfail_code, "451");
  EXPECT_EQ(config->replies.tempfail_status, "4.7.1");
  EXPECT_EQ(config->replies.tempfail_text, "Too much mail from this source, try again later");
  EXPECT_EQ(config->replies.reject_code, "550");
  EXPECT_EQ(config->replies.reject_status, "5.7.1");
  EXPECT_EQ(config->replies.reject_text, "Message refused by outbound policy");
}

TEST(ConfigLoader, ShippedOutboundNetworksCoverPrivateRangesOnly) {
  const auto config = load_config_file(k_shipped_config);
  auto is_outbound = [&](const char* text) {
    const auto address = IpAddress::parse(text);
    if (!address) throw std::runtime_error(std::string("bad test address ") + text);
    return std::any_of(config->outbound.client_networks.begin(),
                       config->outbound.client_networks.end(),
                       [&](const IpNetwork& network) { return network.contains(*address); });
  };
  EXPECT_TRUE(is_outbound("127.0.0.1"));
  EXPECT_TRUE(is_outbound("10.20.30.40"));
  EXPECT_TRUE(is_outbound("172.31.255.1"));
  EXPECT_TRUE(is_outbound("192.168.1.5"));
  EXPECT_TRUE(is_outbound("::1"));
  EXPECT_TRUE(is_outbound("fd12::1"));
  EXPECT_FALSE(is_outbound("172.32.0.1"));
  EXPECT_FALSE(is_outbound("198.51.100.7"));
  EXPECT_FALSE(is_outbound("2001:db8::1"));
}

TEST(ConfigLoader, ShippedIdentitiesKeepFileOrderAndCollectTheirHeaders) {
  const auto config = load_config_file(k_shipped_config);

  ASSERT_THAT(config->identities, SizeIs(3));
  EXPECT_EQ(config->identities[0].name, "client");
  EXPECT_EQ(config->identities[1].name, "sasl_user");
  EXPECT_EQ(config->identities[2].name, "php_script");

  ASSERT_THAT(config->identities[0].parts, SizeIs(1));
  EXPECT_EQ(config->identities[0].parts[0].kind, IdentityPart::Kind::ClientAddress);
  ASSERT_THAT(config->identities[1].parts, SizeIs(1));
  EXPECT_EQ(config->identities[1].parts[0].kind, IdentityPart::Kind::SaslUser);

  const auto& php = config->identities[2];
  ASSERT_THAT(php.parts, SizeIs(2));
  EXPECT_EQ(php.parts[0].kind, IdentityPart::Kind::Header);
  EXPECT_EQ(php.parts[0].name, "x-php-originating-script");
  EXPECT_EQ(php.parts[1].kind, IdentityPart::Kind::ClientAddress);
  EXPECT_EQ(php.when_missing, MissingPartPolicy::SkipRule);

  EXPECT_THAT(config->headers_of_interest, ElementsAre("x-php-originating-script"));
}

TEST(ConfigLoader, ShippedRulesResolveTheirIdentitiesAndWindows) {
  const auto config = load_config_file(k_shipped_config);

  EXPECT_THAT(rule_names(*config),
              ElementsAre("rcpts_per_msg", "rcpts_per_msg_high", "same_content_rcpts_per_client",
                          "same_content_rcpts_per_user", "same_content_rcpts_per_script",
                          "rcpts_per_client", "distinct_rcpts_per_client",
                          "distinct_rcpts_per_user", "msgs_per_user", "rejected_rcpts_per_client",
                          "same_content_sources", "same_content_rcpt_domains"));

  const Rule& domains = rule_named(*config, "same_content_rcpt_domains");
  EXPECT_EQ(domains.signal, Signal::ContentRecipientDomains);
  EXPECT_FALSE(domains.identity.has_value());
  EXPECT_EQ(domains.window, 3600s);
  EXPECT_EQ(domains.threshold, 100u);

  const Rule& per_message = rule_named(*config, "rcpts_per_msg");
  EXPECT_EQ(per_message.signal, Signal::RecipientsPerMessage);
  EXPECT_FALSE(per_message.identity.has_value());
  EXPECT_EQ(per_message.threshold, 50u);
  EXPECT_EQ(per_message.points, 10);

  const Rule& per_script = rule_named(*config, "same_content_rcpts_per_script");
  EXPECT_EQ(per_script.signal, Signal::ContentRecipients);
  EXPECT_EQ(per_script.identity, std::optional<std::size_t>(2));  // php_script
  EXPECT_EQ(per_script.window, 600s);
  EXPECT_EQ(per_script.threshold, 100u);
  EXPECT_EQ(per_script.points, 20);

  const Rule& distinct = rule_named(*config, "distinct_rcpts_per_user");
  EXPECT_EQ(distinct.signal, Signal::DistinctRecipients);
  EXPECT_EQ(distinct.identity, std::optional<std::size_t>(1));  // sasl_user
  EXPECT_EQ(distinct.window, 3600s);
  EXPECT_EQ(distinct.threshold, 300u);

  const Rule& sources = rule_named(*config, "same_content_sources");
  EXPECT_EQ(sources.signal, Signal::ContentSources);
  EXPECT_EQ(sources.identity, std::optional<std::size_t>(0));  // client
  EXPECT_EQ(sources.points, 5);

  EXPECT_EQ(rule_named(*config, "rejected_rcpts_per_client").signal,
            Signal::RejectedRecipients);
  EXPECT_EQ(rule_named(*config, "msgs_per_user").signal, Signal::Messages);
  EXPECT_EQ(rule_named(*config, "rcpts_per_client").signal, Signal::Recipients);
}

TEST(ConfigLoader, ShippedQuarantineSpoolsAndReleasesThroughTheNoMilterListener) {
  const auto config = load_config_file(k_shipped_config);
  const QuarantineSettings& q = config->quarantine;
  EXPECT_EQ(q.mode, QuarantineSettings::Mode::Spool);
  EXPECT_EQ(q.spool_directory, "/var/spool/floodgate/quarantine");
  EXPECT_EQ(q.max_message_bytes, 64u * 1024 * 1024);
  EXPECT_EQ(q.memory_buffer_bytes, 256u * 1024);
  EXPECT_EQ(q.retention, std::chrono::hours(24 * 14));
  EXPECT_EQ(q.purge_interval, std::chrono::hours(1));
  EXPECT_EQ(q.release_host, "127.0.0.1");
  EXPECT_EQ(q.release_port, 10026);
  EXPECT_EQ(q.release_timeout, std::chrono::seconds(60));
  EXPECT_EQ(q.postfix_config_directory, "");
  EXPECT_EQ(q.mta, QuarantineSettings::Mta::Postfix);
  EXPECT_THAT(q.sendmail_command, ElementsAre("/usr/sbin/sendmail"));
}

TEST(ConfigLoader, ReadsHoldModeAndQueueClearingInSendmailsQuarantineWithItsCommand) {
  const auto config = load_config_text(
      "quarantine:\n  mode: hold\n  mta: sendmail\n"
      "  sendmail_command: [/usr/sbin/sendmail, -C, /etc/mail/out.cf]\n"
      "containment:\n  queue_clearing: hold\n",
      "test.yaml");
  EXPECT_EQ(config->quarantine.mta, QuarantineSettings::Mta::Sendmail);
  EXPECT_EQ(config->containment.queue_clearing, QueueClearing::Hold);  // in Sendmail's quarantine
  EXPECT_THAT(config->quarantine.sendmail_command, ElementsAre("/usr/sbin/sendmail", "-C", "/etc/mail/out.cf"));
}

TEST(ConfigLoader, ReadsMonitorModeForThePolicyAndForOneRule) {
  const auto config = load_config_text(
      "mode: monitor\n"
      "monitor: {add_header: true}\n"
      "rules:\n"
      "  - {name: a, signal: messages, identity: client, window: 10m, threshold: 5, points: 10, mode: monitor}\n"
      "  - {name: b, signal: messages, identity: client, window: 10m, threshold: 5, points: 10, mode: enforce}\n"
      "  - {name: c, signal: messages, identity: client, window: 10m, threshold: 5, points: 10}\n"
      "identities:\n  client: {parts: [client_address]}\n",
      "test.yaml");
  EXPECT_TRUE(config->monitor.everything);
  EXPECT_TRUE(config->monitor.add_header);
  ASSERT_EQ(config->rules.size(), 3u);
  EXPECT_EQ(config->rules[0].mode, RuleMode::Monitor);
  EXPECT_EQ(config->rules[1].mode, RuleMode::Enforce);
  EXPECT_EQ(config->rules[2].mode, RuleMode::Enforce);
  EXPECT_TRUE(monitors_anything(*config));
}

// A config and an overrides file beside it, in a fresh directory.
class ConfigWithOverrides : public ::testing::Test {
 protected:
  void SetUp() override {
    m_directory = std::filesystem::path(::testing::TempDir()) /
                  ("floodgate-overrides-" + std::to_string(::getpid()) + "-" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(m_directory);
    write("floodgate.yaml",
          "identities:\n  user: {parts: [sasl_user]}\n  script: {parts: [client_address, {header: X-Script}]}\n"
          "rules:\n"
          "  - {name: msgs_per_user, signal: messages, identity: user, window: 1h, threshold: 100, points: 10}\n"
          "  - {name: msgs_per_script, signal: messages, identity: script, window: 1h, threshold: 50, points: 10}\n"
          "  - {name: rcpts_per_msg, signal: recipients_per_message, threshold: 50, points: 10}\n"
          "overrides:\n  file: overrides.yaml\n");
  }
  void TearDown() override { std::filesystem::remove_all(m_directory); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(m_directory / name, std::ios::binary) << text;
  }
  std::string path(const std::string& name) const { return (m_directory / name).string(); }

  std::vector<ConfigIssue> issues_loading() {
    try {
      load_config_file(path("floodgate.yaml"));
    } catch (const ConfigError& error) {
      return error.issues();
    }
    return {};
  }

  std::filesystem::path m_directory;
};

TEST_F(ConfigWithOverrides, ReadsEachSourcesThresholdFromTheFileBesideTheConfig) {
  write("overrides.yaml",
        "msgs_per_user:\n  sasl=newsletter: 5000\n  sasl_user=billing: 0\n"
        "msgs_per_script:\n  \"client=10.1.2.3 header:X-Script=12:newsletter.php\": 20000\n");
  const auto config = load_config_file(path("floodgate.yaml"));
  EXPECT_EQ(config->overrides.file, path("overrides.yaml"));
  const std::map<std::string, std::uint64_t> by_user{{"sasl_user=newsletter", 5000}, {"sasl_user=billing", 0}};
  EXPECT_EQ(config->overrides.by_rule.at(0), by_user);
  const std::map<std::string, std::uint64_t> by_script{
      {"client_address=10.1.2.3 header:x-script=12:newsletter.php", 20000}};
  EXPECT_EQ(config->overrides.by_rule.at(1), by_script);
}

TEST_F(ConfigWithOverrides, EachLoadReadsTheFileAgainSoAReloadSeesItsChanges) {
  write("overrides.yaml", "msgs_per_user:\n  sasl=newsletter: 5000\n");
  EXPECT_EQ(load_config_file(path("floodgate.yaml"))->overrides.by_rule.at(0).at("sasl_user=newsletter"), 5000u);
  write("overrides.yaml", "msgs_per_user:\n  sasl=newsletter: 8000\n");
  EXPECT_EQ(load_config_file(path("floodgate.yaml"))->overrides.by_rule.at(0).at("sasl_user=newsletter"), 8000u);
}

TEST_F(ConfigWithOverrides, MistakesInTheFileAreReportedAtTheirLineInThatFile) {
  write("overrides.yaml",
        "no_such_rule:\n  sasl=x: 1\n"                 // 1
        "rcpts_per_msg:\n  sasl=x: 1\n"                // 3
        "msgs_per_user:\n"                             // 5
        "  client=10.1.2.3: 10\n"                       // 6: not the rule's parts
        "  sasl=y: lots\n"                              // 7
        "  bogus=1: 3\n");                              // 8
  const auto issues = issues_loading();
  ASSERT_THAT(issues, SizeIs(5)) << ConfigError(issues).what();
  std::map<int, std::string> by_line;
  for (const auto& issue : issues) {
    EXPECT_EQ(issue.file, path("overrides.yaml"));
    by_line[issue.line] = issue.message;
  }
  EXPECT_THAT(by_line[1], HasSubstr("no rule named \"no_such_rule\""));
  EXPECT_THAT(by_line[3], HasSubstr("counts no source"));
  EXPECT_THAT(by_line[6], HasSubstr("counts per user (sasl_user=...); this source names other parts"));
  EXPECT_THAT(by_line[7], HasSubstr("expected a threshold, an integer >= 0"));
  EXPECT_THAT(by_line[8], HasSubstr("bogus"));
}

TEST_F(ConfigWithOverrides, AMissingFileIsAnErrorAtTheSettingThatNamesIt) {
  const auto issues = issues_loading();
  ASSERT_THAT(issues, SizeIs(1));
  EXPECT_EQ(issues[0].file, path("floodgate.yaml"));
  EXPECT_EQ(issues[0].key, "overrides.file");
  EXPECT_THAT(issues[0].message, HasSubstr("No such file or directory"));
}

TEST(ConfigLoader, ShippedPolicyIsEnforcedWithNothingMonitored) {
  const auto config = load_config_file(k_shipped_config);
  EXPECT_FALSE(config->monitor.everything);
  EXPECT_FALSE(config->monitor.add_header);
  EXPECT_FALSE(monitors_anything(*config));
}

TEST(ConfigLoader, ReadsHoldModeAndABracketedReleaseHost) {
  const auto config = load_config_text(
      "quarantine:\n  mode: hold\n  release_target: \"[::1]:2526\"\n  retention: 0s\n"
      "  postfix_config_directory: /etc/postfix-out\n",
      "test.yaml");
  EXPECT_EQ(config->quarantine.mode, QuarantineSettings::Mode::Hold);
  EXPECT_EQ(config->quarantine.release_host, "::1");
  EXPECT_EQ(config->quarantine.release_port, 2526);
  EXPECT_EQ(config->quarantine.retention, std::chrono::seconds(0));
  EXPECT_EQ(config->quarantine.postfix_config_directory, "/etc/postfix-out");
}

TEST(ConfigLoader, ShippedContainmentFreezesTheSameContentSourcesForAnHour) {
  const auto config = load_config_file(k_shipped_config);
  std::vector<std::string> names;
  for (const std::size_t index : config->containment.rules) names.push_back(config->rules[index].name);
  EXPECT_THAT(names, ElementsAre("same_content_rcpts_per_client", "same_content_rcpts_per_user",
                                 "same_content_rcpts_per_script"));
  EXPECT_FALSE(config->containment.min_score.has_value());
  EXPECT_EQ(config->containment.action, Action::Quarantine);
  EXPECT_EQ(config->containment.ttl, std::chrono::hours(1));
  EXPECT_EQ(config->containment.refresh_interval, std::chrono::seconds(1));
}

TEST(ConfigLoader, ReadsIncidentsNotificationsQueueClearingAndTop) {
  const auto config = load_config_text(
      "containment:\n"
      "  queue_clearing: hold\n"
      "  refuse_at: mail_from\n"
      "  incidents: {retention: 7d, lookback: 15m, recipient_sample: 5, subjects: 3, max_queue_ids: 50}\n"
      "  notify:\n"
      "    mail_to: [postmaster@example.com, abuse@example.com]\n"
      "    mail_from: floodgate@relay.example.com\n"
      "    command: [/usr/local/bin/page-oncall, --team, mail]\n"
      "    command_timeout: 5s\n"
      "    min_interval: 30m\n"
      "    on_unfreeze: false\n"
      "top: {enabled: false, history: 2h, flush_interval: 500ms}\n",
      "test.yaml");
  const ContainmentSettings& containment = config->containment;
  EXPECT_EQ(containment.queue_clearing, QueueClearing::Hold);
  EXPECT_EQ(containment.refuse_at, ContainmentSettings::RefuseAt::MailFrom);
  EXPECT_EQ(containment.incidents.retention, std::chrono::hours(24 * 7));
  EXPECT_EQ(containment.incidents.lookback, std::chrono::minutes(15));
  EXPECT_EQ(containment.incidents.recipient_sample, 5u);
  EXPECT_EQ(containment.incidents.subjects, 3u);
  EXPECT_EQ(containment.incidents.max_queue_ids, 50u);
  EXPECT_THAT(containment.notify.mail_to, ElementsAre("postmaster@example.com", "abuse@example.com"));
  EXPECT_EQ(containment.notify.mail_from, "floodgate@relay.example.com");
  EXPECT_THAT(containment.notify.command, ElementsAre("/usr/local/bin/page-oncall", "--team", "mail"));
  EXPECT_EQ(containment.notify.command_timeout, std::chrono::seconds(5));
  EXPECT_EQ(containment.notify.min_interval, std::chrono::minutes(30));
  EXPECT_FALSE(containment.notify.on_unfreeze);
  EXPECT_FALSE(config->top.enabled);
  EXPECT_EQ(config->top.history, std::chrono::hours(2));
  EXPECT_EQ(config->top.flush_interval, std::chrono::milliseconds(500));
}

TEST(ConfigLoader, ReadsTheContentRecipientDomainsSignalWithAnOptionalIdentity) {
  const auto config = load_config_text(
      "identities:\n  client: {parts: [client_address]}\n"
      "rules:\n"
      "  - {name: doms, signal: content_recipient_domains, window: 1h, threshold: 50, points: 10}\n"
      "  - {name: doms_client, signal: content_recipient_domains, identity: client, threshold: 20, points: 5}\n",
      "test.yaml");
  ASSERT_EQ(config->rules.size(), 2u);
  EXPECT_EQ(config->rules[0].signal, Signal::ContentRecipientDomains);
  EXPECT_FALSE(config->rules[0].identity.has_value());
  EXPECT_EQ(config->rules[1].identity, std::optional<std::size_t>(0));
}

TEST(ConfigLoader, ReadsTheContentCaps) {
  const auto config =
      load_config_text("content: {max_text_bytes: 65536, max_nesting_depth: 4, max_parts: 100, max_header_bytes: 4096}\n",
                       "test.yaml");
  EXPECT_EQ(config->content.max_text_bytes, 65536u);
  EXPECT_EQ(config->content.max_nesting_depth, 4u);
  EXPECT_EQ(config->content.max_parts, 100u);
  EXPECT_EQ(config->content.max_header_bytes, 4096u);
  EXPECT_THAT(issues_of("content: {max_header_bytes: 10}\n"), SizeIs(1));
  EXPECT_THAT(issues_of("content: {max_parts: 0}\n"), SizeIs(1));
  EXPECT_THAT(issues_of("content: {max_nesting_depth: 1000}\n"), SizeIs(1));
}

TEST(ConfigLoader, ContainmentExtrasDefaultToNoNotificationNoQueueClearingAndTopOn) {
  const auto config = load_config_text("", "test.yaml");
  EXPECT_EQ(config->containment.queue_clearing, QueueClearing::Off);
  EXPECT_EQ(config->containment.refuse_at, ContainmentSettings::RefuseAt::Data);
  EXPECT_TRUE(config->containment.notify.mail_to.empty());
  EXPECT_TRUE(config->containment.notify.command.empty());
  EXPECT_TRUE(config->top.enabled);
  EXPECT_EQ(config->containment.incidents.retention, std::chrono::hours(24 * 30));
}

TEST(ConfigLoader, ShippedBandsTagThenQuarantine) {
  const auto config = load_config_file(k_shipped_config);
  ASSERT_THAT(config->bands, SizeIs(2));
  EXPECT_EQ(config->bands[0].action, Action::Tag);
  EXPECT_EQ(config->bands[0].min_score, 5);
  EXPECT_EQ(config->bands[1].action, Action::Quarantine);
  EXPECT_EQ(config->bands[1].min_score, 20);
}

// The shipped file's header promises that one message to 200 recipients is
// quarantined; its recipients-per-message rules alone give it 30 (the
// content rule adds 20 more once counted), already past the band.
TEST(ConfigLoader, ShippedConfigQuarantinesOneMessageTo200Recipients) {
  const auto config = load_config_file(k_shipped_config);
  int score = 0;
  for (const auto& rule : config->rules) {
    if (rule.signal == Signal::RecipientsPerMessage && 200 > rule.threshold) score += rule.points;
  }
  EXPECT_EQ(score, 30);
  Action action = Action::Accept;
  for (const auto& band : config->bands) {
    if (score >= band.min_score) action = band.action;
  }
  EXPECT_EQ(action, Action::Quarantine);
}

// ---- Defaults ----------------------------------------------------------------

TEST(ConfigLoader, EmptyFileGivesDefaults) {
  const Config defaults;
  for (const char* text : {"", "# only a comment\n", "---\n"}) {
    SCOPED_TRACE(text);
    const auto config = load_config_text(text, "empty.yaml");
    EXPECT_EQ(config->source_file, "empty.yaml");
    EXPECT_EQ(config->milter_socket, defaults.milter_socket);
    EXPECT_EQ(config->log.level, defaults.log.level);
    EXPECT_EQ(config->redis.url, defaults.redis.url);
    EXPECT_EQ(config->redis.connect_timeout, defaults.redis.connect_timeout);
    EXPECT_EQ(config->redis.pool_size, defaults.redis.pool_size);
    EXPECT_EQ(config->redis.on_failure, defaults.redis.on_failure);
    EXPECT_EQ(config->content.max_text_bytes, defaults.content.max_text_bytes);
    EXPECT_EQ(config->outbound.authenticated, defaults.outbound.authenticated);
    EXPECT_THAT(config->outbound.client_networks, IsEmpty());
    EXPECT_THAT(config->identities, IsEmpty());
    EXPECT_THAT(config->rules, IsEmpty());
    EXPECT_THAT(config->bands, IsEmpty());
    EXPECT_THAT(config->headers_of_interest, IsEmpty());
    EXPECT_EQ(config->replies.reject_code, defaults.replies.reject_code);
  }
}

TEST(ConfigLoader, EmptyFileOnDiskGivesDefaults) {
  const std::string path = write_temp_file("empty.yaml", "");
  const auto config = load_config_file(path);
  EXPECT_EQ(config->source_file, path);
  EXPECT_EQ(config->milter_socket, Config{}.milter_socket);
}

TEST(ConfigLoader, SectionWithNothingUnderItKeepsDefaults) {
  const auto config = load_config_text("redis:\nrules:\nexemptions:\n", "t.yaml");
  EXPECT_EQ(config->redis.url, RedisSettings{}.url);
  EXPECT_THAT(config->rules, IsEmpty());
}

TEST(ConfigLoader, SettingOneKeyLeavesItsNeighboursAtDefault) {
  const auto config = load_config_text("redis:\n  pool_size: 32\n", "t.yaml");
  EXPECT_EQ(config->redis.pool_size, 32u);
  EXPECT_EQ(config->redis.key_prefix, RedisSettings{}.key_prefix);
  EXPECT_EQ(config->redis.command_timeout, RedisSettings{}.command_timeout);
}

// ---- Everything the shipped file does not use ---------------------------------

TEST(ConfigLoader, LoadsEveryOptionalFeature) {
  const auto config = load_config_text(R"(redis:
  url: unix:/run/redis/redis.sock?db=2
  password_file: /etc/floodgate/redis.password
  on_failure: tempfail
  key_prefix: fg-prod.eu_1
log:
  level: debug
outbound:
  client_networks: [2001:db8::/32]
  authenticated: false
  local_submission: no
  macros:
    - macro: "{daemon_name}"
      values: [submission, smtps]
    - macro: {j}
      values: [mx1]
exemptions:
  - sasl_users: [newsletter@example.com]
    client_networks: [192.0.2.10]
  - sender_domains: [example.org]
    senders: [a@example.net]
    client_names: [mail.example.com]
  - headers: {X-PHP-Originating-Script: ["33:newsletter.php"]}
    macros: {"{daemon_name}": [internal, relay2]}
identities:
  subnet_script:
    parts:
      - {client_network: {ipv4: 16, ipv6: 48}}
      - {header: X-Mailer}
      - {macro: "{auth_authen}"}
      - {header: x-mailer}
    when_missing: placeholder
  net:
    parts: [{client_network: {}}, client_name, sender, sender_domain]
rules:
  - name: copies
    signal: content_copies
    window: 1d
    threshold: 0
    points: -5
  - name: copies_per_net
    signal: content_copies
    identity: net
    window: 90s
    threshold: 3
    points: 7
actions:
  reject: 60
  tag: 5
  tempfail: 40
  quarantine: 20
replies:
  tempfail:
    code: 452
    status: 4.3.10
    text: Slow down, 100%% sure
)",
                                       "t.yaml");

  EXPECT_EQ(config->redis.url, "unix:/run/redis/redis.sock?db=2");
  EXPECT_EQ(config->redis.password_file, "/etc/floodgate/redis.password");
  EXPECT_EQ(config->redis.on_failure, CounterFailureMode::Tempfail);
  EXPECT_EQ(config->redis.key_prefix, "fg-prod.eu_1");
  EXPECT_EQ(config->log.level, "debug");
  EXPECT_THAT(config->outbound.client_networks, SizeIs(1));
  EXPECT_FALSE(config->outbound.authenticated);
  EXPECT_FALSE(config->outbound.local_submission);

  ASSERT_THAT(config->outbound.macros, SizeIs(2));
  EXPECT_EQ(config->outbound.macros[0].macro, "daemon_name");
  EXPECT_THAT(config->outbound.macros[0].values, ElementsAre("submission", "smtps"));
  // Unquoted {j} is a YAML map; the loader reads it as the macro it names.
  EXPECT_EQ(config->outbound.macros[1].macro, "j");

  ASSERT_THAT(config->exemptions, SizeIs(3));
  EXPECT_THAT(config->exemptions[0].sasl_users, ElementsAre("newsletter@example.com"));
  EXPECT_THAT(config->exemptions[0].client_networks, SizeIs(1));
  EXPECT_THAT(config->exemptions[1].sender_domains, ElementsAre("example.org"));
  EXPECT_THAT(config->exemptions[1].senders, ElementsAre("a@example.net"));
  EXPECT_THAT(config->exemptions[1].client_names, ElementsAre("mail.example.com"));
  ASSERT_THAT(config->exemptions[2].headers, SizeIs(1));
  EXPECT_EQ(config->exemptions[2].headers[0].name, "x-php-originating-script");
  EXPECT_THAT(config->exemptions[2].headers[0].values, ElementsAre("33:newsletter.php"));
  ASSERT_THAT(config->exemptions[2].macros, SizeIs(1));
  EXPECT_EQ(config->exemptions[2].macros[0].name, "daemon_name");
  EXPECT_THAT(config->exemptions[2].macros[0].values, ElementsAre("internal", "relay2"));

  ASSERT_THAT(config->identities, SizeIs(2));
  const auto& subnet = config->identities[0];
  EXPECT_EQ(subnet.name, "subnet_script");
  EXPECT_EQ(subnet.when_missing, MissingPartPolicy::Placeholder);
  ASSERT_THAT(subnet.parts, SizeIs(4));
  EXPECT_EQ(subnet.parts[0].kind, IdentityPart::Kind::ClientNetwork);
  EXPECT_EQ(subnet.parts[0].ipv4_prefix, 16u);
  EXPECT_EQ(subnet.parts[0].ipv6_prefix, 48u);
  EXPECT_EQ(subnet.parts[1].kind, IdentityPart::Kind::Header);
  EXPECT_EQ(subnet.parts[1].name, "x-mailer");
  EXPECT_EQ(subnet.parts[2].kind, IdentityPart::Kind::Macro);
  EXPECT_EQ(subnet.parts[2].name, "auth_authen");
  const auto& net = config->identities[1];
  ASSERT_THAT(net.parts, SizeIs(4));
  EXPECT_EQ(net.parts[0].kind, IdentityPart::Kind::ClientNetwork);
  EXPECT_EQ(net.parts[0].ipv4_prefix, 24u);
  EXPECT_EQ(net.parts[0].ipv6_prefix, 64u);
  EXPECT_EQ(net.parts[1].kind, IdentityPart::Kind::ClientName);
  EXPECT_EQ(net.parts[2].kind, IdentityPart::Kind::Sender);
  EXPECT_EQ(net.parts[3].kind, IdentityPart::Kind::SenderDomain);
  // The same header twice, in two spellings, is collected once.
  EXPECT_THAT(config->headers_of_interest, ElementsAre("x-php-originating-script", "x-mailer"));

  ASSERT_THAT(config->rules, SizeIs(2));
  EXPECT_FALSE(config->rules[0].identity.has_value());
  EXPECT_EQ(config->rules[0].window, 86400s);
  EXPECT_EQ(config->rules[0].threshold, 0u);
  EXPECT_EQ(config->rules[0].points, -5);
  EXPECT_EQ(config->rules[1].identity, std::optional<std::size_t>(1));
  EXPECT_EQ(config->rules[1].window, 90s);

  ASSERT_THAT(config->bands, SizeIs(4));
  EXPECT_EQ(config->bands[0].action, Action::Tag);
  EXPECT_EQ(config->bands[1].action, Action::Quarantine);
  EXPECT_EQ(config->bands[2].action, Action::Tempfail);
  EXPECT_EQ(config->bands[3].action, Action::Reject);
  EXPECT_EQ(config->bands[3].min_score, 60);

  EXPECT_EQ(config->replies.tempfail_code, "452");
  EXPECT_EQ(config->replies.tempfail_status, "4.3.10");
  EXPECT_EQ(config->replies.tempfail_text, "Slow down, 100%% sure");
  EXPECT_EQ(config->replies.reject_code, Replies{}.reject_code);
}

TEST(ConfigLoader, RuleWithoutWindowCountsOverTenMinutes) {
  const auto config = load_config_text(R"(identities:
  client: {parts: [client_address]}
rules:
  - {name: r, signal: messages, identity: client, threshold: 1, points: 1}
)",
                                       "t.yaml");
  ASSERT_THAT(config->rules, SizeIs(1));
  EXPECT_EQ(config->rules[0].window, 600s);
}

// ---- Durations -----------------------------------------------------------------

struct DurationCase {
  const char* text;
  std::chrono::milliseconds want;
};

class ConfigDuration : public ::testing::TestWithParam<DurationCase> {};

TEST_P(ConfigDuration, ParsesEveryUnit) {
  const auto config =
      load_config_text(std::string("redis:\n  command_timeout: ") + GetParam().text + "\n", "t");
  EXPECT_EQ(config->redis.command_timeout, GetParam().want) << "for " << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(Units, ConfigDuration,
                         ::testing::Values(DurationCase{"200ms", 200ms}, DurationCase{"5s", 5s},
                                           DurationCase{"10m", 10min}, DurationCase{"1h", 1h},
                                           DurationCase{"2d", 48h}, DurationCase{"0007s", 7s}));

class ConfigBadDuration : public ::testing::TestWithParam<const char*> {};

TEST_P(ConfigBadDuration, IsReportedWithAHint) {
  const auto issues = issues_of(std::string("redis:\n  retry_interval: '") + GetParam() + "'\n");
  ASSERT_THAT(issues, SizeIs(1)) << "for " << GetParam();
  EXPECT_EQ(issues[0].line, 2);
  EXPECT_EQ(issues[0].key, "redis.retry_interval");
  EXPECT_THAT(issues[0].message, HasSubstr("expected a duration such as 30s, 10m or 1h"));
}

INSTANTIATE_TEST_SUITE_P(Garbage, ConfigBadDuration,
                         ::testing::Values("30", "s", "5 s", "ten", "1w", "-1s", "1.5s", "5S", "",
                                           "99999999999999999999d", "1h30m"));

// ---- One mistake, one issue, at the right line and key ---------------------------

struct ErrorCase {
  const char* name;  // the test's name in ctest
  const char* yaml;
  int line;
  const char* key;
  const char* message;  // a substring of the issue's message
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ConfigLoaderError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigLoaderError, IsReportedOnceAtItsLineAndKey) {
  const ErrorCase& c = GetParam();
  const auto issues = issues_of(c.yaml);
  ASSERT_THAT(issues, SizeIs(1)) << ConfigError(issues).what();
  EXPECT_EQ(issues[0].file, "test.yaml");
  EXPECT_EQ(issues[0].line, c.line) << issues[0].to_string();
  EXPECT_EQ(issues[0].key, c.key) << issues[0].to_string();
  EXPECT_THAT(issues[0].message, HasSubstr(c.message));
}

// Shared preamble so rule cases can name identities; its 4 lines offset the
// line numbers of the cases that use it.
#define IDENTITIES "identities:\n  client:\n    parts: [client_address]\nrules:\n"

const ErrorCase k_error_cases[] = {
    {"UnknownTopLevelKey", "milter:\n  socket: unix:/s\nredsi:\n  url: x\n", 3, "redsi",
     "unknown key \"redsi\""},
    {"UnknownNestedKey", "redis:\n  pool_size: 4\n  urll: redis://x\n", 3, "redis.urll",
     "unknown key \"urll\""},
    {"UnknownKeyInRule",
     IDENTITIES "  - name: a\n    signal: messages\n    identity: client\n    windw: 5m\n"
                "    threshold: 1\n    points: 1\n",
     8, "rules[0].windw", "unknown key \"windw\""},
    {"DuplicateKey", "log:\n  level: info\n  level: debug\n", 3, "log.level",
     "duplicate key \"level\""},
    {"TopLevelList", "- redis\n", 1, "", "expected a map, got a list"},
    {"ListWhereMapExpected", "redis:\n  - url\n", 2, "redis", "expected a map, got a list"},
    {"MapWhereValueExpected", "milter:\n  socket: {a: b}\n", 2, "milter.socket",
     "expected a value, got a map"},
    {"ScalarWhereListExpected", "outbound:\n  client_networks: 10.0.0.0/8\n", 2,
     "outbound.client_networks", "expected a list"},
    {"EmptyValue", "milter:\n  socket:\nlog: {}\n", 2, "milter.socket", "got nothing"},
    {"BadLogLevel", "log:\n  level: verbose\n", 2, "log.level",
     "expected one of trace, debug, info, warn, error"},
    {"BadBoolean", "outbound:\n  authenticated: maybe\n", 2, "outbound.authenticated",
     "expected true or false"},
    {"BadDuration", "redis:\n  url: redis://r\n  connect_timeout: 30\n", 3,
     "redis.connect_timeout", "expected a duration such as 30s, 10m or 1h"},
    {"ZeroTimeout", "redis:\n  command_timeout: 0ms\n", 2, "redis.command_timeout",
     "longer than 0ms"},
    {"BadRedisUrl", "redis:\n  url: http://r\n", 2, "redis.url", "expected redis://"},
    {"PoolSizeZero", "redis:\n  pool_size: 0\n", 2, "redis.pool_size", "from 1 to 256"},
    {"PoolSizeTooLarge", "redis:\n  pool_size: 257\n", 2, "redis.pool_size", "from 1 to 256"},
    {"BadKeyPrefix", "redis:\n  key_prefix: 'fg:{x}'\n", 2, "redis.key_prefix",
     "only letters, digits"},
    {"BadOnFailure", "redis:\n  on_failure: retry\n", 2, "redis.on_failure",
     "expected one of local, accept, tempfail"},
    {"ZeroMaxTextBytes", "content:\n  max_text_bytes: 0\n", 2, "content.max_text_bytes",
     "a positive integer"},
    {"BadCidrInOutbound", "outbound:\n  client_networks:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n",
     4, "outbound.client_networks[1]", "\"10.0.0.0/33\" is not a network"},
    {"BadCidrInExemption", "exemptions:\n  - client_networks: [192.0.2.300]\n", 2,
     "exemptions[0].client_networks[0]", "is not a network"},
    {"ExemptionWithoutCondition", "exemptions:\n  - {}\n", 2, "exemptions[0]",
     "needs at least one of"},
    {"ExemptionWithEmptyList", "exemptions:\n  - senders: []\n", 2, "exemptions[0].senders",
     "at least one value"},
    {"ExemptionHeaderWithBadName", "exemptions:\n  - headers:\n      \"X Bad\": [a]\n", 3,
     "exemptions[0].headers.X Bad", "not a header name"},
    {"ExemptionHeaderWithoutValues", "exemptions:\n  - headers:\n      X-Mailer: []\n", 3,
     "exemptions[0].headers.X-Mailer", "at least one value"},
    {"ExemptionMacroWithBadName", "exemptions:\n  - macros:\n      \"da-mon\": [a]\n", 3,
     "exemptions[0].macros.da-mon", "not a macro name"},
    {"ContainmentUnknownRule",
     "identities:\n  client: {parts: [client_address]}\ncontainment:\n  rules: [nope]\n", 4,
     "containment.rules[0]", "no rule named \"nope\""},
    {"ContainmentRuleWithoutIdentity",
     "rules:\n  - {name: big, signal: recipients_per_message, threshold: 50, points: 10}\n"
     "containment:\n  rules: [big]\n",
     4, "containment.rules[0]", "no source to freeze"},
    {"ContainmentBadAction", "containment:\n  action: tag\n", 2, "containment.action", "tag"},
    {"RefuseAtBadStage", "containment:\n  refuse_at: rcpt\n", 2, "containment.refuse_at", "rcpt"},
    {"QueueClearingBadMode", "containment:\n  queue_clearing: requeue\n", 2, "containment.queue_clearing",
     "requeue"},
    {"NotifyCommandAsString", "containment:\n  notify:\n    command: /bin/notify --all\n", 3,
     "containment.notify.command", "list"},
    {"NotifyCommandRelative", "containment:\n  notify:\n    command: [notify.sh]\n", 3,
     "containment.notify.command", "absolute path"},
    {"NotifyMailToWithSpace", "containment:\n  notify:\n    mail_to: [\"a b@example.com\"]\n", 3,
     "containment.notify.mail_to", "not a plain mail address"},
    {"NotifyMailFromWithNewline", "containment:\n  notify:\n    mail_from: \"a@x\\nBcc: b@y\"\n", 3,
     "containment.notify.mail_from", "not a plain mail address"},
    {"IncidentsUnknownKey", "containment:\n  incidents:\n    keep: 1d\n", 3, "containment.incidents.keep",
     "unknown key"},
    {"IncidentsSampleTooLarge", "containment:\n  incidents:\n    recipient_sample: 5000\n", 3,
     "containment.incidents.recipient_sample", "0 to 1000"},
    {"TopBadEnabled", "top:\n  enabled: maybe\n", 2, "top.enabled", "maybe"},
    {"QuarantineBadMode", "quarantine:\n  mode: bin\n", 2, "quarantine.mode", "bin"},
    {"QuarantineRelativeSpool", "quarantine:\n  spool_directory: spool\n", 2,
     "quarantine.spool_directory", "absolute path"},
    {"QuarantineTargetWithoutPort", "quarantine:\n  release_target: localhost\n", 2,
     "quarantine.release_target", "HOST:PORT"},
    {"QuarantineTargetPortZero", "quarantine:\n  release_target: 127.0.0.1:0\n", 2,
     "quarantine.release_target", "HOST:PORT"},
    {"QuarantineUnknownKey", "quarantine:\n  spool: /x\n", 2, "quarantine.spool", "unknown key"},
    {"QuarantineUnknownMta", "quarantine:\n  mta: exim\n", 2, "quarantine.mta", "exim"},
    {"SendmailCommandRelative", "quarantine:\n  sendmail_command: [sendmail]\n", 2,
     "quarantine.sendmail_command[0]", "expected an absolute path"},
    {"SendmailCommandEmpty", "quarantine:\n  sendmail_command: []\n", 2,
     "quarantine.sendmail_command", "expected the sendmail program"},
    {"ModeUnknown", "mode: dry_run\n", 1, "mode", "expected one of enforce, monitor, got"},
    {"RuleModeUnknown",
     "identities:\n  c: {parts: [client_address]}\nrules:\n"
     "  - {name: a, signal: messages, identity: c, threshold: 1, points: 1, mode: watch}\n",
     4, "rules[0].mode", "expected one of enforce, monitor"},
    {"MonitorAddHeaderNotABoolean", "monitor:\n  add_header: sometimes\n", 2, "monitor.add_header", "expected true or false"},
    {"MonitorUnknownKey", "monitor:\n  tag: true\n", 2, "monitor.tag", "unknown key"},
    {"QueueClearingDeleteBehindSendmail",
     "quarantine:\n  mta: sendmail\ncontainment:\n  queue_clearing: delete\n", 4, "containment.queue_clearing",
     "Sendmail (quarantine.mta: sendmail) has no command that deletes a queued message; use hold"},
    {"ExemptionHeadersEmpty", "exemptions:\n  - headers: {}\n", 2, "exemptions[0].headers",
     "at least one name"},
    {"MacroMatchWithoutValues", "outbound:\n  macros:\n    - macro: daemon_name\n", 3,
     "outbound.macros[0]", "needs both macro and values"},
    {"BadMacroName", "outbound:\n  macros:\n    - {macro: 'daemon name', values: [x]}\n", 3,
     "outbound.macros[0].macro", "expected a macro name"},
    {"BadIdentityName", "identities:\n  Client:\n    parts: [client_address]\n", 2,
     "identities.Client", "lower-case letters"},
    {"IdentityWithoutParts", "identities:\n  client:\n    when_missing: skip\n", 2,
     "identities.client", "needs parts"},
    {"IdentityWithEmptyParts", "identities:\n  client:\n    parts: []\n", 3,
     "identities.client.parts", "at least one part"},
    {"UnknownIdentityPart", "identities:\n  client:\n    parts:\n      - client_adress\n", 4,
     "identities.client.parts[0]", "unknown identity part \"client_adress\""},
    {"UnknownIdentityPartMap", "identities:\n  client:\n    parts:\n      - {cookie: x}\n", 4,
     "identities.client.parts[0].cookie", "unknown identity part \"cookie\""},
    {"HeaderNameWithColon", "identities:\n  s:\n    parts: [{header: 'X-Script:'}]\n", 3,
     "identities.s.parts[0].header", "expected a header field name"},
    {"Ipv4PrefixTooLong",
     "identities:\n  n:\n    parts:\n      - client_network:\n          ipv4: 33\n", 5,
     "identities.n.parts[0].client_network.ipv4", "from 0 to 32"},
    {"BadWhenMissing", "identities:\n  c:\n    parts: [sender]\n    when_missing: drop\n", 4,
     "identities.c.when_missing", "expected one of skip, placeholder"},
    {"UnknownIdentity",
     IDENTITIES "  - {name: a, signal: messages, identity: clinet, threshold: 1, points: 1}\n", 5,
     "rules[0].identity", "unknown identity \"clinet\""},
    {"UnknownSignal", IDENTITIES "  - name: a\n    signal: mesages\n    threshold: 1\n"
                                 "    points: 1\n",
     6, "rules[0].signal", "got \"mesages\""},
    {"IdentityOnRecipientsPerMessage",
     IDENTITIES "  - name: a\n    signal: recipients_per_message\n    identity: client\n"
                "    threshold: 50\n    points: 1\n",
     7, "rules[0].identity", "takes no identity"},
    {"WindowOnRecipientsPerMessage",
     IDENTITIES "  - name: a\n    signal: recipients_per_message\n    window: 10m\n"
                "    threshold: 50\n    points: 1\n",
     7, "rules[0].window", "takes no window"},
    {"PerSourceSignalWithoutIdentity",
     IDENTITIES "  - name: a\n    signal: distinct_recipients\n    threshold: 50\n"
                "    points: 1\n",
     5, "rules[0]", "distinct_recipients needs an identity"},
    {"ContentSourcesWithoutIdentity",
     IDENTITIES "  - {name: a, signal: content_sources, threshold: 5, points: 1}\n", 5, "rules[0]",
     "content_sources needs an identity"},
    {"DuplicateRuleName",
     IDENTITIES "  - {name: a, signal: recipients_per_message, threshold: 5, points: 1}\n"
                "  - {name: a, signal: recipients_per_message, threshold: 9, points: 1}\n",
     6, "rules[1].name", "duplicate rule name \"a\""},
    {"BadRuleName", "rules:\n  - {name: Too-Many, signal: recipients_per_message, threshold: 5, "
                    "points: 1}\n",
     2, "rules[0].name", "lower-case letters"},
    {"RuleWithoutThreshold", "rules:\n  - {name: a, signal: recipients_per_message, points: 1}\n",
     2, "rules[0]", "needs threshold"},
    {"ThresholdNotANumber",
     "rules:\n  - name: a\n    signal: recipients_per_message\n    threshold: lots\n"
     "    points: 1\n",
     4, "rules[0].threshold", "expected an integer >= 0, got \"lots\""},
    {"NegativeThreshold",
     "rules:\n  - {name: a, signal: recipients_per_message, threshold: -1, points: 1}\n", 2,
     "rules[0].threshold", "an integer >= 0"},
    {"ZeroPoints", "rules:\n  - {name: a, signal: recipients_per_message, threshold: 1, points: 0}\n",
     2, "rules[0].points", "must not be 0"},
    {"WindowTooLong",
     IDENTITIES "  - name: a\n    signal: messages\n    identity: client\n    window: 8d\n"
                "    threshold: 1\n    points: 1\n",
     8, "rules[0].window", "from 1s to 7d"},
    {"WindowNotWholeSeconds",
     IDENTITIES "  - name: a\n    signal: messages\n    identity: client\n    window: 1500ms\n"
                "    threshold: 1\n    points: 1\n",
     8, "rules[0].window", "whole number of seconds"},
    {"BandScoreZero", "actions:\n  tag: 0\n", 2, "actions.tag", "a score >= 1"},
    {"BandScoreNotANumber", "actions:\n  tag: high\n", 2, "actions.tag", "a score >= 1"},
    {"BandSameScore", "actions:\n  tag: 20\n  quarantine: 20\n", 3, "actions.quarantine",
     "same score as tag"},
    {"BandUnknownAction", "actions:\n  tag: 5\n  block: 50\n", 3, "actions.block",
     "unknown action \"block\""},
    {"BandForAccept", "actions:\n  accept: 0\n", 2, "actions.accept", "accept needs no band"},
    {"TempfailCodeNot4xx", "replies:\n  tempfail:\n    code: 550\n", 3, "replies.tempfail.code",
     "expected a 4xx SMTP reply code"},
    {"RejectCodeNotThreeDigits", "replies:\n  reject:\n    code: 5500\n", 3,
     "replies.reject.code", "expected a 5xx SMTP reply code"},
    {"RejectStatusOfWrongClass", "replies:\n  reject:\n    status: 4.7.1\n", 3,
     "replies.reject.status", "expected an enhanced status code 5.x.y"},
    {"StatusWithFourDigitDetail", "replies:\n  tempfail:\n    status: 4.7.1000\n", 3,
     "replies.tempfail.status", "4.x.y"},
    {"ReplyTextWithLineBreak", "replies:\n  reject:\n    text: \"no\\r\\nway\"\n", 3,
     "replies.reject.text", "printable ASCII on one line"},
    {"ReplyTextWithLonePercent", "replies:\n  reject:\n    text: 100% spam\n", 3,
     "replies.reject.text", "'%%'"},
    {"TwoDocuments", "log: {level: info}\n---\nlog: {level: warn}\n", 3, "",
     "expected one YAML document"},
};

#undef IDENTITIES

INSTANTIATE_TEST_SUITE_P(Cases, ConfigLoaderError, ::testing::ValuesIn(k_error_cases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- Errors outside the table ---------------------------------------------------

TEST(ConfigLoader, ReportsYamlSyntaxErrorAtItsLine) {
  const auto issues = issues_of("redis:\n  url: redis://r\n  pool_size: 8\n bad: indent\n");
  ASSERT_THAT(issues, SizeIs(1));
  EXPECT_EQ(issues[0].line, 4);
  EXPECT_EQ(issues[0].key, "");
  EXPECT_THAT(issues[0].message, Not(IsEmpty()));
  EXPECT_EQ(issues[0].to_string(), "test.yaml:4: " + issues[0].message);
}

TEST(ConfigLoader, ReportsUnclosedFlowListAtTheLineWhereItBreaks) {
  const auto issues =
      issues_of("rules:\n  - name: a\n    signal: [messages\n  - name: b\n");
  ASSERT_THAT(issues, SizeIs(1));
  EXPECT_EQ(issues[0].line, 4);
}

// yaml-cpp places an empty node at the next token, so the line may be the
// one after the stray "-"; the key still says which item it is.
TEST(ConfigLoader, ReportsEmptyListItemByIndex) {
  const auto issues = issues_of(
      "rules:\n  - {name: a, signal: recipients_per_message, threshold: 1, points: 1}\n  -\n"
      "  - {name: b, signal: recipients_per_message, threshold: 2, points: 1}\n");
  ASSERT_THAT(issues, SizeIs(1));
  EXPECT_EQ(issues[0].key, "rules[1]");
  EXPECT_THAT(issues[0].message, HasSubstr("expected a map, got nothing"));
}

TEST(ConfigLoader, NonexistentFileIsAConfigError) {
  const std::string path = ::testing::TempDir() + "/floodgate_config_test_does_not_exist.yaml";
  try {
    load_config_file(path);
    FAIL() << "loaded a file that does not exist";
  } catch (const ConfigError& error) {
    ASSERT_THAT(error.issues(), SizeIs(1));
    EXPECT_EQ(error.issues()[0].file, path);
    EXPECT_EQ(error.issues()[0].line, 0);
    EXPECT_THAT(error.issues()[0].message, HasSubstr("cannot read file"));
    EXPECT_THAT(error.what(), HasSubstr(path + ": cannot read file: No such file"));
  }
}

TEST(ConfigLoader, DirectoryIsNotReadAsAnEmptyConfig) {
  EXPECT_THROW(load_config_file(::testing::TempDir()), ConfigError);
}

TEST(ConfigLoader, IssuesFromAFileNameThatFile) {
  const std::string path = write_temp_file("bad.yaml", "log:\n  level: loud\n");
  try {
    load_config_file(path);
    FAIL() << "loaded a bad file";
  } catch (const ConfigError& error) {
    ASSERT_THAT(error.issues(), SizeIs(1));
    EXPECT_EQ(error.issues()[0].to_string(),
              path + ":2: log.level: expected one of trace, debug, info, warn, error, got "
                     "\"loud\"");
  }
}

TEST(ConfigLoader, ReportsEveryErrorInAFileNotJustTheFirst) {
  const char* yaml = R"(redis:
  pool_size: 0
  colour: blue
identities:
  client:
    parts: [client_address]
rules:
  - name: a
    signal: messages
    identity: nobody
    window: 10
    threshold: 1
    points: 1
actions:
  tag: 5
  quarantine: 5
)";
  try {
    load_config_text(yaml, "many.yaml");
    FAIL() << "loaded a file with five errors";
  } catch (const ConfigError& error) {
    std::vector<std::pair<int, std::string>> got;
    for (const auto& issue : error.issues()) got.emplace_back(issue.line, issue.key);
    EXPECT_THAT(got, ElementsAre(std::pair{2, std::string("redis.pool_size")},
                                 std::pair{3, std::string("redis.colour")},
                                 std::pair{10, std::string("rules[0].identity")},
                                 std::pair{11, std::string("rules[0].window")},
                                 std::pair{16, std::string("actions.quarantine")}));
    // what() lists them all, one per line, in the documented format.
    const std::string what = error.what();
    EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 4);
    EXPECT_THAT(what, HasSubstr("many.yaml:3: redis.colour: unknown key \"colour\"\n"));
  }
}

TEST(ConfigLoader, BrokenIdentityIsNotReportedAgainByTheRulesUsingIt) {
  const auto issues = issues_of(R"(identities:
  script:
    parts: [{header: 'bad header'}]
rules:
  - {name: a, signal: messages, identity: script, threshold: 1, points: 1}
)");
  ASSERT_THAT(issues, SizeIs(1));
  EXPECT_EQ(issues[0].key, "identities.script.parts[0].header");
}

// ---- ConfigIssue formatting -------------------------------------------------------

TEST(ConfigIssue, FormatsAsFileLineKeyMessage) {
  EXPECT_EQ((ConfigIssue{"f.yaml", 12, "rules[2].threshold", "bad"}).to_string(),
            "f.yaml:12: rules[2].threshold: bad");
}

TEST(ConfigIssue, LeavesOutLineAndKeyWhenUnknown) {
  EXPECT_EQ((ConfigIssue{"f.yaml", 0, "", "cannot read file"}).to_string(),
            "f.yaml: cannot read file");
}

// ---- redis.username and redis.sentinel (issue 6) ---------------------------------

TEST(ConfigLoader, ReadsRedisUsernameAndSentinel) {
  const auto config = load_config_text(R"(redis:
  url: redis://:pw@127.0.0.1:6379/2
  username: floodgate
  sentinel:
    master_name: mymaster
    addresses: ["10.0.0.1:26379", "[2001:db8::3]:26380"]
    password_file: /etc/floodgate/sentinel.password
)",
                                       "test.yaml");
  EXPECT_EQ(config->redis.username, "floodgate");
  EXPECT_EQ(config->redis.sentinel.master_name, "mymaster");
  EXPECT_EQ(config->redis.sentinel.addresses, (std::vector<std::string>{"10.0.0.1:26379", "[2001:db8::3]:26380"}));
  EXPECT_EQ(config->redis.sentinel.password_file, "/etc/floodgate/sentinel.password");
}

TEST(ConfigLoader, WithoutSentinelSectionThereIsNoSentinel) {
  const auto config = load_config_text("redis:\n  url: redis://127.0.0.1:6379/0\n", "test.yaml");
  EXPECT_EQ(config->redis.username, "");
  EXPECT_TRUE(config->redis.sentinel.master_name.empty());
  EXPECT_TRUE(config->redis.sentinel.addresses.empty());
}

TEST(ConfigLoader, ReportsEachBadRedisUserOrSentinelSettingByKey) {
  struct Case {
    std::string yaml;
    std::string want_key;
    std::string want_text;
  };
  const Case cases[] = {
      {"redis:\n  username: \"two words\"\n", "redis.username", "no spaces"},
      {"redis:\n  sentinel:\n    master_name: m\n    addresses: [\"10.0.0.1\"]\n", "redis.sentinel.addresses",
       "HOST:PORT"},
      {"redis:\n  sentinel:\n    master_name: m\n    addresses: [\"::1:26379\"]\n", "redis.sentinel.addresses",
       "HOST:PORT"},
      {"redis:\n  sentinel:\n    master_name: m\n", "redis.sentinel", "both master_name and addresses"},
      {"redis:\n  sentinel:\n    addresses: [\"10.0.0.1:26379\"]\n", "redis.sentinel",
       "both master_name and addresses"},
      {"redis:\n  sentinel:\n    master: m\n", "redis.sentinel.master", "unknown key"},
  };
  for (const Case& c : cases) {
    const auto issues = issues_of(c.yaml);
    ASSERT_FALSE(issues.empty()) << c.yaml << "was accepted";
    const bool found = std::any_of(issues.begin(), issues.end(), [&](const ConfigIssue& issue) {
      return issue.key == c.want_key && issue.message.find(c.want_text) != std::string::npos;
    });
    EXPECT_TRUE(found) << c.yaml << "got: " << issues[0].to_string();
  }
}

}  // namespace
}  // namespace floodgate::policy
