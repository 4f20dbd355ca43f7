#include "containment/recent_messages.hpp"

#include <algorithm>
#include <string_view>

namespace floodgate::containment {

RecentMessages::RecentMessages(std::chrono::seconds lookback, std::size_t capacity)
    : m_lookback(lookback), m_capacity(std::max<std::size_t>(capacity, 1)) {}

namespace {

// Strings as a varint length and the bytes: values may hold any byte (a
// decoded subject can contain NUL).
void put_string(std::string& out, std::string_view text) {
  std::size_t length = text.size();
  while (length >= 0x80) {
    out.push_back(static_cast<char>((length & 0x7f) | 0x80));
    length >>= 7;
  }
  out.push_back(static_cast<char>(length));
  out.append(text);
}

// Reads back what put_string wrote, in order. The data is our own, so a
// malformed one is a bug: it stops at the end rather than reading past it.
class StringReader {
 public:
  explicit StringReader(std::string_view data) : m_data(data) {}
  std::string next() {
    std::size_t length = 0;
    for (unsigned shift = 0; m_position < m_data.size(); shift += 7) {
      const auto byte = static_cast<unsigned char>(m_data[m_position++]);
      length |= static_cast<std::size_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) break;
    }
    const std::string_view text = m_data.substr(std::min(m_position, m_data.size()), length);
    m_position += text.size();
    return std::string(text);
  }

 private:
  std::string_view m_data;
  std::size_t m_position = 0;
};

}  // namespace

// Calls each(text) for every string pack() keeps, in the order unpack()
// reads them back.
namespace {

template <typename Each>
void for_each_kept_string(const IncidentMessage& message, const policy::MessageFacts& facts, Each&& each) {
  each(message.queue_id);
  each(message.sender);
  each(message.subject);
  each(message.fingerprint);
  for (const auto& address : message.recipient_addresses) each(address);
  each(facts.client_name);
  each(facts.sasl_user);
  each(facts.sender);
  for (const auto& [name, value] : facts.headers) {
    each(name);
    each(value);
  }
  for (const auto& [name, value] : facts.macros) {
    each(name);
    each(value);
  }
}

}  // namespace

RecentMessages::Kept RecentMessages::pack(const IncidentMessage& message, const policy::MessageFacts& facts) {
  Kept kept;
  kept.time = message.time;
  kept.recipients = message.recipients;
  kept.client_ip = facts.client_ip;
  kept.recipient_addresses = static_cast<std::uint32_t>(message.recipient_addresses.size());
  kept.headers = static_cast<std::uint32_t>(facts.headers.size());
  kept.macros = static_cast<std::uint32_t>(facts.macros.size());
  std::size_t size = 0;  // one allocation, of the exact size
  for_each_kept_string(message, facts, [&](std::string_view text) { size += text.size() + 3; });
  kept.strings.reserve(size);
  for_each_kept_string(message, facts, [&](std::string_view text) { put_string(kept.strings, text); });
  return kept;
}

void RecentMessages::unpack(const Kept& kept, IncidentMessage& message, policy::MessageFacts& facts) {
  StringReader read(kept.strings);
  message.time = kept.time;
  message.outcome = MessageOutcome::Slipped;
  message.recipients = kept.recipients;
  message.queue_id = read.next();
  message.sender = read.next();
  message.subject = read.next();
  message.fingerprint = read.next();
  message.recipient_addresses.clear();
  for (std::uint32_t i = 0; i < kept.recipient_addresses; ++i) message.recipient_addresses.push_back(read.next());
  facts.client_ip = kept.client_ip;
  facts.client_address = kept.client_ip ? kept.client_ip->to_string() : std::string{};
  facts.client_name = read.next();
  facts.sasl_user = read.next();
  facts.sender = read.next();
  for (std::uint32_t i = 0; i < kept.headers; ++i) {
    std::string name = read.next();
    facts.headers[std::move(name)] = read.next();
  }
  for (std::uint32_t i = 0; i < kept.macros; ++i) {
    std::string name = read.next();
    facts.macros[std::move(name)] = read.next();
  }
}

void RecentMessages::add(IncidentMessage message, const policy::MessageFacts& facts, TimePoint now) {
  // Everything a SourceSpec can name, nothing else: recipient lists can be
  // 10,000 addresses long.
  Kept kept = pack(message, facts);
  std::lock_guard lock(m_mutex);
  forget_old(now);
  if (m_messages.size() >= m_capacity) m_messages.pop_front();
  m_messages.push_back(std::move(kept));
}

std::vector<IncidentMessage> RecentMessages::take_from(const policy::SourceSpec& source, TimePoint now) {
  std::vector<IncidentMessage> taken;
  std::lock_guard lock(m_mutex);
  forget_old(now);
  std::erase_if(m_messages, [&](const Kept& kept) {
    IncidentMessage message;
    policy::MessageFacts facts;
    unpack(kept, message, facts);
    if (!policy::matches(source, facts, /*headers_known=*/true)) return false;
    taken.push_back(std::move(message));
    return true;
  });
  return taken;
}

std::size_t RecentMessages::size() const {
  std::lock_guard lock(m_mutex);
  return m_messages.size();
}

void RecentMessages::forget_old(TimePoint now) {
  const TimePoint oldest_kept = now - m_lookback;
  while (!m_messages.empty() && m_messages.front().time < oldest_kept) m_messages.pop_front();
}

}  // namespace floodgate::containment
