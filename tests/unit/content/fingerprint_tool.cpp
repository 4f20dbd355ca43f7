// Test-only tool: fingerprints raw messages (RFC 5322 files) and prints one
// line per message, for tests/unit/content/test_near_duplicates.py:
//   <path> TAB <method> TAB <digest hex> TAB <band key hex>,<band key hex>,...
//   <path> TAB none TAB <unfingerprintable reason>
// Paths come from the command line, or one per line on stdin when there
// are none. The body is fed in one chunk; chunking is covered by the unit
// tests.
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "fingerprint_test_util.hpp"

namespace {

void print_fingerprint(const std::string& path) {
  using namespace floodgate::policy;
  const auto result = testing::fingerprint(testing::parse_raw_message(testing::read_file(path)));
  if (!result.present) {
    std::printf("%s\tnone\t%s\n", path.c_str(), result.unfingerprintable.c_str());
    return;
  }
  std::printf("%s\t%s\t%016" PRIx64 "\t", path.c_str(), result.method.c_str(), result.digest);
  for (std::size_t i = 0; i < result.bands.size(); ++i) {
    std::printf("%s%016" PRIx64, i > 0 ? "," : "", result.bands[i]);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1) {
      for (int i = 1; i < argc; ++i) print_fingerprint(argv[i]);
    } else {
      for (std::string path; std::getline(std::cin, path);) {
        if (!path.empty()) print_fingerprint(path);
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fingerprint_tool: %s\n", error.what());
    return 1;
  }
  return 0;
}
