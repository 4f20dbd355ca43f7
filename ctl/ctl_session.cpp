#include "ctl/ctl_session.hpp"

#include "ctl/terminal_text.hpp"
#include "policy/config_loader.hpp"

namespace floodgate::ctl {

CtlSession::CtlSession(std::string config_path, std::ostream& out, std::ostream& err)
    : m_config_path(std::move(config_path)),
      m_out(out),
      m_err(err),
      m_now(std::chrono::system_clock::now()) {}

bool CtlSession::open() {
  try {
    m_config = policy::load_config_file(m_config_path);
  } catch (const policy::ConfigError& error) {
    for (const auto& issue : error.issues()) m_err << issue.to_string() << "\n";
    return false;
  } catch (const std::exception& error) {
    report_error(escape_for_terminal(error.what()));
    return false;
  }
  auto store = quarantine::SpoolStore::open_spool(m_config->quarantine.spool_directory);
  if (!store) {
    report_error("cannot open the quarantine spool: " + escape_for_terminal(store.error().message));
    return false;
  }
  m_store = std::move(*store);
  return true;
}

void CtlSession::report_error(std::string_view message) { m_err << "floodgatectl: " << message << "\n"; }

}  // namespace floodgate::ctl
