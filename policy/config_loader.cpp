// YAML -> Config. See config_loader.hpp for the contract.
//
// The loader walks the document once, section by section, and records an
// issue for every problem instead of throwing, so that an admin fixing a file
// sees all mistakes at once. Each section reader validates what it can and
// leaves the default in place when a value is wrong; the result is discarded
// anyway if any issue was recorded.
#include "policy/config_loader.hpp"

#include "policy/ascii.hpp"
#include "policy/source_spec.hpp"
#include "policy/yaml_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace floodgate::policy {

namespace {

using namespace std::chrono_literals;
using detail::describe;
using detail::Entry;
using detail::Fields;
using detail::in_quotes;

// Names appear in every verdict log line and in reasons headers; a bound
// keeps those lines readable.
constexpr std::size_t k_max_name_length = 64;
// Scores are sums over all rules; bounding each term keeps the sum far from
// int overflow whatever the number of rules.
constexpr long long k_max_abs_points = 1'000'000;
constexpr std::chrono::milliseconds k_min_window = 1s;
// Counter keys live as long as their window; a week is already a lot of
// Redis memory for a busy relay.
constexpr std::chrono::milliseconds k_max_window = 24h * 7;
constexpr unsigned k_max_pool_size = 256;
// RFC 5321 limits a reply line to 512 octets including code and status.
constexpr std::size_t k_max_reply_text = 400;

bool is_name(std::string_view text) {
  return !text.empty() && text.size() <= k_max_name_length &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

// RFC 5322 field name: printable US-ASCII except ':' (and never a space).
bool is_header_name(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != ':';
  });
}

// A user or group as getpwnam/getgrnam take it, or a numeric id.
bool is_account_name(std::string_view text) {
  return !text.empty() && text.size() <= 32 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  }) && text.front() != '-';
}

bool is_user_and_group(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return is_account_name(text);
  return is_account_name(text.substr(0, colon)) && is_account_name(text.substr(colon + 1));
}

// "host:port" or "[v6]:port" with a port from 1 to 65535; the port, or
// nothing when the text is not of that form.
std::optional<unsigned> host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 address needs brackets
  }
  if (!std::all_of(host.begin(), host.end(), [](char c) { return c > ' ' && c < 0x7f && c != '/'; }))
    return std::nullopt;
  if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    return std::nullopt;
  const unsigned port = static_cast<unsigned>(std::stoul(std::string(port_text)));
  if (port == 0 || port > 65535) return std::nullopt;
  return port;
}

// The overrides file (`overrides.file`): per rule, a source's own threshold.
//   RULE:
//     SOURCE WORDS: THRESHOLD      e.g.  msgs_per_user: {"sasl=newsletter": 5000}
// SOURCE WORDS are those of `floodgatectl freeze` (client=, sasl=, sender=,
// header:NAME=, ...), and must name exactly the parts of the rule's identity.
class OverridesReader : public detail::YamlReader {
 public:
  OverridesReader(std::string source, Config& config) : YamlReader(std::move(source)), m_config(config) {}

  void read(const YAML::Node& root) {
    if (root.IsNull()) return;  // an empty file: no overrides
    auto rules = map_entries(root, "", 1);
    if (!rules) return;
    for (const Entry& rule_entry : *rules) {
      const auto found = std::find_if(m_config.rules.begin(), m_config.rules.end(),
                                      [&](const Rule& rule) { return rule.name == rule_entry.name; });
      if (found == m_config.rules.end()) {
        add_issue(rule_entry.key.Mark().line + 1, rule_entry.path,
                  "no rule named " + in_quotes(rule_entry.name) + " in the configuration");
        continue;
      }
      if (!found->identity) {
        add_issue(rule_entry.key.Mark().line + 1, rule_entry.path,
                  "rule " + in_quotes(rule_entry.name) + " counts no source (it has no identity)");
        continue;
      }
      const std::size_t rule_index = static_cast<std::size_t>(found - m_config.rules.begin());
      const IdentityDefinition& identity = m_config.identities[*found->identity];
      auto sources = map_entries(rule_entry.value, rule_entry.path, line_of(rule_entry));
      if (!sources) continue;
      for (const Entry& source_entry : *sources) {
        std::vector<std::string> words;
        std::istringstream split(source_entry.name);
        for (std::string word; split >> word;) words.push_back(word);
        std::string error;
        const auto spec = parse_source_spec(words, error);
        if (!spec) {
          report(source_entry, error);
          continue;
        }
        if (!names_the_parts_of(*spec, identity)) {
          report(source_entry, "rule " + in_quotes(found->name) + " counts per " + identity.name + " (" +
                                   parts_text(identity) + "); this source names other parts, so it could never match");
          continue;
        }
        auto threshold = integer<std::uint64_t>(source_entry, 0, std::numeric_limits<std::uint64_t>::max(),
                                                "a threshold, an integer >= 0");
        if (threshold) m_config.overrides.by_rule[rule_index][spec->canonical()] = *threshold;
      }
    }
  }

 private:
  static bool names_the_parts_of(const SourceSpec& spec, const IdentityDefinition& identity) {
    if (spec.parts.size() != identity.parts.size()) return false;
    return std::all_of(identity.parts.begin(), identity.parts.end(), [&](const IdentityPart& part) {
      return std::any_of(spec.parts.begin(), spec.parts.end(),
                         [&](const SourcePart& given) { return given.part == part; });
    });
  }

  static std::string parts_text(const IdentityDefinition& identity) {
    SourceSpec example;
    for (const auto& part : identity.parts) example.parts.push_back({part, "..."});
    return example.canonical();
  }

  Config& m_config;
};

// The section readers; the generic reading and issue collection are in
// YamlReader.
class Loader : public detail::YamlReader {
 public:
  using YamlReader::YamlReader;

  std::shared_ptr<const Config> load(const YAML::Node& root) {
    auto config = std::make_shared<Config>();
    config->source_file = source();
    read_sections(root, *config);
    config->key_lines = key_lines();
    return config;
  }

