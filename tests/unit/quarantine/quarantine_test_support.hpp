// Test helpers for the quarantine: a scratch directory, a fault-injecting
// SpoolFilesystem, sample entries.
#pragma once

#include "tests/support/scratch_directory.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "quarantine/entry.hpp"
#include "quarantine/spool_filesystem.hpp"

namespace floodgate::quarantine::testing {

// A fresh directory under TMPDIR, removed with everything in it.
class ScratchDirectory : public floodgate::testing::ScratchDirectory {
 public:
  ScratchDirectory() : floodgate::testing::ScratchDirectory("floodgate-quarantine") {}
};

inline std::vector<std::string> names_in(const std::string& directory) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& item : std::filesystem::directory_iterator(directory, error)) {
    names.push_back(item.path().filename().string());
  }
  return names;
}

inline mode_t permissions_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Passes calls to the real filesystem, except that the Nth call after
// arm() fails with `error` without doing anything. `sticky` makes every
// later call fail too, which leaves the disk as a crash at that moment
// would (nothing after the fault happens). close_file always releases the
// descriptor, as Linux does even when close() fails.
class FaultySpoolFilesystem final : public SpoolFilesystem {
 public:
  void arm(int fail_at_call, int error, bool sticky) {
    m_calls = 0;
    m_fail_at = fail_at_call;
    m_error = error;
    m_sticky = sticky;
    m_names.clear();
  }
  void disarm() { m_fail_at = 0; }
  int calls() const { return m_calls; }
  const std::vector<std::string>& call_names() const { return m_names; }

  int create_exclusive(const std::string& path, int& fd) override {
    if (const int e = fault("create_exclusive")) return e;
    return m_real->create_exclusive(path, fd);
  }
  int write_all(int fd, const char* data, std::size_t size) override {
    if (const int e = fault("write_all")) return e;
    return m_real->write_all(fd, data, size);
  }
  int sync_file(int fd) override {
    if (const int e = fault("sync_file")) return e;
    return m_real->sync_file(fd);
  }
  int close_file(int fd) override {
    if (const int e = fault("close_file")) {
      ::close(fd);
      return e;
    }
    return m_real->close_file(fd);
  }
  int rename_file(const std::string& from, const std::string& to) override {
    if (const int e = fault("rename_file")) return e;
    return m_real->rename_file(from, to);
  }
  int sync_directory(const std::string& path) override {
    if (const int e = fault("sync_directory")) return e;
    return m_real->sync_directory(path);
  }
  int remove_file(const std::string& path) override {
    if (const int e = fault("remove_file")) return e;
    return m_real->remove_file(path);
  }

 private:
  int fault(const char* name) {
    ++m_calls;
    if (m_fail_at == 0) {
      m_names.push_back(name);
      return 0;
    }
    if (m_calls == m_fail_at || (m_sticky && m_calls > m_fail_at)) return m_error;
    return 0;
  }

  std::shared_ptr<SpoolFilesystem> m_real = make_posix_spool_filesystem();
  int m_calls = 0;
  int m_fail_at = 0;
  int m_error = 0;
  bool m_sticky = false;
  std::vector<std::string> m_names;
};

inline QuarantineEntry sample_entry(std::chrono::system_clock::time_point time, std::uint64_t random_bits) {
  QuarantineEntry entry;
  entry.id = make_entry_id(time, random_bits);
  entry.time = time;
  entry.queue_id = "4Xyz1234AB";
  entry.client_address = "192.0.2.10";
  entry.client_name = "web1.example.net";
  entry.helo = "web1";
  entry.sasl_user = "newsletter";
  entry.sender = "news@example.net";
  entry.recipients = {"a@example.org", "b@example.com"};
  entry.subject = "Hello";
  entry.score = 42;
  entry.reasons = {"rcpts_per_msg=200>50 (+10)", "msgs_per_hour=900>500 (+32)"};
  entry.fingerprint = "exact:1a2b3c4d5e6f7a8b";
  return entry;
}

// 2026-11-27 10:15:00 UTC plus `seconds`.
inline std::chrono::system_clock::time_point sample_time(long seconds = 0) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1795774500 + seconds));
}

}  // namespace floodgate::quarantine::testing
