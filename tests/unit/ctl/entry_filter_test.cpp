// Which entries list/release/delete select.
#include "ctl/entry_filter.hpp"

#include <gtest/gtest.h>

namespace floodgate::ctl {
namespace {

using namespace std::chrono_literals;
using quarantine::QuarantineEntry;

const auto k_now = std::chrono::system_clock::time_point(std::chrono::hours(500000));

// EntryFilter with one or two fields set (designated initializers would
// trip -Wmissing-field-initializers).
template <typename Set>
EntryFilter filter_where(Set set) {
  EntryFilter filter;
  set(filter);
  return filter;
}

QuarantineEntry entry_aged(std::chrono::seconds age, std::string id) {
  QuarantineEntry entry;
  entry.id = std::move(id);
  entry.time = k_now - age;
  entry.client_address = "192.0.2.1";
  entry.client_name = "Web1.Example.org";
  entry.sasl_user = "newsletter";
  entry.sender = "Alice@Example.org";
  entry.reasons = {"rcpts_per_msg=200>50 (+30)"};
  return entry;
}

TEST(EntryFilter, SourceMatchesAddressNameOrSaslUserWhole) {
  const auto entry = entry_aged(1min, "a");
  for (const char* source : {"192.0.2.1", "web1.example.org", "NEWSLETTER"}) {
    EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.source = source; }).matches(entry, k_now)) << source;
  }
  for (const char* source : {"192.0.2", "web1", "news", ""}) {
    EXPECT_FALSE(filter_where([&](EntryFilter& f) { f.source = source; }).matches(entry, k_now)) << source;
  }
}

TEST(EntryFilter, SenderIgnoresCaseAndNullSenderIsWrittenAsAngleBrackets) {
  auto entry = entry_aged(1min, "a");
  EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.sender = "alice@example.ORG"; }).matches(entry, k_now));
  EXPECT_FALSE(filter_where([&](EntryFilter& f) { f.sender = "alice@example"; }).matches(entry, k_now));
  entry.sender = "";
  EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.sender = "<>"; }).matches(entry, k_now));
  EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.sender = ""; }).matches(entry, k_now));
}

TEST(EntryFilter, ReasonMatchesPartOfAnyReasonOrTheCause) {
  auto entry = entry_aged(1min, "a");
  entry.reasons.push_back("same_content=120>100 (+20)");
  entry.cause = "freeze:burst";
  EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.reason = "SAME_CONTENT"; }).matches(entry, k_now));
  EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.reason = "freeze"; }).matches(entry, k_now));
  EXPECT_FALSE(filter_where([&](EntryFilter& f) { f.reason = "messages_per_hour"; }).matches(entry, k_now));
}

TEST(EntryFilter, SinceKeepsEntriesWithinTheDuration) {
  EXPECT_TRUE(filter_where([&](EntryFilter& f) { f.since = 1h; }).matches(entry_aged(1h, "a"), k_now));
  EXPECT_FALSE(filter_where([&](EntryFilter& f) { f.since = 1h; }).matches(entry_aged(1h + 1s, "a"), k_now));
}

TEST(SelectEntries, LimitKeepsTheMostRecentInOrder) {
  std::vector<QuarantineEntry> entries{entry_aged(3h, "old"), entry_aged(2h, "middle"),
                                       entry_aged(1h, "new")};
  auto selected = select_entries(entries, filter_where([&](EntryFilter& f) { f.limit = 2; }), k_now);
  ASSERT_EQ(selected.size(), 2u);
  EXPECT_EQ(selected[0].id, "middle");
  EXPECT_EQ(selected[1].id, "new");
  EXPECT_EQ(select_entries(entries, filter_where([&](EntryFilter& f) {
                             f.since = 90min;
                             f.limit = 5;
                           }),
                           k_now)
                .size(),
            1u);
  EXPECT_EQ(select_entries(entries, EntryFilter{}, k_now).size(), 3u);
}

}  // namespace
}  // namespace floodgate::ctl
