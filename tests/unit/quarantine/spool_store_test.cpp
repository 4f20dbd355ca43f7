#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "quarantine/spool_store.hpp"
#include "quarantine_test_support.hpp"

namespace floodgate::quarantine {
namespace {

using namespace std::string_literals;
using testing::names_in;
using testing::permissions_of;
using testing::sample_entry;
using testing::sample_time;
using testing::ScratchDirectory;

std::unique_ptr<SpoolStore> open_or_die(const std::string& dir,
                                        std::shared_ptr<SpoolFilesystem> fs = make_posix_spool_filesystem()) {
  auto store = SpoolStore::open_spool(dir, std::move(fs));
  if (!store) {
    ADD_FAILURE() << "open_spool: " << store.error().message;
    return nullptr;
  }
  return std::move(*store);
}

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

std::string message_of(const SpoolStore& store, const std::string& id) {
  std::ostringstream out;
  auto read = store.read_message(id, out);
  EXPECT_TRUE(read) << read.error().message;
  return out.str();
}

void write_file(const std::string& path, std::string_view content) {
  std::ofstream(path, std::ios::binary) << content;
}

class SpoolStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_store = open_or_die(m_dir.path() + "/spool");
    ASSERT_NE(m_store, nullptr);
  }

  // Stores `entry` with `message` through a MessageBuffer, as the milter does.
  void store(const QuarantineEntry& entry, std::string_view message, std::size_t memory_limit = 64 * 1024) {
    MessageBuffer buffer(m_store->temporary_directory(), memory_limit, 100ull << 20);
    buffer.append(message);
    auto stored = m_store->store(entry, &buffer);
    ASSERT_TRUE(stored) << stored.error().message;
  }

  std::string spool() const { return m_dir.path() + "/spool"; }

  ScratchDirectory m_dir;
  std::unique_ptr<SpoolStore> m_store;
};

TEST_F(SpoolStoreTest, StoredEntryReadsBackWithItsMessage) {
  QuarantineEntry entry = sample_entry(sample_time(), 0xabc);
  entry.size_bytes = 999;  // wrong on purpose: store() records the real size
  store(entry, "Subject: Hello\r\n\r\nbody\r\n");

  auto back = m_store->read_metadata(entry.id);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, entry.id);
  EXPECT_EQ(back->time, entry.time);
  EXPECT_EQ(back->sender, "news@example.net");
  EXPECT_EQ(back->recipients, entry.recipients);
  EXPECT_EQ(back->size_bytes, 24u);
  EXPECT_EQ(back->score, 42);
  EXPECT_EQ(back->reasons, entry.reasons);
  EXPECT_EQ(back->fingerprint, entry.fingerprint);
  EXPECT_EQ(message_of(*m_store, entry.id), "Subject: Hello\r\n\r\nbody\r\n");
  EXPECT_EQ(names_in(spool() + "/tmp"), std::vector<std::string>{});
}

TEST_F(SpoolStoreTest, KeepsHostileMetadataByteForByte) {
  QuarantineEntry entry = sample_entry(sample_time(), 1);
  entry.subject = "=?x?= Gr\xfc\xdf" "e \xe2\x82\xac \0 end"s;
  entry.sender = "\xff\xfe\0@example.net"s;
  entry.helo = "\0"s;
  entry.client_name = std::string(10000, '\xc3');
  entry.recipients.clear();
  for (int i = 0; i < 5000; ++i) {
    entry.recipients.push_back("user" + std::to_string(i) + (i % 3 == 0 ? "\xe9" : "") + "@example.org");
  }
  entry.reasons = {std::string(100000, 'r'), "\x80\x81"};
  store(entry, "m");

  auto back = m_store->read_metadata(entry.id);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->subject, entry.subject);
  EXPECT_EQ(back->sender, entry.sender);
  EXPECT_EQ(back->helo, entry.helo);
  EXPECT_EQ(back->client_name, entry.client_name);
  EXPECT_EQ(back->recipients, entry.recipients);
  EXPECT_EQ(back->reasons, entry.reasons);
  const auto listed = m_store->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].recipients.size(), 5000u);
}

TEST_F(SpoolStoreTest, HoldModeEntryHasNoMessage) {
  QuarantineEntry entry = sample_entry(sample_time(), 2);
  entry.mode = EntryMode::Hold;
  entry.size_bytes = 12345;  // as the MTA saw it
  ASSERT_TRUE(m_store->store(entry, nullptr));
  auto back = m_store->read_metadata(entry.id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->mode, EntryMode::Hold);
  EXPECT_EQ(back->size_bytes, 12345u);
  EXPECT_EQ(back->queue_id, "4Xyz1234AB");
  std::ostringstream out;
  auto read = m_store->read_message(entry.id, out);
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message.find("hold mode"), std::string::npos) << read.error().message;
}

