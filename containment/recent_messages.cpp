#include "containment/recent_messages.hpp"

#include <algorithm>

namespace floodgate::containment {

RecentMessages::RecentMessages(std::chrono::seconds lookback, std::size_t capacity)
    : m_lookback(lookback), m_capacity(std::max<std::size_t>(capacity, 1)) {}

void RecentMessages::add(IncidentMessage message, const policy::MessageFacts& facts, TimePoint now) {
  message.outcome = MessageOutcome::Slipped;
  Kept kept{std::move(message), {}};
  // Everything a SourceSpec can name, nothing else: recipient lists can be
  // 10,000 addresses long.
  kept.facts.client_address = facts.client_address;
  kept.facts.client_ip = facts.client_ip;
  kept.facts.client_name = facts.client_name;
  kept.facts.helo = facts.helo;
  kept.facts.sasl_user = facts.sasl_user;
  kept.facts.sender = facts.sender;
  kept.facts.macros = facts.macros;
  kept.facts.headers = facts.headers;
  kept.facts.local_submission = facts.local_submission;
  std::lock_guard lock(m_mutex);
  forget_old(now);
  if (m_messages.size() >= m_capacity) m_messages.pop_front();
  m_messages.push_back(std::move(kept));
}

std::vector<IncidentMessage> RecentMessages::take_from(const policy::SourceSpec& source, TimePoint now) {
  std::vector<IncidentMessage> taken;
  std::lock_guard lock(m_mutex);
  forget_old(now);
  std::erase_if(m_messages, [&](Kept& kept) {
    if (!policy::matches(source, kept.facts, /*headers_known=*/true)) return false;
    taken.push_back(std::move(kept.message));
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
  while (!m_messages.empty() && m_messages.front().message.time < oldest_kept) m_messages.pop_front();
}

}  // namespace floodgate::containment
