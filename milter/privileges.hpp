// Running as root only for what needs root: binding the milter socket,
// giving a unix socket to the MTA's user, creating the spool directory.
// Then the daemon becomes the configured user (milter.user / --user) for
// good: a parser bug in mail handling must not run as root.
//
// Each function returns why it failed, as a sentence naming the user, group
// or path; nothing here logs or throws (except std::bad_alloc).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace floodgate::milter {

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user_name;  // for initgroups; empty for a numeric uid with no passwd entry
};

// "USER" (its primary group) or "USER:GROUP"; names or numeric ids.
tl::expected<Account, std::string> resolve_account(std::string_view user_and_group);
tl::expected<uid_t, std::string> resolve_user_id(std::string_view user);
tl::expected<gid_t, std::string> resolve_group_id(std::string_view group);

// Becomes `account` (supplementary groups, then gid, then uid) and checks
// that root cannot be regained. Already being that account is fine; any
// other non-root start is an error, as the switch needs root.
tl::expected<void, std::string> become(const Account& account);

// Gives a unix socket the owner, group and mode the MTA needs to connect;
// an empty owner or group, or no mode, is left as it is.
tl::expected<void, std::string> set_socket_access(const std::string& path, std::string_view owner,
                                                  std::string_view group, std::optional<unsigned> mode);

// The path of a libmilter unix socket spec ("unix:/p", "local:/p"); empty
// for inet sockets.
std::string unix_socket_path(std::string_view socket_spec);

// Creates `directory` (and missing parents, 0755) if it does not exist and
// gives the directory itself to `account`, mode 0700, so that the daemon
// can still use it after become(). An existing directory is left alone.
tl::expected<void, std::string> prepare_directory_for(const std::string& directory, const Account& account);

}  // namespace floodgate::milter
