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
//                KEYS: 12 keys, for s = the current slot:
//                  the 11 slot keys "<key>:<slot>" for slots s-10..s, oldest
//                  first (so the 11th is the current slot), then
//                  the window union for slot s, "<key>:u<s>"
// Every key the script touches is in KEYS, so it runs on Redis Cluster as
// long as a message's keys share a hash tag (policy makes sure they do; the
// suffixes above keep the counter's tag).
//
// DISTINCT COUNTERS
// A Distinct counter keeps one HyperLogLog per slot: "<key>:<slot>" holds
// the members added in that slot and lives W + 2L, like a Sum's hash. Its
// value is |members(s-10) ∪ ... ∪ members(s)|. A PFCOUNT over the 11 slot
// keys would give it, but Redis merges the 11 HLLs into a temporary dense
// register array on every such call and never caches the result: with the
// shipped policy's 17-18 Distinct counters per message, about half of the
// script's Redis CPU (redis_script_bench). So the union is kept instead, one
// HLL per counter and slot, "<key>:u<s>":
//   - while the closed slots s-10..s-1 hold nothing (a counter new in this
//     window: new content, a quiet sender), there is no union: the value is
//     PFCOUNT of the current slot's HLL, which is the window;
//   - otherwise the first message of slot s (on any node) builds it: one
//     PFMERGE of the slot keys s-10..s, expiring at the end of slot s plus
//     min(L, 1 s), counted from this node's `now`;
//   - every message PFADDs its members to the current slot key (which the
//     next 10 slots' unions are built from) and to the union if there is
//     one, and the value is PFCOUNT of that one HLL: one HLL scanned, or
//     none when the PFADD changed no register (Redis caches a single key's
//     estimate).
// The registers counted are then the register-wise maximum over slots
// s-10..s, i.e. the estimate the 11-key PFCOUNT gives, with one exception:
// a member added to a slot before s after slot s's union was built is not
// in that union. That only happens when nodes' clocks disagree: the node
// whose clock is behind writes into slot s-1 while another, already in s,
// has built the union of s. Such a member is missing from the value for the
// rest of slot s and counted again from slot s+1 on (whose union is built
// from the slot keys). Skew beyond the union's margin costs no count: a
// node still in slot s after the union of s expired builds it again, slot
// s's own key included.
// Cost: the merge is paid once per counter and slot, by its first message.
// A counter that gets many messages per slot (a campaign's content bands, a
// busy sender) saves an 11-key merge on all the others; one that gets a
// single message per slot with something in its window pays a PFMERGE
// (dearer than the 11-key PFCOUNT: it also writes the union) and gains
// nothing (redis_script_bench all_identities:1/new_slot_each_call). A new
// counter pays two EXISTS instead of the 11-key PFCOUNT: about even.
// Memory: one extra HLL per Distinct counter in use for more than a slot,
// plus the previous slot's for up to min(L, 1 s) after a boundary. An HLL
// is sparse (tens to a few thousand bytes) while small and 12 KB once
// dense; a union is as big as its window's members make it.
//
// EXPIRY
// A key holding slot s (a Sum's field s, a Distinct's "<key>:<s>") is read
// until the end of slot s+10, so it must live W + 2L from the start of slot
// s. Its first write in slot s sets that TTL, counted from a `now` in slot
// s; it is not set again for later writes in the same slot, which would
// only move the expiry further out (an EXPIRE per counter per message was a
// sixth of the script's commands). The first write is recognised by what
// the write answers: HINCRBY gives back just the amount (the field was
// new, or held 0), PFADD gives 1 (the key was created, or a register
// changed: more PEXPIREs than needed, never fewer). A Sum hash holding
// several slots thus expires W + 2L after its newest slot's first write.
//
// Lua 5.1 numbers are doubles: times, slot indices and counts are exact
// below 2^53, which epoch milliseconds and any sane count are.
#pragma once

#include <string_view>

namespace floodgate::ratelimit {

inline constexpr std::string_view k_counter_script = R"lua(
-- Floodgate counters, see ratelimit/counter_script.hpp.
local slots = 10
local union_margin_ms = 1000
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
    local in_slot = redis.call('HINCRBY', key, string.format('%d', slot), ARGV[a + 2])
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
    -- The TTL is set by the slot's first write (see "EXPIRY" above).
    if in_slot == tonumber(ARGV[a + 2]) then redis.call('PEXPIRE', key, ttl) end
    out[#out + 1] = total
    k = k + 1
    a = a + 3
  elseif kind == 'd' then
    -- One HyperLogLog per slot, KEYS[k..k+10] (s-10..s), and the union of
    -- the window for slot s, KEYS[k+11]. The value is counted from the
    -- union once slot s has one; from the current slot's HLL alone while
    -- the closed slots s-10..s-1 hold nothing (no union is made for a new
    -- counter); otherwise from the union, built
    -- now by merging the window once for the whole slot. Slot s's own key
    -- is merged too, in case it was written first (see the header).
    local current = KEYS[k + slots]
    local union = KEYS[k + slots + 1]
    local n = tonumber(ARGV[a + 2])
    local counted = union
    local built_now = false
    if redis.call('EXISTS', union) == 0 then
      if redis.call('EXISTS', unpack(KEYS, k, k + slots - 1)) == 0 then
        counted = current
      else
        redis.call('PFMERGE', union, unpack(KEYS, k, k + slots))
        built_now = true
      end
    end
    -- PFADD answers 1 when it created the key or changed a register; a
    -- slot key answering 0 throughout had its TTL set when it was created
    -- (see "EXPIRY" above).
    local current_changed = 0
    if n == 0 then
      current_changed = redis.call('PFADD', current)  -- creates it; PFMERGE created the union
    end
    -- unpack() is bounded by Lua's C stack (~8000 values): add in chunks.
    local first = a + 3
    local last = a + 2 + n
    while first <= last do
      local chunk_end = math.min(first + 999, last)
      current_changed = current_changed + redis.call('PFADD', current, unpack(ARGV, first, chunk_end))
      if counted == union then
        redis.call('PFADD', union, unpack(ARGV, first, chunk_end))
      end
      first = chunk_end + 1
    end
    if built_now then
      redis.call('PEXPIRE', union,
                 (slot + 1) * slot_ms - now + math.min(slot_ms, union_margin_ms))
    end
    if current_changed > 0 then redis.call('PEXPIRE', current, ttl) end
    out[#out + 1] = redis.call('PFCOUNT', counted)
    k = k + slots + 2
    a = a + 3 + n
  else
    return redis.error_reply('floodgate counter script: unknown request kind at ARGV[' .. a .. ']')
  end
end
return out
)lua";

}  // namespace floodgate::ratelimit
