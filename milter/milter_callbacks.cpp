#include "milter/milter_callbacks.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "milter/containment_worker.hpp"
#include "milter/expected_macros.hpp"
#include "milter/log_escape.hpp"
#include "milter/metrics.hpp"
#include "milter/session.hpp"

namespace floodgate::milter {
namespace {

MilterRuntime* g_runtime = nullptr;

// Per-connection private data (smfi_setpriv).
struct ConnectionState {
  std::shared_ptr<const policy::Config> config;
  ConnectionInfo info;
  std::optional<MessageSession> message;
  bool message_broken = false;  // a callback failed: tempfail at end-of-message
  bool in_flight = false;       // counted in MilterRuntime::messages_in_flight()
  // Stages for which the MTA agreed not to wait for our reply (SMFIP_NR_*).
  unsigned long no_reply_steps = 0;
  // Header values arrive with their leading space (SMFIP_HDR_LEADSPC), and
  // headers we add must bring their own.
  bool header_leading_space = false;
};

// The answer for a stage where Floodgate never objects: no reply at all when
// the MTA agreed to that, else "continue".
sfsistat carry_on(const ConnectionState* state, unsigned long no_reply_flag) {
  return state != nullptr && (state->no_reply_steps & no_reply_flag) != 0 ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

ConnectionState* state_of(SMFICTX* ctx) { return static_cast<ConnectionState*>(smfi_getpriv(ctx)); }

// Whether this connection's message is past DATA and not yet answered; a
// shutdown waits for those.
void set_in_flight(ConnectionState& state, bool in_flight) {
  if (state.in_flight == in_flight) return;
  state.in_flight = in_flight;
  if (in_flight) {
    g_runtime->message_started();
  } else {
    g_runtime->message_ended();
  }
}

// The end of a message, whatever ended it.
void end_message(ConnectionState& state) {
  state.message.reset();
  set_in_flight(state, false);
}

std::optional<std::string> macro_value(SMFICTX* ctx, const std::string& name) {
  // Single-letter macros are asked for bare ("i"), long ones in braces.
  const std::string query = name.size() == 1 ? name : "{" + name + "}";
  const char* value = smfi_getsymval(ctx, const_cast<char*>(query.c_str()));
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

// Macros a config refers to (identities and outbound scope), plus the ones
// every message needs.
std::vector<std::string> macros_of_interest(const policy::Config& config) {
  std::vector<std::string> names = {"i", "auth_authen", "daemon_name"};
  for (const auto& identity : config.identities)
    for (const auto& part : identity.parts)
      if (part.kind == policy::IdentityPart::Kind::Macro) names.push_back(part.name);
  for (const auto& match : config.outbound.macros) names.push_back(match.macro);
  return names;
}

void collect_macros(SMFICTX* ctx, ConnectionState& state) {
  for (const auto& name : macros_of_interest(*state.config)) {
    auto value = macro_value(ctx, name);
    if (!value) continue;
    if (state.message) {
      state.message->set_macro(name, *value);
    } else {
      state.info.macros[name] = value->substr(0, k_max_macro_value_bytes);
    }
  }
}

// The first message without a macro Floodgate relies on (expected_macros.hpp)
// logs a warning naming it; libmilter keeps the macros of every stage of the
// connection, so at end-of-message all of them can be asked for.
// The expected list is made once per config and worker thread, not per
// message (the config pointer is held, so a reloaded one is never mistaken
// for it).
void warn_of_missing_macros(SMFICTX* ctx, const std::shared_ptr<const policy::Config>& config) {
  static MissingMacroReporter reporter;
  thread_local std::shared_ptr<const policy::Config> expected_for;
  thread_local std::vector<ExpectedMacro> expected;
  if (expected_for != config) {
    expected = expected_macros(*config);
    expected_for = config;
  }
  const auto missing = reporter.newly_missing(
      expected, [ctx](const std::string& name) { return macro_value(ctx, name).has_value(); });
  for (const auto& macro : missing) {
    spdlog::warn("{}", missing_macro_warning(macro, escape_log_value(macro_value(ctx, "i").value_or("-"), 32)));
  }
}

// Runs `body`, turning any exception into a broken message instead of
// letting it unwind into libmilter's C code.
template <typename Body>
sfsistat guarded(SMFICTX* ctx, const char* stage, unsigned long no_reply_flag, Body&& body) {
  try {
    return body();
  } catch (const std::exception& error) {
    spdlog::error("stage={} error={}", stage, escape_log_value(error.what()));
  } catch (...) {
    spdlog::error("stage={} error=unknown", stage);
  }
  ConnectionState* state = state_of(ctx);
  if (state != nullptr) state->message_broken = true;
  return carry_on(state, no_reply_flag);
}

// Stages Floodgate never answers with anything but "continue": the verdict
// is given once, at end-of-message. Telling the MTA not to wait for those
// replies saves a round trip per stage (per recipient, per header); Postfix
// queues these packets and sends them in one write with the next one that
// needs an answer.
//
// DATA is deliberately neither skipped nor unanswered. Postfix flushes its
// milter stream at DATA (it then waits for the client's message), so that
// packet goes out alone; if we did not answer it, the next write (headers,
// body and end-of-message, a small segment) would wait under Nagle for the
// ACK our side delays by ~40 ms. Measured: one such stall per message capped
// 20 SMTP sessions at ~400 msg/s over TCP. Answering DATA carries the ACK.
constexpr unsigned long k_no_reply_steps =
    SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_BODY;

sfsistat on_negotiate(SMFICTX* ctx, unsigned long offered_actions, unsigned long offered_steps, unsigned long,
                      unsigned long, unsigned long* actions, unsigned long* steps, unsigned long* reserved2,
                      unsigned long* reserved3) {
  auto* state = new (std::nothrow) ConnectionState;
  if (state == nullptr) return SMFIS_TEMPFAIL;
  smfi_setpriv(ctx, state);
  *actions = (SMFIF_ADDHDRS | SMFIF_QUARANTINE) & offered_actions;
  // Skip what we never read, ask for recipients the MTA rejected (they are
  // a signal: guessed addresses), and for header values exactly as sent (the
  // quarantine keeps the message as received).
  unsigned long wanted = SMFIP_NOUNKNOWN | SMFIP_NOEOH | SMFIP_RCPT_REJ | SMFIP_HDR_LEADSPC | k_no_reply_steps;
  // To refuse frozen sources at MAIL FROM, the MTA must wait for that reply.
  if (g_runtime->config()->containment.refuse_at == policy::ContainmentSettings::RefuseAt::MailFrom)
    wanted &= ~static_cast<unsigned long>(SMFIP_NR_MAIL);
  *steps = wanted & offered_steps;
  state->no_reply_steps = *steps & k_no_reply_steps;
  state->header_leading_space = (*steps & SMFIP_HDR_LEADSPC) != 0;
  *reserved2 = 0;
  *reserved3 = 0;
  return SMFIS_CONTINUE;
}

std::string address_text(const _SOCK_ADDR* address, bool& port_is_zero) {
  port_is_zero = false;
  if (address == nullptr) return {};
  std::array<char, INET6_ADDRSTRLEN> buffer{};
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    port_is_zero = v4->sin_port == 0;
    if (inet_ntop(AF_INET, &v4->sin_addr, buffer.data(), buffer.size())) return buffer.data();
  } else if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    port_is_zero = v6->sin6_port == 0;
    if (inet_ntop(AF_INET6, &v6->sin6_addr, buffer.data(), buffer.size())) return buffer.data();
  }
  return {};
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* address) {
  // Negotiation made the state; an MTA that skips negotiation gets one here.
  ConnectionState* state = state_of(ctx);
  if (state == nullptr) {
    state = new (std::nothrow) ConnectionState;
    if (state == nullptr) return SMFIS_TEMPFAIL;
    smfi_setpriv(ctx, state);
  }
  return guarded(ctx, "connect", SMFIP_NR_CONN, [&] {
    state->config = g_runtime->config();
    bool port_is_zero = false;
    state->info.client_address = address_text(address, port_is_zero);
    state->info.client_name = hostname ? std::string(hostname).substr(0, 255) : std::string{};
    // Postfix's cleanup(8) presents mail from sendmail(1) as a connection
    // from "localhost" [127.0.0.1] with no client port: no real SMTP client
    // looks like that.
    state->info.local_submission =
        port_is_zero && state->info.client_address == "127.0.0.1" && state->info.client_name == "localhost";
    collect_macros(ctx, *state);
    return carry_on(state, SMFIP_NR_CONN);
  });
}

sfsistat on_helo(SMFICTX* ctx, char* helo) {
  return guarded(ctx, "helo", SMFIP_NR_HELO, [&] {
    ConnectionState* state = state_of(ctx);
    if (state != nullptr) state->info.helo = std::string(helo ? helo : "").substr(0, 255);
    return carry_on(state, SMFIP_NR_HELO);
  });
}

// Where this message's copy spills, or "" when no copy is kept.
std::string spill_directory_for(const policy::Config& config) {
  quarantine::SpoolStore* spool = g_runtime->spool();
  if (spool == nullptr || config.quarantine.mode != policy::QuarantineSettings::Mode::Spool) return {};
  return spool->temporary_directory();
}

ratelimit::TimePoint milliseconds_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// A frozen source whose freeze refuses mail (tempfail, reject) is refused
// here, before what follows is sent; nullopt: go on (not frozen, a
// quarantine freeze, or headers needed to tell). `now` is the caller's.
std::optional<sfsistat> refuse_if_frozen(SMFICTX* ctx, ConnectionState& state, const char* stage,
                                         ratelimit::TimePoint now) {
  if (!state.message || g_runtime->freezes() == nullptr) return std::nullopt;
  const auto freeze = state.message->frozen_before_headers(*g_runtime->freezes()->snapshot(), now);
  if (!freeze || freeze->freeze.action == policy::Action::Quarantine) return std::nullopt;
  state.message->set_macro("i", macro_value(ctx, "i").value_or("-"));
  const Decision decision = state.message->refuse_frozen(*freeze);
  if (!decision.reply) return std::nullopt;  // not a refusal after all: decide at end-of-message
  smfi_setreply(ctx, const_cast<char*>(decision.reply->code.c_str()),
                const_cast<char*>(decision.reply->status.c_str()), const_cast<char*>(decision.reply->text.c_str()));
  spdlog::info("{} stage={}", format_decision_log(*state.message, decision, std::chrono::microseconds(0)), stage);
  if (auto* metrics = g_runtime->metrics()) metrics->record_refusal(decision);
  if (auto* containment = g_runtime->containment()) containment->message_refused(*state.message, decision, now);
  state.message.reset();
  return decision.action == policy::Action::Reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
  return guarded(ctx, "mail", SMFIP_NR_MAIL, [&] {
    ConnectionState* state = state_of(ctx);
    if (state == nullptr) return SMFIS_CONTINUE;
    end_message(*state);
    state->message_broken = false;
    // Each message takes the config current when it starts.
    state->config = g_runtime->config();
    state->message.emplace(state->config, state->info, spill_directory_for(*state->config));
    state->message->set_sender(argv && argv[0] ? argv[0] : "");
    collect_macros(ctx, *state);
    // Only where the MTA waits for this reply (refuse_at: mail_from when
    // the connection was negotiated); else DATA refuses.
    if ((state->no_reply_steps & SMFIP_NR_MAIL) == 0 &&
        state->config->containment.refuse_at == policy::ContainmentSettings::RefuseAt::MailFrom) {
      if (auto refused = refuse_if_frozen(ctx, *state, "mail", milliseconds_now())) return *refused;
    }
    return carry_on(state, SMFIP_NR_MAIL);
  });
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
  return guarded(ctx, "rcpt", SMFIP_NR_RCPT, [&] {
    ConnectionState* state = state_of(ctx);
    if (state == nullptr || !state->message) return carry_on(state, SMFIP_NR_RCPT);
    // With SMFIP_RCPT_REJ Postfix also reports recipients it refused; it
    // marks them with the "error" mailer.
    const auto mailer = macro_value(ctx, "rcpt_mailer");
    state->message->add_recipient(argv && argv[0] ? argv[0] : "", mailer && *mailer == "error");
    return carry_on(state, SMFIP_NR_RCPT);
  });
}

// Answered on purpose (see k_no_reply_steps): the reply carries the ACK that
// keeps the MTA's next packet from waiting under Nagle. It is also the
// earliest answer we give (unless containment.refuse_at is mail_from), so a
// frozen source whose freeze refuses mail is refused here, before its body
// is sent.
sfsistat on_data(SMFICTX* ctx) {
  ConnectionState* state = state_of(ctx);
  try {
    if (state == nullptr) return SMFIS_CONTINUE;
    if (g_runtime->draining()) {
      // Shutting down: this message has not sent its body yet, so its client
      // keeps it and retries, on this daemon's successor.
      spdlog::info("qid={} action=tempfail reason=shutting_down stage=data",
                   escape_log_value(macro_value(ctx, "i").value_or("-"), 32));
      smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.2"),
                    const_cast<char*>("Mail filter restarting, try again shortly"));
      end_message(*state);
      return SMFIS_TEMPFAIL;
    }
    if (auto refused = refuse_if_frozen(ctx, *state, "data", milliseconds_now())) return *refused;
    if (state->message) set_in_flight(*state, true);
  } catch (const std::exception& error) {
    spdlog::error("stage=data error={}", escape_log_value(error.what()));
    if (state) state->message_broken = true;
  }
  return SMFIS_CONTINUE;
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
  return guarded(ctx, "header", SMFIP_NR_HDR, [&] {
    ConnectionState* state = state_of(ctx);
    if (state == nullptr || !state->message) return carry_on(state, SMFIP_NR_HDR);
    state->message->add_header(name ? name : "", value ? value : "");
    return carry_on(state, SMFIP_NR_HDR);
  });
}

sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t length) {
  return guarded(ctx, "body", SMFIP_NR_BODY, [&] {
    ConnectionState* state = state_of(ctx);
    if (state == nullptr || !state->message) return carry_on(state, SMFIP_NR_BODY);
    state->message->add_body_chunk(std::string_view(reinterpret_cast<const char*>(chunk), length));
    return carry_on(state, SMFIP_NR_BODY);
  });
}

