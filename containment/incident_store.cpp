#include "containment/incident_store.hpp"

namespace floodgate::containment {

IncidentLimits incident_limits(const policy::IncidentSettings& settings) {
  IncidentLimits limits;
  limits.recipient_sample = settings.recipient_sample;
  limits.subjects = settings.subjects;
  limits.max_queue_ids = settings.max_queue_ids;
  limits.retention = settings.retention;
  return limits;
}

std::string_view to_string(NotificationEvent event) {
  switch (event) {
    case NotificationEvent::Freeze: return "freeze";
    case NotificationEvent::Unfreeze: return "unfreeze";
  }
  return "unknown";
}

}  // namespace floodgate::containment
