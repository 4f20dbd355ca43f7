// Queue clearing: postsuper's and Sendmail's reports read per message,
// what is never handed to either, and Sendmail's second try at a message a
// delivery attempt had locked (with a script standing in for sendmail; the
// real one is run by tests/integration/sendmail).
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "containment/queue_clearing.hpp"
#include "tests/unit/containment/notify_test_support.hpp"

namespace floodgate::containment {
namespace {

using policy::QueueClearing;
using Mta = policy::QuarantineSettings::Mta;

policy::QuarantineSettings postfix_at(const std::string& config_directory) {
  policy::QuarantineSettings settings;
  settings.mta = Mta::Postfix;
  settings.postfix_config_directory = config_directory;
  return settings;
}

policy::QuarantineSettings sendmail_run_as(std::vector<std::string> command) {
  policy::QuarantineSettings settings;
  settings.mta = Mta::Sendmail;
  settings.sendmail_command = std::move(command);
  return settings;
}

// Captured from postsuper 3.7 (Debian 12) holding two of three queue ids,
// and deleting one of two.
constexpr std::string_view k_hold_report =
    "postsuper: C2F23A740EE: placed on hold\n"
    "postsuper: C3934A740EF: placed on hold\n"
    "postsuper: Placed on hold: 2 messages\n";
constexpr std::string_view k_delete_report =
    "postsuper: C24C0A740ED: removed\n"
    "postsuper: Deleted: 1 message\n";

TEST(QueueClearing, HoldReportNamesHeldMessagesAndTheRestAreNotInQueue) {
  const auto actions =
      read_postsuper_report(QueueClearing::Hold, k_hold_report, {"C2F23A740EE", "C3934A740EF", "ABCDEF123"});
  ASSERT_EQ(actions.size(), 3u);
  EXPECT_EQ(actions[0].result, "held");
  EXPECT_EQ(actions[1].result, "held");
  EXPECT_EQ(actions[2].result, "not in queue");
  EXPECT_EQ(actions[2].queue_id, "ABCDEF123");
}

TEST(QueueClearing, DeleteReportNamesRemovedMessages) {
  const auto actions = read_postsuper_report(QueueClearing::Delete, k_delete_report, {"C24C0A740ED", "ZZZ999"});
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].result, "deleted");
  EXPECT_EQ(actions[1].result, "not in queue");
}

TEST(QueueClearing, AHoldPhraseDoesNotCountAsADeletion) {
  const auto actions = read_postsuper_report(QueueClearing::Delete, k_hold_report, {"C2F23A740EE"});
  EXPECT_EQ(actions[0].result, "not in queue");
}

TEST(QueueClearing, OffDoesNothing) {
  EXPECT_TRUE(clear_queued_messages(QueueClearing::Off, postfix_at(""), {"C2F23A740EE"}, "").empty());
}

TEST(QueueClearing, QueueIdsThatCouldBeOptionsAreNeverGivenToPostsuper) {
  EXPECT_TRUE(is_plain_queue_id("C2F23A740EE"));
  EXPECT_FALSE(is_plain_queue_id("-d"));
  EXPECT_FALSE(is_plain_queue_id(" ALL"));
  EXPECT_FALSE(is_plain_queue_id(""));
  EXPECT_FALSE(is_plain_queue_id("A1\nB2"));
  // Only unfit ids: postsuper is not run at all, and each says why.
  const auto actions = clear_queued_messages(QueueClearing::Hold, postfix_at("/nonexistent"), {"-d", "x y"}, "");
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].result, "failed: not a Postfix queue id");
}

TEST(QueueClearing, PostsuperThatCannotRunFailsEveryMessageWithTheReason) {
  // A configuration directory that does not exist: postsuper exits non-zero.
  const auto actions = clear_queued_messages(QueueClearing::Hold, postfix_at("/nonexistent/floodgate-test"), {"C2F23A740EE"}, "");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_TRUE(actions[0].result.starts_with("failed: ")) << "got " << actions[0].result;
}

// Captured from Sendmail 8.17.1.9 (Debian 12): `sendmail -v -Q... -qIA -qIB`
// with both deferred, and `sendmail -bp` with one locked by a queue run.
constexpr std::string_view k_sendmail_quarantine_report =
    "Processing /var/spool/mqueue:\n"
    "6AS2HVJb009446: Quarantined with \"floodgate: source frozen, incident abc\"\n"
    "6AS2HVwj009449: Quarantined with \"floodgate: source frozen, incident abc\"\n"
    "2 changes\n";
constexpr std::string_view k_sendmail_listing =
    "\t\t/var/spool/mqueue (2 requests)\n"
    "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
    "6AS2HVJb009446*       3 Sat Nov 28 02:17 <a@x.example>\n"
    "                 (Deferred: Connection refused by [127.0.0.1])\n"
    "\t\t\t\t\t <b0@y.example>\n"
    "6AS2HWE5009452        3 Sat Nov 28 02:17 <a@x.example>\n"
    "\t\t\t\t\t <b2@y.example>\n"
    "\t\tTotal requests: 2\n";

TEST(QueueClearing, SendmailReportNamesTheMessagesItQuarantined) {
  const auto quarantined = read_sendmail_quarantine_report(k_sendmail_quarantine_report);
  EXPECT_EQ(quarantined, (std::set<std::string, std::less<>>{"6AS2HVJb009446", "6AS2HVwj009449"}));
  EXPECT_TRUE(read_sendmail_quarantine_report("/var/spool/mqueue: no matches\nNo changes\n").empty());
}

