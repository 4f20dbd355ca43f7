// RedisIncidentStore: the IncidentStore every Floodgate instance and
// floodgatectl share, so each instance adds what it saw to one incident.
//
// SUMMARY
// Layout, with P = <key_prefix>:{freezes}:incident:<id> (the {freezes} hash
// tag of the freeze hash, so a cluster keeps everything on one node):
//   P:meta           HASH  the opener's fields and the counts (below)
//   P:recipients     SET   hex of the recipient sample (distinct addresses)
//   P:domains        ZSET  hex of a lower-cased recipient domain -> count
//   P:subjects       ZSET  hex of a subject -> count
//   P:fingerprints   ZSET  hex of a fingerprint -> count
//   P:senders        SET   hex of the envelope sender sample
//   P:queue          HASH  queue id -> "<outcome> <time ms>"
//   P:queue_actions  HASH  queue id -> hex of what queue clearing did
//   <key_prefix>:{freezes}:incidents               ZSET id -> opened (ms)
//   <key_prefix>:{freezes}:notified:<digest>:<event>  STRING, SET NX PX
// P:meta fields: opened "1" (open() landed), source_hex,
// source_digest_hex, rule_hex, reason_hex, action (quarantine, tempfail,
// ...), identity (JSON array of [name hex, value hex]), opened_by_hex,
// opened_ms, until_ms, queue_clearing_hex, closed_ms, close_reason_hex,
// first_seen_ms, last_seen_ms, and the counters messages, recipients,
// quarantined, tempfailed, rejected, slipped, queue_ids_not_listed,
// notifications_sent, notifications_suppressed, notifications_failed.
//
// Each write is one EVAL, so it is atomic and one round trip:
// open()    HSETs the opener's fields (never a counter), ZADDs the index.
// record()  the batch is aggregated here (counts by outcome, first/last
//           time, distinct recipients, domains, subjects, fingerprints,
//           senders and queue ids with their counts, in first-seen order)
//           and sent as one JSON argument; the script adds the counts and
//           applies the caps: limits.recipient_sample recipients and
//           limits.senders senders kept; domains counted for at most
//           10 x recipient_sample distinct ones, subjects for 10 x
//           subjects, fingerprints for 10 x fingerprints (a tracked one is
//           counted exactly; a new one gets a slot only while there is
//           one); queue ids listed up to max_queue_ids, the rest counted in
//           queue_ids_not_listed.
// close()   sets closed_ms and close_reason_hex only if opened and not
//           closed yet: 1 for the first closer, 0 for every other.
// Every write ends by setting PEXPIREAT on all eight keys to end +
// retention, end being closed_ms, else until_ms (once opened), else the
// newest message, else Redis' TIME; open() also pushes the index's expiry
// out to its incident's. get() and list() read with one EVAL per (up to)
// k_fetch_batch incidents, list() after one ZREVRANGEBYSCORE of the index;
// the fetch drops index members whose incident is gone (expired).
// claim_notification() is SET NX PX on its key: Redis' clock measures the
// interval.
//
// Connections: one per call, as RedisFreezeStore (ratelimit/
// redis_connection.hpp: AUTH, SELECT, timeouts).
//
// DIAGNOSTICS
// Failures are CounterFailure values, never exceptions: Timeout, Unavailable
// (connection refused or closed, AUTH refused, any error reply, quoted) and
// Protocol (an id that is_valid_incident_id() rejects or a source digest
// that is not 16 lowercase hex digits -- nothing is sent then -- or a reply
// of an unexpected shape). A stored value that does not decode reads as
// empty (or zero), so one odd field does not hide the incident.
//
// SECURITY
// Sources, subjects, recipients, senders, identity values, reasons and
// queue actions are attacker text (or may carry it): they are stored
// hex-encoded, as values and members only. Key names hold only the
// validated id, digest and event name. Queue ids become hash fields only if
// they are 1-64 ASCII letters and digits (Postfix's are); others are not
// listed (the message is counted all the same).
//
// LIMITS
// - Each attacker value is kept up to k_max_text_bytes bytes.
// - Lua numbers are doubles: counts and times are exact up to 2^53.
// - Expiry is by Redis' clock against the callers' times: instances, ctl
//   and Redis are assumed to agree to well within the retention.
// - The index has no per-member expiry: members of expired incidents stay
//   until a list() meets them.
// - A large batch runs as one script: Redis serves nothing else meanwhile
//   (some ms for 10,000 messages, as it scales with the distinct items).
//
// THREAD SAFETY
// Safe for concurrent use: calls share nothing but the options.
#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "containment/incident_store.hpp"
#include "ratelimit/hex_text.hpp"
#include "ratelimit/redis_connection.hpp"

