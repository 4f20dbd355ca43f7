// Test helpers for running helper programs and notifications: a scratch
// directory, small files and executable scripts in it.
#pragma once

#include "tests/support/scratch_directory.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace floodgate::containment::testing {

// A fresh directory under TMPDIR, removed with everything in it.
class ScratchDirectory : public floodgate::testing::ScratchDirectory {
 public:
  ScratchDirectory() : floodgate::testing::ScratchDirectory("floodgate-notify") {}
};

inline std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_whole_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// Writes `body` under "#!/bin/sh" as an executable script; returns its path.
inline std::string write_script(const ScratchDirectory& directory, const std::string& name, const std::string& body) {
  const std::string path = directory.file(name);
  write_whole_file(path, "#!/bin/sh\n" + body);
  ::chmod(path.c_str(), 0755);
  return path;
}

}  // namespace floodgate::containment::testing
