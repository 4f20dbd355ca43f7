// Which macros Floodgate expects from the MTA, and that a missing one is
// reported once, by name, with where to fix it.
#include "milter/expected_macros.hpp"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace floodgate::milter {
namespace {

std::vector<std::string> names(const std::vector<ExpectedMacro>& macros) {
  std::vector<std::string> out;
  for (const auto& m : macros) out.push_back(m.name);
  return out;
}

policy::Config config_reading_macros() {
  policy::Config config;
  policy::IdentityDefinition listener{.name = "listener", .parts = {}};
  policy::IdentityPart macro;
  macro.kind = policy::IdentityPart::Kind::Macro;
  macro.name = "daemon_name";
  listener.parts.push_back(macro);
  listener.parts.push_back(policy::IdentityPart{});  // the client address
  config.identities.push_back(listener);
  config.outbound.macros.push_back({.macro = "daemon_name", .values = {"submission"}});
  config.outbound.macros.push_back({.macro = "if_name", .values = {"smtp-out"}});
  return config;
}

TEST(ExpectedMacros, QueueIdAlwaysAndNoSaslLogin) {
  EXPECT_EQ(names(expected_macros(policy::Config{})), std::vector<std::string>{"i"});
}

TEST(ExpectedMacros, AddsEveryMacroTheConfigReadsOnce) {
  EXPECT_EQ(names(expected_macros(config_reading_macros())),
            (std::vector<std::string>{"i", "daemon_name", "if_name"}));
}

TEST(ExpectedMacros, WarningNamesTheMacroWhatItIsForAndBothMtasLists) {
  const auto expected = expected_macros(config_reading_macros());
  EXPECT_EQ(missing_macro_warning(expected[0], "6AS05870028628"),
            "macro={i} missing: the MTA sent a message without it (qid=6AS05870028628), needed for the "
            "queue id in verdict lines and quarantine entries. Sendmail: add it to "
            "confMILTER_MACROS_ENVFROM (contrib/sendmail/floodgate.mc); Postfix: to milter_mail_macros");
  EXPECT_EQ(missing_macro_warning(expected[1], "-"),
            "macro={daemon_name} missing: the MTA sent a message without it (qid=-), needed for identity "
            "listener. Sendmail: add it to confMILTER_MACROS_CONNECT (contrib/sendmail/floodgate.mc); "
            "Postfix: to milter_connect_macros");
}

TEST(MissingMacroReporter, ReportsEachMissingMacroOnlyTheFirstTime) {
  MissingMacroReporter reporter;
  const auto expected = expected_macros(config_reading_macros());
  std::set<std::string> present{"i", "if_name"};
  const auto is_present = [&](const std::string& name) { return present.contains(name); };
  EXPECT_EQ(names(reporter.newly_missing(expected, is_present)), std::vector<std::string>{"daemon_name"});
  EXPECT_TRUE(reporter.newly_missing(expected, is_present).empty());
  present.erase("i");
  EXPECT_EQ(names(reporter.newly_missing(expected, is_present)), std::vector<std::string>{"i"});
  present = {"i", "daemon_name", "if_name"};
  EXPECT_TRUE(reporter.newly_missing(expected, is_present).empty());
}

}  // namespace
}  // namespace floodgate::milter
