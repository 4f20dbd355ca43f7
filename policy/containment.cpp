#include "policy/containment.hpp"

#include <algorithm>

namespace floodgate::policy {

namespace {

std::vector<FreezeRequest> freeze_requests(const Config& config, int score, const std::vector<std::size_t>& fired_rules,
                                           const std::vector<std::string>& reasons, const MessageFacts& facts) {
  const ContainmentSettings& containment = config.containment;
  const bool by_score = containment.min_score && score >= *containment.min_score;
  std::vector<FreezeRequest> requests;
  for (std::size_t i = 0; i < fired_rules.size(); ++i) {
    const std::size_t rule_index = fired_rules[i];
    const Rule& rule = config.rules[rule_index];
    const bool named = std::find(containment.rules.begin(), containment.rules.end(), rule_index) !=
                       containment.rules.end();
    if (!rule.identity || !(named || by_score)) continue;
    auto source = source_of(config.identities[*rule.identity], facts);
    if (!source) continue;
    // Two rules on one identity freeze one source.
    const bool already = std::any_of(requests.begin(), requests.end(),
                                     [&](const FreezeRequest& r) { return r.source == *source; });
    if (!already) requests.push_back({rule_index, std::move(*source), reasons[i]});
  }
  return requests;
}

}  // namespace

std::vector<FreezeRequest> sources_to_freeze(const Config& config, const Verdict& verdict,
                                             const MessageFacts& facts) {
  return freeze_requests(config, verdict.score, verdict.fired_rules, verdict.reasons, facts);
}

std::vector<FreezeRequest> sources_monitor_would_freeze(const Config& config, const Verdict& verdict,
                                                        const MessageFacts& facts) {
  if (!verdict.monitor) return {};
  const auto enforced = sources_to_freeze(config, verdict, facts);
  auto would = freeze_requests(config, verdict.monitor->score, verdict.monitor->fired_rules,
                               verdict.monitor->reasons, facts);
  std::erase_if(would, [&](const FreezeRequest& request) {
    return std::any_of(enforced.begin(), enforced.end(),
                       [&](const FreezeRequest& frozen) { return frozen.source == request.source; });
  });
  return would;
}

Verdict contain(Verdict verdict, Action freeze_action, const std::string& rule_name) {
  // A freeze never softens what the message earned by itself: the Action
  // enumerators go from mildest to hardest.
  verdict.action = std::max(verdict.action, freeze_action);
  verdict.reasons.push_back("frozen(" + rule_name + ")");
  return verdict;
}

}  // namespace floodgate::policy
