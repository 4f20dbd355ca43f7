// The Lua script the Redis counter store runs: one EVALSHA per message.
//
// It applies a message's CounterRequests atomically and returns their
// values, in request order, as an array of integers. Its arithmetic is that
// of sliding_window.hpp, repeated in Lua; the integration tests compare it
// with MemoryCounterStore request by request.
//
// Calling convention (built by redis_counter_store.cpp):
//   ARGV[1]  now, ms since the epoch
//   then, per request, in order:
//     Sum:       "s", window ms, amount             KEYS: the hash key
//     Distinct:  "d", window ms, n, member1..memberN
//                KEYS: the 11 slot keys "<key>:<slot>" for slots s-10..s,
//                oldest first (so the last one is the current slot)
// Every key the script touches is in KEYS, so it runs on Redis Cluster as
// long as a message's keys share a hash tag (policy makes sure they do).
//
// Lua 5.1 numbers are doubles: times, slot indices and counts are exact
// below 2^53, which epoch milliseconds and any sane count are.
#pragma once

#include <string_view>

namespace floodgate::ratelimit {

inline constexpr std::string_view k_counter_script = R"lua(
-- Floodgate counters, see ratelimit/counter_script.hpp.
local slots = 10
local now = math.max(tonumber(ARGV[1]), 0)
local out = {}
local a = 2  -- cursor in ARGV
local k = 1  -- cursor in KEYS

while a <= #ARGV do
  local kind = ARGV[a]
  -- Same geometry as SlidingWindow: L = ceil(W / 10), s = floor(now / L).
  local window = math.max(tonumber(ARGV[a + 1]), slots)
  local slot_ms = math.ceil(window / slots)
  local slot = math.floor(now / slot_ms)
  local oldest = slot - slots
  -- Written in slot s, a key is read until the end of slot s+10: W + 2L.
  local ttl = window + 2 * slot_ms

  if kind == 's' then
    -- One hash per counter, field = slot index, value = count in that slot.
    local key = KEYS[k]
    redis.call('HINCRBY', key, string.format('%d', slot), ARGV[a + 2])
    local fields = redis.call('HGETALL', key)
    local total = 0
    local stale = {}
    for j = 1, #fields, 2 do
      local index = tonumber(fields[j])
      local count = tonumber(fields[j + 1])
      if index < oldest then
        stale[#stale + 1] = fields[j]
      elseif index == oldest then
        -- The oldest slot only partly overlaps the window: weight it.
        total = total + math.floor(count * (slot_ms - now % slot_ms) / slot_ms)
      elseif index <= slot then
        total = total + count
      end
      -- index > slot: written by a node whose clock is ahead; kept, not read.
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    redis.call('PEXPIRE', key, ttl)
    out[#out + 1] = total
    k = k + 1
    a = a + 3
  elseif kind == 'd' then
    -- One HyperLogLog per slot; PFCOUNT over several keys counts the union.
    local current = KEYS[k + slots]
    local n = tonumber(ARGV[a + 2])
    if n == 0 then
      redis.call('PFADD', current)
    end
    -- unpack() is bounded by Lua's C stack (~8000 values): add in chunks.
    local first = a + 3
    local last = a + 2 + n
    while first <= last do
      local chunk_end = math.min(first + 999, last)
      redis.call('PFADD', current, unpack(ARGV, first, chunk_end))
      first = chunk_end + 1
    end
    redis.call('PEXPIRE', current, ttl)
    out[#out + 1] = redis.call('PFCOUNT', unpack(KEYS, k, k + slots))
    k = k + slots + 1
    a = a + 3 + n
  else
    return redis.error_reply('floodgate counter script: unknown request kind at ARGV[' .. a .. ']')
  end
end
return out
)lua";

}  // namespace floodgate::ratelimit
