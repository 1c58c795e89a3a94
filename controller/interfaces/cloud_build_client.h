#pragma once

// CloudBuildClient: builds over the Cloud Build API v1 (gcp-api.md §2). Builds are found again by
// tag after a restart, so the same source is never built twice. Error mapping as in
// cloud_run_client.h. Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/core/desired_service.h"

namespace runway {

struct BuildRequest {
  std::string project;
  // Exactly one source.
  std::optional<GitSource> git;
  std::optional<StorageSource> storage;
  std::string dockerfile = "Dockerfile";
  std::string image;  // "<repository>:<tag>": built with `docker build`, pushed by Cloud Build
  std::vector<std::string> tags;  // build tags (not image tags): runway, svc-<name>, src-<hash>
  absl::Duration timeout = absl::Minutes(20);
};

struct BuildState {
  std::string id;
  // STATUS_UNKNOWN, PENDING, QUEUED, WORKING, SUCCESS, FAILURE, INTERNAL_ERROR, TIMEOUT,
  // CANCELLED, EXPIRED.
  std::string status;
  std::string image_digest;  // sha256:..., results.images[] of the requested image, on SUCCESS
  std::string log_url;
  std::string failure_type;    // failureInfo.type, e.g. USER_BUILD_STEP
  std::string failure_detail;  // failureInfo.detail, else statusDetail
  std::optional<absl::Time> create_time;
  std::optional<absl::Time> finish_time;

  bool Terminal() const {
    return status == "SUCCESS" || status == "FAILURE" || status == "INTERNAL_ERROR" ||
           status == "TIMEOUT" || status == "CANCELLED" || status == "EXPIRED";
  }
};

class CloudBuildClient {
 public:
  virtual ~CloudBuildClient() = default;
  // builds.create; returns the new build (QUEUED). Never waits for it, and is never retried
  // blindly (a lost answer may hide a created build): callers list by tag before creating again.
  virtual absl::StatusOr<BuildState> CreateBuild(const BuildRequest& request) = 0;
  // builds.get.
  virtual absl::StatusOr<BuildState> GetBuild(const std::string& project,
                                              const std::string& build_id) = 0;
  // builds.list with filter tags="<tag>", newest first.
  virtual absl::StatusOr<std::vector<BuildState>> ListBuildsByTag(const std::string& project,
                                                                  const std::string& tag) = 0;
};

}  // namespace runway
