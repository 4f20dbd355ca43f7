// YamlReader: the generic half of the config loader. It turns yaml-cpp nodes
// into checked values (maps with known keys, lists, strings, integers,
// booleans, durations, networks, words from a fixed set, milter macro names)
// and knows nothing about which sections the configuration has;
// config_loader.cpp does.
//
// INTERNAL: included only by config_loader.cpp and yaml_reader.cpp. It
// exposes yaml-cpp types, which must never leave the floodgate_config_yaml
// library (yaml-cpp is a PRIVATE dependency of it), so no other header or
// target may include this one.
//
// DIAGNOSTICS: readers never throw for a bad value. Each problem is added to
// the reader's list as a ConfigIssue (source name, 1-based line, dotted key)
// and the reader returns std::nullopt, or keeps what it could read, so that
// loading goes on and the admin sees every mistake at once. The caller
// collects the list with take_issues() and decides whether to throw.
//
// Thread-safety: one YamlReader per load; it is not shared.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "policy/config_loader.hpp"
#include "policy/ip_address.hpp"

namespace floodgate::policy::detail {

std::string in_quotes(std::string_view text);
std::string join_path(const std::string& parent, std::string_view key);
std::string item_path(const std::string& parent, std::size_t index);
// A node as it should appear in "got ..." of a message.
std::string describe(const YAML::Node& node);

// The whole text must be the number; no sign tricks, spaces or suffixes.
template <typename T>
std::optional<T> parse_integer(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// Digits and one unit of ms, s, m, h or d; nullopt also on overflow.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// A milter macro name without its optional braces ("{daemon_name}" ->
// "daemon_name"); empty when it is not one.
std::optional<std::string> macro_name(std::string_view text);

// A map key and its value, with the dotted path that names the value.
struct Entry {
  std::string name;
  YAML::Node key;
  YAML::Node value;
  std::string path;
};

// The entries of one YAML map whose keys the reader knows.
class Fields {
 public:
  void add(Entry entry) { m_entries.push_back(std::move(entry)); }
  const Entry* find(std::string_view name) const;

 private:
  std::vector<Entry> m_entries;
};

class YamlReader {
 public:
  explicit YamlReader(std::string source) : m_source(std::move(source)) {}

  const std::string& source() const { return m_source; }
  // The line of every map key read so far, by dotted path ("redis.url").
  const std::map<std::string, int>& key_lines() const { return m_key_lines; }

  void add_issue(int line, std::string key, std::string message);
  // Issues found in another file this one names (they keep their file).
  void add_issues(std::vector<ConfigIssue> issues) {
    for (auto& issue : issues) m_issues.push_back(std::move(issue));
  }
  // In file order, whatever order the sections were checked in.
  std::vector<ConfigIssue> take_issues();

  // yaml-cpp gives an empty value the position of the next token, which may
  // be lines further down; the key's own line is where the admin looks.
  static int line_of(const Entry& entry);
  static int line_of(const YAML::Node& node, int fallback);

  void report(const Entry& at, std::string message);
  // For what is missing from a map: its key is where it should be added.
  void report_missing(const Entry& at, std::string message);

  // Every key of a map; reports a non-map, non-scalar keys and duplicate
  // keys (yaml-cpp would silently keep both). A null node reads as an empty
  // map, so "section:" with nothing under it means "all defaults".
  std::optional<std::vector<Entry>> map_entries(const YAML::Node& node, const std::string& path,
                                                int line);

  // Like map_entries, and reports keys not in `known` as unknown.
  std::optional<Fields> read_map(const YAML::Node& node, const std::string& path, int line,
                                 std::initializer_list<std::string_view> known);
  std::optional<Fields> read_map(const Entry& entry, std::initializer_list<std::string_view> known);
  // A list item that must be a map: unlike a section, an empty item is a
  // mistake (a stray "-"), not a request for defaults.
  std::optional<Fields> read_item(const Entry& item, std::initializer_list<std::string_view> known);

  // The items of a list, each with its path and line; null reads as empty.
  std::optional<std::vector<Entry>> list_items(const Entry& entry);

  std::optional<std::string> scalar(const Entry& entry);
  std::optional<std::string> non_empty_string(const Entry& entry);

  // A list of non-empty strings; `allow_empty_list` false for lists whose
  // emptiness would silently disable what they configure. Like every reader,
  // it keeps what it could read: the Config is discarded after any issue.
  std::optional<std::vector<std::string>> string_list(const Entry& entry, bool allow_empty_list);
  std::optional<std::vector<IpNetwork>> network_list(const Entry& entry, bool allow_empty_list);

  std::optional<bool> boolean(const Entry& entry);

  // A milter macro name such as daemon_name, with or without the braces of
  // the sendmail spelling {daemon_name}, quoted or not.
  std::optional<std::string> macro_value(const Entry& entry);

  // `expected` completes "expected ..., got X" when the value is out of range.
  template <typename T>
  std::optional<T> integer(const Entry& entry, T min, T max, const std::string& expected) {
    auto text = scalar(entry);
    if (!text) return std::nullopt;
    auto value = parse_integer<T>(*text);
    if (!value || *value < min || *value > max) {
      report(entry, "expected " + expected + ", got " + in_quotes(*text));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::chrono::milliseconds> duration(const Entry& entry);
  std::optional<std::chrono::milliseconds> positive_duration(const Entry& entry);

  // One of a fixed set of words.
  template <typename T>
  std::optional<T> choice(const Entry& entry,
                          std::initializer_list<std::pair<std::string_view, T>> choices) {
    auto text = scalar(entry);
    if (!text) return std::nullopt;
    std::string valid;
    for (const auto& [word, value] : choices) {
      if (*text == word) return value;
      valid += (valid.empty() ? "" : ", ") + std::string(word);
    }
    report(entry, "expected one of " + valid + ", got " + in_quotes(*text));
    return std::nullopt;
  }

 private:
  std::map<std::string, int> m_key_lines;
  std::string m_source;
  std::vector<ConfigIssue> m_issues;
};

}  // namespace floodgate::policy::detail