 private:
  void read_sections(const YAML::Node& root, Config& config_out) {
    Config* config = &config_out;  // the section calls below read as before
    if (root.IsNull()) return;  // an empty file: all defaults
    auto fields = read_map(root, "", line_of(root, 1),
                           {"milter", "log", "redis", "content", "outbound", "exemptions",
                            "identities", "rules", "actions", "replies", "quarantine", "containment", "top", "metrics",
                            "mode", "monitor", "overrides"});
    if (!fields) return;
    // Identities come before rules whatever the file order: rules refer to them.
    if (const Entry* e = fields->find("milter")) read_milter(*e, *config);
    if (const Entry* e = fields->find("log")) read_log(*e, *config);
    if (const Entry* e = fields->find("redis")) read_redis(*e, config->redis);
    if (const Entry* e = fields->find("content")) read_content(*e, config->content);
    if (const Entry* e = fields->find("quarantine")) read_quarantine(*e, config->quarantine);
    if (const Entry* e = fields->find("outbound")) read_outbound(*e, config->outbound);
    if (const Entry* e = fields->find("exemptions")) read_exemptions(*e, *config);
    if (const Entry* e = fields->find("identities")) read_identities(*e, *config);
    if (const Entry* e = fields->find("rules")) read_rules(*e, *config);
    // After rules: containment names them.
    if (const Entry* e = fields->find("containment")) read_containment(*e, *config);
    if (const Entry* e = fields->find("top")) read_top(*e, config->top);
    if (const Entry* e = fields->find("metrics")) read_metrics(*e, config->metrics);
    if (const Entry* e = fields->find("actions")) read_actions(*e, config->bands);
    if (const Entry* e = fields->find("replies")) read_replies(*e, config->replies);
    if (const Entry* e = fields->find("mode")) {
      if (auto v = mode(*e)) config->monitor.everything = *v == RuleMode::Monitor;
    }
    if (const Entry* e = fields->find("monitor")) read_monitor(*e, config->monitor);
    // After rules: the overrides name them.
    if (const Entry* e = fields->find("overrides")) read_overrides(*e, *config);
  }