TEST_F(SpoolStoreTest, ModeAndMessageMustAgree) {
  QuarantineEntry spool_entry = sample_entry(sample_time(), 3);
  EXPECT_FALSE(m_store->store(spool_entry, nullptr));
  QuarantineEntry hold_entry = sample_entry(sample_time(), 4);
  hold_entry.mode = EntryMode::Hold;
  MessageBuffer buffer(m_store->temporary_directory(), 10, 10);
  EXPECT_FALSE(m_store->store(hold_entry, &buffer));
  EXPECT_TRUE(m_store->list().empty());
}

TEST_F(SpoolStoreTest, OverflowedOrFailedBufferIsNotStored) {
  QuarantineEntry entry = sample_entry(sample_time(), 5);
  MessageBuffer big(m_store->temporary_directory(), 10, 20);
  big.append(std::string(21, 'x'));
  auto stored = m_store->store(entry, &big);
  ASSERT_FALSE(stored);
  EXPECT_NE(stored.error().message.find("over the size cap"), std::string::npos) << stored.error().message;

  MessageBuffer broken(m_dir.path() + "/nowhere", 0, 20);
  broken.append("x");
  stored = m_store->store(entry, &broken);
  ASSERT_FALSE(stored);
  EXPECT_NE(stored.error().message.find("No such file or directory"), std::string::npos);
  EXPECT_TRUE(m_store->list().empty());
}

TEST_F(SpoolStoreTest, SpilledThreeMegabyteMessageReadsBackByteExact) {
  const std::string message = random_bytes(3 * 1024 * 1024 + 5, 9);
  QuarantineEntry entry = sample_entry(sample_time(), 6);
  MessageBuffer buffer(m_store->temporary_directory(), 64 * 1024, 50ull << 20);
  for (std::size_t at = 0; at < message.size(); at += 65536) buffer.append(std::string_view(message).substr(at, 65536));
  ASSERT_TRUE(buffer.spilled());
  ASSERT_TRUE(m_store->store(entry, &buffer));
  EXPECT_TRUE(message_of(*m_store, entry.id) == message);
  std::string pieces;
  std::size_t largest = 0;
  ASSERT_TRUE(m_store->for_each_message_piece(entry.id, [&](std::string_view piece) {
    largest = std::max(largest, piece.size());
    pieces.append(piece);
    return true;
  }));
  EXPECT_TRUE(pieces == message);
  EXPECT_LE(largest, 64u * 1024);
  EXPECT_EQ(m_store->read_metadata(entry.id)->size_bytes, message.size());
}

TEST_F(SpoolStoreTest, ListsOldestFirstAndReportsGarbageFiles) {
  store(sample_entry(sample_time(30), 0xc), "c");
  store(sample_entry(sample_time(10), 0xa), "a");
  store(sample_entry(sample_time(20), 0xb), "b");
  const std::string id = make_entry_id(sample_time(5), 0xd);
  write_file(spool() + "/" + id + ".fgq", "not an entry");
  write_file(spool() + "/not-an-id.fgq", "x");
  write_file(spool() + "/README", "notes");  // not *.fgq: not ours to judge
  // A valid entry under another id's name must not be believed.
  ASSERT_EQ(::link((spool() + "/" + make_entry_id(sample_time(10), 0xa) + ".fgq").c_str(),
                   (spool() + "/" + make_entry_id(sample_time(1), 0xe) + ".fgq").c_str()),
            0);

  std::vector<std::string> problems;
  const auto entries = m_store->list(&problems);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].id, make_entry_id(sample_time(10), 0xa));
  EXPECT_EQ(entries[1].id, make_entry_id(sample_time(20), 0xb));
  EXPECT_EQ(entries[2].id, make_entry_id(sample_time(30), 0xc));
  ASSERT_EQ(problems.size(), 3u);
  std::sort(problems.begin(), problems.end());
  // Sorted by path: the linked copy's id (second 1) before the garbage (second 5).
  EXPECT_NE(problems[0].find("metadata names another entry id"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("not a Floodgate quarantine entry"), std::string::npos) << problems[1];
  EXPECT_NE(problems[2].find("not-an-id.fgq: file name is not an entry id"), std::string::npos) << problems[2];
  EXPECT_FALSE(m_store->read_metadata(id));
}

