#include "quarantine/spool_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "quarantine/spool_format.hpp"

namespace floodgate::quarantine {
namespace {

constexpr std::string_view k_partial_suffix = ".partial";
constexpr std::string_view k_spill_prefix = "spill-";  // MessageBuffer's mkstemp fallback
constexpr std::string_view k_probe_prefix = ".probe-";
constexpr std::size_t k_piece_size = 64 * 1024;

tl::unexpected<StoreError> failure(std::string message) { return tl::unexpected(StoreError{std::move(message)}); }

tl::unexpected<StoreError> failure(const std::string& what, int error) {
  return failure(what + ": " + std::strerror(error));
}

// Temporary names must not collide between threads and processes sharing
// a spool; 64 bits from the kernel are plenty.
std::string random_hex() {
  std::uint64_t bits = 0;
  if (::getrandom(&bits, sizeof bits, 0) != static_cast<ssize_t>(sizeof bits)) {
    // getrandom cannot fail for 8 bytes once the pool is ready; should it,
    // pid + address + time still keep concurrent writers apart.
    bits = static_cast<std::uint64_t>(::getpid()) ^ reinterpret_cast<std::uintptr_t>(&bits) ^
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

// The id as it may appear in a message: user input, so not trusted to be
// printable.
std::string quoted_id(std::string_view id) {
  std::string out = "\"";
  for (const char c : id.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    }
  }
  if (id.size() > 64) out += "...";
  return out + "\"";
}

bool ends_with(std::string_view text, std::string_view suffix) { return text.ends_with(suffix); }

struct ScannedEntry {
  QuarantineEntry entry;
  std::uint64_t file_size = 0;
};

class Directory {
 public:
  explicit Directory(const std::string& path) : m_dir(::opendir(path.c_str())) {}
  ~Directory() {
    if (m_dir != nullptr) ::closedir(m_dir);
  }
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;
  bool is_open() const { return m_dir != nullptr; }
  // Next name, skipping "." and ".."; empty at the end.
  std::string next() {
    while (dirent* d = ::readdir(m_dir)) {
      const std::string_view name = d->d_name;
      if (name != "." && name != "..") return std::string(name);
    }
    return {};
  }

 private:
  DIR* m_dir;
};

tl::expected<void, StoreError> make_directory(const std::string& path, mode_t mode, bool set_mode) {
  if (::mkdir(path.c_str(), mode) == 0) {
    // mkdir's mode passes through the umask; the spool is 0700 whatever it is.
    if (set_mode && ::chmod(path.c_str(), mode) != 0) return failure("chmod " + path, errno);
    return {};
  }
  if (errno == EEXIST) return {};
  return failure("create spool directory " + path, errno);
}

// mkdir -p: parents get 0755 (like mkdir -p), the spool itself 0700.
tl::expected<void, StoreError> make_directories(const std::string& path) {
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    if (auto made = make_directory(path.substr(0, slash), 0755, false); !made) return made;
  }
  return make_directory(path, 0700, true);
}

tl::expected<void, StoreError> require_directory(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return failure("spool directory " + path, errno);
  if (!S_ISDIR(st.st_mode)) return failure("spool directory " + path + ": not a directory");
  return {};
}

// Removes `path` unless a live writer holds its lock (see store()): the
// CLI opens the spool while the daemon writes to it, and must not take a
// half-written entry from under it.
bool remove_if_unlocked(SpoolFilesystem& filesystem, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() >= 0 && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) return false;
  return filesystem.remove_file(path) == 0;
}

}  // namespace

SpoolStore::SpoolStore(std::string directory, std::shared_ptr<SpoolFilesystem> filesystem)
    : m_directory(std::move(directory)), m_filesystem(std::move(filesystem)) {}

