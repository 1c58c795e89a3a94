#pragma once

// The Cloud Run v1 (Knative-shaped) view of the shared state model, and the conversion of a v1
// write back to it (gcp-api.md §1.8). gcloud speaks only this surface.

#include <string>

#include "absl/status/statusor.h"
#include "tests/emulator/emulator_common.h"
#include "tests/emulator/run_model.h"

namespace runway::emulator {

Json KnativeService(const CloudRunStore& store, const ServiceRecord& service);
Json KnativeRevision(const CloudRunStore& store, const ServiceRecord& service,
                     const RevisionRecord& revision);
Json KnativeList(const std::string& kind, Json items, const std::string& continue_token);
// k8s Status returned by deletes.
Json KnativeDeleteStatus(const std::string& kind, const std::string& name, const std::string& uid);

// Converts a v1 Service body (create or full replace) to a write. `path_name` is the name from the
// URL (empty on create). Errors name the v1 field, e.g. spec.traffic[1].
absl::StatusOr<ServiceWrite> KnativeServiceWrite(const Json& body, const std::string& project,
                                                 const std::string& region,
                                                 const std::string& path_name);

// An error of a v1 write with its field violations renamed from the state model's v2 fields to the
// v1 fields the client sent, e.g. service.traffic[2].revision -> spec.traffic[2].revisionName and
// service.template.containers[0].image -> spec.template.spec.containers[0].image. gcloud prints
// them as "<field>: <description>".
absl::Status KnativeWriteError(const absl::Status& status);

// `serving.knative.dev/service = hello,foo=bar`: every term must hold. `key` and `key!=v` too.
bool MatchesLabelSelector(const std::string& selector, const Json& labels);

}  // namespace runway::emulator
