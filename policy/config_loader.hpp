// Config loading: YAML text -> validated, immutable Config.
//
// SUMMARY: the one place that reads the configuration format (documented by
// the shipped conf/floodgate.yaml). It checks everything Config promises its
// users (names resolve, thresholds and bands make sense, replies are valid
// SMTP) and returns a snapshot that is never modified afterwards.
//
// DIAGNOSTICS: loading does not stop at the first mistake. Every problem is
// collected as a ConfigIssue naming the file, the 1-based line and the dotted
// key (list items by 0-based index, e.g. rules[2].threshold); if there is at
// least one, a single ConfigError carrying all of them is thrown. Unreadable
// files and YAML syntax errors are reported the same way. No yaml-cpp type
// or exception ever leaves this module.
//
// SECURITY: the file is trusted as much as the admin who wrote it, but its
// values end up in SMTP replies and log lines, so those are checked here
// (printable, no CR/LF) rather than trusted downstream.
//
// Thread-safety: the functions are reentrant; they share no state.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "policy/config.hpp"

namespace floodgate::policy {

struct ConfigIssue {
  std::string file;
  int line = 0;         // 1-based; 0 when the problem has no line
  std::string key;      // dotted path such as rules[2].threshold; may be empty
  std::string message;

  // "file:line: key: message"; the line and key are left out when unknown.
  std::string to_string() const;
};

class ConfigError : public std::runtime_error {
 public:
  // `issues` should not be empty; what() lists them one per line.
  explicit ConfigError(std::vector<ConfigIssue> issues);

  const std::vector<ConfigIssue>& issues() const { return m_issues; }

 private:
  std::vector<ConfigIssue> m_issues;
};

// Reads and validates the file at `path`; Config::source_file is `path`.
// Throws ConfigError, also when the file cannot be read.
std::shared_ptr<const Config> load_config_file(const std::string& path);

// Same, for text already in memory; `source_name` stands in for the file name
// in issues and Config::source_file.
std::shared_ptr<const Config> load_config_text(std::string_view yaml_text,
                                               const std::string& source_name);

}  // namespace floodgate::policy
