#include "ctl/postsuper.hpp"

#include <vector>

#include "containment/child_process.hpp"
#include "containment/queue_clearing.hpp"
#include "ctl/terminal_text.hpp"

namespace floodgate::ctl {

bool release_from_hold_queue(const std::string& postfix_config_directory, const std::string& queue_id,
                             std::string& error) {
  if (!containment::is_plain_queue_id(queue_id)) {
    error = "the recorded queue id is not a Postfix queue id";
    return false;
  }
  std::vector<std::string> argv{"postsuper"};
  if (!postfix_config_directory.empty()) {
    argv.push_back("-c");
    argv.push_back(postfix_config_directory);
  }
  argv.push_back("-H");
  argv.push_back(queue_id);
  const containment::ChildResult result = containment::run_child(argv, "", std::chrono::seconds(60));
  if (result.succeeded()) return true;
  error = result.exit_status && !result.timed_out
              ? "postsuper -H failed with exit status " + std::to_string(*result.exit_status)
              : (result.error.empty() ? std::string("postsuper -H failed") : "postsuper -H: " + result.error);
  const std::string output = result.output.substr(0, result.output.find('\n'));
  if (!output.empty()) error += ": " + escape_for_terminal(output, 200);
  return false;
}

}  // namespace floodgate::ctl
