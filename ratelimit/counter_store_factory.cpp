#include "ratelimit/counter_store_factory.hpp"

#include <utility>

#include "ratelimit/memory_counter_store.hpp"
#include "ratelimit/redis_counter_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "ratelimit/resilient_counter_store.hpp"

namespace floodgate::ratelimit {
namespace {

// The fallback's budget is half the default a store without Redis gets. It
// holds counters only while Redis is away (or busy, for a message that found
// every pooled connection taken), and eviction keeps the counters a burst
// keeps writing; what it bounds is the daemon's RSS. With 200 sessions flat
// out on 2 cores, 1 to 2% of the messages find the pool busy, and with 16 MiB
// their counters took the daemon from ~50 to ~69 MB over ten minutes
// (tests/bench/memory_soak.py; docs/performance.md).
constexpr std::size_t k_fallback_max_bytes = std::size_t{8} << 20;

}  // namespace

tl::expected<std::unique_ptr<CounterStore>, std::string> make_counter_store(
    const policy::RedisSettings& settings, std::optional<std::string> password) {
  if (settings.url.empty()) return std::make_unique<MemoryCounterStore>();
  auto endpoint = redis_endpoint_from_settings(settings);
  if (!endpoint) return tl::unexpected{std::move(endpoint.error())};
  if (password) endpoint->password = std::move(password);
  return make_counter_store(settings, std::move(*endpoint));
}

std::unique_ptr<CounterStore> make_counter_store(const policy::RedisSettings& settings, RedisEndpoint endpoint) {
  if (settings.url.empty()) return std::make_unique<MemoryCounterStore>();
  auto redis = std::make_unique<RedisCounterStore>(RedisCounterStoreOptions{
      .endpoint = std::move(endpoint),
      .password = std::nullopt,
      .connect_timeout = settings.connect_timeout,
      .command_timeout = settings.command_timeout,
      .pool_size = settings.pool_size,
  });
  std::unique_ptr<CounterStore> fallback;
  if (settings.on_failure == policy::CounterFailureMode::Local) {
    fallback = std::make_unique<MemoryCounterStore>(MemoryCounterStoreOptions{.max_bytes = k_fallback_max_bytes});
  }
  return std::make_unique<ResilientCounterStore>(std::move(redis), std::move(fallback),
                                                 settings.on_failure, settings.retry_interval);
}

}  // namespace floodgate::ratelimit
