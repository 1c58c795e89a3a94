#pragma once

// StatusReporter: publishes the observed status of one CloudRunService (the CR's status
// subresource in Kubernetes mode, the --state-dir files in file mode). Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "controller/core/desired_service.h"

namespace runway {

// metav1.Condition: Ready, Reconciling, Stalled, BuildSucceeded, RolledBack.
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;  // CamelCase
  std::string message;
  int64_t observed_generation = 0;
  absl::Time last_transition_time;
};

// status.image of a service built from spec.build (design.md §3).
struct BuiltImage {
  std::string digest;    // sha256:..., once built
  std::string build_id;  // Cloud Build id or local job id
  std::string log_url;
  std::string builder;  // cloudBuild | local
};

struct ServiceStatus {
  int64_t observed_generation = 0;
  std::vector<Condition> conditions;
  std::string revision;
  std::vector<TrafficTarget> traffic;
  std::optional<BuiltImage> image;
};

class StatusReporter {
 public:
  virtual ~StatusReporter() = default;
  // Publishes `status` for `key`. kUnavailable on a transient failure (retry); the status is
  // whole, so a retry after a partial failure converges.
  virtual absl::Status Report(const ObjectKey& key, const ServiceStatus& status) = 0;
};

}  // namespace runway
