#pragma once

// CloudRunRestClient: CloudRunClient over the Cloud Run Admin API v2 REST surface (gcp-api.md §1)
// through an HttpTransport, with an OAuth2 token from a TokenSource.
//
// Retries, rate limits (per project+region: writes are PATCH; reads everything else,
// operations.wait included), error codes and messages: google_api_caller.h. Retrying a PATCH after
// a lost answer is safe: the same body applied twice is the same state, and a body with an etag
// fails kAborted if the first attempt already landed, which callers treat as "re-read".
//
// Thread-safe. The transport, token source, clock and sleeper are borrowed and must outlive the
// client.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/adapters/google_api_caller.h"
#include "controller/adapters/token_source.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/cloud_run_client.h"
#include "controller/interfaces/http_transport.h"

namespace runway {

struct CloudRunRestClientOptions : GoogleApiOptions {
  CloudRunRestClientOptions() { endpoint = "https://run.googleapis.com/"; }
  int page_size = 500;  // services.list pageSize
};

class CloudRunRestClient : public CloudRunClient {
 public:
  CloudRunRestClient(HttpTransport* transport, TokenSource* tokens, const Clock* clock,
                     Sleeper* sleeper, CloudRunRestClientOptions options = {});
  CloudRunRestClient(const CloudRunRestClient&) = delete;
  CloudRunRestClient& operator=(const CloudRunRestClient&) = delete;

  // CloudRunClient
  absl::StatusOr<LiveServicePage> ListServices(const std::string& project,
                                               const std::string& region,
                                               const std::string& page_token) override;
  absl::StatusOr<LiveService> GetService(const CloudRunServiceName& name) override;
  // PATCH with updateMask = the fields `update` sets (template, traffic, annotations),
  // allowMissing=true and the etag in the body. kInvalidArgument when it sets none. The template
  // replaces the whole RevisionTemplate: revision_template, image and revision_name together.
  absl::StatusOr<OperationState> UpdateService(const ServiceUpdate& update) override;
  absl::StatusOr<OperationState> GetOperation(const std::string& operation_name) override;

  // operations.wait: the server holds the call until the operation is done or `timeout` passes
  // (best effort: it may answer earlier with done == false).
  absl::StatusOr<OperationState> WaitOperation(const std::string& name, absl::Duration timeout);

 private:
  GoogleApiCaller caller_;
  const int page_size_;
};

}  // namespace runway
