// The content fingerprinter behind its public interface, whatever its
// factory is called: make_content_fingerprinter (near-duplicate matching,
// issue 5) where it exists, else make_exact_fingerprinter. The robustness
// tests, the fuzz smoke driver and the benchmark go through this so they
// need no change while the fingerprinter's internals are replaced; once
// make_exact_fingerprinter is gone this header can simply call the new one.
#pragma once

#include <memory>

#include "policy/content_fingerprint.hpp"

namespace floodgate::policy {

// Chosen only when no make_content_fingerprinter(const ContentSettings&)
// exists (the ellipsis makes it the worst match). The body names the old
// factory through argument-dependent lookup, so it is only looked up when
// this fallback is actually used.
template <typename Settings>
std::unique_ptr<ContentFingerprinter> make_content_fingerprinter(const Settings& settings, ...) {
  return make_exact_fingerprinter(settings);
}

namespace testing {

inline std::unique_ptr<ContentFingerprinter> make_fingerprinter_under_test(
    const ContentSettings& settings = ContentSettings{}) {
  return make_content_fingerprinter(settings);
}

}  // namespace testing
}  // namespace floodgate::policy