sfsistat apply_decision(SMFICTX* ctx, const ConnectionState& state, const Decision& decision) {
  for (const auto& [name, value] : decision.headers_to_add) {
    const std::string sent_value = state.header_leading_space ? " " + value : value;
    if (smfi_addheader(ctx, const_cast<char*>(name.c_str()), const_cast<char*>(sent_value.c_str())) != MI_SUCCESS)
      spdlog::warn("could not add header {}", name);
  }
  switch (decision.action) {
    case policy::Action::Accept:
    case policy::Action::Tag:
      return SMFIS_CONTINUE;
    case policy::Action::Quarantine:
      // Spool mode: the message is stored durably already; the MTA drops it.
      if (decision.discard) return SMFIS_DISCARD;
      if (smfi_quarantine(ctx, const_cast<char*>(decision.quarantine_reason.c_str())) != MI_SUCCESS) {
        // The MTA did not take the hold request: keep the message queued
        // with the sender rather than let it through.
        spdlog::error("quarantine request refused by the MTA; tempfailing instead");
        smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.0"),
                      const_cast<char*>("Temporary failure, try again later"));
        return SMFIS_TEMPFAIL;
      }
      return SMFIS_CONTINUE;
    case policy::Action::Tempfail:
    case policy::Action::Reject:
      if (decision.reply) {
        smfi_setreply(ctx, const_cast<char*>(decision.reply->code.c_str()),
                      const_cast<char*>(decision.reply->status.c_str()),
                      const_cast<char*>(decision.reply->text.c_str()));
      }
      return decision.action == policy::Action::Reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
  }
  return SMFIS_CONTINUE;
}

