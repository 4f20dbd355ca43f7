#include "policy/scoring.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <iterator>

#include "policy/digest.hpp"
#include "policy/identity.hpp"
#include "policy/source_spec.hpp"

namespace floodgate::policy {
namespace {

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && lower_ascii(a) == lower_ascii(b);
}

bool any_equal_ignoring_case(const std::vector<std::string>& candidates, std::string_view value) {
  return std::any_of(candidates.begin(), candidates.end(),
                     [&](const std::string& candidate) { return equals_ignoring_case(candidate, value); });
}

bool in_any_network(const std::vector<IpNetwork>& networks, const std::optional<IpAddress>& address) {
  return address && std::any_of(networks.begin(), networks.end(),
                                [&](const IpNetwork& network) { return network.contains(*address); });
}

// Every named header (or macro) is present with one of its listed values.
bool all_values_match(const std::vector<Exemption::ValueMatch>& matches,
                      const std::map<std::string, std::string>& present) {
  return std::all_of(matches.begin(), matches.end(), [&](const Exemption::ValueMatch& match) {
    const auto found = present.find(match.name);
    if (found == present.end()) return false;
    const std::string_view value = trim_whitespace(found->second);
    return std::find(match.values.begin(), match.values.end(), value) != match.values.end();
  });
}

// An exemption matches when every condition it states matches.
bool exemption_matches(const Exemption& exemption, const MessageFacts& facts) {
  if (!exemption.client_networks.empty() && !in_any_network(exemption.client_networks, facts.client_ip))
    return false;
  if (!exemption.sasl_users.empty() &&
      (facts.sasl_user.empty() || !any_equal_ignoring_case(exemption.sasl_users, facts.sasl_user)))
    return false;
  if (!exemption.senders.empty() &&
      (facts.sender.empty() || !any_equal_ignoring_case(exemption.senders, facts.sender)))
    return false;
  if (!exemption.sender_domains.empty()) {
    const std::string domain = address_domain(facts.sender);
    if (domain.empty() || !any_equal_ignoring_case(exemption.sender_domains, domain)) return false;
  }
  if (!exemption.client_names.empty() &&
      (facts.client_name.empty() || !any_equal_ignoring_case(exemption.client_names, facts.client_name)))
    return false;
  if (!all_values_match(exemption.headers, facts.headers)) return false;
  if (!all_values_match(exemption.macros, facts.macros)) return false;
  return true;
}

bool is_outbound(const OutboundScope& scope, const MessageFacts& facts) {
  if (scope.local_submission && facts.local_submission) return true;
  if (scope.authenticated && !facts.sasl_user.empty()) return true;
  if (in_any_network(scope.client_networks, facts.client_ip)) return true;
  for (const auto& match : scope.macros) {
    const auto found = facts.macros.find(match.macro);
    if (found != facts.macros.end() &&
        std::find(match.values.begin(), match.values.end(), found->second) != match.values.end())
      return true;
  }
  return false;
}

bool is_content_signal(Signal signal) {
  return signal == Signal::ContentCopies || signal == Signal::ContentRecipients ||
         signal == Signal::ContentSources || signal == Signal::ContentRecipientDomains;
}

// Short, stable names for what a counter counts; part of the Redis key.
std::string_view counter_name(Signal signal) {
  switch (signal) {
    case Signal::Messages: return "msgs";
    case Signal::Recipients: return "rcpts";
    case Signal::DistinctRecipients: return "drcpts";
    case Signal::RejectedRecipients: return "rejrcpts";
    case Signal::ContentCopies: return "copies";
    case Signal::ContentRecipients: return "crcpts";
    case Signal::ContentSources: return "srcs";
    case Signal::ContentRecipientDomains: return "cdoms";
    case Signal::RecipientsPerMessage: break;
  }
  return "none";
}

std::vector<std::string> recipient_members(const std::vector<std::string>& recipients) {
  std::vector<std::string> members;
  members.reserve(recipients.size());
  for (const auto& recipient : recipients) members.push_back(to_hex(digest64(lower_ascii(recipient))));
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  return members;
}

// The domain part of each recipient, lower-cased, as digests.
std::vector<std::string> recipient_domain_members(const std::vector<std::string>& recipients) {
  std::vector<std::string> members;
  members.reserve(recipients.size());
  for (const auto& recipient : recipients) {
    const auto at = recipient.rfind('@');
    members.push_back(to_hex(digest64(lower_ascii(at == std::string::npos ? std::string_view{}
                                                                         : std::string_view(recipient).substr(at + 1)))));
  }
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  return members;
}

// Plans one message's counters. Everything several rules share -- an
// identity's digest, the recipient members, the content keys -- is made
// once per message rather than once per rule (or per rule and band), and
// each key is written straight into one string of its final size.
class Planner {
 public:
  Planner(const Config& config, const MessageFacts& facts, CounterPlan& plan)
      : m_config(config), m_facts(facts), m_plan(plan), m_identities(config.identities.size()) {}

