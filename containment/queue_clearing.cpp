#include "containment/queue_clearing.hpp"

#include <algorithm>
#include <set>

#include "containment/child_process.hpp"

namespace floodgate::containment {
namespace {

std::string_view done_word(policy::QueueClearing mode) {
  return mode == policy::QueueClearing::Hold ? "held" : "deleted";
}

// postsuper's words for one message, after "postsuper: QUEUEID: ".
std::string_view postsuper_phrase(policy::QueueClearing mode) {
  return mode == policy::QueueClearing::Hold ? "placed on hold" : "removed";
}

std::string first_line(std::string_view text) {
  const auto end = text.find('\n');
  std::string line(text.substr(0, end));
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return line.substr(0, 200);
}

}  // namespace

bool is_plain_queue_id(std::string_view queue_id) {
  return !queue_id.empty() && queue_id.size() <= 64 && std::all_of(queue_id.begin(), queue_id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
         });
}

std::vector<QueueAction> read_postsuper_report(policy::QueueClearing mode, std::string_view output,
                                               const std::vector<std::string>& queue_ids) {
  std::set<std::string, std::less<>> acted_on;
  const std::string_view phrase = postsuper_phrase(mode);
  std::size_t start = 0;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string_view::npos) end = output.size();
    std::string_view line = output.substr(start, end - start);
    start = end + 1;
    // "postsuper: C2F23A740EE: placed on hold"
    if (line.starts_with("postsuper: ")) line.remove_prefix(11);
    const auto colon = line.find(": ");
    if (colon == std::string_view::npos) continue;
    if (line.substr(colon + 2) == phrase) acted_on.emplace(line.substr(0, colon));
  }
  std::vector<QueueAction> actions;
  for (const auto& queue_id : queue_ids) {
    actions.push_back({queue_id, acted_on.contains(queue_id) ? std::string(done_word(mode)) : "not in queue"});
  }
  return actions;
}

std::vector<QueueAction> clear_queued_messages(policy::QueueClearing mode, const std::string& postfix_config_directory,
                                               const std::vector<std::string>& queue_ids,
                                               std::chrono::milliseconds timeout) {
  if (mode == policy::QueueClearing::Off) return {};
  std::vector<std::string> plain;
  std::vector<QueueAction> refused;
  std::set<std::string> seen;
  std::string input;
  for (const auto& queue_id : queue_ids) {
    if (!seen.insert(queue_id).second) continue;
    if (!is_plain_queue_id(queue_id)) {
      refused.push_back({queue_id, "failed: not a Postfix queue id"});
      continue;
    }
    plain.push_back(queue_id);
    input += queue_id + "\n";
  }
  std::vector<QueueAction> actions;
  if (!plain.empty()) {
    std::vector<std::string> argv{"postsuper"};
    if (!postfix_config_directory.empty()) {
      argv.push_back("-c");
      argv.push_back(postfix_config_directory);
    }
    argv.push_back(mode == policy::QueueClearing::Hold ? "-h" : "-d");
    argv.push_back("-");
    const ChildResult result = run_child(argv, input, timeout);
    if (result.succeeded()) {
      actions = read_postsuper_report(mode, result.output, plain);
    } else {
      const std::string why = "failed: " + (result.error.empty() ? std::string("postsuper failed") : result.error) +
                              (result.output.empty() ? "" : " (" + first_line(result.output) + ")");
      for (const auto& queue_id : plain) actions.push_back({queue_id, why});
    }
  }
  actions.insert(actions.end(), refused.begin(), refused.end());
  return actions;
}

}  // namespace floodgate::containment