// Degraded quarantine gets one warning when it starts failing and one line
// when it works again, not one per message (each verdict line has the detail).
void report_quarantine_health(const Decision& decision) {
  static std::atomic<bool> failing{false};
  if (decision.action == policy::Action::Tempfail && !decision.quarantine_failure.empty()) {
    if (!failing.exchange(true))
      spdlog::warn("quarantine failing, quarantine verdicts tempfail until it works: {}",
                   escape_log_value(decision.quarantine_failure));
  } else if (decision.discard && failing.exchange(false)) {
    spdlog::info("quarantine working again");
  }
}

sfsistat on_eom(SMFICTX* ctx) {
  ConnectionState* state = state_of(ctx);
  try {
    if (state == nullptr) return SMFIS_CONTINUE;
    if (!state->message) {
      set_in_flight(*state, false);
      return SMFIS_CONTINUE;
    }
    warn_of_missing_macros(ctx, state->config);
    state->message->set_macro("i", macro_value(ctx, "i").value_or("-"));
    if (auto user = macro_value(ctx, "auth_authen")) state->message->set_macro("auth_authen", *user);
    if (state->message_broken) {
      spdlog::error("qid={} action=tempfail reason=internal_error",
                    escape_log_value(macro_value(ctx, "i").value_or("-"), 32));
      smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.0"),
                    const_cast<char*>("Temporary failure in mail filter, try again later"));
      end_message(*state);
      return SMFIS_TEMPFAIL;
    }
    const auto started = std::chrono::steady_clock::now();
    const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    Decision decision = state->message->decide(g_runtime->counters(), now);
    decision = state->message->contain(std::move(decision), g_runtime->freezes(), now);
    decision = state->message->quarantine(std::move(decision), g_runtime->spool(), now);
    const sfsistat status = apply_decision(ctx, *state, decision);
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    spdlog::info("{}", format_decision_log(*state->message, decision, elapsed));
    if (auto* metrics = g_runtime->metrics()) metrics->record_decision(state->message->config(), decision, elapsed);
    report_quarantine_health(decision);
    if (auto* containment = g_runtime->containment()) containment->message_decided(*state->message, decision, now);
    end_message(*state);
    return status;
  } catch (const std::exception& error) {
    spdlog::error("stage=eom action=tempfail error={}", escape_log_value(error.what()));
  } catch (...) {
    spdlog::error("stage=eom action=tempfail error=unknown");
  }
  if (state) end_message(*state);
  return SMFIS_TEMPFAIL;
}