namespace floodgate::containment {
namespace {

using Json = nlohmann::json;
using ratelimit::CounterFailure;
using ratelimit::RedisReplyPtr;

template <typename T>
using Result = tl::expected<T, CounterFailure>;

constexpr std::size_t k_max_text_bytes = 1000;  // as the memory store
constexpr std::size_t k_max_queue_id_chars = 64;
constexpr std::size_t k_counted_factor = 10;    // distinct items counted per item shown
constexpr std::size_t k_fetch_batch = 50;       // incidents per fetch EVAL
constexpr std::size_t k_incident_keys = 8;

// The suffixes of an incident's keys, in KEYS order for every script.
constexpr std::string_view k_key_suffixes[k_incident_keys] = {
    ":meta", ":recipients", ":domains", ":subjects", ":fingerprints", ":senders", ":queue", ":queue_actions"};

// Shared by every write script: KEYS[1..8] the incident's keys; `retention`
// in ms. See SUMMARY for which time ends an incident. string.format('%d')
// because Redis would write a large Lua number as 1.7e+12.
constexpr std::string_view k_refresh_expiry = R"lua(
local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function refresh_expiry(retention)
  local f = redis.call('HMGET', KEYS[1], 'closed_ms', 'opened', 'until_ms', 'last_seen_ms')
  local ending
  if f[1] then ending = tonumber(f[1])
  elseif f[2] and f[3] then ending = tonumber(f[3])
  elseif f[4] then ending = tonumber(f[4])
  else ending = redis_now_ms() end
  local at = ending + tonumber(retention)
  for i = 1, 8 do redis.call('PEXPIREAT', KEYS[i], string.format('%d', at)) end
  return at
end
)lua";

// KEYS[9] the index; ARGV[1] id, ARGV[2] opened ms, ARGV[3] retention,
// ARGV[4..] field, value pairs for P:meta.
constexpr std::string_view k_open_script = R"lua(
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'opened', '1', unpack(fields))
redis.call('ZADD', KEYS[9], ARGV[2], ARGV[1])
local at = refresh_expiry(ARGV[3])
-- The index lives as long as its longest-lived incident; an incident
-- already past its retention must not shorten it (or delete it).
local now = redis_now_ms()
local ttl = redis.call('PTTL', KEYS[9])
if at > now and (ttl < 0 or now + ttl < at) then
  redis.call('PEXPIREAT', KEYS[9], string.format('%d', at))
end
return 1
)lua";

// ARGV[1] the batch (JSON, see make_batch), ARGV[2] retention.
constexpr std::string_view k_record_script = R"lua(
local b = cjson.decode(ARGV[1])
local meta = KEYS[1]
for field, count in pairs(b.counts) do redis.call('HINCRBY', meta, field, count) end
local seen = redis.call('HMGET', meta, 'first_seen_ms', 'last_seen_ms')
if not seen[1] or tonumber(b.first) < tonumber(seen[1]) then redis.call('HSET', meta, 'first_seen_ms', b.first) end
if not seen[2] or tonumber(b.last) > tonumber(seen[2]) then redis.call('HSET', meta, 'last_seen_ms', b.last) end
local function sample(key, items, cap)
  local size = redis.call('SCARD', key)
  for _, item in ipairs(items) do
    if size >= cap then return end
    size = size + redis.call('SADD', key, item)
  end
end
local function count(key, items, cap)
  local size = redis.call('ZCARD', key)
  for _, pair in ipairs(items) do
    if redis.call('ZSCORE', key, pair[1]) then
      redis.call('ZINCRBY', key, pair[2], pair[1])
    elseif size < cap then
      redis.call('ZADD', key, pair[2], pair[1])
      size = size + 1
    end
  end
end
sample(KEYS[2], b.recipients, b.caps.recipients)
count(KEYS[3], b.domains, b.caps.domains)
count(KEYS[4], b.subjects, b.caps.subjects)
count(KEYS[5], b.fingerprints, b.caps.fingerprints)
sample(KEYS[6], b.senders, b.caps.senders)
local listed = redis.call('HLEN', KEYS[7])
local not_listed = 0
for _, q in ipairs(b.queue) do
  if redis.call('HEXISTS', KEYS[7], q[1]) == 0 then
    if listed < b.caps.queue then
      redis.call('HSET', KEYS[7], q[1], q[2])
      listed = listed + 1
    else
      not_listed = not_listed + 1
    end
  end
end
if not_listed > 0 then redis.call('HINCRBY', meta, 'queue_ids_not_listed', not_listed) end
refresh_expiry(ARGV[2])
return 1
)lua";