  RuleInput plan_rule(const Rule& rule) {
    RuleInput input;
    if (rule.signal == Signal::RecipientsPerMessage) {
      input.source = RuleInput::Source::Immediate;
      input.immediate_value = m_facts.recipients.size();
      return input;
    }
    const std::string* identity = nullptr;
    if (rule.identity) {
      identity = identity_digest(*rule.identity);
      if (identity == nullptr) return input;  // a part is missing: the rule is skipped
    }
    const std::string* identity_name = rule.identity ? &m_config.identities[*rule.identity].name : nullptr;
    const std::uint64_t recipient_count = m_facts.recipients.size();

    CounterRequest request;
    request.window = rule.window;
    request.kind = CounterKind::Sum;
    switch (rule.signal) {
      case Signal::RecipientsPerMessage:
        return input;
      case Signal::Messages:
      case Signal::Recipients:
      case Signal::DistinctRecipients:
      case Signal::RejectedRecipients: {
        if (identity == nullptr) return input;  // the loader requires one; stay safe
        // Identity names are part of the key so that two identities made of
        // the same parts keep separate counters.
        request.key = make_key('s', *identity, counter_name(rule.signal), nullptr, identity_name, rule.window);
        if (rule.signal == Signal::Messages) request.amount = 1;
        if (rule.signal == Signal::Recipients) request.amount = recipient_count;
        if (rule.signal == Signal::RejectedRecipients) request.amount = m_facts.rejected_recipients.size();
        if (rule.signal == Signal::DistinctRecipients) {
          request.kind = CounterKind::Distinct;
          request.members = recipient_members_once();
        }
        input.source = RuleInput::Source::Counter;
        input.counter_index = add_request(std::move(request));
        return input;
      }
      case Signal::ContentCopies:
      case Signal::ContentRecipients:
      case Signal::ContentSources:
      case Signal::ContentRecipientDomains: {
        if (!m_facts.fingerprint.present) return input;
        if (rule.signal == Signal::ContentSources && identity == nullptr) return input;  // the loader requires one
        input.source = RuleInput::Source::Counter;
        input.exact_content = m_facts.fingerprint.bands.empty();
        const std::vector<std::string>& content_keys = content_keys_once();
        input.more_counter_indices.reserve(content_keys.size() - 1);
        for (std::size_t i = 0; i < content_keys.size(); ++i) {
          const std::string& content_key = content_keys[i];
          CounterRequest band_request = request;
          if (rule.signal == Signal::ContentSources) {
            band_request.key = make_key('c', content_key, counter_name(rule.signal), &content_key, identity_name,
                                        rule.window);
            band_request.kind = CounterKind::Distinct;
            band_request.members = {*identity};
          } else {
            // Per source: keep the key in the source's slot.
            band_request.key = identity != nullptr
                                   ? make_key('s', *identity, counter_name(rule.signal), &content_key,
                                              identity_name, rule.window)
                                   : make_key('c', content_key, counter_name(rule.signal), &content_key, nullptr,
                                              rule.window);
            if (rule.signal == Signal::ContentRecipientDomains) {
              band_request.kind = CounterKind::Distinct;
              band_request.members = domain_members_once();
            } else {
              band_request.amount = rule.signal == Signal::ContentCopies ? 1 : recipient_count;
            }
          }
          const std::size_t index = add_request(std::move(band_request));
          if (i == 0) {
            input.counter_index = index;
          } else {
            input.more_counter_indices.push_back(index);
          }
        }
        return input;
      }
    }
    return input;
  }

