// make_counter_store: the counter stack the daemon runs with, from config.
//
//   settings.url empty   MemoryCounterStore alone ("local"): one node, no Redis
//   otherwise            ResilientCounterStore over a RedisCounterStore, with
//                        a MemoryCounterStore fallback when on_failure is
//                        Local (Accept and Tempfail need none)
//
// `password` is the content of settings.password_file, read by the caller
// (main owns file I/O); when set it overrides a password in the URL.
// A bad URL is returned as an error string naming what is wrong; the caller
// adds the config file and key. Nothing connects until the first apply().
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "policy/config.hpp"
#include "ratelimit/counter_store.hpp"

namespace floodgate::ratelimit {

tl::expected<std::unique_ptr<CounterStore>, std::string> make_counter_store(
    const policy::RedisSettings& settings, std::optional<std::string> password = std::nullopt);

}  // namespace floodgate::ratelimit
