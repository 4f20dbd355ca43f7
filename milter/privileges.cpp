#include "milter/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <vector>

namespace floodgate::milter {
namespace {

std::optional<unsigned long> numeric_id(std::string_view text) {
  unsigned long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string errno_text(int error) { return std::strerror(error); }

// getpwnam_r with a buffer that grows as the entry needs.
std::optional<passwd> user_entry(std::string_view name, std::vector<char>& buffer) {
  const std::string key(name);
  buffer.resize(4096);
  passwd entry{};
  passwd* found = nullptr;
  int error = 0;
  while ((error = ::getpwnam_r(key.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE)
    buffer.resize(buffer.size() * 2);
  if (error != 0 || found == nullptr) return std::nullopt;
  return entry;
}

}  // namespace

tl::expected<uid_t, std::string> resolve_user_id(std::string_view user) {
  if (auto id = numeric_id(user)) return static_cast<uid_t>(*id);
  std::vector<char> buffer;
  if (auto entry = user_entry(user, buffer)) return entry->pw_uid;
  return tl::unexpected("no such user " + quoted(user));
}

tl::expected<gid_t, std::string> resolve_group_id(std::string_view group) {
  if (auto id = numeric_id(group)) return static_cast<gid_t>(*id);
  const std::string key(group);
  std::vector<char> buffer(4096);
  struct group entry {};
  struct group* found = nullptr;
  int error = 0;
  while ((error = ::getgrnam_r(key.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE)
    buffer.resize(buffer.size() * 2);
  if (error != 0 || found == nullptr) return tl::unexpected("no such group " + quoted(group));
  return found->gr_gid;
}

tl::expected<Account, std::string> resolve_account(std::string_view user_and_group) {
  const auto colon = user_and_group.find(':');
  const std::string_view user = user_and_group.substr(0, colon);
  Account account;
  std::vector<char> buffer;
  if (auto entry = user_entry(user, buffer)) {
    account.uid = entry->pw_uid;
    account.gid = entry->pw_gid;
    account.user_name = entry->pw_name;
  } else if (auto id = numeric_id(user)) {
    // A numeric uid need not have a passwd entry (containers); it then has
    // no primary group to default to.
    account.uid = static_cast<uid_t>(*id);
    if (colon == std::string_view::npos)
      return tl::unexpected("user id " + std::string(user) + " has no passwd entry; name its group: " +
                            std::string(user) + ":GROUP");
  } else {
    return tl::unexpected("no such user " + quoted(user));
  }
  if (colon != std::string_view::npos) {
    auto group = resolve_group_id(user_and_group.substr(colon + 1));
    if (!group) return tl::unexpected(group.error());
    account.gid = *group;
  }
  return account;
}

tl::expected<void, std::string> become(const Account& account) {
  if (::geteuid() == account.uid && ::getegid() == account.gid) return {};
  if (::geteuid() != 0)
    return tl::unexpected("switching to uid " + std::to_string(account.uid) + " needs root; running as uid " +
                          std::to_string(::geteuid()));
  // Supplementary groups first, while still root: otherwise root's own
  // groups (e.g. "root", "disk") would stay with the process.
  const int groups_set = account.user_name.empty() ? ::setgroups(1, &account.gid)
                                                   : ::initgroups(account.user_name.c_str(), account.gid);
  if (groups_set != 0) return tl::unexpected("setting supplementary groups: " + errno_text(errno));
  if (::setgid(account.gid) != 0)
    return tl::unexpected("setgid(" + std::to_string(account.gid) + "): " + errno_text(errno));
  if (::setuid(account.uid) != 0)
    return tl::unexpected("setuid(" + std::to_string(account.uid) + "): " + errno_text(errno));
  if (account.uid != 0 && ::setuid(0) == 0) return tl::unexpected(std::string("root could be regained after setuid; refusing to run"));
  return {};
}

std::string unix_socket_path(std::string_view socket_spec) {
  for (const std::string_view prefix : {"unix:", "local:"}) {
    if (socket_spec.starts_with(prefix)) return std::string(socket_spec.substr(prefix.size()));
  }
  return {};
}

tl::expected<void, std::string> set_socket_access(const std::string& path, std::string_view owner,
                                                  std::string_view group, std::optional<unsigned> mode) {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  if (!owner.empty()) {
    auto resolved = resolve_user_id(owner);
    if (!resolved) return tl::unexpected("milter.socket_owner: " + resolved.error());
    uid = *resolved;
  }
  if (!group.empty()) {
    auto resolved = resolve_group_id(group);
    if (!resolved) return tl::unexpected("milter.socket_group: " + resolved.error());
    gid = *resolved;
  }
  if ((!owner.empty() || !group.empty()) && ::chown(path.c_str(), uid, gid) != 0)
    return tl::unexpected("chown " + path + ": " + errno_text(errno));
  if (mode && ::chmod(path.c_str(), static_cast<mode_t>(*mode)) != 0)
    return tl::unexpected("chmod " + path + ": " + errno_text(errno));
  return {};
}

tl::expected<void, std::string> prepare_directory_for(const std::string& directory, const Account& account) {
  std::error_code error;
  if (std::filesystem::exists(directory, error)) return {};
  const std::filesystem::path path(directory);
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), error);
    if (error) return tl::unexpected("creating " + path.parent_path().string() + ": " + error.message());
  }
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST)
    return tl::unexpected("creating " + directory + ": " + errno_text(errno));
  if (::chown(directory.c_str(), account.uid, account.gid) != 0)
    return tl::unexpected("chown " + directory + ": " + errno_text(errno));
  return {};
}

}  // namespace floodgate::milter