// Existing directories keep their mode: an operator may have opened the
// spool to an ops group on purpose, and the entry files stay 0600 anyway.
// Only what we create is set to 0700.
tl::expected<std::unique_ptr<SpoolStore>, StoreError> SpoolStore::open_spool(
    const std::string& directory, std::shared_ptr<SpoolFilesystem> filesystem) {
  std::string dir = directory;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return failure("spool directory: empty path");
  if (auto made = make_directories(dir); !made) return tl::unexpected(made.error());
  if (auto checked = require_directory(dir); !checked) return tl::unexpected(checked.error());
  std::unique_ptr<SpoolStore> store(new SpoolStore(dir, std::move(filesystem)));
  const std::string tmp = store->temporary_directory();
  if (auto made = make_directory(tmp, 0700, true); !made) return tl::unexpected(made.error());
  struct stat st {};
  if (::lstat(tmp.c_str(), &st) != 0) return failure("spool directory " + tmp, errno);
  if (!S_ISDIR(st.st_mode)) return failure("spool directory " + tmp + ": not a directory");

  // Probe the two steps a store takes: create in tmp/, rename into the spool.
  SpoolFilesystem& fs = *store->m_filesystem;
  const std::string probe_name = std::string(k_probe_prefix) + random_hex();
  const std::string probe_tmp = tmp + "/" + probe_name;
  const std::string probe_final = dir + "/" + probe_name;
  int fd = -1;
  if (const int error = fs.create_exclusive(probe_tmp, fd); error != 0) {
    return failure("spool directory " + dir + " is not writable: create " + probe_tmp, error);
  }
  const int close_error = fs.close_file(fd);
  if (close_error != 0) {
    fs.remove_file(probe_tmp);
    return failure("spool directory " + dir + " is not writable: close " + probe_tmp, close_error);
  }
  if (const int error = fs.rename_file(probe_tmp, probe_final); error != 0) {
    fs.remove_file(probe_tmp);
    return failure("spool directory " + dir + " is not writable: rename " + probe_tmp + " to " + probe_final, error);
  }
  if (const int error = fs.remove_file(probe_final); error != 0) {
    return failure("spool directory " + dir + " is not writable: remove " + probe_final, error);
  }

  if (Directory listing(tmp); listing.is_open()) {
    for (std::string name = listing.next(); !name.empty(); name = listing.next()) {
      if (ends_with(name, k_partial_suffix) || name.starts_with(k_spill_prefix) || name.starts_with(k_probe_prefix)) {
        if (remove_if_unlocked(fs, tmp + "/" + name)) ++store->m_cleaned_at_open;
      }
    }
  }
  // A probe renamed into the spool by a process killed before removing it.
  if (Directory listing(dir); listing.is_open()) {
    for (std::string name = listing.next(); !name.empty(); name = listing.next()) {
      if (name.starts_with(k_probe_prefix) && fs.remove_file(dir + "/" + name) == 0) ++store->m_cleaned_at_open;
    }
  }
  return store;
}

namespace {

using PieceWriter = std::function<bool(std::string_view)>;

// The one write path for new and rewritten entries: tmp/<id>.<random>.partial,
// fsync, close, rename into the spool, fsync the spool directory.
//
// When the directory fsync fails the rename has happened but may not
// survive a power cut. store() then reports failure — the milter tempfails
// and the MTA keeps the message, so nothing can be lost — and takes the
// new entry away again (best effort; if that fails too the entry stays
// visible and complete, and a retry by the MTA makes a duplicate, which is
// harmless where a lost message is not). A rewrite (replace_recipients)
// leaves the new version in place: the old one is gone either way.
tl::expected<void, StoreError> write_entry_file(
    SpoolFilesystem& fs, const std::string& directory, const std::string& id, const std::string& head,
    const std::function<bool(const PieceWriter&, std::string& error)>& copy_message, bool replacing) {
  const std::string final_path = directory + "/" + id + std::string(k_entry_suffix);
  const std::string tmp_path =
      directory + "/tmp/" + id + "." + random_hex() + std::string(k_partial_suffix);
  int fd = -1;
  if (const int error = fs.create_exclusive(tmp_path, fd); error != 0) return failure("create " + tmp_path, error);
  // Held until close: tells open_spool() in another process (the CLI) that
  // this file is being written, not left over. Best effort — without it a
  // concurrent open could only make this store fail, never lose mail.
  ::flock(fd, LOCK_EX | LOCK_NB);

  auto abandon = [&](tl::unexpected<StoreError> error) {
    if (fd >= 0) fs.close_file(fd);
    fs.remove_file(tmp_path);
    return error;
  };
  if (const int error = fs.write_all(fd, head.data(), head.size()); error != 0) {
    return abandon(failure("write " + tmp_path, error));
  }
  if (copy_message) {
    int write_error = 0;
    std::string read_error;
    const bool copied = copy_message(
        [&](std::string_view piece) {
          write_error = fs.write_all(fd, piece.data(), piece.size());
          return write_error == 0;
        },
        read_error);
    if (write_error != 0) return abandon(failure("write " + tmp_path, write_error));
    if (!copied) return abandon(failure("read message for " + tmp_path + ": " + read_error));
  }
  if (const int error = fs.sync_file(fd); error != 0) return abandon(failure("fsync " + tmp_path, error));
  const int close_error = fs.close_file(fd);
  fd = -1;
  if (close_error != 0) return abandon(failure("close " + tmp_path, close_error));

  struct stat st {};
  const bool exists = ::lstat(final_path.c_str(), &st) == 0;
  if (!replacing && exists) return abandon(failure("store " + final_path + ": entry exists already"));
  if (replacing && !exists) return abandon(failure("rewrite " + final_path + ": entry was removed meanwhile"));
  if (const int error = fs.rename_file(tmp_path, final_path); error != 0) {
    return abandon(failure("rename " + tmp_path + " to " + final_path, error));
  }
  if (const int error = fs.sync_directory(directory); error != 0) {
    if (!replacing) fs.remove_file(final_path);
    return failure("fsync directory " + directory + " after writing " + final_path, error);
  }
  return {};
}

}  // namespace

