// TCP_NODELAY for the milter's TCP listening socket.
//
// SUMMARY
// A filter that answers end-of-message with several packets (add-header,
// add-header, quarantine, then the verdict) writes small segments back to
// back. With Nagle's algorithm on, the second one waits for the MTA to ACK
// the first, and the MTA, which reads the first and has nothing to send
// until the verdict, delays that ACK by ~40 ms: every tagged or held message
// would stall that long over inet: sockets. libmilter sets no TCP_NODELAY
// and opens and accepts its sockets itself, so Floodgate finds the
// listening socket libmilter opened (a TCP socket in the listen state that
// was not there before smfi_opensocket) and sets TCP_NODELAY on it; on
// Linux an accepted connection inherits it from its listening socket.
//
// LIMITS
// Linux only (reads /proc/self/fd). Unix sockets have no Nagle.
#pragma once

#include <set>
#include <string>

#include <tl/expected.hpp>

namespace floodgate::milter {

// The file descriptors of this process's TCP sockets in the listen state.
std::set<int> tcp_listening_sockets();

// Sets TCP_NODELAY on each socket; the error names the first that failed.
tl::expected<void, std::string> disable_nagle(const std::set<int>& sockets);

}  // namespace floodgate::milter
