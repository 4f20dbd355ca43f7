#include "ratelimit/counter_store_factory.hpp"

#include <utility>

#include "ratelimit/memory_counter_store.hpp"
#include "ratelimit/redis_counter_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "ratelimit/resilient_counter_store.hpp"

namespace floodgate::ratelimit {

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
    fallback = std::make_unique<MemoryCounterStore>();
  }
  return std::make_unique<ResilientCounterStore>(std::move(redis), std::move(fallback),
                                                 settings.on_failure, settings.retry_interval);
}

}  // namespace floodgate::ratelimit
