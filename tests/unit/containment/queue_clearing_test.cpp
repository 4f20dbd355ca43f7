// Queue clearing: postsuper's report read per message, and what is never
// handed to postsuper.
#include <gtest/gtest.h>

#include "containment/queue_clearing.hpp"

namespace floodgate::containment {
namespace {

using policy::QueueClearing;

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
  EXPECT_TRUE(clear_queued_messages(QueueClearing::Off, "", {"C2F23A740EE"}).empty());
}

TEST(QueueClearing, QueueIdsThatCouldBeOptionsAreNeverGivenToPostsuper) {
  EXPECT_TRUE(is_plain_queue_id("C2F23A740EE"));
  EXPECT_FALSE(is_plain_queue_id("-d"));
  EXPECT_FALSE(is_plain_queue_id(" ALL"));
  EXPECT_FALSE(is_plain_queue_id(""));
  EXPECT_FALSE(is_plain_queue_id("A1\nB2"));
  // Only unfit ids: postsuper is not run at all, and each says why.
  const auto actions = clear_queued_messages(QueueClearing::Hold, "/nonexistent", {"-d", "x y"});
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].result, "failed: not a Postfix queue id");
}

TEST(QueueClearing, PostsuperThatCannotRunFailsEveryMessageWithTheReason) {
  // A configuration directory that does not exist: postsuper exits non-zero.
  const auto actions = clear_queued_messages(QueueClearing::Hold, "/nonexistent/floodgate-test", {"C2F23A740EE"});
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_TRUE(actions[0].result.starts_with("failed: ")) << "got " << actions[0].result;
}

}  // namespace
}  // namespace floodgate::containment