 private:
  // "<prefix>:{<tag kind><tag>}:<counter>[:<content key>][:<identity>]:<window seconds>"
  std::string make_key(char tag_kind, std::string_view tag, std::string_view counter,
                       const std::string* content_key, const std::string* identity_name,
                       std::chrono::seconds window) const {
    char seconds[24];
    const auto written = std::to_chars(std::begin(seconds), std::end(seconds), window.count());
    const std::string_view window_text(seconds, static_cast<std::size_t>(written.ptr - seconds));
    const std::string& prefix = m_config.redis.key_prefix;
    std::string key;
    key.reserve(prefix.size() + 5 + tag.size() + counter.size() + 1 + (content_key ? content_key->size() : 0) + 1 +
                (identity_name ? identity_name->size() : 0) + 1 + window_text.size());
    key += prefix;
    key += ":{";
    key += tag_kind;
    key += tag;
    key += "}:";
    key += counter;
    if (content_key != nullptr) {
      key += ':';
      key += *content_key;
    }
    if (identity_name != nullptr) {
      key += ':';
      key += *identity_name;
    }
    key += ':';
    key += window_text;
    return key;
  }

  // The identity's digest, built once per message; null when a part is
  // missing and the definition skips the rule.
  const std::string* identity_digest(std::size_t index) {
    auto& cached = m_identities[index];
    if (!cached) {
      cached.emplace(build_identity_digest(m_config.identities[index], m_facts));
    }
    return *cached ? &**cached : nullptr;
  }

  const std::vector<std::string>& recipient_members_once() {
    if (!m_recipient_members) m_recipient_members = recipient_members(m_facts.recipients);
    return *m_recipient_members;
  }

  const std::vector<std::string>& domain_members_once() {
    if (!m_domain_members) m_domain_members = recipient_domain_members(m_facts.recipients);
    return *m_domain_members;
  }

  // Near-duplicate: one key per LSH band ("b" marks a band key, so it never
  // meets an exact digest); exact: the digest.
  const std::vector<std::string>& content_keys_once() {
    if (!m_content_keys) {
      m_content_keys.emplace();
      const ContentFingerprint& fingerprint = m_facts.fingerprint;
      if (fingerprint.bands.empty()) {
        m_content_keys->push_back(to_hex(fingerprint.digest));
      } else {
        m_content_keys->reserve(fingerprint.bands.size());
        for (const std::uint64_t band : fingerprint.bands) {
          std::string& key = m_content_keys->emplace_back("b");
          append_hex(key, band);
        }
      }
    }
    return *m_content_keys;
  }

  // Deduplicated: rules reading the same counter share one request.
  std::size_t add_request(CounterRequest request) {
    auto& requests = m_plan.requests;
    const auto found = std::find(requests.begin(), requests.end(), request);
    if (found != requests.end()) return static_cast<std::size_t>(found - requests.begin());
    requests.push_back(std::move(request));
    return requests.size() - 1;
  }

  const Config& m_config;
  const MessageFacts& m_facts;
  CounterPlan& m_plan;
  // Per identity: not built yet, built (its digest), or missing (nullopt).
  std::vector<std::optional<std::optional<std::string>>> m_identities;
  std::optional<std::vector<std::string>> m_recipient_members;
  std::optional<std::vector<std::string>> m_domain_members;
  std::optional<std::vector<std::string>> m_content_keys;
};

}  // namespace

std::string_view to_string(Scope scope) {
  switch (scope) {
    case Scope::Outbound: return "outbound";
    case Scope::NotOutbound: return "not-outbound";
    case Scope::Exempt: return "exempt";
  }
  return "unknown";
}

Scope classify(const Config& config, const MessageFacts& facts) {
  if (!is_outbound(config.outbound, facts)) return Scope::NotOutbound;
  for (const auto& exemption : config.exemptions) {
    if (exemption_matches(exemption, facts)) return Scope::Exempt;
  }
  return Scope::Outbound;
}

