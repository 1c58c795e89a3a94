#pragma once

// CloudRunClient: the live state of Cloud Run services, in domain terms (no JSON), over the Cloud
// Run Admin API v2 (gcp-api.md §1). Writes return long-running operations; callers never block
// on them, they re-read. Implementations map google.rpc errors to absl codes: NOT_FOUND ->
// kNotFound, ABORTED/409 (stale etag) -> kAborted, RESOURCE_EXHAUSTED/429 -> kResourceExhausted,
// 5xx and connection failures -> kUnavailable, INVALID_ARGUMENT/400 -> kInvalidArgument (with
// the field violation in the message), PERMISSION_DENIED -> kPermissionDenied. Thread-safe.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/core/desired_service.h"

namespace runway {

struct LiveTrafficTarget {
  std::string revision;  // short name; empty with latest == true
  bool latest = false;
  int percent = 0;
  std::string tag;
  std::string uri;  // tag URL, in trafficStatuses only
};

// One service as services.get/list report it.
struct LiveService {
  CloudRunServiceName name;
  std::string etag;
  int64_t generation = 0;
  int64_t observed_generation = 0;
  bool reconciling = false;
  std::string terminal_state;  // CONDITION_SUCCEEDED, CONDITION_FAILED, ...
  std::string terminal_message;
  std::string latest_ready_revision;                // short name
  std::string latest_created_revision;              // short name
  std::string template_revision;                    // template.revision, when set
  std::string image;                                // template.containers[0].image
  std::vector<LiveTrafficTarget> traffic;           // desired, as written
  std::vector<LiveTrafficTarget> traffic_statuses;  // actual, as served
  std::map<std::string, std::string> annotations;   // runway.dev/* carry rollout state
};

struct LiveServicePage {
  std::vector<LiveService> services;
  std::string next_page_token;  // empty on the last page
};

// What one PATCH changes. Absent fields are left out of updateMask.
struct ServiceUpdate {
  CloudRunServiceName name;
  std::string etag;  // from the read this decision was made on; a stale one fails kAborted
  std::optional<RevisionTemplate> revision_template;
  std::optional<std::string> image;
  std::optional<std::string> revision_name;
  std::optional<std::vector<LiveTrafficTarget>> traffic;
  std::map<std::string, std::string> annotations;
  bool validate_only = false;
};

struct OperationState {
  std::string name;
  bool done = false;
  absl::Status error;  // OK unless the operation finished with an error
};

class CloudRunClient {
 public:
  virtual ~CloudRunClient() = default;
  // One page of services.list in a project and region.
  virtual absl::StatusOr<LiveServicePage> ListServices(const std::string& project,
                                                       const std::string& region,
                                                       const std::string& page_token) = 0;
  // services.get. kNotFound when the service does not exist.
  virtual absl::StatusOr<LiveService> GetService(const CloudRunServiceName& name) = 0;
  // services.patch (allowMissing creates it). Returns the operation to poll.
  virtual absl::StatusOr<OperationState> UpdateService(const ServiceUpdate& update) = 0;
  // operations.get.
  virtual absl::StatusOr<OperationState> GetOperation(const std::string& operation_name) = 0;
};

}  // namespace runway