sfsistat on_abort(SMFICTX* ctx) {
  if (ConnectionState* state = state_of(ctx)) {
    end_message(*state);
    state->message_broken = false;
  }
  return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
  if (ConnectionState* state = state_of(ctx)) set_in_flight(*state, false);
  delete state_of(ctx);
  smfi_setpriv(ctx, nullptr);
  return SMFIS_CONTINUE;
}

}  // namespace

MilterRuntime::MilterRuntime(std::shared_ptr<const policy::Config> config, ratelimit::CounterStore& counters,
                             quarantine::SpoolStore* spool, FreezeCache* freezes, ContainmentWorker* containment,
                             Metrics* metrics)
    : m_config(std::move(config)),
      m_counters(counters),
      m_spool(spool),
      m_freezes(freezes),
      m_containment(containment),
      m_metrics(metrics) {
  if (m_metrics != nullptr) m_metrics->watch_runtime(this);
}

MilterRuntime::~MilterRuntime() {
  if (m_metrics != nullptr) m_metrics->watch_runtime(nullptr);
}

std::shared_ptr<const policy::Config> MilterRuntime::config() const {
  std::lock_guard lock(m_mutex);
  return m_config;
}

void MilterRuntime::replace_config(std::shared_ptr<const policy::Config> config) {
  std::lock_guard lock(m_mutex);
  m_config = std::move(config);
}

