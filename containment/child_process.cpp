// run_child (see child_process.hpp for the contract).
//
// SUMMARY: posix_spawn (no shell) with three pipes; a poll() loop writes the
// input while it reads stdout and stderr, so a child that writes a lot
// before reading its stdin, or never reads it, cannot deadlock us. The child
// runs in its own process group, so at the deadline SIGTERM (and SIGKILL a
// second later) reaches the shell script and whatever it started. The child
// is always reaped.
//
// SECURITY: argv words go to execve unchanged; a word or environment entry
// holding a NUL byte is refused (it would be cut short silently). The child
// gets only its three pipes (posix_spawn_file_actions_addclosefrom_np closes
// everything from fd 3, CLOEXEC or not), default signal dispositions, an
// empty signal mask and an environment of PATH plus the caller's entries.
// A bare argv[0] is looked up only in absolute PATH directories (never the
// current directory), then in /usr/sbin and /usr/bin.
//
// DIAGNOSTICS: a child whose stdin reader went away gives EPIPE, not
// SIGPIPE: SIGPIPE is blocked in the calling thread while we write, and one
// our write raised is taken off the pending set before the mask is restored.
//
// LIMITS: output is capped at 64 KiB (stdout then stderr; the rest is read
// and dropped so the child never blocks on a full pipe). Once the child has
// exited, output still held open by a grandchild is read for at most
// k_drain_after_exit. A grandchild that leaves the process group (setsid)
// is not killed at the deadline.
#include "containment/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

namespace floodgate::containment {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t k_max_output_bytes = 64 * 1024;
constexpr std::string_view k_minimal_path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Between SIGTERM at the deadline and SIGKILL.
constexpr milliseconds k_kill_grace{1000};
// How long output is still read after the child exited (a grandchild may
// hold the pipes open for ever).
constexpr milliseconds k_drain_after_exit{100};
// Without a pidfd, how often we look whether the child exited while its
// pipes stay open.
constexpr milliseconds k_exit_check_interval{10};
// Each write to the child's stdin: small enough that a non-blocking write
// to a pipe makes progress piece by piece.
constexpr std::size_t k_write_chunk_bytes = 64 * 1024;

std::string errno_text(int error) { return std::strerror(error); }

// An owned descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(Fd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = std::exchange(other.m_fd, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return m_fd; }
  bool open() const { return m_fd >= 0; }
  void reset() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }

 private:
  int m_fd = -1;
};

// A pipe whose ends are both CLOEXEC (so no other thread's child inherits
// them) and at fd 3 or above, so that dup2 onto 0, 1 and 2 in the child
// cannot overwrite one of them before it is used (the daemon may run with
// its standard descriptors closed).
bool make_pipe(Fd& read_end, Fd& write_end, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = "cannot create a pipe: " + errno_text(errno);
    return false;
  }
  for (int& fd : fds) {
    if (fd < 3) {
      const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      const int saved = errno;
      ::close(fd);
      fd = moved;
      if (moved < 0) {
        error = "cannot create a pipe: " + errno_text(saved);
        for (int other : fds) {
          if (other >= 0 && other != moved) ::close(other);
        }
        return false;
      }
    }
  }
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
  return true;
}

