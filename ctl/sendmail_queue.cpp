#include "ctl/sendmail_queue.hpp"

#include <chrono>

#include "containment/child_process.hpp"
#include "containment/queue_clearing.hpp"
#include "ctl/terminal_text.hpp"

namespace floodgate::ctl {
namespace {

constexpr std::chrono::seconds k_sendmail_timeout{60};

// Runs COMMAND OPTIONS...; on failure sets `error` to what failed, with
// Sendmail's first line of complaint.
bool run_sendmail(const std::vector<std::string>& command, const std::vector<std::string>& options,
                  containment::ChildResult& result, std::string& error) {
  std::vector<std::string> argv = command;
  argv.insert(argv.end(), options.begin(), options.end());
  result = containment::run_child(argv, "", k_sendmail_timeout);
  if (result.succeeded()) return true;
  std::string words = "sendmail";
  for (const auto& option : options) words += " " + option;
  error = result.exit_status && !result.timed_out
              ? words + " failed with exit status " + std::to_string(*result.exit_status)
              : words + ": " + (result.error.empty() ? std::string("failed") : result.error);
  const std::string output = result.output.substr(0, result.output.find('\n'));
  if (!output.empty()) error += ": " + escape_for_terminal(output, 200);
  return false;
}

}  // namespace

bool release_from_sendmail_quarantine(const std::vector<std::string>& sendmail_command,
                                      const std::string& queue_id, std::string& error) {
  if (!containment::is_plain_queue_id(queue_id)) {
    error = "the recorded queue id is not a Sendmail queue id";
    return false;
  }
  if (sendmail_command.empty()) {
    error = "quarantine.sendmail_command is empty";
    return false;
  }
  const std::string select = "-qI" + queue_id;
  containment::ChildResult result;
  if (!run_sendmail(sendmail_command, {"-bp", "-qQ", select}, result, error)) return false;
  if (result.output.find(queue_id) == std::string::npos) {
    error = "queue id " + queue_id + " is not in Sendmail's quarantine (released or deleted already?)";
    return false;
  }
  if (!run_sendmail(sendmail_command, {"-qQ", "-Q", select}, result, error)) return false;
  if (!run_sendmail(sendmail_command, {select}, result, error)) {
    error = "out of the quarantine, but delivery did not start (the next queue run delivers it): " + error;
    return false;
  }
  return true;
}

}  // namespace floodgate::ctl
