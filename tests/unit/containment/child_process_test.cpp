// run_child() with real programs (/bin/sh, cat, env, ls) and small scripts:
// exit statuses, stdin delivered byte for byte, output capped, no deadlock
// or SIGPIPE with a child that does not read, the deadline, argv words
// never interpreted, nothing of ours leaking into the child.
#include "containment/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/containment/notify_test_support.hpp"

namespace floodgate::containment {
namespace {

using namespace std::chrono_literals;
using testing::read_whole_file;
using testing::ScratchDirectory;
using testing::write_script;
using Clock = std::chrono::steady_clock;

constexpr std::size_t k_output_cap = 64 * 1024;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string bytes_with_nul_and_high_bits(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 7 + i / 256) & 0xff);
  return data;
}

// The test process must have no child left, reaped or not.
void expect_no_child_left() {
  int status = 0;
  const pid_t got = ::waitpid(-1, &status, WNOHANG);
  EXPECT_EQ(got, -1) << "got a child (pid " << got << ") still there, want none";
}

bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  return ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

bool sigpipe_blocked() {
  sigset_t mask;
  sigemptyset(&mask);
  return ::pthread_sigmask(SIG_BLOCK, nullptr, &mask) == 0 && sigismember(&mask, SIGPIPE) == 1;
}

TEST(RunChild, ExitZeroSucceedsWithNoError) {
  ChildResult result = run_child({"/bin/sh", "-c", "exit 0"}, "", 5s);
  EXPECT_TRUE(result.started) << result.error;
  EXPECT_TRUE(result.succeeded());
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.error, "");
  EXPECT_FALSE(result.signal.has_value());
}

TEST(RunChild, NonZeroExitStatusIsReportedAsAnError) {
  ChildResult result = run_child({"/bin/sh", "-c", "exit 3"}, "", 5s);
  ASSERT_TRUE(result.started) << result.error;
  ASSERT_TRUE(result.exit_status.has_value());
  EXPECT_EQ(*result.exit_status, 3) << "got exit status " << *result.exit_status << ", want 3";
  EXPECT_FALSE(result.succeeded());
  EXPECT_NE(result.error.find("status 3"), std::string::npos) << "got error \"" << result.error << "\"";
}

TEST(RunChild, DeathBySignalIsReported) {
  ChildResult result = run_child({"/bin/sh", "-c", "kill -USR1 $$"}, "", 5s);
  ASSERT_TRUE(result.started) << result.error;
  EXPECT_FALSE(result.exit_status.has_value());
  ASSERT_TRUE(result.signal.has_value());
  EXPECT_EQ(*result.signal, SIGUSR1) << "got signal " << *result.signal << ", want SIGUSR1";
  EXPECT_FALSE(result.timed_out);
  EXPECT_NE(result.error.find("signal"), std::string::npos) << "got error \"" << result.error << "\"";
}

TEST(RunChild, StdinArrivesExactlyIncludingNulBytes) {
  const std::string input("a\0b\r\n\xff\x80 end", 12);
  ChildResult result = run_child({"/bin/cat"}, input, 5s);
  ASSERT_TRUE(result.succeeded()) << result.error;
  EXPECT_EQ(result.output, input);
}

TEST(RunChild, OneMegabyteOfStdinArrivesExactly) {
  ScratchDirectory scratch;
  const std::string copy = scratch.file("copy");
  const std::string input = bytes_with_nul_and_high_bits(1024 * 1024);
  ChildResult result = run_child({"/bin/sh", "-c", "cat > \"$1\"", "sh", copy}, input, 10s);
  ASSERT_TRUE(result.succeeded()) << result.error;
  const std::string received = read_whole_file(copy);
  EXPECT_EQ(received.size(), input.size()) << "got " << received.size() << " bytes, want " << input.size();
  EXPECT_TRUE(received == input) << "the bytes the child read differ from the input";
}

TEST(RunChild, OutputIsStdoutThenStderr) {
  ChildResult result = run_child({"/bin/sh", "-c", "printf err >&2; printf out"}, "", 5s);
  ASSERT_TRUE(result.succeeded()) << result.error;
  EXPECT_EQ(result.output, "outerr");
}

TEST(RunChild, OutputIsCappedAndTheChildIsNotBlockedByTheRest) {
  // 4 MB on stdout and on stderr: far more than the pipes hold, so the
  // child finishes only if we keep reading after the cap.
  ChildResult result = run_child(
      {"/bin/sh", "-c", "head -c 4000000 /dev/zero | tr '\\0' a; head -c 4000000 /dev/zero >&2; exit 0"}, "", 10s);
  ASSERT_TRUE(result.succeeded()) << result.error;
  EXPECT_EQ(result.output.size(), k_output_cap) << "got " << result.output.size() << " bytes of output";
  EXPECT_EQ(result.output, std::string(k_output_cap, 'a'));
}