// ARGV[1] retention, ARGV[2] max queue ids, ARGV[3..] queue id, action hex
// pairs. A queue id met first here is a slipped message as of the opening.
constexpr std::string_view k_queue_actions_script = R"lua(
local opened = redis.call('HGET', KEYS[1], 'opened_ms') or '0'
local listed = redis.call('HLEN', KEYS[7])
local not_listed = 0
for i = 3, #ARGV, 2 do
  local known = redis.call('HEXISTS', KEYS[7], ARGV[i]) == 1
  if not known and listed < tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[7], ARGV[i], 'slipped ' .. opened)
    listed = listed + 1
    known = true
  end
  if known then
    redis.call('HSET', KEYS[8], ARGV[i], ARGV[i + 1])
  else
    not_listed = not_listed + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'queue_ids_not_listed', not_listed)
refresh_expiry(ARGV[1])
return 1
)lua";

// ARGV[1] the counter, ARGV[2] retention.
constexpr std::string_view k_count_script = R"lua(
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
refresh_expiry(ARGV[2])
return 1
)lua";

// ARGV[1] closed ms, ARGV[2] reason hex, ARGV[3] retention.
constexpr std::string_view k_close_script = R"lua(
local f = redis.call('HMGET', KEYS[1], 'opened', 'closed_ms')
if f[1] ~= '1' or f[2] then return 0 end
redis.call('HSET', KEYS[1], 'closed_ms', ARGV[1], 'close_reason_hex', ARGV[2])
refresh_expiry(ARGV[3])
return 1
)lua";

// KEYS[1] the index, then 8 keys per incident; ARGV[1] "1" to ZREM the ids
// (ARGV[2..]) whose incident is gone. Per incident: false (gone) or
// {meta pairs, recipients, domains with scores, subjects..., fingerprints...,
// senders, queue pairs, queue action pairs}.
constexpr std::string_view k_fetch_script = R"lua(
local out = {}
for n = 0, (#KEYS - 1) / 8 - 1 do
  local k = function(i) return KEYS[1 + n * 8 + i] end
  if redis.call('EXISTS', k(1)) == 0 then
    if ARGV[1] == '1' then redis.call('ZREM', KEYS[1], ARGV[2 + n]) end
    out[#out + 1] = false
  else
    out[#out + 1] = {
      redis.call('HGETALL', k(1)), redis.call('SMEMBERS', k(2)),
      redis.call('ZRANGE', k(3), 0, -1, 'WITHSCORES'), redis.call('ZRANGE', k(4), 0, -1, 'WITHSCORES'),
      redis.call('ZRANGE', k(5), 0, -1, 'WITHSCORES'), redis.call('SMEMBERS', k(6)),
      redis.call('HGETALL', k(7)), redis.call('HGETALL', k(8))}
  end
end
return out
)lua";

tl::unexpected<CounterFailure> fail(CounterFailure::Kind kind, std::string detail) {
  return tl::unexpected{CounterFailure{kind, std::move(detail)}};
}

// ---- Encoding -----------------------------------------------------------------


std::string to_hex(std::string_view bytes) { return ratelimit::bytes_to_hex(bytes); }

// Bad hex reads as "" (see DIAGNOSTICS).
std::string from_hex(std::string_view hex) { return ratelimit::hex_to_bytes(hex).value_or(std::string()); }

std::string bounded_hex(std::string_view text) { return to_hex(text.substr(0, k_max_text_bytes)); }

bool is_digest(std::string_view text) {
  return text.size() == 16 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_listable_queue_id(std::string_view text) {
  return !text.empty() && text.size() <= k_max_queue_id_chars &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
         });
}

std::int64_t to_ms(TimePoint time) { return time.time_since_epoch().count(); }
std::string ms_text(TimePoint time) { return std::to_string(to_ms(time)); }

// The domain an address counts under, as the memory store: after the last
// '@', ASCII lower case, "" when none.
std::string domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 == address.size()) return {};
  std::string domain(address.substr(at + 1, k_max_text_bytes));
  std::transform(domain.begin(), domain.end(), domain.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return domain;
}

// Texts with their counts in first-seen order (the order decides who gets
// a capped slot, as in the memory store).
class CountedBatch {
 public:
  void add(std::string_view text) {
    if (text.empty()) return;
    std::string hex = bounded_hex(text);
    auto [it, inserted] = m_index.try_emplace(hex, m_items.size());
    if (inserted) {
      m_items.emplace_back(std::move(hex), 0);
    }
    ++m_items[it->second].second;
  }
  Json to_json() const {
    Json array = Json::array();
    for (const auto& [hex, count] : m_items) array.push_back({hex, std::to_string(count)});
    return array;
  }

 private:
  std::vector<std::pair<std::string, std::uint64_t>> m_items;
  std::unordered_map<std::string, std::size_t> m_index;
};

