// The libmilter glue: C callbacks that feed ConnectionInfo/MessageSession
// and apply the Decision.
//
// libmilter runs one thread per MTA connection and gives callbacks no user
// pointer besides per-connection private data, so the daemon-wide pieces (the
// current Config snapshot, the CounterStore) are reached through a
// MilterRuntime installed once before smfi_main().
//
// Failure policy: no exception crosses into C. A callback that fails before
// end-of-message marks the message as broken and lets the transaction go on
// (a milter must not reject RCPT for mail from sendmail(1)); end-of-message
// then answers tempfail, so the MTA keeps the message and nothing is lost.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>

#include <libmilter/mfapi.h>

#include "milter/freeze_cache.hpp"
#include "policy/config.hpp"
#include "quarantine/spool_store.hpp"
#include "ratelimit/counter_store.hpp"

namespace floodgate::milter {

class ContainmentWorker;
class Metrics;

class MilterRuntime {
 public:
  // `spool` may be null: no usable quarantine spool (quarantines tempfail).
  // `freezes` may be null: no containment.
  // `containment` may be null: no incidents, notifications or activity.
  // `metrics` may be null: nothing is counted. Else it must outlive the
  // runtime, which registers with it (Metrics::watch_runtime) so scrapes
  // read messages_in_flight() only while the runtime exists.
  MilterRuntime(std::shared_ptr<const policy::Config> config, ratelimit::CounterStore& counters,
                quarantine::SpoolStore* spool, FreezeCache* freezes, ContainmentWorker* containment = nullptr,
                Metrics* metrics = nullptr);
  ~MilterRuntime();
  MilterRuntime(const MilterRuntime&) = delete;
  MilterRuntime& operator=(const MilterRuntime&) = delete;

  // The snapshot new connections start with; messages in flight keep theirs.
  std::shared_ptr<const policy::Config> config() const;
  void replace_config(std::shared_ptr<const policy::Config> config);
  ratelimit::CounterStore& counters() { return m_counters; }
  quarantine::SpoolStore* spool() { return m_spool; }
  FreezeCache* freezes() { return m_freezes; }
  ContainmentWorker* containment() { return m_containment; }
  Metrics* metrics() { return m_metrics; }

  // Shutdown. After begin_drain(), a message that reaches DATA is
  // tempfailed there (its client retries later, nothing is lost), and the
  // ones already past DATA go on to their verdict; wait_for_messages() waits
  // until none is left or `timeout` has passed, and says whether none is.
  void begin_drain();
  bool draining() const;
  bool wait_for_messages(std::chrono::milliseconds timeout);
  // Messages past DATA whose verdict has not been given yet.
  std::size_t messages_in_flight() const;
  void message_started();
  void message_ended();

 private:
  mutable std::mutex m_mutex;
  std::shared_ptr<const policy::Config> m_config;
  ratelimit::CounterStore& m_counters;
  quarantine::SpoolStore* m_spool;
  FreezeCache* m_freezes;
  ContainmentWorker* m_containment;
  Metrics* m_metrics;

  mutable std::mutex m_flight_mutex;  // guards the two below
  std::condition_variable m_flight_changed;
  std::size_t m_in_flight = 0;
  bool m_draining = false;
};

// Installs the runtime the callbacks use. Must outlive smfi_main().
void install_runtime(MilterRuntime* runtime);

// The filter description to pass to smfi_register().
smfiDesc filter_description();

}  // namespace floodgate::milter
