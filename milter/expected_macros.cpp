#include "milter/expected_macros.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace floodgate::milter {
namespace {

void add(std::vector<ExpectedMacro>& out, const std::string& name, std::string used_for, const char* stage) {
  const auto same = [&](const ExpectedMacro& m) { return m.name == name; };
  if (std::none_of(out.begin(), out.end(), same)) out.push_back({name, std::move(used_for), stage});
}

}  // namespace

std::vector<ExpectedMacro> expected_macros(const policy::Config& config) {
  std::vector<ExpectedMacro> out;
  add(out, "i", "the queue id in verdict lines and quarantine entries", "envfrom");
  for (const auto& identity : config.identities) {
    for (const auto& part : identity.parts) {
      if (part.kind == policy::IdentityPart::Kind::Macro)
        add(out, part.name, fmt::format("identity {}", identity.name), "connect");
    }
  }
  for (const auto& match : config.outbound.macros)
    add(out, match.macro, "outbound.macros (which mail is outbound)", "connect");
  return out;
}

std::string missing_macro_warning(const ExpectedMacro& macro, std::string_view queue_id) {
  const bool envfrom = macro.stage == "envfrom";
  return fmt::format(
      "macro={{{}}} missing: the MTA sent a message without it (qid={}), needed for {}. "
      "Sendmail: add it to {} (contrib/sendmail/floodgate.mc); Postfix: to {}",
      macro.name, queue_id.empty() ? "-" : queue_id, macro.used_for,
      envfrom ? "confMILTER_MACROS_ENVFROM" : "confMILTER_MACROS_CONNECT",
      envfrom ? "milter_mail_macros" : "milter_connect_macros");
}

std::vector<ExpectedMacro> MissingMacroReporter::newly_missing(
    const std::vector<ExpectedMacro>& expected, const std::function<bool(const std::string&)>& is_present) {
  std::vector<ExpectedMacro> missing;
  for (const auto& macro : expected) {
    if (!is_present(macro.name)) missing.push_back(macro);
  }
  if (missing.empty()) return missing;
  std::lock_guard lock(m_mutex);
  std::erase_if(missing, [&](const ExpectedMacro& m) { return !m_reported.insert(m.name).second; });
  return missing;
}

}  // namespace floodgate::milter