tl::expected<void, StoreError> SpoolStore::store(const QuarantineEntry& entry, MessageBuffer* message) {
  if (!is_valid_entry_id(entry.id)) return failure("store: invalid entry id " + quoted_id(entry.id));
  if (entry.mode == EntryMode::Spool && message == nullptr) {
    return failure("store " + entry.id + ": spool-mode entry without a message");
  }
  if (entry.mode == EntryMode::Hold && message != nullptr) {
    return failure("store " + entry.id + ": hold-mode entry with a message");
  }
  if (message != nullptr && message->overflowed()) {
    return failure("store " + entry.id + ": message of " + std::to_string(message->size()) +
                   " bytes is over the size cap");
  }
  if (message != nullptr && message->failed()) return failure("store " + entry.id + ": " + message->error());

  // The stored size is the stored message's, whatever the caller filled in,
  // so readers can check the file is whole.
  QuarantineEntry written = entry;
  if (message != nullptr) written.size_bytes = message->size();
  auto head = format_entry_head(written);
  if (!head) return failure("store " + entry.id + ": " + head.error());

  std::function<bool(const PieceWriter&, std::string&)> copy;
  if (message != nullptr) {
    copy = [message](const PieceWriter& write, std::string& error) {
      const bool ok = message->for_each_piece(write);
      if (!ok) error = message->error();
      return ok;
    };
  }
  return write_entry_file(*m_filesystem, m_directory, entry.id, *head, copy, /*replacing=*/false);
}

namespace {

tl::expected<OpenedEntry, StoreError> open_entry(const std::string& directory, const std::string& id) {
  if (!is_valid_entry_id(id)) return failure("invalid entry id " + quoted_id(id));
  const std::string path = directory + "/" + id + std::string(k_entry_suffix);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) return failure("no entry " + id);
  auto opened = open_entry_file(path, id);
  if (!opened) return failure(path + ": " + opened.error());
  return std::move(*opened);
}

tl::expected<void, StoreError> copy_message_pieces(const OpenedEntry& opened, const PieceWriter& sink,
                                                   std::string* read_error) {
  if (opened.entry.mode == EntryMode::Hold) {
    return failure("entry " + opened.entry.id + " is in hold mode: the message is in the MTA's hold queue (queue id " +
                   quoted_id(opened.entry.queue_id) + ")");
  }
  std::vector<char> piece(k_piece_size);
  std::uint64_t offset = opened.message_offset;
  while (offset < opened.file_size) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), opened.file_size - offset));
    const ssize_t got = ::pread(opened.fd.get(), piece.data(), want, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      std::string text = "read entry " + opened.entry.id + ": " + (got < 0 ? std::strerror(errno) : "file shrank");
      if (read_error != nullptr) *read_error = text;
      return failure(text);
    }
    if (!sink(std::string_view(piece.data(), static_cast<std::size_t>(got)))) {
      return failure("entry " + opened.entry.id + ": the reader stopped");
    }
    offset += static_cast<std::uint64_t>(got);
  }
  return {};
}

std::vector<ScannedEntry> scan(const std::string& directory, std::vector<std::string>* problems) {
  std::vector<ScannedEntry> found;
  Directory listing(directory);
  if (!listing.is_open()) {
    if (problems != nullptr) problems->push_back(directory + ": " + std::strerror(errno));
    return found;
  }
  for (std::string name = listing.next(); !name.empty(); name = listing.next()) {
    if (!ends_with(name, k_entry_suffix)) continue;  // tmp/, probes, an admin's notes
    const std::string id = name.substr(0, name.size() - k_entry_suffix.size());
    const std::string path = directory + "/" + name;
    if (!is_valid_entry_id(id)) {
      if (problems != nullptr) problems->push_back(path + ": file name is not an entry id");
      continue;
    }
    auto opened = open_entry_file(path, id);
    if (!opened) {
      // Removed between readdir and open (a release, a purge): not a problem.
      if (problems != nullptr && opened.error() != std::strerror(ENOENT)) {
        problems->push_back(path + ": " + opened.error());
      }
      continue;
    }
    found.push_back({std::move(opened->entry), opened->file_size});
  }
  std::sort(found.begin(), found.end(), [](const ScannedEntry& a, const ScannedEntry& b) {
    return a.entry.time != b.entry.time ? a.entry.time < b.entry.time : a.entry.id < b.entry.id;
  });
  return found;
}

}  // namespace

