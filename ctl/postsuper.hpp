// Releasing a hold-mode entry with Postfix's own tool: postsuper [-c DIR]
// -H QUEUEID, run as an argument vector without a shell
// (containment/child_process.hpp), so neither the queue id nor the
// directory is ever interpreted.
//
// SECURITY: the queue id was recorded from the MTA, but it is still checked
// to be a plain Postfix queue id (containment::is_plain_queue_id) so it can
// never be taken for an option. postsuper needs root.
#pragma once

#include <string>

namespace floodgate::ctl {

// Runs postsuper and waits for it (at most a minute). True when it exited
// 0; otherwise false with `error` saying why, with postsuper's own first
// line of complaint.
bool release_from_hold_queue(const std::string& postfix_config_directory, const std::string& queue_id,
                             std::string& error);

}  // namespace floodgate::ctl
