#pragma once

// CloudBuildClient: builds over the Cloud Build API v1 (gcp-api.md §2). Builds are found again by
// tag after a restart, so the same source is never built twice. Error mapping as in
// cloud_run_client.h. Thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace runway {

struct BuildRequest {
  std::string project;
  std::string image_repository;  // pushed here; the digest comes back in BuildState
  std::vector<std::string> steps_args;
  std::vector<std::string> tags;  // runway, svc-<name>, src-<hash of the source>
  absl::Duration timeout = absl::Minutes(20);
};

struct BuildState {
  std::string id;
  std::string status;  // QUEUED, WORKING, SUCCESS, FAILURE, INTERNAL_ERROR, TIMEOUT, CANCELLED
  std::string image_digest;  // sha256:..., on SUCCESS
  std::string log_url;
  std::string failure_detail;
};

class CloudBuildClient {
 public:
  virtual ~CloudBuildClient() = default;
  // builds.create; returns the new build (QUEUED). Never waits for it.
  virtual absl::StatusOr<BuildState> CreateBuild(const BuildRequest& request) = 0;
  // builds.get.
  virtual absl::StatusOr<BuildState> GetBuild(const std::string& project,
                                              const std::string& build_id) = 0;
  // builds.list with filter tags="<tag>", newest first.
  virtual absl::StatusOr<std::vector<BuildState>> ListBuildsByTag(const std::string& project,
                                                                  const std::string& tag) = 0;
};

}  // namespace runway
