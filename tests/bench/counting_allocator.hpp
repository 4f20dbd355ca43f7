// A global operator new that counts, for the benchmarks that report
// allocations per message (scoring_bench, redis_script_bench). Linking
// counting_allocator.cpp into a program replaces its operator new/delete;
// deletes are not counted: every allocation of a message is freed with it,
// so the news tell the story.
#pragma once

#include <cstdint>

namespace floodgate::bench {

// Allocations (operator new, any form) made by the calling thread so far,
// and the bytes they asked for. Per thread, not atomic: an atomic increment
// per allocation measurably slowed the session benchmark (5% of its
// profile, with ~800 allocations per message).
std::uint64_t allocations_on_this_thread();
std::uint64_t allocated_bytes_on_this_thread();

}  // namespace floodgate::bench
