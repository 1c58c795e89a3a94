#pragma once

// ManifestSource: where desired state comes from (a directory, a Git checkout, Kubernetes custom
// resources). A snapshot holds every valid service and the problems of the invalid ones, so one
// bad manifest never hides the others. Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/core/desired_service.h"
#include "controller/core/field_error.h"

namespace runway {

// A manifest that failed validation: which service it meant (when that could be read) and why.
struct InvalidManifest {
  std::string origin;  // "dir/file.yaml:2", or "namespace/name" for a custom resource
  std::optional<ObjectKey> key;
  FieldErrors errors;
};

struct ManifestSnapshot {
  std::vector<DesiredService> services;
  std::vector<InvalidManifest> invalid;
  std::string version;  // changes whenever the content changes (hash, commit, resourceVersion)
};

class ManifestSource {
 public:
  virtual ~ManifestSource() = default;
  // Reads the current desired state. Errors only when the source as a whole is unreadable
  // (kUnavailable for a transient failure, kNotFound for a missing root).
  virtual absl::StatusOr<ManifestSnapshot> Snapshot() = 0;
};

}  // namespace runway