// Distinct texts in first-seen order, at most `cap`: no more can ever be
// added, since each one already in the set takes away one free slot.
class SampleBatch {
 public:
  explicit SampleBatch(std::size_t cap) : m_cap{cap} {}
  void add(std::string_view text) {
    if (text.empty() || m_items.size() >= m_cap) return;
    std::string hex = bounded_hex(text);
    if (m_seen.insert(hex).second) m_items.push_back(std::move(hex));
  }
  Json to_json() const { return Json(m_items); }

 private:
  std::size_t m_cap;
  std::vector<std::string> m_items;
  std::unordered_set<std::string> m_seen;
};

// The record script's ARGV[1]. Numbers that may pass 2^31 travel as
// strings: cjson would read them as doubles and Redis write them back as
// 1.7e+12.
std::string make_batch(std::span<const IncidentMessage> messages, const IncidentLimits& limits) {
  std::uint64_t recipients = 0;
  std::uint64_t by_outcome[4] = {0, 0, 0, 0};
  TimePoint first = messages.front().time;
  TimePoint last = messages.front().time;
  SampleBatch sample{limits.recipient_sample};
  SampleBatch senders{limits.senders};
  CountedBatch domains;
  CountedBatch subjects;
  CountedBatch fingerprints;
  Json queue = Json::array();
  std::unordered_set<std::string_view> queued;
  for (const auto& message : messages) {
    recipients += message.recipients;
    ++by_outcome[static_cast<std::size_t>(message.outcome)];
    first = std::min(first, message.time);
    last = std::max(last, message.time);
    for (const auto& address : message.recipient_addresses) {
      sample.add(address);
      domains.add(domain_of(address));
    }
    subjects.add(message.subject);
    fingerprints.add(message.fingerprint);
    senders.add(message.sender);
    if (is_listable_queue_id(message.queue_id) && queued.insert(message.queue_id).second) {
      queue.push_back({message.queue_id, std::string(to_string(message.outcome)) + " " + ms_text(message.time)});
    }
  }
  Json counts = {{"messages", std::to_string(messages.size())}, {"recipients", std::to_string(recipients)}};
  for (const auto outcome : {MessageOutcome::Slipped, MessageOutcome::Quarantined, MessageOutcome::Tempfailed,
                             MessageOutcome::Rejected}) {
    const std::uint64_t n = by_outcome[static_cast<std::size_t>(outcome)];
    // The counter fields are the outcome names (see SUMMARY).
    if (n > 0) counts[std::string(to_string(outcome))] = std::to_string(n);
  }
  const Json batch = {
      {"counts", std::move(counts)},
      {"first", ms_text(first)},
      {"last", ms_text(last)},
      {"recipients", sample.to_json()},
      {"domains", domains.to_json()},
      {"subjects", subjects.to_json()},
      {"fingerprints", fingerprints.to_json()},
      {"senders", senders.to_json()},
      {"queue", std::move(queue)},
      {"caps",
       {{"recipients", limits.recipient_sample},
        {"domains", limits.recipient_sample * k_counted_factor},
        {"subjects", limits.subjects * k_counted_factor},
        {"fingerprints", limits.fingerprints * k_counted_factor},
        {"senders", limits.senders},
        {"queue", limits.max_queue_ids}}},
  };
  return batch.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<policy::Action> parse_action(std::string_view name) {
  for (const auto action : {policy::Action::Accept, policy::Action::Tag, policy::Action::Quarantine,
                            policy::Action::Tempfail, policy::Action::Reject}) {
    if (policy::to_string(action) == name) return action;
  }
  return std::nullopt;
}

// ---- Decoding ------------------------------------------------------------------

std::string_view text_of(const redisReply& reply) {
  return reply.str == nullptr ? std::string_view{} : std::string_view{reply.str, reply.len};
}

// Bad numbers read as 0 (see DIAGNOSTICS). Scores may come as "12" or "1.2e+16".
std::uint64_t to_count(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc{} && end == text.data() + text.size()) return value;
  const std::string copy(text);
  const double number = std::strtod(copy.c_str(), nullptr);
  return number > 0 && number < 1.8e19 ? static_cast<std::uint64_t>(number) : 0;
}

std::optional<TimePoint> to_time(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return TimePoint{std::chrono::milliseconds{value}};
}

bool is_array(const redisReply& reply) { return reply.type == REDIS_REPLY_ARRAY; }

bool all_strings(const redisReply& reply) {
  if (!is_array(reply)) return false;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    if (reply.element[i]->type != REDIS_REPLY_STRING) return false;
  }
  return true;
}