CounterPlan plan_counters(const Config& config, const MessageFacts& facts) {
  CounterPlan plan;
  plan.rule_inputs.reserve(config.rules.size());
  // At most one request per rule, or one per content key for a content rule.
  const std::size_t content_keys = std::max<std::size_t>(facts.fingerprint.bands.size(), 1);
  std::size_t most_requests = 0;
  for (const auto& rule : config.rules) most_requests += is_content_signal(rule.signal) ? content_keys : 1;
  plan.requests.reserve(most_requests);
  Planner planner(config, facts, plan);
  for (const auto& rule : config.rules) plan.rule_inputs.push_back(planner.plan_rule(rule));
  // A source's own threshold: its canonical spelling is only built for the
  // rules that have overrides.
  for (const auto& [rule_index, thresholds] : config.overrides.by_rule) {
    RuleInput& input = plan.rule_inputs[rule_index];
    const Rule& rule = config.rules[rule_index];
    if (input.source == RuleInput::Source::NotApplicable || !rule.identity) continue;
    const auto source = source_of(config.identities[*rule.identity], facts);
    if (!source) continue;
    const auto found = thresholds.find(source->canonical());
    if (found != thresholds.end()) input.threshold_override = found->second;
  }
  return plan;
}

Action action_for_score(const Config& config, int score) {
  Action action = Action::Accept;
  for (const auto& band : config.bands) {  // ascending by min_score
    if (score >= band.min_score) action = band.action;
  }
  return action;
}

std::vector<RuleEvaluation> evaluate_rules(const Config& config, const CounterPlan& plan,
                                           std::span<const std::uint64_t> counter_values) {
  assert(counter_values.size() == plan.requests.size());
  std::vector<RuleEvaluation> evaluations(config.rules.size());
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    const Rule& rule = config.rules[i];
    const RuleInput& input = plan.rule_inputs[i];
    RuleEvaluation& evaluation = evaluations[i];
    evaluation.monitored = config.monitor.everything || rule.mode == RuleMode::Monitor;
    evaluation.exact_content = input.exact_content;
    evaluation.threshold = input.threshold_override.value_or(rule.threshold);
    evaluation.overridden = input.threshold_override.has_value();
    switch (input.source) {
      case RuleInput::Source::NotApplicable: continue;
      case RuleInput::Source::Immediate: evaluation.value = input.immediate_value; break;
      case RuleInput::Source::Counter:
        evaluation.value = counter_values[input.counter_index];
        for (const std::size_t index : input.more_counter_indices)
          evaluation.value = std::max(evaluation.value, counter_values[index]);
        break;
    }
    evaluation.applies = true;
    evaluation.fired = evaluation.value > evaluation.threshold;
  }
  return evaluations;
}

std::string reason_of(const Rule& rule, const RuleEvaluation& evaluation) {
  return rule.name + "=" + std::to_string(evaluation.value) + ">" + std::to_string(evaluation.threshold) + " (" +
         (rule.points >= 0 ? "+" : "") + std::to_string(rule.points) + (evaluation.exact_content ? ", exact" : "") +
         (evaluation.overridden ? ", override" : "") + (evaluation.monitored ? ", monitor" : "") + ")";
}

Verdict verdict_of(const Config& config, std::span<const RuleEvaluation> evaluations) {
  Verdict verdict;
  // The monitored verdict is only built when something is monitored: on the
  // common path each fired rule's reason is made once, for the verdict alone.
  std::optional<MonitorVerdict> monitored;
  if (monitors_anything(config)) monitored.emplace();
  for (std::size_t i = 0; i < evaluations.size(); ++i) {
    const RuleEvaluation& evaluation = evaluations[i];
    if (!evaluation.fired) continue;
    const Rule& rule = config.rules[i];
    std::string reason = reason_of(rule, evaluation);
    if (monitored) {
      monitored->score += rule.points;
      monitored->fired_rules.push_back(i);
      monitored->reasons.push_back(reason);
    }
    if (evaluation.monitored) continue;
    verdict.score += rule.points;
    verdict.fired_rules.push_back(i);
    verdict.reasons.push_back(std::move(reason));
  }
  // Everything monitored: no rule is enforced, so nothing earns an action
  // (a band at score 0 above accept included).
  verdict.action = config.monitor.everything ? Action::Accept : action_for_score(config, verdict.score);
  if (monitored) {
    monitored->action = action_for_score(config, monitored->score);
    verdict.monitor = std::move(monitored);
  }
  return verdict;
}

Verdict score(const Config& config, const CounterPlan& plan, std::span<const std::uint64_t> counter_values) {
  const auto evaluations = evaluate_rules(config, plan, counter_values);
  return verdict_of(config, evaluations);
}

std::string join_reasons(const std::vector<std::string>& reasons) {
  std::string joined;
  for (const auto& reason : reasons) {
    if (!joined.empty()) joined += ", ";
    joined += reason;
  }
  return joined;
}

}  // namespace floodgate::policy
