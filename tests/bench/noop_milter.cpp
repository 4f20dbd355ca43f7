// noop_milter: the protocol floor for the relay benchmark.
//
// A libmilter filter that negotiates exactly the conversation floodgate does
// (same skipped stages, same no-reply stages, DATA and end-of-message
// answered) and does no work: every callback answers "continue" or nothing.
// Measured beside floodgate in the same run, the difference between the two
// is what Floodgate's own work costs; the difference between this and no
// milter is what libmilter and the protocol cost.
//
// Takes floodgate's flags so the harness can start it the same way; only
// --socket is used. Prints "listening on SPEC" when ready.
#include <libmilter/mfapi.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr unsigned long k_no_reply_steps =
    SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_BODY;

sfsistat on_negotiate(SMFICTX*, unsigned long, unsigned long offered_steps, unsigned long, unsigned long,
                      unsigned long* actions, unsigned long* steps, unsigned long* reserved2,
                      unsigned long* reserved3) {
  *actions = 0;
  *steps = (SMFIP_NOUNKNOWN | SMFIP_NOEOH | SMFIP_RCPT_REJ | SMFIP_HDR_LEADSPC | k_no_reply_steps) & offered_steps;
  *reserved2 = 0;
  *reserved3 = 0;
  return SMFIS_CONTINUE;
}

sfsistat no_reply_connect(SMFICTX*, char*, _SOCK_ADDR*) { return SMFIS_NOREPLY; }
sfsistat no_reply_argv(SMFICTX*, char**) { return SMFIS_NOREPLY; }
sfsistat no_reply_helo(SMFICTX*, char*) { return SMFIS_NOREPLY; }
sfsistat no_reply_header(SMFICTX*, char*, char*) { return SMFIS_NOREPLY; }
sfsistat no_reply_body(SMFICTX*, unsigned char*, size_t) { return SMFIS_NOREPLY; }
sfsistat answer(SMFICTX*) { return SMFIS_CONTINUE; }

}  // namespace

int main(int argc, char** argv) {
  std::string socket_spec;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0) socket_spec = argv[i + 1];
  }
  if (socket_spec.empty()) {
    std::fprintf(stderr, "usage: noop_milter --socket SPEC [floodgate flags, ignored]\n");
    return 2;
  }
  smfiDesc description{};
  description.xxfi_name = const_cast<char*>("noop");
  description.xxfi_version = SMFI_VERSION;
  description.xxfi_connect = no_reply_connect;
  description.xxfi_helo = no_reply_helo;
  description.xxfi_envfrom = no_reply_argv;
  description.xxfi_envrcpt = no_reply_argv;
  description.xxfi_data = answer;
  description.xxfi_header = no_reply_header;
  description.xxfi_body = no_reply_body;
  description.xxfi_eom = answer;
  description.xxfi_abort = answer;
  description.xxfi_close = answer;
  description.xxfi_negotiate = on_negotiate;
  if (smfi_register(description) != MI_SUCCESS || smfi_setconn(socket_spec.data()) != MI_SUCCESS ||
      smfi_opensocket(true) != MI_SUCCESS) {
    std::fprintf(stderr, "noop_milter: cannot listen on %s\n", socket_spec.c_str());
    return 1;
  }
  std::fprintf(stderr, "noop_milter listening on %s\n", socket_spec.c_str());
  std::fflush(stderr);
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
