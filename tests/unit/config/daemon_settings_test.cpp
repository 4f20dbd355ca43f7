// How the config loader reads the daemon's own settings: the milter section
// (user, socket access, shutdown bound), log destination and facility, and
// the metrics endpoint; each mistake reported with its key.
#include "policy/config_loader.hpp"
#include "tests/unit/config/config_issues.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace floodgate::policy {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P2(IssueAt, key, message_part, "") {
  return arg.key == key && arg.message.find(message_part) != std::string::npos;
}

TEST(DaemonSettings, DefaultsKeepTheStartingUserSyslogMailAndNoMetrics) {
  const auto config = load_config_text("", "empty.yaml");
  EXPECT_EQ(config->daemon.user, "");
  EXPECT_EQ(config->daemon.socket_owner, "");
  EXPECT_EQ(config->daemon.socket_mode, std::nullopt);
  EXPECT_EQ(config->daemon.shutdown_timeout, 30s);
  EXPECT_EQ(config->log.destination, LogSettings::Destination::Syslog);
  EXPECT_EQ(config->log.syslog_facility, "mail");
  EXPECT_EQ(config->log.level, "info");
  EXPECT_EQ(config->metrics.listen, "");
}

TEST(DaemonSettings, ReadsUserSocketAccessShutdownLogAndMetrics) {
  const auto config = load_config_text(R"(
milter:
  socket: unix:/run/floodgate/floodgate.sock
  user: floodgate:mail
  socket_owner: floodgate
  socket_group: postfix
  socket_mode: "0660"
  shutdown_timeout: 45s
log:
  level: debug
  destination: stderr
  syslog_facility: local3
  syslog_ident: floodgate-out
metrics:
  listen: 127.0.0.1:9890
)",
                                       "daemon.yaml");
  EXPECT_EQ(config->milter_socket, "unix:/run/floodgate/floodgate.sock");
  EXPECT_EQ(config->daemon.user, "floodgate:mail");
  EXPECT_EQ(config->daemon.socket_owner, "floodgate");
  EXPECT_EQ(config->daemon.socket_group, "postfix");
  EXPECT_EQ(config->daemon.socket_mode, 0660u);
  EXPECT_EQ(config->daemon.shutdown_timeout, 45s);
  EXPECT_EQ(config->log.level, "debug");
  EXPECT_EQ(config->log.destination, LogSettings::Destination::Stderr);
  EXPECT_EQ(config->log.syslog_facility, "local3");
  EXPECT_EQ(config->log.syslog_ident, "floodgate-out");
  EXPECT_EQ(config->metrics.listen, "127.0.0.1:9890");
}

TEST(DaemonSettings, AnUnquotedOctalModeAndABracketedIpv6MetricsAddressAreRead) {
  const auto config = load_config_text("milter:\n  socket_mode: 0600\nmetrics:\n  listen: \"[::1]:9890\"\n", "m.yaml");
  EXPECT_EQ(config->daemon.socket_mode, 0600u);
  EXPECT_EQ(config->metrics.listen, "[::1]:9890");
}

TEST(DaemonSettings, MetricsOffTurnsTheEndpointOff) {
  EXPECT_EQ(load_config_text("metrics:\n  listen: \"off\"\n", "m.yaml")->metrics.listen, "");
}

TEST(DaemonSettings, EachBadValueIsReportedWithItsKey) {
  const auto issues = issues_of(R"(
milter:
  user: "root; rm -rf /"
  socket_group: "post fix"
  socket_mode: "0999"
  shutdown_timeout: soon
log:
  destination: journal
  syslog_facility: kern
metrics:
  listen: localhost
)");
  EXPECT_THAT(issues, ElementsAre(IssueAt("milter.user", "USER or USER:GROUP"),
                                  IssueAt("milter.socket_group", "user or group name"),
                                  IssueAt("milter.socket_mode", "octal file mode"),
                                  IssueAt("milter.shutdown_timeout", ""),
                                  IssueAt("log.destination", "syslog"),
                                  IssueAt("log.syslog_facility", "mail"),
                                  IssueAt("metrics.listen", "HOST:PORT")));
}

TEST(DaemonSettings, AnUnknownKeyInTheMetricsSectionIsAnError) {
  EXPECT_THAT(issues_of("metrics:\n  port: 9890\n"), ElementsAre(IssueAt("metrics.port", "unknown")));
}

}  // namespace
}  // namespace floodgate::policy
