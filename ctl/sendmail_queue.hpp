// Releasing a hold-mode entry from Sendmail's quarantine (quarantine.mta:
// sendmail): the message waits in Sendmail's queue, quarantined at the
// milter's request, and is released with Sendmail's own options:
//   COMMAND -bp -qQ -qIQUEUEID    is it quarantined? (the release itself
//                                 says nothing of an unknown id)
//   COMMAND -qQ -Q -qIQUEUEID     lift the quarantine
//   COMMAND -qIQUEUEID            deliver it now (a queue run would later)
// COMMAND is quarantine.sendmail_command ([/usr/sbin/sendmail] shipped),
// each run as an argument vector without a shell (containment/
// child_process.hpp).
//
// SECURITY: the queue id was recorded from the MTA, but it is still checked
// to be plain letters and digits (containment::is_plain_queue_id), so it
// can never be taken for an option. Sendmail's queue needs root.
#pragma once

#include <string>
#include <vector>

namespace floodgate::ctl {

// True once the message is out of the quarantine and its delivery started;
// otherwise false with `error` saying which step failed and why.
bool release_from_sendmail_quarantine(const std::vector<std::string>& sendmail_command,
                                      const std::string& queue_id, std::string& error);

}  // namespace floodgate::ctl
