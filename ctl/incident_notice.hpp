// What floodgatectl does for incidents when ops freeze or unfreeze by hand:
// a manual freeze opens its own incident (so the daemons record the
// source's mail into it) and tells the postmaster; an unfreeze closes the
// freeze's incident and, being the one that closed it, tells too -- as the
// daemon does when a freeze it made ends (milter/containment_worker.hpp).
//
// DIAGNOSTICS: the freeze or unfreeze is what ops asked for and has been
// done when these run; a failure here (Redis, the SMTP target, the
// command) is reported as "floodgatectl: warning: ..." and changes no exit
// status. Notifications obey the same per-source rate limit as the daemon's.
#pragma once

#include <ostream>
#include <string>

#include "ctl/ctl_session.hpp"
#include "policy/source_spec.hpp"
#include "ratelimit/freeze_store.hpp"

namespace floodgate::ctl {

// A fresh incident id for a manual freeze about to be stored.
std::string new_incident_id(ratelimit::TimePoint now);

// After `freeze` (made by hand, with freeze.incident set) was stored as new.
// What was done is said on `notes` (stdout, or stderr under --json).
void open_manual_incident(const ratelimit::Freeze& freeze, const policy::SourceSpec& source, CtlSession& session,
                          std::ostream& notes);

// After the freeze whose incident is `incident_id` was lifted by hand.
void close_unfrozen_incident(const std::string& incident_id, const std::string& source_digest, CtlSession& session,
                             std::ostream& notes);

}  // namespace floodgate::ctl
