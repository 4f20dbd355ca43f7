// What a SIGHUP reload applies at once and what keeps its running value
// until a restart (plan_reload).
#include "milter/config_reload.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/config_loader.hpp"

namespace floodgate::milter {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::string k_shipped_config = std::string(FLOODGATE_SOURCE_DIR) + "/conf/floodgate.yaml";

TEST(ConfigReload, TheSameFileChangesNothingAndNeedsNoRestart) {
  const auto running = policy::load_config_file(k_shipped_config);
  const ReloadPlan plan = plan_reload(*running, *policy::load_config_file(k_shipped_config));
  EXPECT_THAT(plan.needs_restart, IsEmpty());
  EXPECT_EQ(plan.config->rules.size(), running->rules.size());
}

TEST(ConfigReload, PolicyChangesApplyToTheNextMessage) {
  const auto running = policy::load_config_file(k_shipped_config);
  policy::Config next = *running;
  next.rules.front().threshold = 5;
  next.bands.back().min_score = 99;
  next.replies.tempfail_text = "Slow down";
  next.log.level = "debug";
  next.containment.ttl = 10min;
  const ReloadPlan plan = plan_reload(*running, next);
  EXPECT_THAT(plan.needs_restart, IsEmpty());
  EXPECT_EQ(plan.config->rules.front().threshold, 5u);
  EXPECT_EQ(plan.config->bands.back().min_score, 99);
  EXPECT_EQ(plan.config->replies.tempfail_text, "Slow down");
  EXPECT_EQ(plan.config->log.level, "debug");
  EXPECT_EQ(plan.config->containment.ttl, 10min);
}

TEST(ConfigReload, SettingsBuiltAtStartKeepTheirRunningValueAndAreNamed) {
  const auto running = policy::load_config_file(k_shipped_config);
  policy::Config next = *running;
  next.milter_socket = "inet:9999@127.0.0.1";
  next.redis.url = "redis://10.0.0.1:6379/0";
  next.quarantine.spool_directory = "/elsewhere";
  next.containment.notify.mail_to = {"abuse@example.com"};
  next.metrics.listen = "127.0.0.1:1";
  next.daemon.shutdown_timeout = 5s;
  next.rules.front().points = 7;  // this one applies
  const ReloadPlan plan = plan_reload(*running, next);
  EXPECT_THAT(plan.needs_restart,
              ElementsAre("milter.socket", "milter (user, socket owner/group/mode, shutdown_timeout)", "metrics",
                          "redis", "quarantine.spool_directory", "containment.notify"));
  EXPECT_EQ(plan.config->milter_socket, running->milter_socket);
  EXPECT_EQ(plan.config->redis.url, running->redis.url);
  EXPECT_EQ(plan.config->quarantine.spool_directory, running->quarantine.spool_directory);
  EXPECT_EQ(plan.config->containment.notify, running->containment.notify);
  EXPECT_EQ(plan.config->metrics, running->metrics);
  EXPECT_EQ(plan.config->daemon.shutdown_timeout, running->daemon.shutdown_timeout);
  EXPECT_EQ(plan.config->rules.front().points, 7);
}

}  // namespace
}  // namespace floodgate::milter
