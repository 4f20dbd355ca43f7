// MessageSession::quarantine(): the message is discarded only once the spool
// holds it; every way of failing to store it becomes a tempfail.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "milter/session.hpp"
#include "policy/config_loader.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace floodgate::milter {
namespace {

using namespace std::chrono_literals;
using policy::Action;

std::shared_ptr<const policy::Config> config_with(const std::string& quarantine_section) {
  return policy::load_config_text(R"(
outbound:
  client_networks: [10.0.0.0/8]
rules:
  - name: rcpts_per_msg
    signal: recipients_per_message
    threshold: 50
    points: 20
actions:
  quarantine: 20
)" + quarantine_section,
                                  "test.yaml");
}

class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "floodgate-session-XXXXXX").string();
    m_path = mkdtemp(pattern.data());
  }
  ~TemporaryDirectory() { std::filesystem::remove_all(m_path); }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

// Passes every call through to the real filesystem, except writes, which
// fail as on a full disk.
class DiskFullFilesystem final : public quarantine::SpoolFilesystem {
 public:
  int create_exclusive(const std::string& path, int& fd) override { return m_real->create_exclusive(path, fd); }
  int write_all(int, const char*, std::size_t) override { return ENOSPC; }
  int sync_file(int fd) override { return m_real->sync_file(fd); }
  int close_file(int fd) override { return m_real->close_file(fd); }
  int rename_file(const std::string& from, const std::string& to) override { return m_real->rename_file(from, to); }
  int sync_directory(const std::string& path) override { return m_real->sync_directory(path); }
  int remove_file(const std::string& path) override { return m_real->remove_file(path); }

 private:
  std::shared_ptr<quarantine::SpoolFilesystem> m_real = quarantine::make_posix_spool_filesystem();
};

const auto k_now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

class SessionQuarantineTest : public ::testing::Test {
 protected:
  std::unique_ptr<quarantine::SpoolStore> open_spool(
      std::shared_ptr<quarantine::SpoolFilesystem> filesystem = quarantine::make_posix_spool_filesystem()) {
    auto spool = quarantine::SpoolStore::open_spool(m_dir.path() + "/spool", std::move(filesystem));
    EXPECT_TRUE(spool) << (spool ? "" : spool.error().message);
    return spool ? std::move(*spool) : nullptr;
  }

  // A 200-recipient message through a session; returns the final decision.
  using Headers = std::vector<std::pair<std::string, std::string>>;
  Decision send_bulk(const std::shared_ptr<const policy::Config>& config, quarantine::SpoolStore* spool,
                     const std::string& body = "Tell a friend!\r\n",
                     const Headers& headers = {{"Subject", " Caf\xc3\xa9 offer"}, {"From", " web@example.com"}}) {
    ConnectionInfo connection;
    connection.client_address = "10.1.1.1";
    connection.client_name = "web1.example";
    connection.helo = "web1.example";
    const bool keep_copy = spool && config->quarantine.mode == policy::QuarantineSettings::Mode::Spool;
    MessageSession session(config, connection, keep_copy ? spool->temporary_directory() : std::string());
    session.set_macro("i", "4QID1");
    session.set_sender("<web@example.com>");
    for (int i = 0; i < 200; ++i) session.add_recipient("<f" + std::to_string(i) + "@example.net>", false);
    for (const auto& [name, value] : headers) session.add_header(name, value);
    session.add_body_chunk(body);
    const Decision decision = session.decide(m_counters, ratelimit::TimePoint(1'800'000'000'000ms));
    return session.quarantine(decision, spool, k_now);
  }

  TemporaryDirectory m_dir;
  ratelimit::MemoryCounterStore m_counters;
};

TEST_F(SessionQuarantineTest, StoresTheMessageAsReceivedThenDiscardsIt) {
  auto spool = open_spool();
  const Decision decision = send_bulk(config_with("quarantine: {mode: spool}\n"), spool.get());
  EXPECT_EQ(decision.action, Action::Quarantine);
  EXPECT_TRUE(decision.discard);
  ASSERT_FALSE(decision.quarantine_id.empty());

  const auto entries = spool->list();
  ASSERT_EQ(entries.size(), 1u);
  const auto& entry = entries[0];
  EXPECT_EQ(entry.id, decision.quarantine_id);
  EXPECT_EQ(entry.queue_id, "4QID1");
  EXPECT_EQ(entry.client_address, "10.1.1.1");
  EXPECT_EQ(entry.helo, "web1.example");
  EXPECT_EQ(entry.sender, "web@example.com");
  EXPECT_EQ(entry.recipients.size(), 200u);
  EXPECT_EQ(entry.recipients[199], "f199@example.net");
  EXPECT_EQ(entry.subject, "Caf\xc3\xa9 offer");
  EXPECT_EQ(entry.score, 20);
  EXPECT_EQ(entry.reasons, std::vector<std::string>{"rcpts_per_msg=200>50 (+20)"});

  std::ostringstream message;
  ASSERT_TRUE(spool->read_message(entry.id, message));
  EXPECT_EQ(message.str(), "Subject: Caf\xc3\xa9 offer\r\nFrom: web@example.com\r\n\r\nTell a friend!\r\n");
  EXPECT_EQ(entry.size_bytes, message.str().size());
}