std::map<std::string, std::string, std::less<>> pairs_of(const redisReply& reply) {
  std::map<std::string, std::string, std::less<>> pairs;
  for (std::size_t i = 0; i + 1 < reply.elements; i += 2) {
    pairs.emplace(text_of(*reply.element[i]), text_of(*reply.element[i + 1]));
  }
  return pairs;
}

std::vector<std::string> decoded_members(const redisReply& reply) {
  std::vector<std::string> members;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    std::string text = from_hex(text_of(*reply.element[i]));
    if (!text.empty()) members.push_back(std::move(text));
  }
  std::sort(members.begin(), members.end());
  return members;
}

// Most frequent first, ties by text, at most `limit`.
std::vector<CountedText> decoded_counts(const redisReply& reply, std::size_t limit) {
  std::vector<CountedText> items;
  for (std::size_t i = 0; i + 1 < reply.elements; i += 2) {
    std::string text = from_hex(text_of(*reply.element[i]));
    if (!text.empty()) items.push_back({std::move(text), to_count(text_of(*reply.element[i + 1]))});
  }
  std::sort(items.begin(), items.end(), [](const CountedText& a, const CountedText& b) {
    return a.count != b.count ? a.count > b.count : a.text < b.text;
  });
  if (items.size() > limit) items.resize(limit);
  return items;
}

// One fetched incident (k_fetch_script's per-incident array) back into an
// Incident; nullopt for a reply of the wrong shape.
std::optional<Incident> decode_incident(const std::string& id, const redisReply& reply, const IncidentLimits& limits) {
  if (!is_array(reply) || reply.elements != k_incident_keys) return std::nullopt;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    if (!all_strings(*reply.element[i])) return std::nullopt;
  }
  const auto meta = pairs_of(*reply.element[0]);
  const auto field = [&](std::string_view name) -> std::string_view {
    const auto it = meta.find(name);
    return it == meta.end() ? std::string_view{} : std::string_view{it->second};
  };
  const auto count = [&](std::string_view name) { return to_count(field(name)); };

  Incident incident;
  incident.id = id;
  incident.source = from_hex(field("source_hex"));
  incident.source_digest = from_hex(field("source_digest_hex"));
  incident.rule = from_hex(field("rule_hex"));
  incident.reason = from_hex(field("reason_hex"));
  incident.action = parse_action(field("action")).value_or(policy::Action::Quarantine);
  const Json identity = Json::parse(field("identity"), nullptr, /*allow_exceptions=*/false);
  if (identity.is_array()) {
    for (const auto& pair : identity) {
      if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
        incident.identity[from_hex(pair[0].get<std::string>())] = from_hex(pair[1].get<std::string>());
      }
    }
  }
  incident.opened_by = from_hex(field("opened_by_hex"));
  incident.opened = to_time(field("opened_ms")).value_or(TimePoint{});
  incident.until = to_time(field("until_ms")).value_or(TimePoint{});
  incident.closed = to_time(field("closed_ms"));
  incident.close_reason = from_hex(field("close_reason_hex"));
  incident.first_seen = to_time(field("first_seen_ms"));
  incident.last_seen = to_time(field("last_seen_ms"));
  incident.messages = count("messages");
  incident.recipients = count("recipients");
  incident.quarantined = count("quarantined");
  incident.tempfailed = count("tempfailed");
  incident.rejected = count("rejected");
  incident.slipped = count("slipped");
  incident.queue_ids_not_listed = count("queue_ids_not_listed");
  if (meta.count("queue_clearing_hex")) incident.queue_clearing = from_hex(field("queue_clearing_hex"));
  incident.notifications_sent = count("notifications_sent");
  incident.notifications_suppressed = count("notifications_suppressed");
  incident.notifications_failed = count("notifications_failed");

  incident.recipient_sample = decoded_members(*reply.element[1]);
  incident.recipient_domains = decoded_counts(*reply.element[2], limits.recipient_sample * k_counted_factor);
  incident.subjects = decoded_counts(*reply.element[3], limits.subjects);
  incident.fingerprints = decoded_counts(*reply.element[4], limits.fingerprints);
  incident.senders = decoded_members(*reply.element[5]);

  const auto actions = pairs_of(*reply.element[7]);
  for (const auto& [queue_id, value] : pairs_of(*reply.element[6])) {
    IncidentQueueEntry entry;
    entry.queue_id = queue_id;
    const auto space = value.find(' ');
    if (space != std::string::npos) {
      entry.outcome = parse_message_outcome(std::string_view(value).substr(0, space)).value_or(MessageOutcome::Slipped);
      entry.time = to_time(std::string_view(value).substr(space + 1)).value_or(TimePoint{});
    }
    if (const auto action = actions.find(queue_id); action != actions.end()) {
      entry.queue_action = from_hex(action->second);
    }
    incident.queue_ids.push_back(std::move(entry));
  }
  // The hash is in queue id order: oldest first, ties by queue id.
  std::stable_sort(incident.queue_ids.begin(), incident.queue_ids.end(),
                   [](const IncidentQueueEntry& a, const IncidentQueueEntry& b) { return a.time < b.time; });
  return incident;
}

