#include "policy/config.hpp"

#include <algorithm>

namespace floodgate::policy {

bool monitors_anything(const Config& config) {
  return config.monitor.everything ||
         std::any_of(config.rules.begin(), config.rules.end(), [](const Rule& rule) { return rule.mode == RuleMode::Monitor; });
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::Accept: return "accept";
    case Action::Tag: return "tag";
    case Action::Quarantine: return "quarantine";
    case Action::Tempfail: return "tempfail";
    case Action::Reject: return "reject";
  }
  return "unknown";
}

std::string_view to_string(Signal signal) {
  switch (signal) {
    case Signal::RecipientsPerMessage: return "recipients_per_message";
    case Signal::Messages: return "messages";
    case Signal::Recipients: return "recipients";
    case Signal::DistinctRecipients: return "distinct_recipients";
    case Signal::RejectedRecipients: return "rejected_recipients";
    case Signal::ContentCopies: return "content_copies";
    case Signal::ContentRecipients: return "content_recipients";
    case Signal::ContentSources: return "content_sources";
    case Signal::ContentRecipientDomains: return "content_recipient_domains";
  }
  return "unknown";
}

std::string_view to_string(QueueClearing clearing) {
  switch (clearing) {
    case QueueClearing::Off: return "off";
    case QueueClearing::Hold: return "hold";
    case QueueClearing::Delete: return "delete";
  }
  return "unknown";
}

}  // namespace floodgate::policy
