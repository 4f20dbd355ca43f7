#include "containment/queue_clearing.hpp"

#include <algorithm>
#include <set>
#include <thread>

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

// The lines of a tool's output, without their newlines.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
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
  for (std::string_view line : lines_of(output)) {
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

std::set<std::string, std::less<>> read_sendmail_quarantine_report(std::string_view output) {
  std::set<std::string, std::less<>> quarantined;
  for (std::string_view line : lines_of(output)) {
    // 6AS2HVJb009446: Quarantined with "floodgate: ..."
    const auto colon = line.find(": Quarantined with ");
    if (colon != std::string_view::npos && is_plain_queue_id(line.substr(0, colon)))
      quarantined.emplace(line.substr(0, colon));
  }
  return quarantined;
}

std::set<std::string, std::less<>> read_sendmail_queue_listing(std::string_view output,
                                                               const std::vector<std::string>& wanted) {
  std::set<std::string, std::less<>> listed;
  for (std::string_view line : lines_of(output)) {
    // "6AS2HVJb009446*       3 Sat Nov 28 02:17 <a@x.example>": a mark after
    // the id says it is locked (*), over the size limit (X) or quarantined (-).
    const auto token = line.substr(0, line.find_first_of(" \t"));
    for (const auto& queue_id : wanted) {
      if (token.starts_with(queue_id) &&
          (token.size() == queue_id.size() || !is_plain_queue_id(token.substr(queue_id.size(), 1))))
        listed.insert(queue_id);
    }
  }
  return listed;
}

namespace {

std::string failure_text(const std::string& tool, const ChildResult& result) {
  return "failed: " + (result.error.empty() ? tool + " failed" : result.error) +
         (result.output.empty() ? "" : " (" + first_line(result.output) + ")");
}

std::vector<QueueAction> run_postsuper(policy::QueueClearing mode, const std::string& postfix_config_directory,
                                       const std::vector<std::string>& queue_ids,
                                       std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{"postsuper"};
  if (!postfix_config_directory.empty()) {
    argv.push_back("-c");
    argv.push_back(postfix_config_directory);
  }
  argv.push_back(mode == policy::QueueClearing::Hold ? "-h" : "-d");
  argv.push_back("-");
  std::string input;
  for (const auto& queue_id : queue_ids) input += queue_id + "\n";
  const ChildResult result = run_child(argv, input, timeout);
  if (result.succeeded()) return read_postsuper_report(mode, result.output, queue_ids);
  std::vector<QueueAction> actions;
  for (const auto& queue_id : queue_ids) actions.push_back({queue_id, failure_text("postsuper", result)});
  return actions;
}

// A reason Sendmail writes on one line of its queue file.
std::string printable_reason(const std::string& reason) {
  std::string printable;
  for (char c : reason) printable += (c >= 0x20 && c < 0x7f) ? c : '?';
  return printable.empty() ? std::string("floodgate") : printable.substr(0, 200);
}

std::vector<QueueAction> run_sendmail_quarantine(const std::vector<std::string>& command,
                                                 const std::vector<std::string>& queue_ids, const std::string& reason,
                                                 std::chrono::milliseconds timeout) {
  constexpr int k_attempts = 3;
  constexpr auto k_pause = std::chrono::seconds(1);
  std::set<std::string, std::less<>> quarantined;
  std::vector<std::string> pending = queue_ids;  // not yet quarantined, maybe still queued
  std::string failure;
  for (int attempt = 1; attempt <= k_attempts && !pending.empty() && failure.empty(); ++attempt) {
    if (attempt > 1) std::this_thread::sleep_for(k_pause);
    std::vector<std::string> argv = command;
    argv.insert(argv.end(), {"-v", "-Q" + printable_reason(reason)});
    for (const auto& queue_id : pending) argv.push_back("-qI" + queue_id);
    const ChildResult done = run_child(argv, "", timeout);
    if (!done.succeeded()) {
      failure = failure_text("sendmail -Q", done);
      break;
    }
    quarantined.merge(read_sendmail_quarantine_report(done.output));
    std::erase_if(pending, [&](const std::string& id) { return quarantined.contains(id); });
    if (pending.empty()) break;
    // Those Sendmail skipped: gone (delivered, bounced), or locked by a
    // delivery attempt and still queued.
    argv = command;
    argv.push_back("-bp");
    for (const auto& queue_id : pending) argv.push_back("-qI" + queue_id);
    const ChildResult listing = run_child(argv, "", timeout);
    if (!listing.succeeded()) {
      failure = failure_text("sendmail -bp", listing);
      break;
    }
    const auto still_queued = read_sendmail_queue_listing(listing.output, pending);
    std::erase_if(pending, [&](const std::string& id) { return !still_queued.contains(id); });
  }
  if (failure.empty() && !pending.empty())
    failure = "failed: still in Sendmail's queue, not quarantined (locked by a delivery attempt)";
  std::vector<QueueAction> actions;
  for (const auto& queue_id : queue_ids) {
    const bool left = std::find(pending.begin(), pending.end(), queue_id) != pending.end();
    actions.push_back({queue_id, quarantined.contains(queue_id) ? std::string("held")
                                 : left                         ? failure
                                                                : std::string("not in queue")});
  }
  return actions;
}

}  // namespace

std::vector<QueueAction> clear_queued_messages(policy::QueueClearing mode, const policy::QuarantineSettings& mta,
                                               const std::vector<std::string>& queue_ids, const std::string& reason,
                                               std::chrono::milliseconds timeout) {
  if (mode == policy::QueueClearing::Off) return {};
  const bool sendmail = mta.mta == policy::QuarantineSettings::Mta::Sendmail;
  std::vector<std::string> plain;
  std::vector<QueueAction> refused;
  std::set<std::string> seen;
  for (const auto& queue_id : queue_ids) {
    if (!seen.insert(queue_id).second) continue;
    if (!is_plain_queue_id(queue_id)) {
      refused.push_back({queue_id, sendmail ? "failed: not a Sendmail queue id" : "failed: not a Postfix queue id"});
      continue;
    }
    plain.push_back(queue_id);
  }
  std::vector<QueueAction> actions;
  if (!plain.empty() && sendmail && mta.sendmail_command.empty()) {
    for (const auto& queue_id : plain) actions.push_back({queue_id, "failed: quarantine.sendmail_command is empty"});
  } else if (!plain.empty() && sendmail) {
    // Config loading refuses Delete with Sendmail; Hold is all it can do.
    actions = run_sendmail_quarantine(mta.sendmail_command, plain, reason, timeout);
  } else if (!plain.empty()) {
    actions = run_postsuper(mode, mta.postfix_config_directory, plain, timeout);
  }
  actions.insert(actions.end(), refused.begin(), refused.end());
  return actions;
}

}  // namespace floodgate::containment
