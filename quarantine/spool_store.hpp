// SpoolStore: quarantined messages as files in a spool directory.
//
// Layout: <dir>/<id>.fgq one file per entry (metadata + message, see
// spool_format.hpp); <dir>/tmp/ for entries being written and spill files.
// The directory and tmp/ are created 0700, files 0600.
//
// Durability (the contract the milter relies on): store() writes the entry
// under tmp/, fsyncs it, renames it into <dir>, fsyncs <dir>, and only then
// returns success. A crash at any point leaves either the complete entry or
// no entry visible to list()/read(); leftovers in tmp/ are removed by
// open_spool() at the next start. If store() fails, nothing is visible and
// the caller must not let the MTA discard the message.
//
// Ids given by users are validated (is_valid_entry_id) before any path is
// built: nothing outside the spool is ever read or removed.
//
// Thread safety: store() may run concurrently from many threads (each
// writes its own temporary name); readers see only whole entries.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "quarantine/entry.hpp"
#include "quarantine/message_buffer.hpp"
#include "quarantine/spool_filesystem.hpp"

namespace floodgate::quarantine {

struct StoreError {
  std::string message;  // for logs and the CLI: what failed, with strerror
};

struct SpoolStats {
  std::size_t entries = 0;
  std::uint64_t bytes = 0;  // of the entry files on disk, metadata included
  std::optional<std::chrono::system_clock::time_point> oldest;
};

class SpoolStore {
 public:
  // Creates the directories if needed (0700), checks they are usable, and
  // removes stale files from tmp/. Fails with a clear message otherwise.
  static tl::expected<std::unique_ptr<SpoolStore>, StoreError> open_spool(
      const std::string& directory,
      std::shared_ptr<SpoolFilesystem> filesystem = make_posix_spool_filesystem());

  const std::string& directory() const { return m_directory; }
  // Where MessageBuffer spill files go (same filesystem as the spool).
  std::string temporary_directory() const { return m_directory + "/tmp"; }

  // Durably stores `entry` with `message` (spool mode) or without (hold
  // mode: pass nullptr). entry.id must be valid and new. In spool mode the
  // stored size_bytes is the message's size. An overflowed or failed
  // buffer is refused. If fsyncing the directory fails after the rename,
  // the store reports failure and takes the entry back (best effort): a
  // duplicate after the MTA's retry is harmless, a lost message is not.
  tl::expected<void, StoreError> store(const QuarantineEntry& entry, MessageBuffer* message);

  // All complete entries' metadata, oldest first. Unreadable or malformed
  // files are skipped and reported through `problems` if given.
  std::vector<QuarantineEntry> list(std::vector<std::string>* problems = nullptr) const;

  tl::expected<QuarantineEntry, StoreError> read_metadata(const std::string& id) const;
  // Streams the stored message, exactly as stored, to `out`.
  tl::expected<void, StoreError> read_message(const std::string& id, std::ostream& out) const;
  // The stored message in pieces (for SMTP re-injection without loading it whole).
  tl::expected<void, StoreError> for_each_message_piece(
      const std::string& id, const std::function<bool(std::string_view)>& sink) const;

  // Durably replaces an entry's recipient list (after a partial release).
  tl::expected<void, StoreError> replace_recipients(const std::string& id,
                                                    const std::vector<std::string>& recipients);
  tl::expected<void, StoreError> remove(const std::string& id);
  // Removes entries quarantined before `cutoff` (by the metadata time);
  // returns how many went. Files that do not parse are left alone.
  tl::expected<std::size_t, StoreError> purge_older_than(std::chrono::system_clock::time_point cutoff);

  SpoolStats stats() const;

  // How many stale temporary files (interrupted writes, spill files,
  // probes) open_spool() removed from tmp/; for the daemon's start-up log.
  std::size_t cleaned_at_open() const { return m_cleaned_at_open; }

 private:
  SpoolStore(std::string directory, std::shared_ptr<SpoolFilesystem> filesystem);

  std::string m_directory;
  std::shared_ptr<SpoolFilesystem> m_filesystem;
  std::size_t m_cleaned_at_open = 0;
};

}  // namespace floodgate::quarantine