TEST_F(SpoolStoreTest, TruncatedEntryIsReportedNotListed) {
  const QuarantineEntry entry = sample_entry(sample_time(), 7);
  store(entry, std::string(1000, 'm'));
  const std::string path = spool() + "/" + entry.id + ".fgq";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  for (const off_t cut : {st.st_size - 1, st.st_size - 1000, off_t{30}, off_t{10}, off_t{0}}) {
    ASSERT_EQ(::truncate(path.c_str(), cut), 0);
    std::vector<std::string> problems;
    EXPECT_TRUE(m_store->list(&problems).empty()) << "cut at " << cut;
    EXPECT_EQ(problems.size(), 1u) << "cut at " << cut;
    EXPECT_FALSE(m_store->read_metadata(entry.id)) << "cut at " << cut;
  }
}

TEST_F(SpoolStoreTest, RefusesIdsThatCouldLeaveTheSpool) {
  write_file(m_dir.path() + "/victim", "keep me");
  for (const std::string& id : {"../victim"s, "/etc/passwd"s, "a/b"s, ""s, ".."s, "tmp"s,
                               "20261127T101500Z-0123456789ABCDEF"s, "20261127T101500Z-0123456789abcde\0"s,
                               std::string(300, 'a')}) {
    auto read = m_store->read_metadata(id);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message.rfind("invalid entry id", 0), 0u) << read.error().message;
    EXPECT_FALSE(m_store->remove(id));
    EXPECT_FALSE(m_store->replace_recipients(id, {"x@y"}));
    std::ostringstream out;
    EXPECT_FALSE(m_store->read_message(id, out));
    QuarantineEntry entry = sample_entry(sample_time(), 1);
    entry.id = id;
    MessageBuffer buffer(m_store->temporary_directory(), 10, 10);
    EXPECT_FALSE(m_store->store(entry, &buffer));
  }
  std::ifstream victim(m_dir.path() + "/victim");
  std::string content;
  std::getline(victim, content);
  EXPECT_EQ(content, "keep me");
  EXPECT_TRUE(m_store->list().empty());
}

TEST_F(SpoolStoreTest, UnknownIdIsReportedAsNoEntry) {
  const std::string id = make_entry_id(sample_time(), 0x77);
  auto read = m_store->read_metadata(id);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().message, "no entry " + id);
  auto removed = m_store->remove(id);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().message, "no entry " + id);
}

TEST_F(SpoolStoreTest, RefusesToOverwriteAnExistingEntry) {
  const QuarantineEntry entry = sample_entry(sample_time(), 8);
  store(entry, "first");
  MessageBuffer buffer(m_store->temporary_directory(), 100, 100);
  buffer.append("second");
  auto again = m_store->store(entry, &buffer);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("exists already"), std::string::npos) << again.error().message;
  EXPECT_EQ(message_of(*m_store, entry.id), "first");
  EXPECT_TRUE(names_in(spool() + "/tmp").empty());
}

TEST_F(SpoolStoreTest, RemoveDeletesOnlyThatEntry) {
  const QuarantineEntry a = sample_entry(sample_time(1), 1);
  const QuarantineEntry b = sample_entry(sample_time(2), 2);
  store(a, "a");
  store(b, "b");
  ASSERT_TRUE(m_store->remove(a.id));
  const auto left = m_store->list();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, b.id);
  EXPECT_FALSE(m_store->remove(a.id));
}

TEST_F(SpoolStoreTest, ReplaceRecipientsKeepsTheMessageAndTheRest) {
  QuarantineEntry entry = sample_entry(sample_time(), 9);
  entry.recipients = {"a@x", "b@x", "c@x"};
  const std::string message = random_bytes(300000, 4);
  store(entry, message);
  ASSERT_TRUE(m_store->replace_recipients(entry.id, {"b@x", "\xff@x"}));
  auto back = m_store->read_metadata(entry.id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->recipients, (std::vector<std::string>{"b@x", "\xff@x"}));
  EXPECT_EQ(back->subject, entry.subject);
  EXPECT_EQ(back->time, entry.time);
  EXPECT_EQ(back->size_bytes, message.size());
  EXPECT_TRUE(message_of(*m_store, entry.id) == message);
  EXPECT_EQ(permissions_of(spool() + "/" + entry.id + ".fgq"), 0600u);
  EXPECT_TRUE(names_in(spool() + "/tmp").empty());
}