// ---- The store -----------------------------------------------------------------

Result<long long> integer_reply(Result<RedisReplyPtr> reply, std::string_view doing) {
  if (!reply) return tl::unexpected{std::move(reply.error())};
  const redisReply& r = **reply;
  if (r.type == REDIS_REPLY_INTEGER) return r.integer;
  if (r.type == REDIS_REPLY_ERROR) {
    return fail(CounterFailure::Kind::Unavailable,
                std::string{doing} + " failed: " + std::string{ratelimit::redis_reply_text(r)});
  }
  return fail(CounterFailure::Kind::Protocol,
              std::string{doing} + ": expected an integer, got reply type " + std::to_string(r.type));
}

class RedisIncidentStore final : public IncidentStore {
 public:
  RedisIncidentStore(ratelimit::RedisFreezeStoreOptions options, IncidentLimits limits)
      : m_options{std::move(options)},
        m_limits{limits},
        m_base{m_options.key_prefix + ":{freezes}:"},
        m_retention_ms{std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(limits.retention).count())},
        m_record_script{std::string(k_refresh_expiry) + std::string(k_record_script)},
        m_open_script{std::string(k_refresh_expiry) + std::string(k_open_script)},
        m_queue_actions_script{std::string(k_refresh_expiry) + std::string(k_queue_actions_script)},
        m_count_script{std::string(k_refresh_expiry) + std::string(k_count_script)},
        m_close_script{std::string(k_refresh_expiry) + std::string(k_close_script)} {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  }

  Result<void> open(const Incident& incident) override {
    return guarded([&]() -> Result<void> {
      if (!is_valid_incident_id(incident.id)) return fail(CounterFailure::Kind::Protocol, "open: not an incident id");
      Json identity = Json::array();
      for (const auto& [name, value] : incident.identity) identity.push_back({bounded_hex(name), bounded_hex(value)});
      std::vector<std::string> words = keys(incident.id);
      words.push_back(index_key());
      words.insert(words.end(),
                   {incident.id, ms_text(incident.opened), m_retention_ms,
                    "source_hex", bounded_hex(incident.source),
                    "source_digest_hex", bounded_hex(incident.source_digest),
                    "rule_hex", bounded_hex(incident.rule),
                    "reason_hex", bounded_hex(incident.reason),
                    "action", std::string(policy::to_string(incident.action)),
                    "identity", identity.dump(-1, ' ', false, Json::error_handler_t::replace),
                    "opened_by_hex", bounded_hex(incident.opened_by),
                    "opened_ms", ms_text(incident.opened),
                    "until_ms", ms_text(incident.until),
                    "queue_clearing_hex", bounded_hex(incident.queue_clearing)});
      return run_script(m_open_script, k_incident_keys + 1, words, "open incident");
    });
  }

  Result<void> record(const std::string& id, std::span<const IncidentMessage> messages) override {
    return guarded([&]() -> Result<void> {
      if (!is_valid_incident_id(id)) return fail(CounterFailure::Kind::Protocol, "record: not an incident id");
      if (messages.empty()) return {};
      std::vector<std::string> words = keys(id);
      words.push_back(make_batch(messages, m_limits));
      words.push_back(m_retention_ms);
      return run_script(m_record_script, k_incident_keys, words, "record messages");
    });
  }

  Result<void> record_queue_actions(const std::string& id, std::span<const QueueAction> actions) override {
    return guarded([&]() -> Result<void> {
      if (!is_valid_incident_id(id)) {
        return fail(CounterFailure::Kind::Protocol, "record_queue_actions: not an incident id");
      }
      std::vector<std::string> words = keys(id);
      words.push_back(m_retention_ms);
      words.push_back(std::to_string(m_limits.max_queue_ids));
      std::unordered_set<std::string_view> seen;
      for (const auto& action : actions) {
        if (is_listable_queue_id(action.queue_id) && seen.insert(action.queue_id).second) {
          words.push_back(action.queue_id);
          words.push_back(bounded_hex(action.result));
        }
      }
      if (seen.empty()) return {};
      return run_script(m_queue_actions_script, k_incident_keys, words, "record queue actions");
    });
  }

  Result<void> count_notification(const std::string& id, NotificationCount what) override {
    return guarded([&]() -> Result<void> {
      if (!is_valid_incident_id(id)) {
        return fail(CounterFailure::Kind::Protocol, "count_notification: not an incident id");
      }
      std::vector<std::string> words = keys(id);
      switch (what) {
        case NotificationCount::Sent: words.push_back("notifications_sent"); break;
        case NotificationCount::Suppressed: words.push_back("notifications_suppressed"); break;
        case NotificationCount::Failed: words.push_back("notifications_failed"); break;
      }
      words.push_back(m_retention_ms);
      return run_script(m_count_script, k_incident_keys, words, "count notification");
    });
  }

  Result<bool> close(const std::string& id, const std::string& reason, TimePoint now) override {
    return guarded([&]() -> Result<bool> {
      if (!is_valid_incident_id(id)) return fail(CounterFailure::Kind::Protocol, "close: not an incident id");
      std::vector<std::string> words = keys(id);
      words.insert(words.end(), {ms_text(now), bounded_hex(reason), m_retention_ms});
      auto context = connect();
      if (!context) return tl::unexpected{std::move(context.error())};
      auto closed = integer_reply(eval(**context, m_close_script, k_incident_keys, words, "close incident"),
                                  "close incident");
      if (!closed) return tl::unexpected{std::move(closed.error())};
      return *closed == 1;
    });
  }

  Result<std::optional<Incident>> get(const std::string& id) override {
    return guarded([&]() -> Result<std::optional<Incident>> {
      if (!is_valid_incident_id(id)) return fail(CounterFailure::Kind::Protocol, "get: not an incident id");
      auto context = connect();
      if (!context) return tl::unexpected{std::move(context.error())};
      auto fetched = fetch(**context, {id}, /*drop_gone=*/false);
      if (!fetched) return tl::unexpected{std::move(fetched.error())};
      if (fetched->empty()) return std::optional<Incident>{};
      return std::optional<Incident>{std::move(fetched->front())};
    });
  }

  Result<std::vector<Incident>> list(std::optional<TimePoint> since, bool open_only, TimePoint now) override {
    return guarded([&]() -> Result<std::vector<Incident>> {
      auto context = connect();
      if (!context) return tl::unexpected{std::move(context.error())};
      const std::string minimum = since ? ms_text(*since) : std::string("-inf");
      auto reply = ratelimit::redis_command(**context, {"ZREVRANGEBYSCORE", index_key(), "+inf", minimum},
                                            "read the incident index");
      if (!reply) return tl::unexpected{std::move(reply.error())};
      const redisReply& members = **reply;
      if (members.type == REDIS_REPLY_ERROR) {
        return fail(CounterFailure::Kind::Unavailable,
                    "read the incident index failed: " + std::string{ratelimit::redis_reply_text(members)});
      }
      if (!all_strings(members)) return fail(CounterFailure::Kind::Protocol, "incident index: not a list of ids");
      std::vector<std::string> ids;
      std::vector<std::string_view> odd;  // members no key can be built from
      for (std::size_t i = 0; i < members.elements; ++i) {
        const std::string_view id = text_of(*members.element[i]);
        if (is_valid_incident_id(id)) {
          ids.emplace_back(id);
        } else {
          odd.push_back(id);
        }
      }
      if (!odd.empty()) {
        const std::string index = index_key();
        std::vector<std::string_view> words{"ZREM", index};
        words.insert(words.end(), odd.begin(), odd.end());
        (void)ratelimit::redis_command(**context, words, "drop odd index members");  // best effort
      }

      std::vector<Incident> incidents;
      for (std::size_t start = 0; start < ids.size(); start += k_fetch_batch) {
        const std::size_t end = std::min(ids.size(), start + k_fetch_batch);
        auto fetched = fetch(**context, std::vector<std::string>(ids.begin() + static_cast<std::ptrdiff_t>(start),
                                                                 ids.begin() + static_cast<std::ptrdiff_t>(end)),
                             /*drop_gone=*/true);
        if (!fetched) return tl::unexpected{std::move(fetched.error())};
        for (auto& incident : *fetched) {
          if (!open_only || incident.is_open(now)) incidents.push_back(std::move(incident));
        }
      }
      return incidents;
    });
  }

  Result<bool> claim_notification(const std::string& source_digest, NotificationEvent event,
                                  std::chrono::seconds interval, TimePoint) override {
    return guarded([&]() -> Result<bool> {
      if (!is_digest(source_digest)) {
        return fail(CounterFailure::Kind::Protocol,
                    "claim_notification: source digest is not 16 lowercase hex digits");
      }
      if (interval <= std::chrono::seconds::zero()) return true;
      const std::string key = m_base + "notified:" + source_digest + ":" + std::string(to_string(event));
      const std::string px = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(interval).count());
      auto context = connect();
      if (!context) return tl::unexpected{std::move(context.error())};
      auto reply = ratelimit::redis_command(**context, {"SET", key, "1", "NX", "PX", px}, "claim notification");
      if (!reply) return tl::unexpected{std::move(reply.error())};
      const redisReply& r = **reply;
      if (r.type == REDIS_REPLY_STATUS) return true;
      if (r.type == REDIS_REPLY_NIL) return false;
      if (r.type == REDIS_REPLY_ERROR) {
        return fail(CounterFailure::Kind::Unavailable,
                    "claim notification failed: " + std::string{ratelimit::redis_reply_text(r)});
      }
      return fail(CounterFailure::Kind::Protocol, "claim notification: unexpected reply type " + std::to_string(r.type));
    });
  }

 private:
  // Keeps the promise of no exceptions (bad_alloc, a JSON surprise).
  template <typename F>
  static auto guarded(F&& body) -> decltype(body()) {
    return ratelimit::without_exceptions("redis incident store", std::forward<F>(body));
  }

  std::string index_key() const { return m_base + "incidents"; }

  // An incident's keys in KEYS order; `id` is valid (checked by the caller).
  std::vector<std::string> keys(const std::string& id) const {
    std::vector<std::string> names;
    names.reserve(k_incident_keys + 4);
    for (const auto suffix : k_key_suffixes) names.push_back(m_base + "incident:" + id + std::string(suffix));
    return names;
  }

  Result<ratelimit::RedisContextPtr> connect() const {
    return ratelimit::open_redis_connection(m_options.endpoint, m_options.password, m_options.connect_timeout,
                                            m_options.command_timeout);
  }

  // EVAL script numkeys words... (the first `key_count` words are keys).
  static Result<RedisReplyPtr> eval(redisContext& context, const std::string& script, std::size_t key_count,
                                    const std::vector<std::string>& words, std::string_view doing) {
    const std::string numkeys = std::to_string(key_count);
    std::vector<std::string_view> argv{"EVAL", script, numkeys};
    argv.insert(argv.end(), words.begin(), words.end());
    return ratelimit::redis_command(context, argv, doing);
  }

  Result<void> run_script(const std::string& script, std::size_t key_count, const std::vector<std::string>& words,
                          std::string_view doing) const {
    auto context = connect();
    if (!context) return tl::unexpected{std::move(context.error())};
    auto done = integer_reply(eval(**context, script, key_count, words, doing), doing);
    if (!done) return tl::unexpected{std::move(done.error())};
    return {};
  }

  // The incidents of `ids` that still exist, in the order given.
  Result<std::vector<Incident>> fetch(redisContext& context, const std::vector<std::string>& ids,
                                      bool drop_gone) const {
    std::vector<std::string> words{index_key()};
    for (const auto& id : ids) {
      auto incident_keys = keys(id);
      words.insert(words.end(), incident_keys.begin(), incident_keys.end());
    }
    words.push_back(drop_gone ? "1" : "0");
    words.insert(words.end(), ids.begin(), ids.end());
    auto reply = eval(context, std::string(k_fetch_script), 1 + ids.size() * k_incident_keys, words,
                      "read incidents");
    if (!reply) return tl::unexpected{std::move(reply.error())};
    const redisReply& all = **reply;
    if (all.type == REDIS_REPLY_ERROR) {
      return fail(CounterFailure::Kind::Unavailable,
                  "read incidents failed: " + std::string{ratelimit::redis_reply_text(all)});
    }
    if (!is_array(all) || all.elements != ids.size()) {
      return fail(CounterFailure::Kind::Protocol, "read incidents: unexpected reply");
    }
    std::vector<Incident> incidents;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const redisReply& one = *all.element[i];
      if (one.type == REDIS_REPLY_NIL) continue;  // gone (expired)
      auto incident = decode_incident(ids[i], one, m_limits);
      if (!incident) return fail(CounterFailure::Kind::Protocol, "read incidents: unexpected reply for " + ids[i]);
      incidents.push_back(std::move(*incident));
    }
    return incidents;
  }

  ratelimit::RedisFreezeStoreOptions m_options;
  IncidentLimits m_limits;
  std::string m_base;  // "<key_prefix>:{freezes}:"
  std::string m_retention_ms;
  std::string m_record_script;
  std::string m_open_script;
  std::string m_queue_actions_script;
  std::string m_count_script;
  std::string m_close_script;
};

}  // namespace

std::unique_ptr<IncidentStore> make_redis_incident_store(ratelimit::RedisFreezeStoreOptions options,
                                                         IncidentLimits limits) {
  return std::make_unique<RedisIncidentStore>(std::move(options), limits);
}

}  // namespace floodgate::containment
