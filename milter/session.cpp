#include "milter/session.hpp"

#include <algorithm>
#include <random>

#include "containment/incident.hpp"
#include "milter/log_escape.hpp"
#include "policy/digest.hpp"
#include "policy/containment.hpp"
#include "policy/identity.hpp"
#include "quarantine/entry.hpp"
#include <spdlog/spdlog.h>

namespace floodgate::milter {
namespace {

// For quarantine entry and incident ids.
std::uint64_t random_bits() {
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator();
}

std::string bounded(std::string_view text, std::size_t max_bytes) {
  return std::string(text.substr(0, std::min(text.size(), max_bytes)));
}

std::string_view trim_space(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// lower_ascii(name) == lowered, without making the lower-case copy.
bool lowered_equals(std::string_view name, std::string_view lowered) {
  if (name.size() != lowered.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != lowered[i]) return false;
  }
  return true;
}

// "<user@example.com>" -> "user@example.com"; MTAs pass envelope addresses
// with their angle brackets.
std::string strip_angle_brackets(std::string_view address) {
  address = trim_space(address);
  if (address.size() >= 2 && address.front() == '<') {
    const auto close = address.find('>');
    if (close != std::string_view::npos) address = address.substr(1, close - 1);
  }
  return bounded(address, k_max_address_bytes);
}

}  // namespace

MessageSession::MessageSession(std::shared_ptr<const policy::Config> config,
                               const ConnectionInfo& connection, const std::string& spill_directory)
    : m_config(std::move(config)),
      m_fingerprinter(policy::make_content_fingerprinter(m_config->content)) {
  if (!spill_directory.empty()) {
    m_copy = std::make_unique<quarantine::MessageBuffer>(
        spill_directory, m_config->quarantine.memory_buffer_bytes, m_config->quarantine.max_message_bytes);
  }
  m_facts.client_address = connection.client_address;
  m_facts.client_ip = policy::IpAddress::parse(connection.client_address);
  m_facts.client_name = connection.client_name;
  m_facts.helo = connection.helo;
  m_facts.local_submission = connection.local_submission;
  m_facts.macros = connection.macros;
}

void MessageSession::set_sender(std::string_view sender) { m_facts.sender = strip_angle_brackets(sender); }

void MessageSession::add_recipient(std::string_view recipient, bool rejected_by_mta) {
  if (rejected_by_mta) {
    if (m_facts.rejected_recipients.size() < k_max_recipients_kept)
      m_facts.rejected_recipients.push_back(strip_angle_brackets(recipient));
    return;
  }
  ++m_recipient_count;
  if (m_facts.recipients.size() < k_max_recipients_kept)
    m_facts.recipients.push_back(strip_angle_brackets(recipient));
}

void MessageSession::set_macro(std::string_view name, std::string_view value) {
  std::string bare(name);
  if (bare.size() >= 2 && bare.front() == '{' && bare.back() == '}') bare = bare.substr(1, bare.size() - 2);
  if (bare == "auth_authen") m_facts.sasl_user = bounded(trim_space(value), k_max_address_bytes);
  m_facts.macros[bare] = bounded(value, k_max_macro_value_bytes);
}

void MessageSession::append_to_copy(std::string_view bytes) {
  if (m_copy) m_copy->append(bytes);
}

void MessageSession::add_header(std::string_view name, std::string_view value) {
  m_fingerprinter->add_header(name, value);
  // By the first header the envelope, client and SASL login are known: mail
  // that is not outbound is never quarantined, so it keeps no copy (exemptions
  // by header only narrow the scope further, so this test errs on keeping).
  if (m_copy && !m_copy_checked) {
    m_copy_checked = true;
    if (policy::classify(*m_config, m_facts) == policy::Scope::NotOutbound) m_copy.reset();
  }
  if (m_copy && !m_body_started) {
    // Header lines as received; a folded value's bare LFs become CRLF like
    // every other line of the message. Appended in runs between those LFs,
    // not assembled in a temporary line first.
    m_copy->append(name);
    m_copy->append(":");
    std::size_t run = 0;
    for (std::size_t lf = value.find('\n'); lf != std::string_view::npos; lf = value.find('\n', lf + 1)) {
      if (lf > 0 && value[lf - 1] == '\r') continue;
      m_copy->append(value.substr(run, lf - run));
      m_copy->append("\r");
      run = lf;
    }
    m_copy->append(value.substr(run));
    m_copy->append("\r\n");
  }
  // Compared without a lower-cased copy of every header name: only the
  // subject and the headers of interest are kept.
  if (m_subject.empty() && lowered_equals(name, "subject"))
    m_subject = bounded(policy::trim_whitespace(value), k_max_header_value_bytes);
  const auto& wanted = m_config->headers_of_interest;
  const auto found = std::find_if(wanted.begin(), wanted.end(),
                                  [&](const std::string& header) { return lowered_equals(name, header); });
  if (found != wanted.end()) {
    // First occurrence wins: a second copy appended further down cannot
    // replace the value the sending host wrote.
    m_facts.headers.try_emplace(*found, bounded(value, k_max_header_value_bytes));
  }
}

void MessageSession::add_body_chunk(std::string_view chunk) {
  if (!m_body_started) {
    m_body_started = true;
    append_to_copy("\r\n");  // the blank line between headers and body
  }
  append_to_copy(chunk);
  m_facts.size_bytes += chunk.size();
  m_fingerprinter->add_body_chunk(chunk);
}

Decision MessageSession::decide(ratelimit::CounterStore& counters, ratelimit::TimePoint now) {
  return explain(counters, now).decision;
}

MessageSession::Explanation MessageSession::explain(ratelimit::CounterStore& counters, ratelimit::TimePoint now) {
  m_facts.fingerprint = m_fingerprinter->finish();

  Explanation explanation;
  Decision& decision = explanation.decision;
  decision.counter_state = "none";
  decision.scope = policy::classify(*m_config, m_facts);
  if (decision.scope != policy::Scope::Outbound) {
    decision = finish_verdict(std::move(decision));
    return explanation;
  }

  // Counts are made with the full recipient count even when the kept list
  // was capped: a Sum must not undercount the burst it exists to see. Only
  // such a message pays for a padded copy of its facts.
  std::optional<policy::MessageFacts> padded_facts;
  if (m_facts.recipients.size() < m_recipient_count) {
    padded_facts = m_facts;
    padded_facts->recipients.resize(m_recipient_count, padded_facts->recipients.empty()
                                                           ? std::string("-")
                                                           : padded_facts->recipients.back());
  }
  explanation.plan = policy::plan_counters(*m_config, padded_facts ? *padded_facts : m_facts);
  const policy::CounterPlan& plan = explanation.plan;

  std::vector<std::uint64_t>& values = explanation.values;
  if (!plan.requests.empty()) {
    auto result = counters.apply(plan.requests, now);
    decision.counter_state = std::string(counters.answered_by());
    if (!result) {
      decision.counter_failure = result.error().detail;
      using policy::CounterFailureMode;
      // Monitor mode lets mail through whatever happens; on_failure: tempfail
      // is for a policy that acts.
      if (m_config->redis.on_failure == CounterFailureMode::Tempfail && !m_config->monitor.everything) {
        decision.verdict.action = policy::Action::Tempfail;
        decision.verdict.reasons.push_back("counters_unavailable");
      } else {
        decision.verdict.reasons.push_back("counters_unavailable");
      }
      decision = finish_verdict(std::move(decision));
      return explanation;
    }
    values = std::move(*result);
  }
  explanation.evaluations = policy::evaluate_rules(*m_config, plan, values);
  decision.verdict = policy::verdict_of(*m_config, explanation.evaluations);
  for (const auto& request : policy::sources_monitor_would_freeze(*m_config, decision.verdict, m_facts))
    decision.monitor_would_freeze.push_back(request.source.canonical());
  decision = finish_verdict(std::move(decision));
  return explanation;
}

Decision MessageSession::redo_verdict(Decision decision) const {
  decision.headers_to_add.clear();
  decision.reply.reset();
  decision.quarantine_reason.clear();
  return finish_verdict(std::move(decision));
}

Decision MessageSession::contain(Decision decision, FreezeCache* freezes, ratelimit::TimePoint now) {
  if (freezes == nullptr || decision.scope != policy::Scope::Outbound) return decision;
  const auto snapshot = freezes->snapshot();
  const auto active = find_freeze(*snapshot, m_facts, /*headers_known=*/true, now);
  // A frozen source keeps firing its rules; only sources not frozen yet are
  // frozen (one store call and one log line per freeze, not per message).
  // A message already stopped by one freeze may still freeze another source
  // (its client, when the script was frozen first).
  std::optional<policy::FreezeRequest> first_new;
  for (const auto& request : policy::sources_to_freeze(*m_config, decision.verdict, m_facts)) {
    const std::string digest = request.source.digest();
    const bool frozen_already = std::any_of(snapshot->begin(), snapshot->end(), [&](const ActiveFreeze& known) {
      return known.freeze.source_digest == digest && known.freeze.until > now;
    });
    if (frozen_already) continue;
    ratelimit::Freeze freeze;
    freeze.source = request.source.canonical();
    freeze.source_digest = digest;
    freeze.rule = m_config->rules[request.rule].name;
    freeze.reason = request.reason;
    freeze.action = m_config->containment.action;
    freeze.since = now;
    freeze.until = now + m_config->containment.ttl;
    freeze.incident = containment::make_incident_id(now, random_bits());
    std::string store_error;
    const bool created = freezes->freeze(freeze, request.source, now, store_error);
    if (created) decision.freezes_created.push_back(freeze);
    // Rare and important: a line of its own, at warn, besides the verdict.
    spdlog::warn("freeze {} {} {} ttl_s={} new={}{}", log_field("source", freeze.source, 512),
                 log_field("rule", freeze.rule), log_field("action", policy::to_string(freeze.action)),
                 m_config->containment.ttl.count(), created ? 1 : 0,
                 store_error.empty() ? std::string() : " " + log_field("store_error", store_error));
    decision.freezes_made.push_back(freeze.source);
    if (!first_new) first_new = request;
  }
  if (active) {
    decision.frozen_source = active->freeze.source;
    decision.frozen_incident = active->freeze.incident;
    decision.verdict = policy::contain(std::move(decision.verdict), active->freeze.action, active->freeze.rule);
  } else if (first_new) {
    decision.frozen_source = decision.freezes_made.front();
    for (const auto& created : decision.freezes_created)
      if (created.source == decision.frozen_source) decision.frozen_incident = created.incident;
    decision.verdict = policy::contain(std::move(decision.verdict), m_config->containment.action,
                                       m_config->rules[first_new->rule].name);
  } else {
    return decision;
  }
  return redo_verdict(std::move(decision));
}

std::optional<ActiveFreeze> MessageSession::frozen_before_headers(const FreezeList& freezes,
                                                                  ratelimit::TimePoint now) const {
  if (m_facts.local_submission) return std::nullopt;  // no early refusal for sendmail(1) mail
  if (policy::classify(*m_config, m_facts) != policy::Scope::Outbound) return std::nullopt;
  return find_freeze(freezes, m_facts, /*headers_known=*/false, now);
}

Decision MessageSession::refuse_frozen(const ActiveFreeze& freeze) const {
  Decision decision;
  decision.scope = policy::Scope::Outbound;
  decision.counter_state = "none";
  decision.frozen_source = freeze.freeze.source;
  decision.frozen_incident = freeze.freeze.incident;
  decision.verdict = policy::contain(policy::Verdict{}, freeze.freeze.action, freeze.freeze.rule);
  return finish_verdict(std::move(decision));
}

Decision MessageSession::finish_verdict(Decision decision) const {
  decision.action = decision.verdict.action;
  const std::string reasons = policy::join_reasons(decision.verdict.reasons);
  switch (decision.action) {
    case policy::Action::Accept:
      break;
    case policy::Action::Tag:
      decision.headers_to_add.emplace_back(k_score_header, std::to_string(decision.verdict.score));
      // Reasons hold only rule names and numbers, never message text, so
      // they are safe in a header as they are.
      decision.headers_to_add.emplace_back(k_reasons_header, reasons);
      break;
    case policy::Action::Quarantine:
      decision.quarantine_reason = "floodgate score=" + std::to_string(decision.verdict.score) + " " + reasons;
      break;
    case policy::Action::Tempfail:
      decision.reply = SmtpReply{m_config->replies.tempfail_code, m_config->replies.tempfail_status,
                                 m_config->replies.tempfail_text};
      break;
    case policy::Action::Reject:
      decision.reply = SmtpReply{m_config->replies.reject_code, m_config->replies.reject_status,
                                 m_config->replies.reject_text};
      break;
  }
  const auto& monitored = decision.verdict.monitor;
  const bool passes = decision.action == policy::Action::Accept || decision.action == policy::Action::Tag;
  if (m_config->monitor.add_header && monitored && monitored->action != decision.action && passes) {
    // "quarantine score=80: rule=120>100 (+20, monitor), ..." -- rule names
    // and numbers only, like X-Floodgate-Reasons.
    decision.headers_to_add.emplace_back(k_monitor_header,
                                         std::string(policy::to_string(monitored->action)) +
                                             " score=" + std::to_string(monitored->score) + ": " +
                                             policy::join_reasons(monitored->reasons));
  }
  return decision;
}

quarantine::QuarantineEntry MessageSession::quarantine_entry(const Decision& decision,
                                                             std::chrono::system_clock::time_point now) const {
  quarantine::QuarantineEntry entry;
  entry.id = quarantine::make_entry_id(now, random_bits());
  entry.time = now;
  entry.mode = m_config->quarantine.mode == policy::QuarantineSettings::Mode::Spool ? quarantine::EntryMode::Spool
                                                                                    : quarantine::EntryMode::Hold;
  const auto queue_id = m_facts.macros.find("i");
  if (queue_id != m_facts.macros.end()) entry.queue_id = queue_id->second;
  entry.client_address = m_facts.client_address;
  entry.client_name = m_facts.client_name;
  entry.helo = m_facts.helo;
  entry.sasl_user = m_facts.sasl_user;
  entry.sender = m_facts.sender;
  entry.recipients = m_facts.recipients;
  entry.subject = m_subject;
  entry.size_bytes = m_copy && entry.mode == quarantine::EntryMode::Spool ? m_copy->size() : m_facts.size_bytes;
  entry.score = decision.verdict.score;
  entry.reasons = decision.verdict.reasons;
  entry.frozen_source = decision.frozen_source;
  // "freeze:<rule>" when containment stopped it, else the score band did.
  entry.cause = "score";
  const std::string frozen_prefix = "frozen(";
  for (const auto& reason : decision.verdict.reasons) {
    if (reason.starts_with(frozen_prefix) && reason.ends_with(")"))
      entry.cause = "freeze:" + reason.substr(frozen_prefix.size(), reason.size() - frozen_prefix.size() - 1);
  }
  if (m_facts.fingerprint.present)
    entry.fingerprint = m_facts.fingerprint.method + ":" + policy::to_hex(m_facts.fingerprint.digest);
  return entry;
}

Decision MessageSession::quarantine(Decision decision, quarantine::SpoolStore* spool,
                                    std::chrono::system_clock::time_point now) {
  if (decision.action != policy::Action::Quarantine) return decision;
  const bool spool_mode = m_config->quarantine.mode == policy::QuarantineSettings::Mode::Spool;
  const quarantine::QuarantineEntry entry = quarantine_entry(decision, now);

  if (!spool_mode) {
    // The MTA's hold queue keeps the message; the entry only lets the CLI
    // find it. Failing to write it loses nothing, so the hold stands.
    if (spool != nullptr) {
      if (auto stored = spool->store(entry, nullptr)) {
        decision.quarantine_id = entry.id;
      } else {
        decision.quarantine_failure = "hold entry not recorded: " + stored.error().message;
      }
    }
    return decision;
  }

  std::string failure;
  if (spool == nullptr) {
    failure = "no usable quarantine spool";
  } else if (!m_copy) {
    failure = "message was not kept";
  } else if (m_copy->overflowed()) {
    failure = "message over quarantine.max_message_bytes (" +
              std::to_string(m_config->quarantine.max_message_bytes) + ")";
  } else if (m_copy->failed()) {
    failure = m_copy->error();
  } else {
    if (!m_body_started) append_to_copy("\r\n");  // a message without a body still ends its header
    if (auto stored = spool->store(entry, m_copy.get())) {
      decision.discard = true;
      decision.quarantine_id = entry.id;
      return decision;
    } else {
      failure = stored.error().message;
    }
  }
  // Not stored: the MTA must keep the message.
  decision.quarantine_failure = failure;
  decision.action = policy::Action::Tempfail;
  decision.verdict.reasons.push_back("quarantine_failed");
  decision.reply = SmtpReply{"451", "4.3.0", "Temporary failure while quarantining the message, try again later"};
  return decision;
}

std::string format_decision_log(const MessageSession& session, const Decision& decision,
                                std::chrono::microseconds elapsed) {
  const policy::MessageFacts& facts = session.facts();
  const auto queue_id = facts.macros.find("i");
  std::string line = log_field("qid", queue_id == facts.macros.end() ? "-" : queue_id->second, 32);
  line += ' ' + log_field("action", policy::to_string(decision.action));
  line += ' ' + log_field("score", std::to_string(decision.verdict.score));
  line += ' ' + log_field("scope", policy::to_string(decision.scope));
  line += ' ' + log_field("client", facts.client_address.empty() ? "-" : facts.client_address, 64);
  line += ' ' + log_field("client_name", facts.client_name.empty() ? "-" : facts.client_name, 128);
  line += ' ' + log_field("sasl_user", facts.sasl_user.empty() ? "-" : facts.sasl_user, 128);
  line += ' ' + log_field("sender", facts.sender.empty() ? "<>" : facts.sender, 128);
  line += ' ' + log_field("rcpts", std::to_string(session.recipient_count()));
  line += ' ' + log_field("rejected_rcpts", std::to_string(facts.rejected_recipients.size()));
  line += ' ' + log_field("fp", facts.fingerprint.present
                                    ? facts.fingerprint.method + ":" + policy::to_hex(facts.fingerprint.digest).substr(0, 8)
                                    : std::string("none"));
  if (!facts.fingerprint.present && !facts.fingerprint.unfingerprintable.empty())
    line += ' ' + log_field("fp_reason", facts.fingerprint.unfingerprintable, 64);
  line += ' ' + log_field("body_size", std::to_string(facts.size_bytes));
  line += ' ' + log_field("counters", decision.counter_state);
  if (!decision.counter_failure.empty()) line += ' ' + log_field("counter_error", decision.counter_failure);
  if (!decision.quarantine_id.empty()) line += ' ' + log_field("quarantine_id", decision.quarantine_id);
  if (!decision.quarantine_failure.empty())
    line += ' ' + log_field("quarantine_error", decision.quarantine_failure);
  if (!decision.frozen_source.empty()) line += ' ' + log_field("frozen_source", decision.frozen_source, 512);
  if (const auto& monitored = decision.verdict.monitor; monitored && !monitored->fired_rules.empty()) {
    // What the policy would have done, counting the monitored rules too.
    line += ' ' + log_field("monitor", policy::to_string(monitored->action));
    line += ' ' + log_field("monitor_score", std::to_string(monitored->score));
    line += ' ' + log_field("monitor_reasons", policy::join_reasons(monitored->reasons), 1024);
  }
  if (!decision.monitor_would_freeze.empty())
    line += ' ' + log_field("monitor_freeze", policy::join_reasons(decision.monitor_would_freeze), 1024);
  line += ' ' + log_field("reasons", policy::join_reasons(decision.verdict.reasons), 1024);
  line += ' ' + log_field("ms", std::to_string(static_cast<double>(elapsed.count()) / 1000.0));
  return line;
}

}  // namespace floodgate::milter
