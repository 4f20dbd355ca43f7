// Releasing a hold-mode entry with Postfix's own tool: postsuper [-c DIR]
// -H QUEUEID, run with fork/execvp and an argument vector (no shell), so
// neither the queue id nor the directory is ever interpreted.
//
// SECURITY: the queue id was recorded from the MTA, but it is still checked
// to be a plain Postfix queue id (letters and digits) so it can never be
// taken for an option. postsuper needs root; its own messages go to our
// stderr unchanged.
#pragma once

#include <string>

namespace floodgate::ctl {

bool is_plain_queue_id(const std::string& queue_id);

// Runs postsuper (found on PATH, else /usr/sbin/postsuper) and waits for
// it. True when it exited 0; otherwise false with `error` saying why.
bool release_from_hold_queue(const std::string& postfix_config_directory, const std::string& queue_id,
                             std::string& error);

}  // namespace floodgate::ctl
