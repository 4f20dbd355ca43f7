// release, delete, purge: the commands that change the spool.
//
// Release keeps the quarantine's promise not to lose a message: an entry is
// removed only after the target answered 250 for every recipient; when some
// were refused the entry stays with exactly those, so a second release (or
// a delete) deals with the rest.
#include <algorithm>
#include <variant>

#include <nlohmann/json.hpp>

#include "ctl/command_line.hpp"
#include "ctl/commands.hpp"
#include "ctl/postsuper.hpp"
#include "ctl/sendmail_queue.hpp"
#include "ctl/release_entry.hpp"
#include "ctl/terminal_text.hpp"
#include "quarantine/entry_json.hpp"
#include "quarantine/smtp_release.hpp"

namespace floodgate::ctl {
namespace {

namespace po = boost::program_options;
using quarantine::QuarantineEntry;

const CommandSpec k_release{
    "release",
    "release (ID... | --all [--source S] [--sender A] [--since DURATION] [--reason R]) [--to ADDRESS] "
    "[--json]",
    "Re-injects quarantined messages over SMTP to the configured release target with\n"
    "their original envelope sender and recipients. An entry is removed once the\n"
    "target accepted the message for every recipient; recipients it refused are\n"
    "reported and stay in the entry. With --to, one copy goes to ADDRESS instead and\n"
    "the entry is kept. Hold-mode entries are released with postsuper -H, or from\n"
    "Sendmail's quarantine with sendmail -qQ -Q (quarantine.mta: sendmail).\n"
    "Exit status 1 if any message was not released to all its recipients."};

const CommandSpec k_delete{
    "delete", "delete (ID... | --all [--source S] [--sender A] [--since DURATION] [--reason R]) [--json]",
    "Removes quarantined messages for good and prints how many went. For a hold-mode\n"
    "entry only Floodgate's record goes; the message stays in the MTA's hold queue\n"
    "(remove it there with postsuper -d QUEUEID, or Sendmail's: see sendmail(8))."};

const CommandSpec k_purge{"purge", "purge --older-than DURATION [--json]",
                          "Removes every quarantined message older than DURATION (30s, 10m, 1h, 1d, 2w)\n"
                          "and prints how many went."};

std::string dump(const nlohmann::json& json) {
  return json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json strings_to_json(const std::vector<std::string>& strings) {
  auto array = nlohmann::json::array();
  for (const auto& text : strings) array.push_back(quarantine::bytes_to_json(text));
  return array;
}

// The entries a release or delete applies to: the ids given (each checked,
// then looked up) or, with --all, those passing the filters. `complete`
// turns false when an id was unknown.
struct Selection {
  std::vector<QuarantineEntry> entries;
  bool complete = true;
};

// An int instead of a Selection: the exit status after a usage error, a
// malformed id or a session that could not be opened (all printed).
std::variant<Selection, int> select(const CommandSpec& spec, const po::variables_map& values,
                                    CtlSession& session) {
  const bool all = values.count("all") > 0;
  const auto ids =
      values.count("id") ? values["id"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (all == !ids.empty()) return usage_error(spec, "give either IDs or --all", session);
  auto filter = read_filter(spec, values, session);
  if (!filter) return k_exit_usage;
  if (!all && !filter->empty()) return usage_error(spec, "filters apply only with --all", session);
  // Malformed ids are refused before the spool is even opened.
  if (!check_ids(ids, session)) return k_exit_error;
  if (!session.open()) return k_exit_error;

  Selection selection;
  if (all) {
    std::vector<std::string> problems;
    selection.entries = select_entries(session.store().list(&problems), *filter, session.now());
    for (const auto& problem : problems) session.report_error("skipped: " + escape_for_terminal(problem));
    return selection;
  }
  for (const auto& id : ids) {
    if (auto entry = find_entry(id, session)) {
      selection.entries.push_back(std::move(*entry));
    } else {
      selection.complete = false;
    }
  }
  return selection;
}

po::options_description selection_options(const CommandSpec& spec,
                                          po::positional_options_description& positional) {
  auto options = command_options(spec);
  options.add_options()("all", "every entry that passes the filters (all of them without filters)");
  add_filter_options(options, false);
  options.add_options()("json", "print the outcome as JSON");
  positional.add("id", -1);
  return options;
}

}  // namespace

nlohmann::json release_entry(const QuarantineEntry& entry, const std::optional<std::string>& copy_to,
                             bool json_output, CtlSession& session) {
  nlohmann::json outcome;
  outcome["id"] = entry.id;
  outcome["released"] = false;
  auto fail = [&](const std::string& error) {
    outcome["error"] = error;
    session.report_error(entry.id + ": not released: " + escape_for_terminal(error));
    return outcome;
  };
  const auto& settings = session.config().quarantine;

  if (entry.mode == quarantine::EntryMode::Hold) {
    if (copy_to) return fail("the message is in the MTA's hold queue; --to needs a spool entry");
    session.out().flush();  // postsuper and sendmail write to the same terminal
    std::string error;
    const bool sendmail = settings.mta == policy::QuarantineSettings::Mta::Sendmail;
    const bool released = sendmail ? release_from_sendmail_quarantine(settings.sendmail_command, entry.queue_id, error)
                                   : release_from_hold_queue(settings.postfix_config_directory, entry.queue_id, error);
    if (!released) return fail(error);
    const std::string where = sendmail ? "Sendmail's quarantine" : "the hold queue";
    if (auto removed = session.store().remove(entry.id); !removed) {
      return fail("released from " + where + " (queue id " + entry.queue_id +
                  ") but the entry could not be removed: " + removed.error().message);
    }
    outcome["released"] = true;
    if (!json_output) {
      session.out() << "released " << entry.id << " from " << where << " (queue id "
                    << escape_for_terminal(entry.queue_id) << ")\n";
    }
    return outcome;
  }

  quarantine::SmtpTarget target;
  target.host = settings.release_host;
  target.port = settings.release_port;
  target.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(settings.release_timeout);
  const std::vector<std::string> recipients = copy_to ? std::vector<std::string>{*copy_to} : entry.recipients;
  auto result = quarantine::release_over_smtp(
      target, entry.sender, recipients, [&](const std::function<bool(std::string_view)>& write) {
        return session.store().for_each_message_piece(entry.id, write).has_value();
      });

  outcome["delivered"] = result.delivered;
  outcome["accepted"] = strings_to_json(result.accepted);
  outcome["refused"] = nlohmann::json::array();
  for (const auto& refused : result.refused) {
    outcome["refused"].push_back({{"recipient", quarantine::bytes_to_json(refused.recipient)},
                                  {"reply", quarantine::bytes_to_json(refused.reply)}});
  }
  if (!result.final_reply.empty()) outcome["reply"] = quarantine::bytes_to_json(result.final_reply);

  auto report_refused = [&] {
    for (const auto& refused : result.refused) {
      session.err() << "floodgatectl: " << entry.id << ": refused <" << escape_for_terminal(refused.recipient)
                    << ">: " << escape_for_terminal(refused.reply) << "\n";
    }
  };
  if (!result.delivered) {
    report_refused();
    return fail(result.error);
  }
  if (copy_to) {
    outcome["released"] = result.refused.empty();
    if (!result.refused.empty()) {
      report_refused();
      return fail("the copy was refused");
    }
    if (!json_output) {
      session.out() << "sent a copy of " << entry.id << " to <" << escape_for_terminal(*copy_to)
                    << ">; the entry is kept (" << escape_for_terminal(result.final_reply) << ")\n";
    }
    return outcome;
  }
  if (result.refused.empty()) {
    if (auto removed = session.store().remove(entry.id); !removed) {
      // Delivered but still listed: a second release would send it twice,
      // so say so loudly.
      return fail("delivered, but the entry could not be removed (do not release it again; delete it): " +
                  removed.error().message);
    }
    outcome["released"] = true;
    if (!json_output) {
      session.out() << "released " << entry.id << " to " << count_text(result.accepted.size(), "recipient")
                    << " (" << escape_for_terminal(result.final_reply) << ")\n";
    }
    return outcome;
  }
  // Partly delivered: keep the entry with the recipients still owed it.
  std::vector<std::string> still_owed;
  for (const auto& refused : result.refused) still_owed.push_back(refused.recipient);
  report_refused();
  if (auto replaced = session.store().replace_recipients(entry.id, still_owed); !replaced) {
    return fail("delivered to " + count_text(result.accepted.size(), "recipient") +
                ", but the refused recipients could not be recorded (the entry still lists them all): " +
                replaced.error().message);
  }
  outcome["kept_recipients"] = strings_to_json(still_owed);
  return fail("delivered to " + count_text(result.accepted.size(), "recipient") + "; " +
              count_text(still_owed.size(), "refused recipient") + " kept in the entry");
}

int run_release(const std::vector<std::string>& args, CtlSession& session) {
  po::positional_options_description positional;
  auto options = selection_options(k_release, positional);
  options.add_options()("to", po::value<std::string>()->value_name("ADDRESS"),
                        "send one copy to ADDRESS instead; the entry is kept");
  po::variables_map values;
  if (auto status = parse_command_line(k_release, options, positional, args, values, session)) return *status;
  std::optional<std::string> copy_to;
  if (values.count("to")) {
    std::string address = values["to"].as<std::string>();
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>')
      address = address.substr(1, address.size() - 2);
    const bool has_control =
        std::any_of(address.begin(), address.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
    if (address.empty() || has_control || address.find_first_of("<> ") != std::string::npos) {
      return usage_error(k_release, "--to: '" + values["to"].as<std::string>() + "' is not an address",
                         session);
    }
    copy_to = address;
  }
  auto selected = select(k_release, values, session);
  if (auto* status = std::get_if<int>(&selected)) return *status;
  auto& selection = std::get<Selection>(selected);

  const bool json_output = values.count("json") > 0;
  bool all_released = selection.complete;
  auto outcomes = nlohmann::json::array();
  for (const auto& entry : selection.entries) {
    auto outcome = release_entry(entry, copy_to, json_output, session);
    if (!outcome["released"].get<bool>()) all_released = false;
    outcomes.push_back(std::move(outcome));
  }
  if (json_output) {
    session.out() << dump(outcomes) << "\n";
  } else if (selection.entries.empty()) {
    session.out() << "nothing to release\n";
  }
  return all_released ? k_exit_ok : k_exit_error;
}

int run_delete(const std::vector<std::string>& args, CtlSession& session) {
  po::positional_options_description positional;
  auto options = selection_options(k_delete, positional);
  po::variables_map values;
  if (auto status = parse_command_line(k_delete, options, positional, args, values, session)) return *status;
  auto selected = select(k_delete, values, session);
  if (auto* status = std::get_if<int>(&selected)) return *status;
  auto& selection = std::get<Selection>(selected);

  bool all_deleted = selection.complete;
  std::vector<std::string> deleted;
  for (const auto& entry : selection.entries) {
    if (auto removed = session.store().remove(entry.id); !removed) {
      session.report_error(entry.id + ": not deleted: " + escape_for_terminal(removed.error().message));
      all_deleted = false;
      continue;
    }
    deleted.push_back(entry.id);
    if (entry.mode == quarantine::EntryMode::Hold) {
      session.err() << "floodgatectl: " << entry.id
                    << ": the message stays in the MTA's hold queue (queue id "
                    << escape_for_terminal(entry.queue_id) << ")\n";
    }
  }
  if (values.count("json")) {
    session.out() << dump({{"deleted", deleted.size()}, {"ids", deleted}}) << "\n";
  } else {
    session.out() << "deleted " << count_text(deleted.size(), "entry") << "\n";
  }
  return all_deleted ? k_exit_ok : k_exit_error;
}

int run_purge(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_purge);
  options.add_options()("older-than", po::value<std::string>()->value_name("DURATION")->required(),
                        "age of the entries to remove")("json", "print the count as JSON");
  po::variables_map values;
  if (auto status = parse_command_line(k_purge, options, {}, args, values, session)) return *status;
  const auto& text = values["older-than"].as<std::string>();
  auto age = parse_duration(text);
  if (!age)
    return usage_error(k_purge, "--older-than: '" + text + "' is not a duration such as 30s, 10m, 1h or 1d",
                       session);
  if (!session.open()) return k_exit_error;
  auto purged = session.store().purge_older_than(session.now() - *age);
  if (!purged) {
    session.report_error("purge failed: " + escape_for_terminal(purged.error().message));
    return k_exit_error;
  }
  if (values.count("json")) {
    session.out() << dump({{"purged", *purged}}) << "\n";
  } else {
    session.out() << "purged " << count_text(*purged, "entry") << "\n";
  }
  return k_exit_ok;
}

}  // namespace floodgate::ctl
