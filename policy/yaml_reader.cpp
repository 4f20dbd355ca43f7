// Generic YAML readers for the config loader. See yaml_reader.hpp.
#include "policy/yaml_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>

namespace floodgate::policy::detail {

namespace {

const char* const k_duration_hint = "expected a duration such as 30s, 10m or 1h";

}  // namespace

// Milter macro names are letters, digits and '_' ("i", "daemon_name",
// "auth_authen"); the braces of the sendmail spelling are optional.
std::optional<std::string> macro_name(std::string_view text) {
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
      })) {
    return std::nullopt;
  }
  return std::string(text);
}

std::string in_quotes(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string join_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string item_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return in_quotes(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  auto count = parse_integer<std::uint64_t>(text.substr(0, digits));
  const std::string_view unit = text.substr(digits);
  std::uint64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1000;
  } else if (unit == "m") {
    unit_ms = 60 * 1000;
  } else if (unit == "h") {
    unit_ms = 3600 * 1000;
  } else if (unit == "d") {
    unit_ms = 24 * 3600 * 1000;
  } else {
    return std::nullopt;
  }
  constexpr auto k_max_ms =
      static_cast<std::uint64_t>(std::numeric_limits<std::chrono::milliseconds::rep>::max());
  if (!count || *count > k_max_ms / unit_ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(*count * unit_ms));
}

const Entry* Fields::find(std::string_view name) const {
  for (const auto& entry : m_entries) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

void YamlReader::add_issue(int line, std::string key, std::string message) {
  m_issues.push_back({m_source, line, std::move(key), std::move(message)});
}

std::vector<ConfigIssue> YamlReader::take_issues() {
  std::stable_sort(m_issues.begin(), m_issues.end(),
                   [](const ConfigIssue& a, const ConfigIssue& b) { return a.line < b.line; });
  return std::move(m_issues);
}

int YamlReader::line_of(const Entry& entry) {
  if (entry.value.IsNull()) return entry.key.Mark().line + 1;
  return entry.value.Mark().line + 1;
}

int YamlReader::line_of(const YAML::Node& node, int fallback) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() || mark.line < 0 ? fallback : mark.line + 1;
}

void YamlReader::report(const Entry& at, std::string message) {
  add_issue(line_of(at), at.path, std::move(message));
}

void YamlReader::report_missing(const Entry& at, std::string message) {
  add_issue(at.key.Mark().line + 1, at.path, std::move(message));
}

std::optional<std::vector<Entry>> YamlReader::map_entries(const YAML::Node& node,
                                                          const std::string& path, int line) {
  std::vector<Entry> entries;
  if (node.IsNull()) return entries;
  if (!node.IsMap()) {
    add_issue(line, path, "expected a map, got " + describe(node));
    return std::nullopt;
  }
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const int key_line = it->first.Mark().line + 1;
    if (!it->first.IsScalar()) {
      add_issue(key_line, path, "expected a name as key, got " + describe(it->first));
      continue;
    }
    const std::string name = it->first.Scalar();
    const std::string entry_path = join_path(path, name);
    if (!seen.insert(name).second) {
      add_issue(key_line, entry_path, "duplicate key " + in_quotes(name));
      continue;
    }
    entries.push_back({name, it->first, it->second, entry_path});
    m_key_lines[entry_path] = line_of(entries.back());
  }
  return entries;
}

std::optional<Fields> YamlReader::read_map(const YAML::Node& node, const std::string& path,
                                           int line,
                                           std::initializer_list<std::string_view> known) {
  auto entries = map_entries(node, path, line);
  if (!entries) return std::nullopt;
  Fields fields;
  for (auto& entry : *entries) {
    if (std::find(known.begin(), known.end(), entry.name) == known.end()) {
      add_issue(entry.key.Mark().line + 1, entry.path, "unknown key " + in_quotes(entry.name));
      continue;
    }
    fields.add(std::move(entry));
  }
  return fields;
}

std::optional<Fields> YamlReader::read_map(const Entry& entry,
                                           std::initializer_list<std::string_view> known) {
  return read_map(entry.value, entry.path, line_of(entry), known);
}

