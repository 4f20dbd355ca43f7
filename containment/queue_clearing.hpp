// Queue clearing: on a freeze, what becomes of the source's messages that
// were accepted before it and still wait in the MTA's queue.
//
// SUMMARY
// clear_queued_messages() acts on all of them at once with the MTA's own
// tool, chosen by quarantine.mta, and reads its report per message:
// - Postfix: postsuper (`-h -` to put them on hold, `-d -` to delete them,
//   queue ids on stdin). It names each message it acted on ("ABC123: placed
//   on hold", "ABC123: removed") and says nothing of the others.
// - Sendmail: `COMMAND -v -QREASON -qIID...` quarantines them in Sendmail's
//   queue (mailq -qQ shows REASON; release with sendmail -qQ -Q -qIID). It
//   names each message it quarantined ('ID: Quarantined with "REASON"').
//   A message a delivery attempt has locked is skipped: those still listed
//   by `COMMAND -bp -qIID...` are tried again a second later, twice at most.
//   Sendmail has no command that deletes a queued message: the config
//   loader refuses delete with it (policy/config_loader.cpp).
// A message neither tool acted on -- already delivered, bounced, or held
// already -- is "not in queue".
//
// SECURITY
// The tools are run as argument vectors (containment/child_process.hpp),
// never through a shell; only plain queue ids ([A-Za-z0-9], what Postfix and
// Sendmail make) are given to them, so none can be read as an option. Both
// need root: a daemon that runs as another user gets "failed: ..." for each
// message and mail handling goes on.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "containment/incident.hpp"
#include "policy/config.hpp"

namespace floodgate::containment {

bool is_plain_queue_id(std::string_view queue_id);

// One QueueAction per distinct queue id given (in that order). Mode Off:
// nothing is run and nothing returned. `mta` says which MTA and its tool
// (quarantine.mta, postfix_config_directory, sendmail_command); `reason` is
// what Sendmail's quarantine shows for each message (printable ASCII kept).
std::vector<QueueAction> clear_queued_messages(policy::QueueClearing mode, const policy::QuarantineSettings& mta,
                                               const std::vector<std::string>& queue_ids, const std::string& reason,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The per-message results from postsuper's report (`output`, stderr);
// pure, for tests. `queue_ids` are those that were given to it.
std::vector<QueueAction> read_postsuper_report(policy::QueueClearing mode, std::string_view output,
                                               const std::vector<std::string>& queue_ids);

// The queue ids `sendmail -v -Q...` says it quarantined; pure, for tests.
std::set<std::string, std::less<>> read_sendmail_quarantine_report(std::string_view output);

// The queue ids of `wanted` that a `sendmail -bp` listing shows; pure.
std::set<std::string, std::less<>> read_sendmail_queue_listing(std::string_view output,
                                                               const std::vector<std::string>& wanted);

}  // namespace floodgate::containment