// The stored copy of folded headers: bare LFs (as libmilter may pass a
// folded value) become CRLF, CRLFs stay as they are; the subject is the
// first Subject header whatever the case of its name.
TEST_F(SessionQuarantineTest, FoldedHeadersAreStoredWithCrlfAndTheFirstSubjectIsKept) {
  auto spool = open_spool();
  const Decision decision = send_bulk(config_with("quarantine: {mode: spool}\n"), spool.get(), "Body\r\n",
                                      {{"SUBJECT", " First\n\tfolded"},
                                       {"Subject", " Second"},
                                       {"X-Mixed", " a\n\tb\r\n\tc\n"},
                                       {"X-Starts-Folded", "\n\tx\r\n\ty"},
                                       {"X-Empty", ""}});
  ASSERT_EQ(decision.action, Action::Quarantine);
  const auto entries = spool->list();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].subject, "First\n\tfolded");
  std::ostringstream message;
  ASSERT_TRUE(spool->read_message(entries[0].id, message));
  EXPECT_EQ(message.str(),
            "SUBJECT: First\r\n\tfolded\r\nSubject: Second\r\nX-Mixed: a\r\n\tb\r\n\tc\r\n\r\n"
            "X-Starts-Folded:\r\n\tx\r\n\ty\r\nX-Empty:\r\n\r\nBody\r\n");
}

TEST_F(SessionQuarantineTest, MessageOverTheSizeCapIsTempfailedAndNotStored) {
  auto spool = open_spool();
  const Decision decision =
      send_bulk(config_with("quarantine: {mode: spool, max_message_bytes: 100}\n"), spool.get(), std::string(500, 'x'));
  EXPECT_EQ(decision.action, Action::Tempfail);
  EXPECT_FALSE(decision.discard);
  ASSERT_TRUE(decision.reply);
  EXPECT_EQ(decision.reply->code, "451");
  EXPECT_EQ(decision.reply->status, "4.3.0");
  EXPECT_NE(decision.quarantine_failure.find("max_message_bytes"), std::string::npos) << decision.quarantine_failure;
  EXPECT_TRUE(spool->list().empty());
}

TEST_F(SessionQuarantineTest, NoUsableSpoolTempfails) {
  const Decision decision = send_bulk(config_with("quarantine: {mode: spool}\n"), nullptr);
  EXPECT_EQ(decision.action, Action::Tempfail);
  EXPECT_FALSE(decision.discard);
  EXPECT_EQ(decision.quarantine_failure, "no usable quarantine spool");
}

TEST_F(SessionQuarantineTest, DiskFullTempfailsAndLeavesNoEntry) {
  auto spool = open_spool(std::make_shared<DiskFullFilesystem>());
  const Decision decision = send_bulk(config_with("quarantine: {mode: spool}\n"), spool.get());
  EXPECT_EQ(decision.action, Action::Tempfail);
  EXPECT_FALSE(decision.discard);
  EXPECT_NE(decision.quarantine_failure.find("No space left on device"), std::string::npos)
      << decision.quarantine_failure;
  EXPECT_TRUE(spool->list().empty());
}

TEST_F(SessionQuarantineTest, HoldModeKeepsTheHoldAndRecordsMetadataOnly) {
  auto spool = open_spool();
  const Decision decision = send_bulk(config_with("quarantine: {mode: hold}\n"), spool.get());
  EXPECT_EQ(decision.action, Action::Quarantine);
  EXPECT_FALSE(decision.discard);  // the MTA's hold queue keeps the message
  const auto entries = spool->list();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].mode, quarantine::EntryMode::Hold);
  EXPECT_EQ(entries[0].queue_id, "4QID1");
  // The message itself is in the MTA's hold queue, not in the spool.
  std::ostringstream message;
  const auto read = spool->read_message(entries[0].id, message);
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message.find("hold queue (queue id \"4QID1\")"), std::string::npos) << read.error().message;
}

TEST_F(SessionQuarantineTest, OtherVerdictsPassThroughUntouched) {
  auto spool = open_spool();
  ConnectionInfo connection;
  connection.client_address = "10.1.1.1";
  const auto config = config_with("quarantine: {mode: spool}\n");
  MessageSession session(config, connection, spool->temporary_directory());
  session.add_recipient("<one@example.net>", false);
  session.add_body_chunk("hello\r\n");
  const Decision decision =
      session.quarantine(session.decide(m_counters, ratelimit::TimePoint(1'800'000'000'000ms)), spool.get(), k_now);
  EXPECT_EQ(decision.action, Action::Accept);
  EXPECT_TRUE(spool->list().empty());
}

}  // namespace
}  // namespace floodgate::milter
