// MemoryFreezeStore: the FreezeStore of one process (fallback, test double).
//
// SUMMARY
// A map source_digest -> Freeze under one mutex. freeze() keeps an unexpired
// freeze of the same digest (false) and replaces an expired one (true);
// active(now) erases the expired ones (until <= now) and returns the rest by
// `since`, then digest, so listings are stable.
//
// DIAGNOSTICS
// It refuses, as CounterFailure Protocol, what the Redis store refuses: a
// digest that is not 16 lowercase hex digits and an action other than
// quarantine, tempfail or reject. So code tested against this store does not
// meet new failures in production.
//
// LIMITS
// Unbounded in entries: freezes are made by containment rules and ops, a few
// at a time, and active() drops the expired ones.
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ratelimit/freeze_store.hpp"

namespace floodgate::ratelimit {
namespace {

bool is_digest(std::string_view text) {
  return text.size() == 16 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_freeze_action(policy::Action action) {
  return action == policy::Action::Quarantine || action == policy::Action::Tempfail ||
         action == policy::Action::Reject;
}

CounterFailure protocol(std::string detail) {
  return CounterFailure{CounterFailure::Kind::Protocol, std::move(detail)};
}

class MemoryFreezeStore final : public FreezeStore {
 public:
  tl::expected<bool, CounterFailure> freeze(const Freeze& freeze, TimePoint now) override {
    if (!is_digest(freeze.source_digest)) {
      return tl::unexpected{protocol("freeze: source digest is not 16 lowercase hex digits")};
    }
    if (!is_freeze_action(freeze.action)) {
      return tl::unexpected{protocol("freeze: action must be quarantine, tempfail or reject")};
    }
    const std::lock_guard lock{m_mutex};
    auto [it, inserted] = m_freezes.try_emplace(freeze.source_digest, freeze);
    if (inserted) return true;
    if (it->second.until > now) return false;
    it->second = freeze;
    return true;
  }

  tl::expected<bool, CounterFailure> unfreeze(std::string_view source_digest) override {
    if (!is_digest(source_digest)) {
      return tl::unexpected{protocol("unfreeze: source digest is not 16 lowercase hex digits")};
    }
    const std::lock_guard lock{m_mutex};
    const auto it = m_freezes.find(source_digest);
    if (it == m_freezes.end()) return false;
    m_freezes.erase(it);
    return true;
  }

  tl::expected<std::vector<Freeze>, CounterFailure> active(TimePoint now) override {
    std::vector<Freeze> result;
    {
      const std::lock_guard lock{m_mutex};
      std::erase_if(m_freezes, [now](const auto& entry) { return entry.second.until <= now; });
      result.reserve(m_freezes.size());
      for (const auto& [digest, freeze] : m_freezes) result.push_back(freeze);
    }
    // The map is in digest order, so a stable sort by `since` breaks ties by digest.
    std::stable_sort(result.begin(), result.end(),
                     [](const Freeze& a, const Freeze& b) { return a.since < b.since; });
    return result;
  }

 private:
  std::mutex m_mutex;
  std::map<std::string, Freeze, std::less<>> m_freezes;
};

}  // namespace

std::unique_ptr<FreezeStore> make_memory_freeze_store() { return std::make_unique<MemoryFreezeStore>(); }

}  // namespace floodgate::ratelimit
