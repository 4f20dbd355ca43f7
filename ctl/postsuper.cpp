#include "ctl/postsuper.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace floodgate::ctl {

bool is_plain_queue_id(const std::string& queue_id) {
  if (queue_id.empty() || queue_id.size() > 64) return false;
  for (char c : queue_id) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (!alnum) return false;
  }
  return true;
}

bool release_from_hold_queue(const std::string& postfix_config_directory, const std::string& queue_id,
                             std::string& error) {
  if (!is_plain_queue_id(queue_id)) {
    error = "the recorded queue id is not a Postfix queue id";
    return false;
  }
  std::vector<std::string> words{"postsuper"};
  if (!postfix_config_directory.empty()) {
    words.push_back("-c");
    words.push_back(postfix_config_directory);
  }
  words.push_back("-H");
  words.push_back(queue_id);
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);

  const pid_t child = ::fork();
  if (child < 0) {
    error = std::string("cannot start postsuper: ") + std::strerror(errno);
    return false;
  }
  if (child == 0) {
    ::execvp("postsuper", argv.data());
    // Not on PATH (a non-root PATH often lacks /usr/sbin).
    if (errno == ENOENT) ::execv("/usr/sbin/postsuper", argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      error = std::string("waiting for postsuper: ") + std::strerror(errno);
      return false;
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    error = "cannot run postsuper (not found on PATH nor in /usr/sbin)";
  } else if (WIFEXITED(status)) {
    error = "postsuper -H failed with exit status " + std::to_string(WEXITSTATUS(status));
  } else {
    error = "postsuper was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return false;
}

}  // namespace floodgate::ctl