std::optional<Fields> YamlReader::read_item(const Entry& item,
                                            std::initializer_list<std::string_view> known) {
  if (item.value.IsNull()) {
    report(item, "expected a map, got nothing");
    return std::nullopt;
  }
  return read_map(item, known);
}

std::optional<std::vector<Entry>> YamlReader::list_items(const Entry& entry) {
  std::vector<Entry> items;
  if (entry.value.IsNull()) return items;
  if (!entry.value.IsSequence()) {
    report(entry, "expected a list, got " + describe(entry.value));
    return std::nullopt;
  }
  std::size_t index = 0;
  for (const auto& item : entry.value) {
    // An item's key is itself so that line_of() finds it when it is empty.
    items.push_back({"", item, item, item_path(entry.path, index++)});
  }
  return items;
}

std::optional<std::string> YamlReader::scalar(const Entry& entry) {
  if (!entry.value.IsScalar()) {
    report(entry, "expected a value, got " + describe(entry.value));
    return std::nullopt;
  }
  return entry.value.Scalar();
}

std::optional<std::string> YamlReader::non_empty_string(const Entry& entry) {
  auto text = scalar(entry);
  if (text && text->empty()) {
    report(entry, "must not be empty");
    return std::nullopt;
  }
  return text;
}

std::optional<std::vector<std::string>> YamlReader::string_list(const Entry& entry,
                                                                bool allow_empty_list) {
  auto items = list_items(entry);
  if (!items) return std::nullopt;
  if (items->empty() && !allow_empty_list) report(entry, "must list at least one value");
  std::vector<std::string> out;
  for (const auto& item : *items) {
    if (auto text = non_empty_string(item)) out.push_back(*text);
  }
  return out;
}

std::optional<std::vector<IpNetwork>> YamlReader::network_list(const Entry& entry,
                                                               bool allow_empty_list) {
  auto items = list_items(entry);
  if (!items) return std::nullopt;
  if (items->empty() && !allow_empty_list) report(entry, "must list at least one value");
  std::vector<IpNetwork> out;
  for (const auto& item : *items) {
    auto text = non_empty_string(item);
    if (!text) continue;
    if (auto network = IpNetwork::parse(*text)) {
      out.push_back(*network);
    } else {
      report(item, in_quotes(*text) +
                       " is not a network: expected an address or CIDR such as 10.0.0.0/8 "
                       "or fd00::/8");
    }
  }
  return out;
}

std::optional<bool> YamlReader::boolean(const Entry& entry) {
  bool value = false;
  if (!entry.value.IsScalar() || !YAML::convert<bool>::decode(entry.value, value)) {
    report(entry, "expected true or false, got " + describe(entry.value));
    return std::nullopt;
  }
  return value;
}

std::optional<std::chrono::milliseconds> YamlReader::duration(const Entry& entry) {
  auto text = scalar(entry);
  if (!text) return std::nullopt;
  auto value = parse_duration(*text);
  if (!value) {
    report(entry, std::string(k_duration_hint) + ", got " + in_quotes(*text));
    return std::nullopt;
  }
  return value;
}

std::optional<std::chrono::milliseconds> YamlReader::positive_duration(const Entry& entry) {
  auto value = duration(entry);
  if (value && value->count() == 0) {
    report(entry, "must be longer than 0ms");
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> YamlReader::macro_value(const Entry& entry) {
  // Unquoted, the sendmail spelling {daemon_name} is YAML for a one-key map
  // with no value; read it as the name the admin meant.
  const YAML::Node& node = entry.value;
  if (node.IsMap() && node.size() == 1 && node.begin()->first.IsScalar() &&
      node.begin()->second.IsNull()) {
    if (auto name = macro_name(node.begin()->first.Scalar())) return name;
  }
  auto text = scalar(entry);
  if (!text) return std::nullopt;
  auto name = macro_name(*text);
  if (!name) report(entry, "expected a macro name such as daemon_name, got " + in_quotes(*text));
  return name;
}

}  // namespace floodgate::policy::detail
