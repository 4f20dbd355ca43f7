#include "milter/freeze_cache.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>

#include "milter/log_escape.hpp"

namespace floodgate::milter {
namespace {

ratelimit::TimePoint clock_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

}  // namespace

FreezeCache::FreezeCache(ratelimit::FreezeStore& store)
    : m_store(store), m_snapshot(std::make_shared<const FreezeList>()) {}

std::shared_ptr<const FreezeList> FreezeCache::snapshot() const {
  std::lock_guard lock(m_mutex);
  return m_snapshot;
}

bool FreezeCache::freeze(const ratelimit::Freeze& freeze, const policy::SourceSpec& source, ratelimit::TimePoint now,
                         std::string& store_error) {
  bool created = true;
  bool stored = false;
  if (auto result = m_store.freeze(freeze, now)) {
    created = *result;
    stored = true;
  } else {
    store_error = result.error().detail;
  }
  std::lock_guard lock(m_mutex);
  const bool known = std::any_of(m_local.begin(), m_local.end(), [&](const LocalFreeze& local) {
    return local.active.freeze.source_digest == freeze.source_digest;
  });
  if (!known) m_local.push_back({{freeze, source}, stored, std::chrono::steady_clock::now()});
  publish(now);
  return created;
}

void FreezeCache::refresh(ratelimit::TimePoint now) {
  // Freezes the store refused earlier get another try first, so that this
  // read includes them.
  std::vector<ratelimit::Freeze> unstored;
  {
    std::lock_guard lock(m_mutex);
    for (const auto& local : m_local)
      if (!local.stored) unstored.push_back(local.active.freeze);
  }
  std::vector<std::string> stored_now;
  for (const auto& freeze : unstored)
    if (m_store.freeze(freeze, now)) stored_now.push_back(freeze.source_digest);
  const auto stored_at = std::chrono::steady_clock::now();

  const auto read_started = std::chrono::steady_clock::now();
  auto active = m_store.active(now);
  std::lock_guard lock(m_mutex);
  for (auto& local : m_local) {
    if (std::find(stored_now.begin(), stored_now.end(), local.active.freeze.source_digest) != stored_now.end()) {
      local.stored = true;
      local.stored_at = stored_at;
    }
  }
  if (!active) {
    if (!m_store_failing) {
      m_store_failing = true;
      spdlog::warn("freezes: cannot read the freeze store, enforcing the last known list: {}",
                   escape_log_value(active.error().detail));
    }
    publish(now);
    return;
  }
  if (m_store_failing) {
    m_store_failing = false;
    spdlog::info("freezes: freeze store readable again");
  }
  m_remote.clear();
  for (const auto& freeze : *active) {
    auto source = policy::parse_canonical_source(freeze.source);
    if (!source) continue;  // damaged, or from a newer version: cannot be matched
    m_remote.push_back({freeze, std::move(*source)});
  }
  std::erase_if(m_local, [&](const LocalFreeze& local) {
    return local.active.freeze.until <= now || (local.stored && local.stored_at < read_started);
  });
  publish(now);
}

void FreezeCache::publish(ratelimit::TimePoint now) {
  auto merged = std::make_shared<FreezeList>();
  const auto add = [&](const ActiveFreeze& active) {
    if (active.freeze.until <= now) return;
    const bool duplicate = std::any_of(merged->begin(), merged->end(), [&](const ActiveFreeze& seen) {
      return seen.freeze.source_digest == active.freeze.source_digest;
    });
    if (!duplicate) merged->push_back(active);
  };
  for (const auto& local : m_local) add(local.active);
  for (const auto& remote : m_remote) add(remote);
  m_snapshot = std::move(merged);
}

void FreezeCache::refresh_periodically(std::chrono::milliseconds interval, std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any wake;
  while (!stop.stop_requested()) {
    refresh(clock_now());
    std::unique_lock lock(mutex);
    wake.wait_for(lock, stop, interval, [] { return false; });
  }
}

std::optional<ActiveFreeze> find_freeze(const FreezeList& freezes, const policy::MessageFacts& facts,
                                        bool headers_known, ratelimit::TimePoint now) {
  for (const auto& active : freezes) {
    if (active.freeze.until > now && policy::matches(active.source, facts, headers_known)) return active;
  }
  return std::nullopt;
}

}  // namespace floodgate::milter
