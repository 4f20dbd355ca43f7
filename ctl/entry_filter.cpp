#include "ctl/entry_filter.hpp"

#include <algorithm>

#include "policy/ascii.hpp"

namespace floodgate::ctl {
namespace {

using policy::lower_ascii;

bool equal_ignoring_case(const std::string& a, const std::string& b) {
  return lower_ascii(a) == lower_ascii(b);
}

}  // namespace

bool EntryFilter::matches(const quarantine::QuarantineEntry& entry,
                          std::chrono::system_clock::time_point now) const {
  if (source && !equal_ignoring_case(entry.client_address, *source) &&
      !equal_ignoring_case(entry.client_name, *source) && !equal_ignoring_case(entry.sasl_user, *source)) {
    return false;
  }
  if (sender) {
    const std::string wanted = *sender == "<>" ? std::string() : *sender;
    if (!equal_ignoring_case(entry.sender, wanted)) return false;
  }
  if (since && entry.time < now - *since) return false;
  if (reason) {
    const std::string needle = lower_ascii(*reason);
    auto holds = [&](const std::string& text) { return lower_ascii(text).find(needle) != std::string::npos; };
    if (!holds(entry.cause) && std::none_of(entry.reasons.begin(), entry.reasons.end(), holds)) return false;
  }
  return true;
}

std::vector<quarantine::QuarantineEntry> select_entries(std::vector<quarantine::QuarantineEntry> entries,
                                                        const EntryFilter& filter,
                                                        std::chrono::system_clock::time_point now) {
  std::erase_if(entries, [&](const auto& entry) { return !filter.matches(entry, now); });
  if (filter.limit && entries.size() > *filter.limit) {
    entries.erase(entries.begin(), entries.end() - static_cast<std::ptrdiff_t>(*filter.limit));
  }
  return entries;
}

}  // namespace floodgate::ctl
