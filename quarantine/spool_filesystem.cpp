#include "quarantine/spool_filesystem.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace floodgate::quarantine {
namespace {

class PosixSpoolFilesystem final : public SpoolFilesystem {
 public:
  int create_exclusive(const std::string& path, int& fd) override {
    fd = -1;
    const int opened = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (opened < 0) return errno;
    // The umask may have taken the owner's write bit (umask 0277); the
    // contract is 0600 whatever the umask, so set it explicitly.
    if (::fchmod(opened, 0600) != 0) {
      const int error = errno;
      ::close(opened);
      ::unlink(path.c_str());
      return error;
    }
    fd = opened;
    return 0;
  }

  int write_all(int fd, const char* data, std::size_t size) override {
    while (size > 0) {
      const ssize_t written = ::write(fd, data, size);
      if (written < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (written == 0) return EIO;
      data += written;
      size -= static_cast<std::size_t>(written);
    }
    return 0;
  }

  int sync_file(int fd) override { return ::fsync(fd) == 0 ? 0 : errno; }

  // Linux releases the descriptor even when close() fails, so it is never
  // retried; an error here is still reported (NFS reports write-back
  // failures at close).
  int close_file(int fd) override { return ::close(fd) == 0 ? 0 : errno; }

  int rename_file(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  }

  int sync_directory(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    const int result = ::fsync(fd) == 0 ? 0 : errno;
    ::close(fd);
    return result;
  }

  int remove_file(const std::string& path) override { return ::unlink(path.c_str()) == 0 ? 0 : errno; }
};

}  // namespace

std::shared_ptr<SpoolFilesystem> make_posix_spool_filesystem() {
  return std::make_shared<PosixSpoolFilesystem>();
}

}  // namespace floodgate::quarantine