TEST(QueueClearing, SendmailListingShowsWhichMessagesAreStillQueuedLockedOrNot) {
  const auto listed =
      read_sendmail_queue_listing(k_sendmail_listing, {"6AS2HVJb009446", "6AS2HWE5009452", "6AS2HVwj009449"});
  EXPECT_EQ(listed, (std::set<std::string, std::less<>>{"6AS2HVJb009446", "6AS2HWE5009452"}));
  // A queue id is not found inside a longer one.
  EXPECT_TRUE(read_sendmail_queue_listing(k_sendmail_listing, {"6AS2HVJb00944"}).empty());
}

TEST(QueueClearing, SendmailWithoutACommandFailsEveryMessageSayingSo) {
  const auto actions = clear_queued_messages(QueueClearing::Hold, sendmail_run_as({}), {"6AS2HVJb009446"}, "r");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].result, "failed: quarantine.sendmail_command is empty");
}

TEST(QueueClearing, SendmailQueueIdsThatCouldBeOptionsAreRefusedAsNotSendmails) {
  const auto actions =
      clear_queued_messages(QueueClearing::Hold, sendmail_run_as({"/bin/false"}), {"-bi", "-qI"}, "r");
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].result, "failed: not a Sendmail queue id");
}

// A stand-in for sendmail that logs each call's arguments. Its first -Q run
// skips LOCKED (as Sendmail skips a message a delivery attempt holds) and
// quarantines the rest; -bp lists LOCKED until it has been quarantined, and
// never GONE (delivered meanwhile).
constexpr const char* k_fake_sendmail = R"(dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
case "$*" in
  *-bp*) [ -e "$dir/locked-done" ] || echo "LOCKED0000001*  3 Sat Nov 28 02:17 <a@x.example>" ;;
  *-v\ -Q*)
    for arg in "$@"; do
      case "$arg" in
        -qILOCKED0000001) if [ -e "$dir/tried" ]; then touch "$dir/locked-done"; echo "LOCKED0000001: Quarantined with \"x\""; fi ;;
        -qIGONE*) ;;
        -qI*) echo "${arg#-qI}: Quarantined with \"x\"" ;;
      esac
    done
    touch "$dir/tried" ;;
  *) exit 64 ;;
esac
)";

TEST(QueueClearing, SendmailMessageLockedByADeliveryIsQuarantinedOnTheNextTryAndAGoneOneIsNotInQueue) {
  testing::ScratchDirectory directory;
  const std::string fake = testing::write_script(directory, "sendmail", k_fake_sendmail);
  const auto actions = clear_queued_messages(QueueClearing::Hold, sendmail_run_as({fake, "-C", "/x.cf"}),
                                             {"AAAA0000000001", "LOCKED0000001", "GONE000000001"},
                                             "floodgate: source frozen, incident i1\n");
  ASSERT_EQ(actions.size(), 3u);
  EXPECT_EQ(actions[0].result, "held");
  EXPECT_EQ(actions[1].result, "held");
  EXPECT_EQ(actions[2].result, "not in queue");
  // The reason goes on one line; the second try names only what was still queued.
  EXPECT_EQ(testing::read_whole_file(directory.file("calls")),
            "-C /x.cf -v -Qfloodgate: source frozen, incident i1? -qIAAAA0000000001 -qILOCKED0000001 "
            "-qIGONE000000001\n"
            "-C /x.cf -bp -qILOCKED0000001 -qIGONE000000001\n"
            "-C /x.cf -v -Qfloodgate: source frozen, incident i1? -qILOCKED0000001\n");
}

TEST(QueueClearing, SendmailMessageStillLockedAfterThreeTriesFailsSayingSo) {
  testing::ScratchDirectory directory;
  // Every -Q run skips it and -bp always lists it.
  const std::string fake = testing::write_script(
      directory, "sendmail", "echo \"$*\" >> \"$(dirname \"$0\")/calls\"\n"
                             "case \"$*\" in -bp*) echo 'LOCKED0000001* 3 Sat <a@x>' ;; esac\n");
  const auto actions =
      clear_queued_messages(QueueClearing::Hold, sendmail_run_as({fake}), {"LOCKED0000001"}, "r");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].result, "failed: still in Sendmail's queue, not quarantined (locked by a delivery attempt)");
  const std::string calls = testing::read_whole_file(directory.file("calls"));
  EXPECT_EQ(std::count(calls.begin(), calls.end(), '\n'), 6) << calls;  // three -Q runs, each checked
}

TEST(QueueClearing, SendmailThatFailsFailsEveryMessageWithItsComplaint) {
  testing::ScratchDirectory directory;
  const std::string fake =
      testing::write_script(directory, "sendmail", "echo 'sendmail: cannot open /x.cf' >&2; exit 78\n");
  const auto actions =
      clear_queued_messages(QueueClearing::Hold, sendmail_run_as({fake}), {"AAAA0000000001", "B000000000002"}, "r");
  ASSERT_EQ(actions.size(), 2u);
  for (const auto& action : actions) {
    EXPECT_TRUE(action.result.starts_with("failed: ")) << action.result;
    EXPECT_NE(action.result.find("cannot open /x.cf"), std::string::npos) << action.result;
  }
}

}  // namespace
}  // namespace floodgate::containment
