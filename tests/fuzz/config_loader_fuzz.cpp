// libFuzzer target for the YAML configuration loader
// (policy::load_config_text): the whole input is the file's text.
//
// The file is written by an admin, not an attacker, but a typo must come back
// as a ConfigError naming it (policy/config_loader.hpp promises that no
// yaml-cpp type or exception leaves the loader), never as a crash, a hang,
// a leak or another exception. Any other exception escapes this function,
// and libFuzzer (or the smoke driver) reports it as a crash. It also aborts
// if a ConfigError lists no issue or an issue without a message, or if
// loading the same text twice gives different results.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/config.hpp"
#include "policy/config_loader.hpp"

namespace {

using floodgate::policy::ConfigError;
using floodgate::policy::load_config_text;

constexpr const char* k_source_name = "fuzz.yaml";

// The issues as one string, or "" when the text loads.
std::string load(std::string_view text) {
  try {
    const auto config = load_config_text(text, k_source_name);
    if (config == nullptr || config->source_file != k_source_name) std::abort();
    return {};
  } catch (const ConfigError& error) {
    if (error.issues().empty()) std::abort();
    std::string all;
    for (const auto& issue : error.issues()) {
      if (issue.message.empty() || issue.file != k_source_name || issue.line < 0) std::abort();
      all += issue.to_string();
      all += '\n';
    }
    return all;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The loader keeps no state, so the second load must say the same.
  if (load(text) != load(text)) std::abort();
  return 0;
}
