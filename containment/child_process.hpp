// Running a helper program: an argument vector executed directly (execv, no
// shell, so no word of it is ever interpreted), `input` written to its
// stdin, its stdout and stderr collected (capped), and a deadline after
// which it is killed (SIGTERM, then SIGKILL a second later).
//
// Used for the notification command and for postsuper. Never throws; every
// failure is described in the result. Safe to call from several threads
// (the child gets only the three pipe descriptors: everything else is
// closed, so a libmilter socket never leaks into a notification script).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::containment {

struct ChildResult {
  bool started = false;              // false: could not run it (see error)
  bool timed_out = false;            // killed at the deadline
  std::optional<int> exit_status;    // when it exited
  std::optional<int> signal;         // when a signal ended it
  std::string output;                // stdout then stderr, at most 64 KiB (the rest dropped)
  std::string error;                 // why it failed, for logs; "" when it exited 0

  bool succeeded() const { return exit_status && *exit_status == 0; }
};

// argv[0] must be an absolute path, or a bare name looked up in PATH and
// then in /usr/sbin and /usr/bin (postsuper lives in /usr/sbin, often not on
// a daemon's PATH). `environment`: extra NAME=VALUE entries added to a
// minimal environment (PATH, and nothing else of ours).
ChildResult run_child(const std::vector<std::string>& argv, std::string_view input,
                      std::chrono::milliseconds timeout, const std::vector<std::string>& environment = {});

}  // namespace floodgate::containment
