// Queue clearing: on a freeze, what becomes of the source's messages that
// were accepted before it and still wait in the local Postfix queue.
//
// SUMMARY
// clear_queued_messages() runs postsuper once for all of them (`-h -` to
// put them on hold, `-d -` to delete them, queue ids on stdin) and reads
// its report: postsuper names each message it acted on ("ABC123: placed on
// hold", "ABC123: removed") and says nothing of the others -- already
// delivered, bounced, or on hold already -- which are "not in queue".
//
// SECURITY
// postsuper is run as an argument vector (containment/child_process.hpp),
// never through a shell; only plain queue ids ([A-Za-z0-9], what Postfix
// makes) are given to it, so none can be read as an option. postsuper
// needs root: a daemon that runs as another user gets "failed: ..." for
// each message and mail handling goes on.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "containment/incident.hpp"
#include "policy/config.hpp"

namespace floodgate::containment {

bool is_plain_queue_id(std::string_view queue_id);

// One QueueAction per distinct queue id given (in that order). Mode Off:
// nothing is run and nothing returned.
std::vector<QueueAction> clear_queued_messages(policy::QueueClearing mode, const std::string& postfix_config_directory,
                                               const std::vector<std::string>& queue_ids,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The per-message results from postsuper's report (`output`, stderr);
// pure, for tests. `queue_ids` are those that were given to it.
std::vector<QueueAction> read_postsuper_report(policy::QueueClearing mode, std::string_view output,
                                               const std::vector<std::string>& queue_ids);

}  // namespace floodgate::containment