void MilterRuntime::begin_drain() {
  std::lock_guard lock(m_flight_mutex);
  m_draining = true;
}

bool MilterRuntime::draining() const {
  std::lock_guard lock(m_flight_mutex);
  return m_draining;
}

bool MilterRuntime::wait_for_messages(std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_flight_mutex);
  return m_flight_changed.wait_for(lock, timeout, [this] { return m_in_flight == 0; });
}

std::size_t MilterRuntime::messages_in_flight() const {
  std::lock_guard lock(m_flight_mutex);
  return m_in_flight;
}

void MilterRuntime::message_started() {
  std::lock_guard lock(m_flight_mutex);
  ++m_in_flight;
}

void MilterRuntime::message_ended() {
  {
    std::lock_guard lock(m_flight_mutex);
    if (m_in_flight > 0) --m_in_flight;
  }
  m_flight_changed.notify_all();
}

void install_runtime(MilterRuntime* runtime) { g_runtime = runtime; }

smfiDesc filter_description() {
  smfiDesc description{};
  description.xxfi_name = const_cast<char*>("floodgate");
  description.xxfi_version = SMFI_VERSION;
  description.xxfi_flags = SMFIF_ADDHDRS | SMFIF_QUARANTINE;  // DISCARD needs no flag
  description.xxfi_connect = on_connect;
  description.xxfi_helo = on_helo;
  description.xxfi_envfrom = on_envfrom;
  description.xxfi_envrcpt = on_envrcpt;
  description.xxfi_data = on_data;
  description.xxfi_header = on_header;
  description.xxfi_body = on_body;
  description.xxfi_eom = on_eom;
  description.xxfi_abort = on_abort;
  description.xxfi_close = on_close;
  description.xxfi_negotiate = on_negotiate;
  return description;
}

}  // namespace floodgate::milter