  void read_overrides(const Entry& section, Config& config) {
    auto fields = read_map(section, {"file"});
    if (!fields) return;
    const Entry* e = fields->find("file");
    if (!e) return;
    auto path = non_empty_string(*e);
    if (!path) return;
    // Relative to the config file, as an admin reads it next to it.
    std::filesystem::path file(*path);
    if (file.is_relative() && !source().empty()) file = std::filesystem::path(source()).parent_path() / file;
    config.overrides.file = file.string();
    errno = 0;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      report(*e, "cannot read " + in_quotes(file.string()) + ": " +
                     (errno != 0 ? std::strerror(errno) : std::string("open failed")));
      return;
    }
    std::ostringstream text;
    text << in.rdbuf();
    OverridesReader reader(file.string(), config);
    try {
      reader.read(YAML::Load(text.str()));
    } catch (const YAML::Exception& error) {
      reader.add_issue(error.mark.is_null() ? 0 : error.mark.line + 1, "", error.msg);
    }
    add_issues(reader.take_issues());
  }

  std::optional<RuleMode> mode(const Entry& entry) {
    return choice<RuleMode>(entry, {{"enforce", RuleMode::Enforce}, {"monitor", RuleMode::Monitor}});
  }

  void read_monitor(const Entry& section, MonitorSettings& monitor) {
    auto fields = read_map(section, {"add_header"});
    if (!fields) return;
    if (const Entry* e = fields->find("add_header")) {
      if (auto v = boolean(*e)) monitor.add_header = *v;
    }
  }

  void read_milter(const Entry& section, Config& config) {
    auto fields = read_map(section, {"socket", "user", "socket_owner", "socket_group", "socket_mode",
                                     "shutdown_timeout"});
    if (!fields) return;
    if (const Entry* e = fields->find("socket")) {
      if (auto v = non_empty_string(*e)) config.milter_socket = *v;
    }
    DaemonSettings& daemon = config.daemon;
    if (const Entry* e = fields->find("user")) {
      if (auto v = non_empty_string(*e)) {
        if (is_user_and_group(*v)) {
          daemon.user = *v;
        } else {
          report(*e, "expected USER or USER:GROUP (names or numeric ids), got " + in_quotes(*v));
        }
      }
    }
    for (auto [key, target] : {std::pair{"socket_owner", &daemon.socket_owner},
                               std::pair{"socket_group", &daemon.socket_group}}) {
      if (const Entry* e = fields->find(key)) {
        if (auto v = non_empty_string(*e)) {
          if (is_account_name(*v)) {
            *target = *v;
          } else {
            report(*e, "expected a user or group name or a numeric id, got " + in_quotes(*v));
          }
        }
      }
    }
    if (const Entry* e = fields->find("socket_mode")) {
      // Written as octal, as chmod takes it: 0660, 660 or "0660".
      if (auto v = non_empty_string(*e)) {
        const bool octal = v->size() <= 4 && std::all_of(v->begin(), v->end(), [](char c) {
          return c >= '0' && c <= '7';
        });
        if (octal) {
          daemon.socket_mode = static_cast<unsigned>(std::stoul(*v, nullptr, 8));
        } else {
          report(*e, "expected an octal file mode such as 0660, got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("shutdown_timeout")) {
      if (auto v = positive_duration(*e)) daemon.shutdown_timeout = std::max(1s, whole_seconds(*v));
    }
  }

  void read_log(const Entry& section, Config& config) {
    auto fields = read_map(section, {"level", "destination", "syslog_facility", "syslog_ident"});
    if (!fields) return;
    if (const Entry* e = fields->find("level")) {
      auto v = choice<std::string_view>(*e, {{"trace", "trace"},
                                             {"debug", "debug"},
                                             {"info", "info"},
                                             {"warn", "warn"},
                                             {"error", "error"}});
      if (v) config.log.level = std::string(*v);
    }
    if (const Entry* e = fields->find("destination")) {
      auto v = choice<LogSettings::Destination>(*e, {{"syslog", LogSettings::Destination::Syslog},
                                                     {"stderr", LogSettings::Destination::Stderr}});
      if (v) config.log.destination = *v;
    }
    if (const Entry* e = fields->find("syslog_facility")) {
      auto v = choice<std::string_view>(
          *e, {{"mail", "mail"}, {"daemon", "daemon"}, {"user", "user"}, {"local0", "local0"},
               {"local1", "local1"}, {"local2", "local2"}, {"local3", "local3"}, {"local4", "local4"},
               {"local5", "local5"}, {"local6", "local6"}, {"local7", "local7"}});
      if (v) config.log.syslog_facility = std::string(*v);
    }
    if (const Entry* e = fields->find("syslog_ident")) {
      if (auto v = non_empty_string(*e)) {
        if (is_name(*v) || std::all_of(v->begin(), v->end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '-' || c == '.';
            })) {
          config.log.syslog_ident = *v;
        } else {
          report(*e, "may contain only letters, digits, '_', '.' and '-', got " + in_quotes(*v));
        }
      }
    }
  }

  void read_metrics(const Entry& section, MetricsSettings& metrics) {
    auto fields = read_map(section, {"listen"});
    if (!fields) return;
    if (const Entry* e = fields->find("listen")) {
      // "off" (or an empty value) turns the endpoint off.
      if (auto v = scalar(*e)) {
        if (v->empty() || *v == "off") {
          metrics.listen.clear();
        } else if (auto port = host_port(*v); port) {
          metrics.listen = *v;
        } else {
          report(*e, "expected HOST:PORT (e.g. 127.0.0.1:9890) or off, got " + in_quotes(*v));
        }
      }
    }
  }

  void read_redis(const Entry& section, RedisSettings& redis) {
    auto fields = read_map(section, {"url", "username", "password_file", "sentinel", "connect_timeout",
                                     "command_timeout", "pool_size", "key_prefix", "on_failure",
                                     "retry_interval"});
    if (!fields) return;
    if (const Entry* e = fields->find("url")) {
      if (auto v = non_empty_string(*e)) {
        // Only the scheme is checked here; the Redis adapter parses the rest.
        if (v->starts_with("redis://") || v->starts_with("unix:")) {
          redis.url = *v;
        } else {
          report(*e, "expected redis://host:port[/db] or unix:/path, got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("username")) {
      if (auto v = non_empty_string(*e)) {
        if (std::all_of(v->begin(), v->end(), [](char c) { return c > ' ' && c < 0x7f; })) {
          redis.username = *v;
        } else {
          report(*e, "a Redis user name has no spaces or control characters, got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("password_file")) {
      if (auto v = non_empty_string(*e)) redis.password_file = *v;
    }
    if (const Entry* e = fields->find("sentinel")) read_sentinel(*e, redis.sentinel);
    if (const Entry* e = fields->find("connect_timeout")) {
      if (auto v = positive_duration(*e)) redis.connect_timeout = *v;
    }
    if (const Entry* e = fields->find("command_timeout")) {
      if (auto v = positive_duration(*e)) redis.command_timeout = *v;
    }
    if (const Entry* e = fields->find("retry_interval")) {
      if (auto v = positive_duration(*e)) redis.retry_interval = *v;
    }
    if (const Entry* e = fields->find("pool_size")) {
      if (auto v = integer<unsigned>(*e, 1, k_max_pool_size, "an integer from 1 to 256")) {
        redis.pool_size = *v;
      }
    }
    if (const Entry* e = fields->find("key_prefix")) {
      if (auto v = non_empty_string(*e)) {
        const bool valid = std::all_of(v->begin(), v->end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        });
        if (valid) {
          redis.key_prefix = *v;
        } else {
          report(*e, "may contain only letters, digits, '_', '.' and '-', got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("on_failure")) {
      auto v = choice<CounterFailureMode>(*e, {{"local", CounterFailureMode::Local},
                                               {"accept", CounterFailureMode::Accept},
                                               {"tempfail", CounterFailureMode::Tempfail}});
      if (v) redis.on_failure = *v;
    }
  }

  void read_content(const Entry& section, ContentSettings& content) {
    auto fields = read_map(section, {"max_text_bytes", "max_nesting_depth", "max_parts", "max_header_bytes"});
    if (!fields) return;
    if (const Entry* e = fields->find("max_text_bytes")) {
      auto v = integer<std::size_t>(*e, 1, std::numeric_limits<std::size_t>::max(),
                                    "a positive integer");
      if (v) content.max_text_bytes = *v;
    }
    if (const Entry* e = fields->find("max_nesting_depth")) {
      if (auto v = integer<std::size_t>(*e, 1, 100, "an integer from 1 to 100")) content.max_nesting_depth = *v;
    }
    if (const Entry* e = fields->find("max_parts")) {
      if (auto v = integer<std::size_t>(*e, 1, 100000, "an integer from 1 to 100000")) content.max_parts = *v;
    }
    if (const Entry* e = fields->find("max_header_bytes")) {
      // Below ~100 bytes a Content-Type with its boundary no longer fits.
      if (auto v = integer<std::size_t>(*e, 128, 1 << 20, "an integer from 128 to 1048576"))
        content.max_header_bytes = *v;
    }
  }

  void read_quarantine(const Entry& section, QuarantineSettings& quarantine) {
    auto fields = read_map(section, {"mode", "spool_directory", "max_message_bytes", "memory_buffer_bytes",
                                     "retention", "purge_interval", "release_target", "release_timeout",
                                     "postfix_config_directory", "mta", "sendmail_command"});
    if (!fields) return;
    if (const Entry* e = fields->find("mode")) {
      auto v = choice<QuarantineSettings::Mode>(
          *e, {{"spool", QuarantineSettings::Mode::Spool}, {"hold", QuarantineSettings::Mode::Hold}});
      if (v) quarantine.mode = *v;
    }
    if (const Entry* e = fields->find("spool_directory")) {
      if (auto v = non_empty_string(*e)) {
        // Relative paths would depend on the daemon's working directory.
        if (v->front() == '/') {
          quarantine.spool_directory = *v;
        } else {
          report(*e, "expected an absolute path, got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("max_message_bytes")) {
      auto v = integer<std::uint64_t>(*e, 1, std::numeric_limits<std::uint64_t>::max(), "a positive integer");
      if (v) quarantine.max_message_bytes = *v;
    }
    if (const Entry* e = fields->find("memory_buffer_bytes")) {
      auto v = integer<std::size_t>(*e, 0, std::size_t{1} << 30, "an integer from 0 to 1073741824");
      if (v) quarantine.memory_buffer_bytes = *v;
    }
    if (const Entry* e = fields->find("retention")) {
      // 0s keeps entries forever.
      if (auto v = duration(*e)) quarantine.retention = std::chrono::duration_cast<std::chrono::seconds>(*v);
    }
    if (const Entry* e = fields->find("purge_interval")) {
      if (auto v = positive_duration(*e))
        quarantine.purge_interval = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(*v));
    }
    if (const Entry* e = fields->find("release_timeout")) {
      if (auto v = positive_duration(*e))
        quarantine.release_timeout = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(*v));
    }
    if (const Entry* e = fields->find("release_target")) {
      if (auto v = non_empty_string(*e)) {
        const auto colon = v->rfind(':');
        // value_or(0), not the optional itself: g++ 12 at -O1 (the sanitizer
        // builds) warns that a disengaged optional's value may be read.
        const std::uint16_t port =
            colon == std::string::npos
                ? 0
                : detail::parse_integer<std::uint16_t>(v->substr(colon + 1)).value_or(std::uint16_t{0});
        std::string host = colon == std::string::npos ? std::string() : v->substr(0, colon);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        if (host.empty() || port == 0) {
          report(*e, "expected HOST:PORT such as 127.0.0.1:10026, got " + in_quotes(*v));
        } else {
          quarantine.release_host = host;
          quarantine.release_port = port;
        }
      }
    }
    if (const Entry* e = fields->find("postfix_config_directory")) {
      if (auto v = scalar(*e)) quarantine.postfix_config_directory = *v;
    }
    if (const Entry* e = fields->find("mta")) {
      auto v = choice<QuarantineSettings::Mta>(
          *e, {{"postfix", QuarantineSettings::Mta::Postfix}, {"sendmail", QuarantineSettings::Mta::Sendmail}});
      if (v) quarantine.mta = *v;
    }
    if (const Entry* e = fields->find("sendmail_command")) {
      if (auto items = list_items(*e)) {
        std::vector<std::string> command;
        for (const Entry& item : *items) {
          if (auto v = non_empty_string(item)) command.push_back(*v);
        }
        if (items->empty()) {
          report(*e, "expected the sendmail program and its options, such as [/usr/sbin/sendmail]");
        } else if (command.size() == items->size() && command.front().front() != '/') {
          // floodgatectl runs as root: no PATH lookup of the program it runs.
          report((*items)[0], "expected an absolute path, got " + in_quotes(command.front()));
        } else if (command.size() == items->size()) {
          quarantine.sendmail_command = std::move(command);
        }
      }
    }
  }

  void read_containment(const Entry& section, Config& config) {
    ContainmentSettings& containment = config.containment;
    auto fields = read_map(section, {"rules", "min_score", "action", "ttl", "refresh_interval", "incidents",
                                     "notify", "queue_clearing", "refuse_at"});
    if (!fields) return;
    if (const Entry* e = fields->find("rules")) {
      if (auto items = list_items(*e)) {
        for (const auto& item : *items) {
          auto name = non_empty_string(item);
          if (!name) continue;
          const auto rule = std::find_if(config.rules.begin(), config.rules.end(),
                                         [&](const Rule& r) { return r.name == *name; });
          if (rule == config.rules.end()) {
            report(item, "no rule named " + in_quotes(*name));
          } else if (!rule->identity) {
            // A freeze names a source: a rule without an identity has none.
            report(item, "rule " + in_quotes(*name) + " has no identity, so there is no source to freeze");
          } else {
            containment.rules.push_back(static_cast<std::size_t>(rule - config.rules.begin()));
          }
        }
      }
    }
    if (const Entry* e = fields->find("min_score")) {
      if (auto v = integer<int>(*e, 1, std::numeric_limits<int>::max(), "a score >= 1")) containment.min_score = *v;
    }
    if (const Entry* e = fields->find("action")) {
      auto v = choice<Action>(*e, {{"quarantine", Action::Quarantine},
                                   {"tempfail", Action::Tempfail},
                                   {"reject", Action::Reject}});
      if (v) containment.action = *v;
    }
    if (const Entry* e = fields->find("ttl")) {
      if (auto v = positive_duration(*e))
        containment.ttl = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(*v));
    }
    if (const Entry* e = fields->find("refresh_interval")) {
      if (auto v = positive_duration(*e)) containment.refresh_interval = *v;
    }
    if (const Entry* e = fields->find("refuse_at")) {
      auto v = choice<ContainmentSettings::RefuseAt>(
          *e, {{"data", ContainmentSettings::RefuseAt::Data}, {"mail_from", ContainmentSettings::RefuseAt::MailFrom}});
      if (v) containment.refuse_at = *v;
    }
    if (const Entry* e = fields->find("queue_clearing")) {
      auto v = choice<QueueClearing>(*e, {{"off", QueueClearing::Off},
                                          {"hold", QueueClearing::Hold},
                                          {"delete", QueueClearing::Delete}});
      if (v && *v == QueueClearing::Delete && config.quarantine.mta == QuarantineSettings::Mta::Sendmail) {
        // Sendmail has no command that removes a queued message (only rm in
        // its queue directory, racing its queue runners): say so rather than
        // quarantine what was asked to be deleted.
        report(*e, "delete needs Postfix's postsuper: Sendmail (quarantine.mta: sendmail) has no command that "
                   "deletes a queued message; use hold, which quarantines them in Sendmail's queue");
      } else if (v) {
        containment.queue_clearing = *v;
      }
    }
    if (const Entry* e = fields->find("incidents")) read_incidents(*e, containment.incidents);
    if (const Entry* e = fields->find("notify")) read_notify(*e, containment.notify);
  }

  static std::chrono::seconds whole_seconds(std::chrono::milliseconds value) {
    return std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(value));
  }

  void read_incidents(const Entry& section, IncidentSettings& incidents) {
    auto fields = read_map(section, {"retention", "lookback", "recipient_sample", "subjects", "max_queue_ids"});
    if (!fields) return;
    if (const Entry* e = fields->find("retention")) {
      if (auto v = positive_duration(*e)) incidents.retention = whole_seconds(*v);
    }
    if (const Entry* e = fields->find("lookback")) {
      if (auto v = positive_duration(*e)) incidents.lookback = whole_seconds(*v);
    }
    if (const Entry* e = fields->find("recipient_sample")) {
      if (auto v = integer<std::size_t>(*e, 0, 1000, "an integer from 0 to 1000")) incidents.recipient_sample = *v;
    }
    if (const Entry* e = fields->find("subjects")) {
      if (auto v = integer<std::size_t>(*e, 0, 100, "an integer from 0 to 100")) incidents.subjects = *v;
    }
    if (const Entry* e = fields->find("max_queue_ids")) {
      if (auto v = integer<std::size_t>(*e, 0, 100000, "an integer from 0 to 100000")) incidents.max_queue_ids = *v;
    }
  }

  void read_notify(const Entry& section, NotificationSettings& notify) {
    auto fields = read_map(section, {"mail_to", "mail_from", "command", "command_timeout", "min_interval",
                                     "on_unfreeze"});
    if (!fields) return;
    // Addresses go into SMTP commands and header lines: no spaces, angle
    // brackets or control characters.
    const auto plain_address = [](const std::string& address) {
      return !address.empty() && address.size() <= 254 &&
             std::all_of(address.begin(), address.end(), [](char c) {
               return c > ' ' && c < 0x7f && c != '<' && c != '>' && c != ',';
             });
    };
    if (const Entry* e = fields->find("mail_to")) {
      if (auto v = string_list(*e, true)) {
        for (const auto& address : *v) {
          if (!plain_address(address)) report(*e, in_quotes(address) + " is not a plain mail address");
        }
        notify.mail_to = std::move(*v);
      }
    }
    if (const Entry* e = fields->find("mail_from")) {
      if (auto v = non_empty_string(*e)) {
        if (plain_address(*v)) {
          notify.mail_from = *v;
        } else {
          report(*e, in_quotes(*v) + " is not a plain mail address");
        }
      }
    }
    if (const Entry* e = fields->find("command")) {
      // A list, never a string: the words are passed to execv as they are,
      // with no shell to split or interpret them.
      if (auto v = string_list(*e, true)) {
        if (!v->empty() && v->front().front() != '/') {
          report(*e, "the command must start with an absolute path, got " + in_quotes(v->front()));
        } else {
          notify.command = std::move(*v);
        }
      }
    }
    if (const Entry* e = fields->find("command_timeout")) {
      if (auto v = positive_duration(*e)) notify.command_timeout = whole_seconds(*v);
    }
    if (const Entry* e = fields->find("min_interval")) {
      if (auto v = duration(*e)) notify.min_interval = std::chrono::duration_cast<std::chrono::seconds>(*v);
    }
    if (const Entry* e = fields->find("on_unfreeze")) {
      if (auto v = boolean(*e)) notify.on_unfreeze = *v;
    }
  }

  void read_sentinel(const Entry& section, SentinelSettings& sentinel) {
    auto fields = read_map(section, {"master_name", "addresses", "password_file"});
    if (!fields) return;
    if (const Entry* e = fields->find("master_name")) {
      if (auto v = non_empty_string(*e)) {
        if (std::all_of(v->begin(), v->end(), [](char c) { return c > ' ' && c < 0x7f; })) {
          sentinel.master_name = *v;
        } else {
          report(*e, "a master name has no spaces or control characters, got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("addresses")) {
      if (auto v = string_list(*e, false)) {
        for (const auto& address : *v) {
          if (!host_port(address)) report(*e, "expected HOST:PORT, got " + in_quotes(address));
        }
        sentinel.addresses = std::move(*v);
      }
    }
    if (const Entry* e = fields->find("password_file")) {
      if (auto v = non_empty_string(*e)) sentinel.password_file = *v;
    }
    if (sentinel.master_name.empty() != sentinel.addresses.empty()) {
      report(section, "sentinel needs both master_name and addresses");
    }
  }

  void read_top(const Entry& section, TopSettings& top) {
    auto fields = read_map(section, {"enabled", "history", "flush_interval"});
    if (!fields) return;
    if (const Entry* e = fields->find("enabled")) {
      if (auto v = boolean(*e)) top.enabled = *v;
    }
    if (const Entry* e = fields->find("history")) {
      if (auto v = positive_duration(*e)) top.history = std::max(std::chrono::seconds(60), whole_seconds(*v));
    }
    if (const Entry* e = fields->find("flush_interval")) {
      if (auto v = positive_duration(*e)) top.flush_interval = *v;
    }
  }

  void read_outbound(const Entry& section, OutboundScope& scope) {
    auto fields = read_map(section, {"client_networks", "authenticated", "local_submission",
                                     "macros"});
    if (!fields) return;
    if (const Entry* e = fields->find("client_networks")) {
      if (auto v = network_list(*e, true)) scope.client_networks = std::move(*v);
    }
    if (const Entry* e = fields->find("authenticated")) {
      if (auto v = boolean(*e)) scope.authenticated = *v;
    }
    if (const Entry* e = fields->find("local_submission")) {
      if (auto v = boolean(*e)) scope.local_submission = *v;
    }
    if (const Entry* e = fields->find("macros")) {
      auto items = list_items(*e);
      if (!items) return;
      for (const auto& item : *items) {
        auto match_fields = read_item(item, {"macro", "values"});
        if (!match_fields) continue;
        OutboundScope::MacroMatch match;
        const Entry* macro = match_fields->find("macro");
        const Entry* values = match_fields->find("values");
        if (!macro || !values) {
          report_missing(item, "needs both macro and values");
          continue;
        }
        if (auto name = macro_value(*macro)) match.macro = *name;
        if (auto list = string_list(*values, false)) match.values = std::move(*list);
        scope.macros.push_back(std::move(match));
      }
    }
  }

  void read_exemptions(const Entry& section, Config& config) {
    auto items = list_items(section);
    if (!items) return;
    for (const auto& item : *items) {
      auto fields = read_item(item, {"client_networks", "client_names", "sasl_users", "senders",
                                    "sender_domains", "headers", "macros"});
      if (!fields) continue;
      Exemption exemption;
      bool any = false;
      if (const Entry* e = fields->find("client_networks")) {
        any = true;
        if (auto v = network_list(*e, false)) exemption.client_networks = std::move(*v);
      }
      const std::pair<const char*, std::vector<std::string>*> lists[] = {
          {"client_names", &exemption.client_names},
          {"sasl_users", &exemption.sasl_users},
          {"senders", &exemption.senders},
          {"sender_domains", &exemption.sender_domains},
      };
      for (const auto& [key, target] : lists) {
        if (const Entry* e = fields->find(key)) {
          any = true;
          if (auto v = string_list(*e, false)) *target = std::move(*v);
        }
      }
      if (const Entry* e = fields->find("headers")) {
        any = true;
        exemption.headers = value_matches(*e, /*headers=*/true);
        for (const auto& match : exemption.headers) note_header_of_interest(config, match.name);
      }
      if (const Entry* e = fields->find("macros")) {
        any = true;
        exemption.macros = value_matches(*e, /*headers=*/false);
      }
      if (!any) {
        // An exemption without conditions would exempt every message.
        report_missing(item, "needs at least one of client_networks, client_names, sasl_users, "
                             "senders, sender_domains, headers, macros");
        continue;
      }
      config.exemptions.push_back(std::move(exemption));
    }
  }

  // {Header-Name: [value, ...], ...} or {macro_name: [value, ...], ...}
  std::vector<Exemption::ValueMatch> value_matches(const Entry& entry, bool headers) {
    std::vector<Exemption::ValueMatch> matches;
    auto entries = map_entries(entry.value, entry.path, line_of(entry));
    if (!entries) return matches;
    if (entries->empty()) report(entry, "expected at least one name with its values");
    for (const auto& named : *entries) {
      Exemption::ValueMatch match;
      if (headers) {
        if (!is_header_name(named.name)) {
          add_issue(named.key.Mark().line + 1, named.path, "not a header name: " + in_quotes(named.name));
          continue;
        }
        match.name = lower_ascii(named.name);
      } else {
        auto name = detail::macro_name(named.name);
        if (!name) {
          add_issue(named.key.Mark().line + 1, named.path, "not a macro name: " + in_quotes(named.name));
          continue;
        }
        match.name = *name;
      }
      if (auto values = string_list(named, false)) match.values = std::move(*values);
      matches.push_back(std::move(match));
    }
    return matches;
  }

  static void note_header_of_interest(Config& config, const std::string& name) {
    auto& names = config.headers_of_interest;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }

  // Broken identities are kept (the Config is discarded anyway) so that the
  // rules naming them resolve and each mistake is reported only once.
  void read_identities(const Entry& section, Config& config) {
    auto entries = map_entries(section.value, section.path, line_of(section));
    if (!entries) return;
    for (const auto& entry : *entries) {
      if (!is_name(entry.name)) {
        add_issue(entry.key.Mark().line + 1, entry.path,
                  "identity names are lower-case letters, digits and '_' (at most 64)");
      }
      IdentityDefinition identity = read_identity(entry);
      for (const auto& part : identity.parts) {
        if (part.kind == IdentityPart::Kind::Header) note_header_of_interest(config, part.name);
      }
      m_identity_index[entry.name] = config.identities.size();
      config.identities.push_back(std::move(identity));
    }
  }

  IdentityDefinition read_identity(const Entry& entry) {
    IdentityDefinition identity;
    identity.name = entry.name;
    auto fields = read_map(entry, {"parts", "when_missing"});
    if (!fields) return identity;
    if (const Entry* e = fields->find("when_missing")) {
      auto v = choice<MissingPartPolicy>(*e, {{"skip", MissingPartPolicy::SkipRule},
                                              {"placeholder", MissingPartPolicy::Placeholder}});
      if (v) identity.when_missing = *v;
    }
    const Entry* parts = fields->find("parts");
    if (!parts) {
      report_missing(entry, "needs parts");
      return identity;
    }
    auto items = list_items(*parts);
    if (items && items->empty()) report(*parts, "must list at least one part");
    if (!items) return identity;
    for (const auto& item : *items) {
      if (auto part = read_part(item)) identity.parts.push_back(std::move(*part));
    }
    return identity;
  }

  std::optional<IdentityPart> read_part(const Entry& item) {
    static const std::string k_valid_parts =
        "client_address, client_name, sasl_user, sender, sender_domain, "
        "{client_network: {ipv4: N, ipv6: N}}, {header: NAME} or {macro: NAME}";
    using Kind = IdentityPart::Kind;
    IdentityPart part;
    if (item.value.IsScalar()) {
      const std::string& word = item.value.Scalar();
      static const std::pair<std::string_view, Kind> k_words[] = {
          {"client_address", Kind::ClientAddress}, {"client_name", Kind::ClientName},
          {"sasl_user", Kind::SaslUser},           {"sender", Kind::Sender},
          {"sender_domain", Kind::SenderDomain},   {"client_network", Kind::ClientNetwork},
      };
      for (const auto& [name, kind] : k_words) {
        if (word == name) {
          part.kind = kind;  // a bare client_network takes the default prefixes
          return part;
        }
      }
      report(item, "unknown identity part " + in_quotes(word) + "; expected " + k_valid_parts);
      return std::nullopt;
    }
    if (!item.value.IsMap() || item.value.size() != 1) {
      report(item, "expected " + k_valid_parts + ", got " + describe(item.value));
      return std::nullopt;
    }
    auto entries = map_entries(item.value, item.path, line_of(item));
    if (!entries || entries->size() != 1) return std::nullopt;
    const Entry& entry = entries->front();
    if (entry.name == "client_network") {
      part.kind = Kind::ClientNetwork;
      auto fields = read_map(entry, {"ipv4", "ipv6"});
      if (!fields) return std::nullopt;
      if (const Entry* e = fields->find("ipv4")) {
        auto v = integer<unsigned>(*e, 0, 32, "a prefix length from 0 to 32");
        if (v) part.ipv4_prefix = *v;
      }
      if (const Entry* e = fields->find("ipv6")) {
        auto v = integer<unsigned>(*e, 0, 128, "a prefix length from 0 to 128");
        if (v) part.ipv6_prefix = *v;
      }
      return part;
    }
    if (entry.name == "header") {
      part.kind = Kind::Header;
      auto name = scalar(entry);
      if (!name) return std::nullopt;
      if (!is_header_name(*name)) {
        report(entry, "expected a header field name such as X-PHP-Originating-Script, got " +
                          in_quotes(*name));
        return std::nullopt;
      }
      part.name = lower_ascii(*name);
      return part;
    }
    if (entry.name == "macro") {
      part.kind = Kind::Macro;
      auto name = macro_value(entry);
      if (!name) return std::nullopt;
      part.name = *name;
      return part;
    }
    add_issue(entry.key.Mark().line + 1, entry.path,
              "unknown identity part " + in_quotes(entry.name) + "; expected " + k_valid_parts);
    return std::nullopt;
  }

  void read_rules(const Entry& section, Config& config) {
    auto items = list_items(section);
    if (!items) return;
    std::set<std::string> names;
    for (const auto& item : *items) {
      auto fields =
          read_item(item, {"name", "signal", "identity", "window", "threshold", "points", "mode"});
      if (fields) config.rules.push_back(read_rule(item, *fields, names));
    }
  }

  Rule read_rule(const Entry& item, const Fields& fields, std::set<std::string>& names) {
    Rule rule;
    for (const char* key : {"name", "signal", "threshold", "points"}) {
      if (!fields.find(key)) report_missing(item, std::string("needs ") + key);
    }
    if (const Entry* e = fields.find("name")) {
      if (auto v = scalar(*e)) {
        if (!is_name(*v)) {
          report(*e, "rule names are lower-case letters, digits and '_' (at most 64), got " +
                         in_quotes(*v));
        } else if (!names.insert(*v).second) {
          report(*e, "duplicate rule name " + in_quotes(*v));
        }
        rule.name = *v;
      }
    }

    // Which signals count per source decides what else the rule may say.
    enum class IdentityUse { None, Required, Optional };
    IdentityUse identity_use = IdentityUse::Optional;  // unknown signal: guess no more errors
    std::string signal_name;
    if (const Entry* e = fields.find("signal")) {
      auto v = choice<Signal>(*e, {{"recipients_per_message", Signal::RecipientsPerMessage},
                                   {"messages", Signal::Messages},
                                   {"recipients", Signal::Recipients},
                                   {"distinct_recipients", Signal::DistinctRecipients},
                                   {"rejected_recipients", Signal::RejectedRecipients},
                                   {"content_copies", Signal::ContentCopies},
                                   {"content_recipients", Signal::ContentRecipients},
                                   {"content_sources", Signal::ContentSources},
                                   {"content_recipient_domains", Signal::ContentRecipientDomains}});
      if (v) {
        rule.signal = *v;
        signal_name = e->value.Scalar();
        identity_use = *v == Signal::RecipientsPerMessage ? IdentityUse::None
                       : *v == Signal::ContentCopies || *v == Signal::ContentRecipients ||
                               *v == Signal::ContentRecipientDomains
                           ? IdentityUse::Optional
                           : IdentityUse::Required;
      }
    }

    const Entry* identity = fields.find("identity");
    const Entry* window = fields.find("window");
    if (identity_use == IdentityUse::None) {
      if (identity) report(*identity, signal_name + " counts one message and takes no identity");
      if (window) report(*window, signal_name + " counts one message and takes no window");
      identity = window = nullptr;
    }
    if (identity) {
      if (auto v = scalar(*identity)) {
        auto found = m_identity_index.find(*v);
        if (found != m_identity_index.end()) {
          rule.identity = found->second;
        } else {
          report(*identity, "unknown identity " + in_quotes(*v) + "; define it under identities");
        }
      }
    } else if (identity_use == IdentityUse::Required) {
      report_missing(item, signal_name + " needs an identity");
    }
    if (window) {
      if (auto v = duration(*window)) {
        if (*v < k_min_window || *v > k_max_window) {
          report(*window, "must be from 1s to 7d, got " + in_quotes(window->value.Scalar()));
        } else if (*v % 1s != 0ms) {
          report(*window,
                 "must be a whole number of seconds, got " + in_quotes(window->value.Scalar()));
        }
        rule.window = std::chrono::duration_cast<std::chrono::seconds>(*v);
      }
    }

    if (const Entry* e = fields.find("threshold")) {
      auto v = integer<std::uint64_t>(*e, 0, std::numeric_limits<std::uint64_t>::max(),
                                      "an integer >= 0");
      if (v) rule.threshold = *v;
    }
    if (const Entry* e = fields.find("points")) {
      auto v = integer<long long>(*e, -k_max_abs_points, k_max_abs_points,
                                  "a non-zero integer from -1000000 to 1000000");
      if (v && *v == 0) report(*e, "must not be 0: a rule that adds nothing is a mistake");
      if (v) rule.points = static_cast<int>(*v);
    }
    if (const Entry* e = fields.find("mode")) {
      if (auto v = mode(*e)) rule.mode = *v;
    }
    return rule;
  }

  void read_actions(const Entry& section, std::vector<ActionBand>& bands) {
    auto entries = map_entries(section.value, section.path, line_of(section));
    if (!entries) return;
    std::map<int, std::string> by_score;
    for (const auto& entry : *entries) {
      if (entry.name == "accept") {
        add_issue(entry.key.Mark().line + 1, entry.path,
                  "accept needs no band: it is what a message scoring below the lowest band gets");
        continue;
      }
      static const std::pair<std::string_view, Action> k_actions[] = {
          {"tag", Action::Tag},
          {"quarantine", Action::Quarantine},
          {"tempfail", Action::Tempfail},
          {"reject", Action::Reject},
      };
      auto known = std::find_if(std::begin(k_actions), std::end(k_actions),
                                [&](const auto& action) { return action.first == entry.name; });
      if (known == std::end(k_actions)) {
        add_issue(entry.key.Mark().line + 1, entry.path,
                  "unknown action " + in_quotes(entry.name) +
                      "; expected tag, quarantine, tempfail or reject");
        continue;
      }
      auto score = integer<int>(entry, 1, std::numeric_limits<int>::max(), "a score >= 1");
      if (!score) continue;
      auto [it, inserted] = by_score.emplace(*score, entry.name);
      if (!inserted) {
        report(entry, "same score as " + it->second + "; each band needs its own score");
        continue;
      }
      bands.push_back({known->second, *score});
    }
    std::sort(bands.begin(), bands.end(),
              [](const ActionBand& a, const ActionBand& b) { return a.min_score < b.min_score; });
  }

  void read_replies(const Entry& section, Replies& replies) {
    auto fields = read_map(section, {"tempfail", "reject"});
    if (!fields) return;
    if (const Entry* e = fields->find("tempfail")) {
      read_reply(*e, '4', replies.tempfail_code, replies.tempfail_status, replies.tempfail_text);
    }
    if (const Entry* e = fields->find("reject")) {
      read_reply(*e, '5', replies.reject_code, replies.reject_status, replies.reject_text);
    }
  }

  void read_reply(const Entry& section, char reply_class, std::string& code, std::string& status,
                  std::string& text) {
    auto fields = read_map(section, {"code", "status", "text"});
    if (!fields) return;
    const std::string cls(1, reply_class);
    if (const Entry* e = fields->find("code")) {
      if (auto v = scalar(*e)) {
        const bool valid = v->size() == 3 && (*v)[0] == reply_class &&
                           std::all_of(v->begin(), v->end(),
                                       [](char c) { return c >= '0' && c <= '9'; });
        if (valid) {
          code = *v;
        } else {
          report(*e, "expected a " + cls + "xx SMTP reply code, got " + in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("status")) {
      if (auto v = scalar(*e)) {
        if (is_enhanced_status(*v, reply_class)) {
          status = *v;
        } else {
          report(*e, "expected an enhanced status code " + cls + ".x.y (RFC 3463), got " +
                         in_quotes(*v));
        }
      }
    }
    if (const Entry* e = fields->find("text")) {
      if (auto v = non_empty_string(*e)) {
        if (auto problem = reply_text_problem(*v)) {
          report(*e, *problem);
        } else {
          text = *v;
        }
      }
    }
  }

  // class.subject.detail with 1-3 digit subject and detail (RFC 3463).
  static bool is_enhanced_status(std::string_view text, char reply_class) {
    if (text.size() < 5 || text[0] != reply_class || text[1] != '.') return false;
    auto is_part = [](std::string_view part) {
      return !part.empty() && part.size() <= 3 &&
             std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    const std::string_view rest = text.substr(2);
    const auto dot = rest.find('.');
    return dot != std::string_view::npos && is_part(rest.substr(0, dot)) &&
           is_part(rest.substr(dot + 1));
  }

  static std::optional<std::string> reply_text_problem(std::string_view text) {
    if (text.size() > k_max_reply_text) {
      return "is longer than " + std::to_string(k_max_reply_text) + " characters";
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < ' ' || c >= 0x7f) return std::string("must be printable ASCII on one line");
      // libmilter's smfi_setreply treats the text as a format: a lone '%'
      // makes it drop the text.
      if (c == '%') {
        if (i + 1 < text.size() && text[i + 1] == '%') {
          ++i;
        } else {
          return std::string("a literal '%' must be written as '%%'");
        }
      }
    }
    return std::nullopt;
  }

  std::map<std::string, std::size_t> m_identity_index;
};

std::string join_issues(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const auto& issue : issues) {
    if (!out.empty()) out += '\n';
    out += issue.to_string();
  }
  return out;
}

// Where a second YAML document starts, if there is one. yaml-cpp 0.7
// (Debian 12) never returns from LoadAll on some malformed text, a stray ','
// for one: its parser keeps handing out empty documents without reading on
// (jbeder/yaml-cpp#1040, fixed after 0.8), allocating until memory runs out.
// So the documents are counted here, two at most, and only the first is loaded.
class DocumentCounter : public YAML::EventHandler {
 public:
  struct Second {
    YAML::Mark first_node;  // of the second document (its start if it is empty)
    bool stuck = false;     // it starts where the first did: the parser did not move
  };

  static std::optional<Second> find_second(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
    }
    if (counter.m_documents < 2) return std::nullopt;
    return Second{counter.m_second_node, counter.m_second_start.pos == counter.m_first_start.pos};
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    ++m_documents;
    (m_documents == 1 ? m_first_start : m_second_start) = mark;
    if (m_documents == 2) m_second_node = mark;
    m_seen_node = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& mark) {
    if (m_documents == 2 && !m_seen_node) m_second_node = mark;
    m_seen_node = true;
  }

  int m_documents = 0;
  bool m_seen_node = false;
  YAML::Mark m_first_start;
  YAML::Mark m_second_start;
  YAML::Mark m_second_node;
};

}  // namespace

std::string ConfigIssue::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(join_issues(issues)), m_issues(std::move(issues)) {}

std::shared_ptr<const Config> load_config_text(std::string_view yaml_text,
                                               const std::string& source_name) {
  Loader loader(source_name);
  std::shared_ptr<const Config> config;
  try {
    const std::string text(yaml_text);
    if (const auto second = DocumentCounter::find_second(text)) {
      loader.add_issue(second->first_node.line + 1, "",
                       second->stuck ? "not valid YAML: nothing can be read from here on"
                                     : "expected one YAML document, found more than one");
    } else {
      config = loader.load(YAML::Load(text));
    }
  } catch (const YAML::Exception& e) {
    // Syntax errors; and, should a check above have missed a case, no
    // yaml-cpp exception leaves the loader either way.
    loader.add_issue(e.mark.is_null() ? 0 : e.mark.line + 1, "", e.msg);
  }
  auto issues = loader.take_issues();
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return config;
}

std::shared_ptr<const Config> load_config_file(const std::string& path) {
  // A directory opens fine and reads as empty, which would load as "all
  // defaults"; refuse it explicitly.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError({{path, 0, "", "cannot read file: it is a directory"}});
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw ConfigError({{path, 0, "",
                        std::string("cannot read file: ") +
                            (error != 0 ? std::strerror(error) : "open failed")}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError({{path, 0, "", "cannot read file: read failed"}});
  return load_config_text(text.str(), path);
}

}  // namespace floodgate::policy
