// ScratchDirectory: a fresh directory under TMPDIR for one test, removed
// with everything in it when the test ends. Shared by the unit tests of
// every module that writes files (quarantine spool, helper programs).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace floodgate::testing {

class ScratchDirectory {
 public:
  // `prefix` names the directory ("floodgate-quarantine-XXXXXX"), for
  // whoever finds one left behind by a crashed test.
  explicit ScratchDirectory(const std::string& prefix = "floodgate-test") {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    m_path = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(m_path, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;

  const std::string& path() const { return m_path; }
  std::string file(const std::string& name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

}  // namespace floodgate::testing