TEST_F(SpoolStoreTest, ReplaceRecipientsOfHoldEntry) {
  QuarantineEntry entry = sample_entry(sample_time(), 10);
  entry.mode = EntryMode::Hold;
  ASSERT_TRUE(m_store->store(entry, nullptr));
  ASSERT_TRUE(m_store->replace_recipients(entry.id, {"only@x"}));
  EXPECT_EQ(m_store->read_metadata(entry.id)->recipients, std::vector<std::string>{"only@x"});
}

TEST_F(SpoolStoreTest, ReplaceRecipientsOfRemovedEntryFails) {
  const QuarantineEntry entry = sample_entry(sample_time(), 11);
  store(entry, "m");
  ASSERT_TRUE(m_store->remove(entry.id));
  EXPECT_FALSE(m_store->replace_recipients(entry.id, {"x@y"}));
  EXPECT_TRUE(m_store->list().empty());
}

TEST_F(SpoolStoreTest, PurgeRemovesEntriesOlderThanTheCutoff) {
  for (int age_days : {40, 31, 30, 29, 1}) {
    store(sample_entry(sample_time(-age_days * 86400), static_cast<std::uint64_t>(age_days)), "m");
  }
  const auto cutoff = sample_time(-30 * 86400);  // retention: 30 days
  auto purged = m_store->purge_older_than(cutoff);
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_EQ(*purged, 2u);
  const auto left = m_store->list();
  ASSERT_EQ(left.size(), 3u);
  for (const auto& entry : left) EXPECT_GE(entry.time, cutoff);
  EXPECT_EQ(*m_store->purge_older_than(cutoff), 0u);
  EXPECT_EQ(*m_store->purge_older_than(sample_time(1)), 3u);
  EXPECT_TRUE(m_store->list().empty());
}

TEST_F(SpoolStoreTest, PurgeLeavesUnreadableFilesForTheOperator) {
  write_file(spool() + "/" + make_entry_id(sample_time(-1000000), 1) + ".fgq", "garbage");
  EXPECT_EQ(*m_store->purge_older_than(sample_time()), 0u);
  EXPECT_EQ(names_in(spool()).size(), 2u);  // tmp + the garbage
}

TEST_F(SpoolStoreTest, StatsCountEntriesBytesAndOldest) {
  SpoolStats empty = m_store->stats();
  EXPECT_EQ(empty.entries, 0u);
  EXPECT_EQ(empty.bytes, 0u);
  EXPECT_FALSE(empty.oldest);
  store(sample_entry(sample_time(5), 1), std::string(1000, 'a'));
  store(sample_entry(sample_time(3), 2), std::string(2000, 'b'));
  const SpoolStats stats = m_store->stats();
  EXPECT_EQ(stats.entries, 2u);
  std::uint64_t on_disk = 0;
  for (const auto& name : names_in(spool())) {
    struct stat st {};
    if (name != "tmp" && ::stat((spool() + "/" + name).c_str(), &st) == 0) on_disk += static_cast<std::uint64_t>(st.st_size);
  }
  EXPECT_EQ(stats.bytes, on_disk);
  EXPECT_GT(stats.bytes, 3000u);
  ASSERT_TRUE(stats.oldest);
  EXPECT_EQ(*stats.oldest, sample_time(3));
}

// The umask must not decide who can read quarantined mail, nor lock the
// daemon out of its own files (umask 0277 would drop the owner's write bit).
TEST(SpoolStoreOpen, CreatesDirectories0700AndFiles0600WhateverTheUmask) {
  for (const mode_t umask_value : {mode_t{0}, mode_t{022}, mode_t{0277}}) {
    ScratchDirectory dir;
    const mode_t old = ::umask(umask_value);
    auto store = open_or_die(dir.path() + "/a/b/spool");
    if (store != nullptr) {
      MessageBuffer buffer(store->temporary_directory(), 10, 100);
      buffer.append("message");
      const QuarantineEntry entry = sample_entry(sample_time(), 1);
      EXPECT_TRUE(store->store(entry, &buffer));
      EXPECT_EQ(permissions_of(dir.path() + "/a/b/spool/" + entry.id + ".fgq"), 0600u) << "umask " << umask_value;
    }
    ::umask(old);
    EXPECT_EQ(permissions_of(dir.path() + "/a/b/spool"), 0700u) << "umask " << umask_value;
    EXPECT_EQ(permissions_of(dir.path() + "/a/b/spool/tmp"), 0700u) << "umask " << umask_value;
  }
}