std::vector<QuarantineEntry> SpoolStore::list(std::vector<std::string>* problems) const {
  std::vector<QuarantineEntry> entries;
  for (auto& scanned : scan(m_directory, problems)) entries.push_back(std::move(scanned.entry));
  return entries;
}

tl::expected<QuarantineEntry, StoreError> SpoolStore::read_metadata(const std::string& id) const {
  auto opened = open_entry(m_directory, id);
  if (!opened) return tl::unexpected(opened.error());
  return std::move(opened->entry);
}

tl::expected<void, StoreError> SpoolStore::read_message(const std::string& id, std::ostream& out) const {
  auto result = for_each_message_piece(id, [&out](std::string_view piece) {
    out.write(piece.data(), static_cast<std::streamsize>(piece.size()));
    return out.good();
  });
  if (!result && out.fail()) return failure("write message of entry " + id + ": output stream failed");
  return result;
}

tl::expected<void, StoreError> SpoolStore::for_each_message_piece(
    const std::string& id, const std::function<bool(std::string_view)>& sink) const {
  auto opened = open_entry(m_directory, id);
  if (!opened) return tl::unexpected(opened.error());
  return copy_message_pieces(*opened, sink, nullptr);
}

// Concurrent rewrites of one entry are not serialised: the last rename
// wins. The CLI is the only caller and works on one entry at a time.
tl::expected<void, StoreError> SpoolStore::replace_recipients(const std::string& id,
                                                              const std::vector<std::string>& recipients) {
  auto opened = open_entry(m_directory, id);
  if (!opened) return tl::unexpected(opened.error());
  QuarantineEntry updated = opened->entry;
  updated.recipients = recipients;
  auto head = format_entry_head(updated);
  if (!head) return failure("rewrite " + id + ": " + head.error());
  std::function<bool(const PieceWriter&, std::string&)> copy;
  if (updated.mode == EntryMode::Spool) {
    copy = [&opened](const PieceWriter& write, std::string& error) {
      // A write failure is reported by write_entry_file from its own errno;
      // `error` only needs to carry read failures.
      return copy_message_pieces(*opened, write, &error).has_value();
    };
  }
  return write_entry_file(*m_filesystem, m_directory, id, *head, copy, /*replacing=*/true);
}

tl::expected<void, StoreError> SpoolStore::remove(const std::string& id) {
  if (!is_valid_entry_id(id)) return failure("invalid entry id " + quoted_id(id));
  const std::string path = m_directory + "/" + id + std::string(k_entry_suffix);
  if (const int error = m_filesystem->remove_file(path); error != 0) {
    if (error == ENOENT) return failure("no entry " + id);
    return failure("remove " + path, error);
  }
  if (const int error = m_filesystem->sync_directory(m_directory); error != 0) {
    return failure("fsync directory " + m_directory + " after removing " + id +
                   " (the entry may come back after a crash)", error);
  }
  return {};
}

// By the metadata time, not the id's time prefix: it is the time list and
// stats show, and reading the metadata (not the message) of every entry is
// what list() does anyway. Files that do not parse are left alone (list()
// reports them); an operator decides about those.
tl::expected<std::size_t, StoreError> SpoolStore::purge_older_than(std::chrono::system_clock::time_point cutoff) {
  std::size_t removed = 0;
  for (const auto& scanned : scan(m_directory, nullptr)) {
    if (scanned.entry.time >= cutoff) break;  // oldest first
    auto gone = remove(scanned.entry.id);
    if (!gone) {
      if (gone.error().message.starts_with("no entry ")) continue;  // released meanwhile
      return failure(gone.error().message + " (after purging " + std::to_string(removed) + ")");
    }
    ++removed;
  }
  return removed;
}

// bytes counts whole entry files (metadata included): what the spool costs
// on disk.
SpoolStats SpoolStore::stats() const {
  SpoolStats stats;
  for (const auto& scanned : scan(m_directory, nullptr)) {
    ++stats.entries;
    stats.bytes += scanned.file_size;
    if (!stats.oldest || scanned.entry.time < *stats.oldest) stats.oldest = scanned.entry.time;
  }
  return stats;
}

}  // namespace floodgate::quarantine
