// issues_of: what the config loader reports for a YAML text, for the config
// tests to assert on (file "test.yaml"); empty when the text loads.
#pragma once

#include <string_view>
#include <vector>

#include "policy/config_loader.hpp"

namespace floodgate::policy {

inline std::vector<ConfigIssue> issues_of(std::string_view yaml) {
  try {
    load_config_text(yaml, "test.yaml");
  } catch (const ConfigError& error) {
    return error.issues();
  }
  return {};
}

}  // namespace floodgate::policy
