#pragma once

// CloudBuildRestClient: CloudBuildClient over the Cloud Build API v1 REST surface (gcp-api.md §2)
// through an HttpTransport, in the `projects/{p}/locations/global` form gcloud uses. Retries, rate
// limits (per project: writes are builds.create), error codes and messages: google_api_caller.h.
// builds.create is sent once (see CloudBuildClient). Thread-safe.

#include <string>
#include <vector>

#include "controller/adapters/google_api_caller.h"
#include "controller/interfaces/cloud_build_client.h"

namespace runway {

struct CloudBuildRestClientOptions : GoogleApiOptions {
  CloudBuildRestClientOptions() {
    endpoint = "https://cloudbuild.googleapis.com/";
    write_limit = {30, 5};
    read_limit = {600, 50};
  }
  std::string location = "global";
  // The builder image that runs `docker build` and `docker push`.
  std::string docker_builder = "gcr.io/cloud-builders/docker";
};

class CloudBuildRestClient : public CloudBuildClient {
 public:
  CloudBuildRestClient(HttpTransport* transport, TokenSource* tokens, const Clock* clock,
                       Sleeper* sleeper, CloudBuildRestClientOptions options = {});

  // CloudBuildClient
  absl::StatusOr<BuildState> CreateBuild(const BuildRequest& request) override;
  absl::StatusOr<BuildState> GetBuild(const std::string& project,
                                      const std::string& build_id) override;
  absl::StatusOr<std::vector<BuildState>> ListBuildsByTag(const std::string& project,
                                                          const std::string& tag) override;

 private:
  std::string Parent(const std::string& project) const;

  GoogleApiCaller caller_;
  const std::string location_;
  const std::string docker_builder_;
};

}  // namespace runway