TEST(SpoolStoreOpen, LeavesTheModeOfAnExistingDirectoryAlone) {
  ScratchDirectory dir;
  ASSERT_EQ(::mkdir((dir.path() + "/spool").c_str(), 0750), 0);
  ASSERT_EQ(::chmod((dir.path() + "/spool").c_str(), 0750), 0);
  ASSERT_NE(open_or_die(dir.path() + "/spool"), nullptr);
  EXPECT_EQ(permissions_of(dir.path() + "/spool"), 0750u);
  EXPECT_EQ(permissions_of(dir.path() + "/spool/tmp"), 0700u);
}

TEST(SpoolStoreOpen, RemovesStaleTemporaryFilesAndNothingElse) {
  ScratchDirectory dir;
  const std::string spool = dir.path() + "/spool";
  {
    auto store = open_or_die(spool);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->cleaned_at_open(), 0u);
    MessageBuffer buffer(store->temporary_directory(), 10, 100);
    buffer.append("m");
    ASSERT_TRUE(store->store(sample_entry(sample_time(), 1), &buffer));
  }
  write_file(spool + "/tmp/" + make_entry_id(sample_time(), 2) + ".0011223344556677.partial", "half");
  write_file(spool + "/tmp/spill-AbC123", "spilled");
  write_file(spool + "/tmp/.probe-0011223344556677", "");
  write_file(spool + "/.probe-8899aabbccddeeff", "");
  write_file(spool + "/tmp/operator-notes", "keep");
  auto store = open_or_die(spool);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->cleaned_at_open(), 4u);
  EXPECT_EQ(names_in(spool + "/tmp"), std::vector<std::string>{"operator-notes"});
  EXPECT_EQ(store->list().size(), 1u);
}

// A CLI opening the spool while the daemon writes an entry must not take
// the half-written file away: the writer holds a lock on it.
TEST(SpoolStoreOpen, KeepsTemporaryFilesAWriterStillHolds) {
  ScratchDirectory dir;
  const std::string spool = dir.path() + "/spool";
  ASSERT_NE(open_or_die(spool), nullptr);
  const std::string busy = spool + "/tmp/" + make_entry_id(sample_time(), 3) + ".0011223344556677.partial";
  const int fd = ::open(busy.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  auto store = open_or_die(spool);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->cleaned_at_open(), 0u);
  EXPECT_EQ(names_in(spool + "/tmp").size(), 1u);
  ::close(fd);
  EXPECT_EQ(open_or_die(spool)->cleaned_at_open(), 1u);
}

// Tests run as root, where mode bits do not stop writes; a file where the
// spool directory should be, and a filesystem that refuses to create, do.
TEST(SpoolStoreOpen, FileInPlaceOfTheDirectoryIsAClearError) {
  ScratchDirectory dir;
  write_file(dir.path() + "/spool", "a file");
  auto store = SpoolStore::open_spool(dir.path() + "/spool");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().message, "spool directory " + dir.path() + "/spool: not a directory");

  write_file(dir.path() + "/parent", "a file");
  store = SpoolStore::open_spool(dir.path() + "/parent/spool");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().message, "create spool directory " + dir.path() + "/parent/spool: Not a directory");

  ASSERT_EQ(::mkdir((dir.path() + "/s2").c_str(), 0700), 0);
  write_file(dir.path() + "/s2/tmp", "a file");
  store = SpoolStore::open_spool(dir.path() + "/s2");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().message, "spool directory " + dir.path() + "/s2/tmp: not a directory");
}

TEST(SpoolStoreOpen, UnwritableSpoolIsAClearError) {
  ScratchDirectory dir;
  auto fs = std::make_shared<testing::FaultySpoolFilesystem>();
  fs->arm(1, EACCES, /*sticky=*/true);
  auto store = SpoolStore::open_spool(dir.path() + "/spool", fs);
  ASSERT_FALSE(store);
  const std::string& message = store.error().message;
  EXPECT_EQ(message.rfind("spool directory " + dir.path() + "/spool is not writable: create " + dir.path() +
                              "/spool/tmp/.probe-",
                          0),
            0u)
      << message;
  EXPECT_TRUE(message.ends_with(": Permission denied")) << message;
}

TEST(SpoolStoreOpen, EmptyPathIsRefused) { EXPECT_FALSE(SpoolStore::open_spool("")); }

}  // namespace
}  // namespace floodgate::quarantine
