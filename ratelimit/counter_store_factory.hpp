// make_counter_store: the counter stack the daemon runs with, from config.
//
//   settings.url empty   MemoryCounterStore alone ("local"): one node, no Redis
//   otherwise            ResilientCounterStore over a RedisCounterStore, with
//                        a MemoryCounterStore fallback when on_failure is
//                        Local (Accept and Tempfail need none)
//
// The MemoryCounterStore alone holds at most 16 MiB of counters
// (MemoryCounterStoreOptions' default; memory_counter_store.hpp, LIMITS), the
// fallback at most 8 MiB (counter_store_factory.cpp says why), whatever the
// traffic, so a Redis outage under load cannot grow the daemon beyond that.
//
// The endpoint comes from redis_endpoint_from_settings (url, username,
// password files, Sentinel). The first form reads the password files itself;
// `password`, when set, overrides the one they give (kept for callers that
// read redis.password_file themselves). The second form takes an endpoint
// already built, so a caller that reads files before dropping privileges
// builds it once and shares it with the other Redis stores.
// A bad setting is returned as an error string that starts with the
// setting's name ("redis.url: ..."); the caller adds the config file.
// Nothing connects until the first apply().
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "policy/config.hpp"
#include "ratelimit/counter_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ratelimit {

tl::expected<std::unique_ptr<CounterStore>, std::string> make_counter_store(
    const policy::RedisSettings& settings, std::optional<std::string> password = std::nullopt);
std::unique_ptr<CounterStore> make_counter_store(const policy::RedisSettings& settings, RedisEndpoint endpoint);

}  // namespace floodgate::ratelimit