TEST(RunChild, ChildThatNeverReadsStdinDoesNotHangUsOrRaiseSigpipe) {
  // With the default action, a SIGPIPE would end this test program.
  auto previous = std::signal(SIGPIPE, SIG_DFL);
  const std::string input(10 * 1024 * 1024, 'x');
  const auto start = Clock::now();
  ChildResult result = run_child({"/bin/sh", "-c", "exit 0"}, input, 10s);
  const auto elapsed = Clock::now() - start;
  std::signal(SIGPIPE, previous);

  EXPECT_TRUE(result.succeeded()) << result.error;
  EXPECT_LT(elapsed, 5s) << "got " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                         << " ms, want well under the 10 s deadline";
  EXPECT_FALSE(sigpipe_pending()) << "got SIGPIPE left pending, want it consumed";
  EXPECT_FALSE(sigpipe_blocked()) << "got SIGPIPE left blocked, want the caller's mask restored";
}

TEST(RunChild, ChildThatStopsReadingHalfWayDoesNotRaiseSigpipe) {
  auto previous = std::signal(SIGPIPE, SIG_DFL);
  const std::string input(10 * 1024 * 1024, 'x');
  ChildResult result = run_child({"/bin/sh", "-c", "head -c 100000 > /dev/null; exit 4"}, input, 10s);
  std::signal(SIGPIPE, previous);

  ASSERT_TRUE(result.exit_status.has_value()) << result.error;
  EXPECT_EQ(*result.exit_status, 4);
  EXPECT_FALSE(sigpipe_pending());
}

TEST(RunChild, ChildThatWritesALotBeforeReadingStdinDoesNotDeadlock) {
  ScratchDirectory scratch;
  const std::string copy = scratch.file("copy");
  const std::string input = bytes_with_nul_and_high_bits(1024 * 1024);
  ChildResult result =
      run_child({"/bin/sh", "-c", "head -c 2000000 /dev/zero; cat > \"$1\"", "sh", copy}, input, 10s);
  ASSERT_TRUE(result.succeeded()) << result.error;
  EXPECT_FALSE(result.timed_out);
  EXPECT_TRUE(read_whole_file(copy) == input) << "the child did not read the whole input";
}

TEST(RunChild, DeadlineSendsSigtermToTheChildAndWhatItStarted) {
  const auto start = Clock::now();
  ChildResult result = run_child({"/bin/sh", "-c", "sleep 30; echo never"}, "", 200ms);
  const auto elapsed = Clock::now() - start;

  EXPECT_TRUE(result.started);
  EXPECT_TRUE(result.timed_out);
  ASSERT_TRUE(result.signal.has_value()) << result.error;
  EXPECT_EQ(*result.signal, SIGTERM) << "got signal " << *result.signal << ", want SIGTERM";
  EXPECT_FALSE(result.succeeded());
  EXPECT_NE(result.error.find("timed out"), std::string::npos) << "got error \"" << result.error << "\"";
  EXPECT_GE(elapsed, 200ms);
  // The sleep held stdout open: had it survived, we would have drained
  // for a while, but not up to its 30 s.
  EXPECT_LT(elapsed, 1500ms) << "got " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                             << " ms";
  expect_no_child_left();
}

TEST(RunChild, ChildIgnoringSigtermIsKilledASecondLater) {
  const auto start = Clock::now();
  ChildResult result =
      run_child({"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"}, "", 300ms);
  const auto elapsed = Clock::now() - start;

  EXPECT_TRUE(result.timed_out);
  ASSERT_TRUE(result.signal.has_value()) << result.error;
  EXPECT_EQ(*result.signal, SIGKILL) << "got signal " << *result.signal << ", want SIGKILL";
  EXPECT_EQ(result.output, "ready\n");
  EXPECT_NE(result.error.find("SIGKILL"), std::string::npos) << "got error \"" << result.error << "\"";
  EXPECT_GE(elapsed, 1300ms);
  EXPECT_LT(elapsed, 3s) << "got " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                         << " ms";
  expect_no_child_left();
}

TEST(RunChild, ChildThatClosesItsOutputIsStillKilledAtTheDeadline) {
  const auto start = Clock::now();
  ChildResult result = run_child({"/bin/sh", "-c", "exec >&- 2>&- <&-; exec sleep 30"}, "", 200ms);
  EXPECT_TRUE(result.timed_out);
  EXPECT_LT(Clock::now() - start, 1500ms);
  expect_no_child_left();
}

TEST(RunChild, ArgumentWordsArriveVerbatimAndAreNeverInterpreted) {
  ScratchDirectory scratch;
  const std::string out = scratch.file("words");
  const std::string marker = scratch.file("pwned");
  const std::string script = write_script(scratch, "echo-words",
                                          "out=\"$1\"; shift\n"
                                          "for word in \"$@\"; do printf '[%s]\\n' \"$word\"; done > \"$out\"\n");
  const std::vector<std::string> hostile{
      "$(touch " + marker + ")", "`touch " + marker + "`", "; touch " + marker, "a b\tc", "*", "'\"\\",
      "$HOME", "| cat", ">&2", "", "two\nlines", "-c"};
  std::vector<std::string> argv{script, out};
  argv.insert(argv.end(), hostile.begin(), hostile.end());

  ChildResult result = run_child(argv, "", 5s);
  ASSERT_TRUE(result.succeeded()) << result.error;
  std::string want;
  for (const auto& word : hostile) want += "[" + word + "]\n";
  EXPECT_EQ(read_whole_file(out), want);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "got " << marker << " created, want no word run";
}