bool set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The file to execute for argv[0], or "" with `error` set.
std::string resolve_program(const std::string& name, std::string& error) {
  if (name.empty()) {
    error = "the program name is empty";
    return "";
  }
  if (name.find('/') != std::string::npos) {
    if (name.front() != '/') {
      error = "the program must be an absolute path or a bare name";
      return "";
    }
    return name;  // posix_spawn reports what is wrong with it
  }
  std::vector<std::string> directories;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest = path;
    while (true) {
      const auto colon = rest.find(':');
      std::string_view directory = rest.substr(0, colon);
      // An empty or relative entry means the current directory: never.
      if (!directory.empty() && directory.front() == '/') directories.emplace_back(directory);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  directories.emplace_back("/usr/sbin");
  directories.emplace_back("/usr/bin");
  for (const auto& directory : directories) {
    std::string candidate = directory + "/" + name;
    if (is_executable_file(candidate)) return candidate;
  }
  error = "not found on PATH nor in /usr/sbin or /usr/bin";
  return "";
}

// PATH, then the caller's entries; an entry replaces an earlier one of the
// same name (so a caller's PATH= wins over ours).
bool build_environment(const std::vector<std::string>& extra, std::vector<std::string>& out, std::string& error) {
  out.emplace_back(k_minimal_path);
  for (const auto& entry : extra) {
    const auto equals = entry.find('=');
    if (equals == 0 || equals == std::string::npos || entry.find('\0') != std::string::npos) {
      error = "an environment entry is not NAME=VALUE";
      return false;
    }
    const std::string_view name(entry.data(), equals + 1);
    std::erase_if(out, [&](const std::string& existing) { return existing.starts_with(name); });
    out.push_back(entry);
  }
  return true;
}

std::vector<char*> c_strings(std::vector<std::string>& words) {
  std::vector<char*> pointers;
  pointers.reserve(words.size() + 1);
  for (auto& word : words) pointers.push_back(word.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Blocks SIGPIPE in this thread for its lifetime. When one of our writes
// got EPIPE, the SIGPIPE it raised is pending: note_epipe() makes the
// destructor take it off (unless one was already pending before us, which
// belongs to someone else) before restoring the mask.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&m_pipe);
    sigaddset(&m_pipe, SIGPIPE);
    m_blocked = ::pthread_sigmask(SIG_BLOCK, &m_pipe, &m_previous) == 0;
    sigset_t pending;
    sigemptyset(&pending);
    m_was_pending = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!m_blocked) return;
    if (m_got_epipe && !m_was_pending) {
      const timespec no_wait{0, 0};
      while (::sigtimedwait(&m_pipe, nullptr, &no_wait) < 0 && errno == EINTR) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &m_previous, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

  void note_epipe() { m_got_epipe = true; }

 private:
  sigset_t m_pipe;
  sigset_t m_previous;
  bool m_blocked = false;
  bool m_was_pending = false;
  bool m_got_epipe = false;
};

// Output of one stream, capped; what is over the cap is read and dropped.
struct Capture {
  Fd fd;
  std::string text;

  // false at end of file or on error (the pipe is then closed).
  bool read_some() {
    char buffer[16 * 1024];
    while (true) {
      const ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
      if (got > 0) {
        const std::size_t room = k_max_output_bytes - std::min(k_max_output_bytes, text.size());
        text.append(buffer, std::min(room, static_cast<std::size_t>(got)));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      fd.reset();
      return false;
    }
  }
};

std::string signal_name(int signal) {
  const char* abbreviation = ::sigabbrev_np(signal);
  std::string text = std::to_string(signal);
  if (abbreviation != nullptr) text += std::string(" (SIG") + abbreviation + ")";
  return text;
}

// Sends `signal` to the child's process group (it is the leader), or to
// the child alone if the group is gone.
void signal_child(pid_t pid, int signal) {
  if (::kill(-pid, signal) != 0) ::kill(pid, signal);
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  return fd >= 0 ? static_cast<int>(fd) : -1;
#else
  (void)pid;
  return -1;
#endif
}

// The whole life of a started child: feeding, reading, the deadline,
// reaping.
class Supervision {
 public:
  Supervision(pid_t pid, Fd input, Fd output, Fd errors, std::string_view data, milliseconds timeout)
      : m_pid(pid), m_input(std::move(input)), m_data(data) {
    m_stdout.fd = std::move(output);
    m_stderr.fd = std::move(errors);
    m_pidfd = Fd(open_pidfd(pid));
    m_deadline = Clock::now() + std::max(timeout, milliseconds{0});
    if (m_data.empty()) m_input.reset();
  }
  // Only when something threw half way: a child is never left behind.
  ~Supervision() {
    if (m_reaped) return;
    signal_child(m_pid, SIGKILL);
    reap_blocking();
  }
  Supervision(const Supervision&) = delete;
  Supervision& operator=(const Supervision&) = delete;

  void run(ChildResult& result) {
    while (!m_reaped) {
      step();
      check_exit();
      if (m_reaped) break;
      const auto now = Clock::now();
      if (!m_terminated && now >= m_deadline) {
        signal_child(m_pid, SIGTERM);
        m_terminated = true;
        m_kill_at = now + k_kill_grace;
      } else if (m_terminated && !m_killed && now >= m_kill_at) {
        signal_child(m_pid, SIGKILL);
        m_killed = true;
        reap_blocking();
      }
    }
    // What the child wrote just before it exited is still in the pipes.
    m_input.reset();
    const auto drain_until = Clock::now() + k_drain_after_exit;
    while ((m_stdout.fd.open() || m_stderr.fd.open()) && Clock::now() < drain_until) {
      step(drain_until);
    }
    finish(result);
  }

 private:
  // One poll over the open pipes (and the pidfd), then whatever is ready.
  void step(std::optional<Clock::time_point> until = std::nullopt) {
    pollfd fds[4];
    nfds_t count = 0;
    int input_slot = -1, stdout_slot = -1, stderr_slot = -1;
    if (m_input.open()) {
      input_slot = static_cast<int>(count);
      fds[count++] = {m_input.get(), POLLOUT, 0};
    }
    if (m_stdout.fd.open()) {
      stdout_slot = static_cast<int>(count);
      fds[count++] = {m_stdout.fd.get(), POLLIN, 0};
    }
    if (m_stderr.fd.open()) {
      stderr_slot = static_cast<int>(count);
      fds[count++] = {m_stderr.fd.get(), POLLIN, 0};
    }
    if (!m_reaped && m_pidfd.open()) fds[count++] = {m_pidfd.get(), POLLIN, 0};

    const int wait_ms = poll_timeout(until);
    const int ready = ::poll(fds, count, wait_ms);
    if (ready <= 0) return;  // a timeout, or EINTR: the caller looks again
    if (input_slot >= 0 && fds[input_slot].revents != 0) feed();
    if (stdout_slot >= 0 && fds[stdout_slot].revents != 0) m_stdout.read_some();
    if (stderr_slot >= 0 && fds[stderr_slot].revents != 0) m_stderr.read_some();
  }

  int poll_timeout(std::optional<Clock::time_point> until) const {
    Clock::time_point next;
    if (until) {
      next = *until;
    } else {
      next = m_terminated ? m_kill_at : m_deadline;
      // Nothing tells us of the exit while the pipes are held open: look
      // now and then.
      if (!m_pidfd.open()) next = std::min(next, Clock::now() + k_exit_check_interval);
    }
    const auto left = std::chrono::duration_cast<milliseconds>(next - Clock::now()).count() + 1;
    return static_cast<int>(std::clamp<long long>(left, 0, 60 * 1000));
  }

  void feed() {
    while (!m_data.empty()) {
      const std::size_t size = std::min(m_data.size(), k_write_chunk_bytes);
      const ssize_t wrote = ::write(m_input.get(), m_data.data(), size);
      if (wrote > 0) {
        m_data.remove_prefix(static_cast<std::size_t>(wrote));
        continue;
      }
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      // EPIPE: the child closed its stdin (or exited) without reading all
      // of it. That is its business; its exit status says how it went.
      if (wrote < 0 && errno == EPIPE) m_sigpipe.note_epipe();
      break;
    }
    m_input.reset();  // all written (EOF for the child), or it cannot be
  }

  void check_exit() {
    if (m_reaped) return;
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(m_pid, &status, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == m_pid) {
      m_status = status;
      m_reaped = true;
    } else if (got < 0) {
      m_reaped = true;  // ECHILD: someone else reaped it (SIGCHLD ignored)
      m_status_lost = true;
    }
  }

  void reap_blocking() {
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(m_pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    m_reaped = true;
    if (got == m_pid) {
      m_status = status;
    } else {
      m_status_lost = true;
    }
  }

  void finish(ChildResult& result) {
    result.timed_out = m_terminated;
    if (!m_status_lost) {
      if (WIFEXITED(m_status)) result.exit_status = WEXITSTATUS(m_status);
      if (WIFSIGNALED(m_status)) result.signal = WTERMSIG(m_status);
    }
    result.output = std::move(m_stdout.text);
    result.output.append(m_stderr.text, 0, k_max_output_bytes - std::min(k_max_output_bytes, result.output.size()));

    const std::string timeout_text =
        "timed out (killed with " + std::string(m_killed ? "SIGKILL" : "SIGTERM") + ")";
    if (m_status_lost) {
      result.error = "its exit status was lost (reaped elsewhere)";
    } else if (result.exit_status && *result.exit_status == 0) {
      result.error = m_terminated ? timeout_text : "";
    } else if (result.exit_status) {
      result.error = "exited with status " + std::to_string(*result.exit_status);
      if (m_terminated) result.error = timeout_text + ", " + result.error;
    } else if (result.signal) {
      result.error = m_terminated ? timeout_text : "killed by signal " + signal_name(*result.signal);
    }
  }

  pid_t m_pid;
  Fd m_input;
  std::string_view m_data;
  Capture m_stdout;
  Capture m_stderr;
  Fd m_pidfd;
  SigpipeBlock m_sigpipe;
  Clock::time_point m_deadline;
  Clock::time_point m_kill_at;
  bool m_terminated = false;
  bool m_killed = false;
  bool m_reaped = false;
  bool m_status_lost = false;
  int m_status = 0;
};

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_t actions;
  bool attributes_ready = false;
  bool actions_ready = false;

  ~SpawnSetup() {
    if (attributes_ready) posix_spawnattr_destroy(&attributes);
    if (actions_ready) posix_spawn_file_actions_destroy(&actions);
  }

  // 0, or the errno of the step that failed.
  int prepare(int child_stdin, int child_stdout, int child_stderr) {
    if (int e = posix_spawnattr_init(&attributes)) return e;
    attributes_ready = true;
    if (int e = posix_spawn_file_actions_init(&actions)) return e;
    actions_ready = true;

    // Default dispositions (the daemon ignores SIGPIPE; exec would keep
    // that), nothing blocked, and a process group of its own so the
    // deadline reaches its children too.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (int e = posix_spawnattr_setsigdefault(&attributes, &all)) return e;
    if (int e = posix_spawnattr_setsigmask(&attributes, &none)) return e;
    if (int e = posix_spawnattr_setpgroup(&attributes, 0)) return e;
    const short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP;
    if (int e = posix_spawnattr_setflags(&attributes, flags)) return e;

    if (int e = posix_spawn_file_actions_adddup2(&actions, child_stdin, 0)) return e;
    if (int e = posix_spawn_file_actions_adddup2(&actions, child_stdout, 1)) return e;
    if (int e = posix_spawn_file_actions_adddup2(&actions, child_stderr, 2)) return e;
    return posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  }
};

ChildResult not_started(std::string why) {
  ChildResult result;
  result.error = std::move(why);
  return result;
}

ChildResult run(const std::vector<std::string>& argv, std::string_view input, milliseconds timeout,
                const std::vector<std::string>& environment) {
  if (argv.empty()) return not_started("cannot run a program: no argument vector");
  for (const auto& word : argv) {
    if (word.find('\0') != std::string::npos) return not_started("cannot run a program: an argument holds a NUL byte");
  }
  std::string error;
  const std::string program = resolve_program(argv[0], error);
  if (program.empty()) return not_started("cannot run " + argv[0] + ": " + error);

  std::vector<std::string> words = argv;
  std::vector<std::string> entries;
  if (!build_environment(environment, entries, error)) return not_started("cannot run " + argv[0] + ": " + error);

  Fd stdin_read, stdin_write, stdout_read, stdout_write, stderr_read, stderr_write;
  if (!make_pipe(stdin_read, stdin_write, error) || !make_pipe(stdout_read, stdout_write, error) ||
      !make_pipe(stderr_read, stderr_write, error)) {
    return not_started("cannot run " + argv[0] + ": " + error);
  }
  if (!set_nonblocking(stdin_write.get()) || !set_nonblocking(stdout_read.get()) ||
      !set_nonblocking(stderr_read.get())) {
    return not_started("cannot run " + argv[0] + ": cannot make a pipe non-blocking: " + errno_text(errno));
  }

  SpawnSetup setup;
  if (int e = setup.prepare(stdin_read.get(), stdout_write.get(), stderr_write.get())) {
    return not_started("cannot run " + argv[0] + ": " + errno_text(e));
  }
  auto argv_pointers = c_strings(words);
  auto environment_pointers = c_strings(entries);
  pid_t pid = -1;
  if (int e = ::posix_spawn(&pid, program.c_str(), &setup.actions, &setup.attributes, argv_pointers.data(),
                            environment_pointers.data())) {
    return not_started("cannot run " + program + ": " + errno_text(e));
  }
  // The child's ends are the child's now: holding them would keep its
  // stdin open and our reads from ever seeing end of file.
  stdin_read.reset();
  stdout_write.reset();
  stderr_write.reset();

  ChildResult result;
  result.started = true;
  Supervision supervision(pid, std::move(stdin_write), std::move(stdout_read), std::move(stderr_read), input,
                          timeout);
  supervision.run(result);
  return result;
}

}  // namespace

ChildResult run_child(const std::vector<std::string>& argv, std::string_view input, milliseconds timeout,
                      const std::vector<std::string>& environment) {
  try {
    return run(argv, input, timeout, environment);
  } catch (const std::exception& e) {
    // Only allocation can throw here; a child already started was killed
    // and reaped on the way out (~Supervision).
    return not_started(std::string("cannot run a program: ") + e.what());
  }
}

}  // namespace floodgate::containment
