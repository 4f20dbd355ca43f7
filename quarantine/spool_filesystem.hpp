// SpoolFilesystem: the few POSIX calls the spool store makes, as a seam so
// tests can inject faults (disk full, EIO, a crash between any two calls).
//
// Each call returns 0 or an errno value; nothing throws. PosixSpoolFilesystem
// is the real one. Safe for concurrent use (the real one is stateless).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

namespace floodgate::quarantine {

class SpoolFilesystem {
 public:
  virtual ~SpoolFilesystem() = default;
  // Creates a new file exclusively (O_CREAT|O_EXCL|O_WRONLY|O_CLOEXEC, mode
  // 0600) and returns its descriptor in `fd`.
  virtual int create_exclusive(const std::string& path, int& fd) = 0;
  // Writes all of `data` (looping over short writes).
  virtual int write_all(int fd, const char* data, std::size_t size) = 0;
  virtual int sync_file(int fd) = 0;
  virtual int close_file(int fd) = 0;
  virtual int rename_file(const std::string& from, const std::string& to) = 0;
  virtual int sync_directory(const std::string& path) = 0;
  virtual int remove_file(const std::string& path) = 0;
};

std::shared_ptr<SpoolFilesystem> make_posix_spool_filesystem();

}  // namespace floodgate::quarantine