TEST(RunChild, NoDescriptorOfOursLeaksIntoTheChild) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // deliberately without O_CLOEXEC
  const int high_read = ::dup2(fds[0], 100);
  const int high_write = ::dup2(fds[1], 101);
  ::close(fds[0]);
  ::close(fds[1]);

  ChildResult result = run_child({"/bin/ls", "-1", "/proc/self/fd"}, "", 5s);
  ::close(high_read);
  ::close(high_write);
  ASSERT_TRUE(result.succeeded()) << result.error;
  // 0, 1, 2, and the descriptor ls itself opened to read the directory.
  std::set<std::string> listed;
  for (const auto& line : lines_of(result.output)) listed.insert(line);
  EXPECT_TRUE(listed.contains("0") && listed.contains("1") && listed.contains("2")) << result.output;
  EXPECT_LE(listed.size(), 4u) << "got descriptors:\n" << result.output << "want 0, 1, 2 and ls's own";
  EXPECT_FALSE(listed.contains("100") || listed.contains("101")) << "got our pipe in the child:\n" << result.output;
}

TEST(RunChild, EnvironmentIsPathPlusTheGivenEntriesOnly) {
  ::setenv("FLOODGATE_TEST_SECRET", "do not pass", 1);
  ChildResult result = run_child({"/usr/bin/env"}, "", 5s, {"FLOODGATE_EVENT=freeze", "SPACED=a b;$(c)"});
  ::unsetenv("FLOODGATE_TEST_SECRET");
  ASSERT_TRUE(result.succeeded()) << result.error;
  std::vector<std::string> got = lines_of(result.output);
  std::sort(got.begin(), got.end());
  const std::vector<std::string> want{"FLOODGATE_EVENT=freeze",
                                      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                      "SPACED=a b;$(c)"};
  EXPECT_EQ(got, want);
}

TEST(RunChild, GivenPathReplacesTheMinimalOne) {
  ChildResult result = run_child({"/usr/bin/env"}, "", 5s, {"PATH=/bin"});
  ASSERT_TRUE(result.succeeded()) << result.error;
  EXPECT_EQ(result.output, "PATH=/bin\n");
}

TEST(RunChild, MalformedEnvironmentEntryIsRefused) {
  ChildResult result = run_child({"/usr/bin/env"}, "", 5s, {"NO_EQUALS_SIGN"});
  EXPECT_FALSE(result.started);
  EXPECT_NE(result.error, "");
}

TEST(RunChild, MissingProgramIsNotStartedWithAClearError) {
  ChildResult result = run_child({"/nonexistent/floodgate-helper"}, "input", 5s);
  EXPECT_FALSE(result.started);
  EXPECT_FALSE(result.exit_status.has_value());
  EXPECT_NE(result.error.find("/nonexistent/floodgate-helper"), std::string::npos)
      << "got error \"" << result.error << "\"";
  EXPECT_NE(result.error.find("No such file"), std::string::npos) << "got error \"" << result.error << "\"";
}

TEST(RunChild, MissingBareNameIsNotStartedWithAClearError) {
  ChildResult result = run_child({"floodgate-no-such-helper"}, "", 5s);
  EXPECT_FALSE(result.started);
  EXPECT_NE(result.error.find("floodgate-no-such-helper"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("not found"), std::string::npos) << "got error \"" << result.error << "\"";
}

TEST(RunChild, RelativePathAndEmptyArgvAndNulBytesAreRefused) {
  EXPECT_FALSE(run_child({"./helper"}, "", 5s).started);
  EXPECT_FALSE(run_child({"bin/helper"}, "", 5s).started);
  EXPECT_FALSE(run_child({}, "", 5s).started);
  EXPECT_FALSE(run_child({"/bin/echo", std::string("a\0b", 3)}, "", 5s).started);
}

TEST(RunChild, BareNameIsFoundInUsrBinWhenNotOnPath) {
  const char* saved = std::getenv("PATH");
  const std::string previous = saved != nullptr ? saved : "";
  ::setenv("PATH", "/nonexistent", 1);
  ChildResult result = run_child({"env"}, "", 5s);
  ::setenv("PATH", previous.c_str(), 1);
  EXPECT_TRUE(result.succeeded()) << result.error;
}

TEST(RunChild, NonExecutableFileIsNotStarted) {
  ScratchDirectory scratch;
  const std::string path = scratch.file("plain");
  testing::write_whole_file(path, "#!/bin/sh\nexit 0\n");
  ChildResult result = run_child({path}, "", 5s);
  EXPECT_FALSE(result.started);
  EXPECT_NE(result.error.find("Permission denied"), std::string::npos) << "got error \"" << result.error << "\"";
}

}  // namespace
}  // namespace floodgate::containment
