#pragma once

// Rules a CloudRunService must follow beyond what its OpenAPI schema can say: traffic that sums to
// 100, one '@new', unique tags, revision names owned by the service, a digest-pinned image,
// canary steps that make sense, durations in range, one manifest per Cloud Run service.
// Pure functions over the domain model: no I/O.

#include <string>
#include <vector>

#include "controller/core/desired_service.h"
#include "controller/core/field_error.h"

namespace runway {

// Returns every rule violation of `service`, in field order; empty when it is valid. Paths are in
// manifest syntax (`spec.traffic[1].percent`).
FieldErrors ValidateDesiredService(const DesiredService& service);

// True when `image` ends in `@sha256:` and 64 lowercase hex digits.
bool IsDigestPinnedImage(const std::string& image);

// One manifest's claim on a Cloud Run service, for FindOwnershipConflicts.
struct ServiceClaim {
  ObjectKey key;
  CloudRunServiceName target;
  std::string origin;  // where the manifest is, e.g. "manifests/backend.yaml:1"
};

// A claim that collides with an earlier one. `claim_index` indexes the input; `error` names the
// other manifest.
struct OwnershipConflict {
  size_t claim_index;
  FieldError error;
};

// Reports every claim whose Cloud Run service (project, region, service) or whose
// namespace/name was already claimed by another manifest. Both sides of a collision are reported,
// each naming the other, so whoever reads either file learns of it.
std::vector<OwnershipConflict> FindOwnershipConflicts(const std::vector<ServiceClaim>& claims);

}  // namespace runway
