// libmilter's signal thread, kept off Floodgate's signals.
//
// WHY
// smfi_main() starts a thread that sigwait()s for SIGHUP, SIGTERM and SIGINT
// and stops the milter on any of them: libmilter has no reload. Floodgate
// takes those three on its main thread instead (milter/daemon.cpp,
// SignalPipe): SIGHUP reloads, SIGTERM and SIGINT drain and then call
// smfi_stop(). But a process-directed signal may go to any thread that does
// not block it, and a thread in sigwait() counts as one: under load, one
// SIGHUP of a burst reached libmilter's thread and stopped the daemon
// ("libmilter stopped on its own", seen in CI about once in five
// sanitizer runs of postfix.reload_sighup_burst_survived).
//
// HOW
// This definition of sigwait() is in the floodgate executable, so the
// dynamic linker binds libmilter's call to it rather than to the C
// library's. Called with libmilter's set (exactly SIGHUP, SIGTERM, SIGINT)
// it never returns and never takes a signal: that thread then sleeps with
// the three signals blocked (its mask, inherited from the thread that
// called smfi_main(), blocks them), and only the main thread can receive
// them. Any other set goes to the next sigwait() (the C library's, or a
// sanitizer's interceptor in front of it) unchanged.
//
// tests/integration/postfix/test_lifecycle.py checks that no thread but the
// main one leaves SIGHUP unblocked once the daemon runs.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace {

bool is_libmilters_set(const sigset_t* set) {
  for (int signal = 1; signal < NSIG; ++signal) {
    const bool libmilters = signal == SIGHUP || signal == SIGTERM || signal == SIGINT;
    if ((sigismember(set, signal) == 1) != libmilters) return false;
  }
  return true;
}

}  // namespace

extern "C" int sigwait(const sigset_t* set, int* signal_number) {
  if (is_libmilters_set(set)) {
    for (;;) ::pause();  // a cancellation point; returns only to sleep again
  }
  using SigwaitFunction = int (*)(const sigset_t*, int*);
  static const auto next_sigwait = reinterpret_cast<SigwaitFunction>(::dlsym(RTLD_NEXT, "sigwait"));
  if (next_sigwait == nullptr) return EINVAL;
  return next_sigwait(set, signal_number);
}
