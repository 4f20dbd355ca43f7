#include "policy/scoring.hpp"

#include <algorithm>
#include <cassert>

#include "policy/digest.hpp"
#include "policy/identity.hpp"

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

std::string make_key(const Config& config, std::string_view hash_tag, std::string_view what,
                     std::chrono::seconds window) {
  std::string key = config.redis.key_prefix;
  key += ":{";
  key += hash_tag;
  key += "}:";
  key += what;
  key += ':';
  key += std::to_string(window.count());
  return key;
}

std::vector<std::string> recipient_members(const std::vector<std::string>& recipients) {
  std::vector<std::string> members;
  members.reserve(recipients.size());
  for (const auto& recipient : recipients) members.push_back(to_hex(digest64(lower_ascii(recipient))));
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  return members;
}

std::size_t add_request(CounterPlan& plan, CounterRequest request) {
  const auto found = std::find(plan.requests.begin(), plan.requests.end(), request);
  if (found != plan.requests.end()) return static_cast<std::size_t>(found - plan.requests.begin());
  plan.requests.push_back(std::move(request));
  return plan.requests.size() - 1;
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

// The counter requests a rule needs: none when the rule does not apply,
// one for a per-source rule, one per content key for a content rule (each
// LSH band of a near-duplicate fingerprint, or the exact digest).
std::vector<CounterRequest> requests_for_rule(const Config& config, const Rule& rule, const MessageFacts& facts) {
  std::optional<SourceIdentity> identity;
  if (rule.identity) {
    identity = build_identity(config.identities[*rule.identity], facts);
    if (!identity) return {};
  }
  const std::uint64_t recipient_count = facts.recipients.size();

  CounterRequest request;
  request.window = rule.window;
  request.kind = CounterKind::Sum;
  switch (rule.signal) {
    case Signal::RecipientsPerMessage:
      return {};
    case Signal::Messages:
    case Signal::Recipients:
    case Signal::DistinctRecipients:
    case Signal::RejectedRecipients: {
      // Identity names are part of the key so that two identities made of
      // the same parts keep separate counters.
      const std::string what =
          std::string(counter_name(rule.signal)) + ":" + config.identities[*rule.identity].name;
      request.key = make_key(config, "s" + identity->digest, what, rule.window);
      if (rule.signal == Signal::Messages) request.amount = 1;
      if (rule.signal == Signal::Recipients) request.amount = recipient_count;
      if (rule.signal == Signal::RejectedRecipients) request.amount = facts.rejected_recipients.size();
      if (rule.signal == Signal::DistinctRecipients) {
        request.kind = CounterKind::Distinct;
        request.members = recipient_members(facts.recipients);
      }
      return {request};
    }
    case Signal::ContentCopies:
    case Signal::ContentRecipients:
    case Signal::ContentSources:
    case Signal::ContentRecipientDomains: {
      if (!facts.fingerprint.present) return {};
      if (rule.signal == Signal::ContentSources && !identity) return {};  // the loader requires one; stay safe
      // Near-duplicate: one key per LSH band ("b" marks a band key, so it
      // never meets an exact digest); exact: the digest.
      std::vector<std::string> content_keys;
      if (facts.fingerprint.bands.empty()) {
        content_keys.push_back(to_hex(facts.fingerprint.digest));
      } else {
        for (const std::uint64_t band : facts.fingerprint.bands) content_keys.push_back("b" + to_hex(band));
      }
      std::vector<CounterRequest> requests;
      for (const auto& content_key : content_keys) {
        std::string what = std::string(counter_name(rule.signal)) + ":" + content_key;
        std::string hash_tag = "c" + content_key;
        CounterRequest band_request = request;
        if (rule.signal == Signal::ContentSources) {
          what += ":" + config.identities[*rule.identity].name;
          band_request.kind = CounterKind::Distinct;
          band_request.members = {identity->digest};
        } else {
          if (identity) {
            // Per source: keep the key in the source's slot.
            hash_tag = "s" + identity->digest;
            what += ":" + config.identities[*rule.identity].name;
          }
          if (rule.signal == Signal::ContentRecipientDomains) {
            band_request.kind = CounterKind::Distinct;
            band_request.members = recipient_domain_members(facts.recipients);
          } else {
            band_request.amount = rule.signal == Signal::ContentCopies ? 1 : recipient_count;
          }
        }
        band_request.key = make_key(config, hash_tag, what, rule.window);
        requests.push_back(std::move(band_request));
      }
      return requests;
    }
  }
  return {};
}

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
  for (const auto& rule : config.rules) {
    RuleInput input;
    if (rule.signal == Signal::RecipientsPerMessage) {
      input.source = RuleInput::Source::Immediate;
      input.immediate_value = facts.recipients.size();
    } else if (auto requests = requests_for_rule(config, rule, facts); !requests.empty()) {
      input.source = RuleInput::Source::Counter;
      input.exact_content = is_content_signal(rule.signal) && facts.fingerprint.bands.empty();
      input.counter_index = add_request(plan, std::move(requests.front()));
      for (std::size_t i = 1; i < requests.size(); ++i)
        input.more_counter_indices.push_back(add_request(plan, std::move(requests[i])));
    }
    plan.rule_inputs.push_back(input);
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

Verdict score(const Config& config, const CounterPlan& plan,
              std::span<const std::uint64_t> counter_values) {
  assert(counter_values.size() == plan.requests.size());
  Verdict verdict;
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    const Rule& rule = config.rules[i];
    const RuleInput& input = plan.rule_inputs[i];
    std::uint64_t value = 0;
    switch (input.source) {
      case RuleInput::Source::NotApplicable: continue;
      case RuleInput::Source::Immediate: value = input.immediate_value; break;
      case RuleInput::Source::Counter:
        value = counter_values[input.counter_index];
        for (const std::size_t index : input.more_counter_indices) value = std::max(value, counter_values[index]);
        break;
    }
    if (value <= rule.threshold) continue;
    verdict.score += rule.points;
    verdict.fired_rules.push_back(i);
    verdict.reasons.push_back(rule.name + "=" + std::to_string(value) + ">" +
                              std::to_string(rule.threshold) + " (" + (rule.points >= 0 ? "+" : "") +
                              std::to_string(rule.points) + (input.exact_content ? ", exact" : "") + ")");
  }
  verdict.action = action_for_score(config, verdict.score);
  return verdict;
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
