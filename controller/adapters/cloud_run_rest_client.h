#pragma once

// CloudRunRestClient: CloudRunClient over the Cloud Run Admin API v2 REST surface (gcp-api.md §1)
// through an HttpTransport, with an OAuth2 token from a TokenSource.
//
// Per call: take a token from the (project, region) read or write bucket (writes: PATCH; reads:
// everything else, operations.wait included), fetch the access token, send, and map the answer.
// 5xx, 429 and transport failures (kUnavailable, kDeadlineExceeded) are retried up to
// `max_attempts` with capped exponential backoff and full jitter; a 429 with a Retry-After of N
// seconds waits N seconds instead (at most `max_retry_after`). Other 4xx are never retried.
// Retrying a PATCH after a lost answer is safe: the same body applied twice is the same state,
// and a body with an etag fails kAborted if the first attempt already landed, which callers
// treat as "re-read".
//
// Error codes (messages name the method and resource, e.g. "services.patch
// projects/p/locations/r/services/s: 503 UNAVAILABLE: ... (after 5 attempts)"):
//   400 -> kInvalidArgument (kFailedPrecondition / kOutOfRange when the body says so), with the
//          first fieldViolation as "field: description"; 401 and token failures ->
//          kUnauthenticated; 403 -> kPermissionDenied; 404 -> kNotFound; 409 -> kAborted
//          (ALREADY_EXISTS -> kAlreadyExists); 429 -> kResourceExhausted; 501 -> kUnimplemented;
//          other 5xx and transport failures -> kUnavailable; an unreadable 2xx body -> kInternal.
//
// Thread-safe. The transport, token source, clock and sleeper are borrowed and must outlive the
// client. Tokens never appear in messages or observer calls.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "controller/adapters/token_source.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/cloud_run_client.h"
#include "controller/interfaces/http_transport.h"

namespace runway {

// Blocks the calling thread; the seam that lets tests run backoff and rate limits without
// waiting. Thread-safe.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void Sleep(absl::Duration duration) = 0;
};

// The real one.
class SystemSleeper : public Sleeper {
 public:
  void Sleep(absl::Duration duration) override { absl::SleepFor(duration); }
};

// One HTTP attempt, reported to CloudRunRestClientOptions::observer (e.g. to count requests per
// method and code). Not reported: attempts that never reached the transport (token failures).
struct ApiCall {
  std::string method;   // "services.patch", "services.get", "services.list", "operations.get",
                        // "operations.wait"
  int http_status = 0;  // 0 when the transport failed
  absl::StatusCode code = absl::StatusCode::kOk;  // this attempt's outcome
  int attempt = 1;                                // 1-based
  absl::Duration duration;                        // transport time, excluding rate-limit waits
};

// A token bucket: `per_minute` tokens a minute, at most `burst` saved up. per_minute <= 0
// disables the limit.
struct RateLimit {
  double per_minute = 0;
  int burst = 1;
};

struct CloudRunRestClientOptions {
  std::string endpoint = "https://run.googleapis.com/";  // trailing slash optional
  absl::Duration call_timeout = absl::Seconds(30);       // per attempt
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration max_retry_after = absl::Seconds(60);  // a longer Retry-After is cut to this
  // Full jitter: a retry waits random_fraction() * min(max_backoff, initial * 2^(n-1)).
  // random_fraction returns a value in [0, 1] and must be thread-safe; when unset, a
  // std::mt19937_64 seeded with `random_seed` (0: from std::random_device) is used.
  std::function<double()> random_fraction;
  uint64_t random_seed = 0;
  int page_size = 500;                           // services.list pageSize
  RateLimit write_limit = {60, 10};              // per (project, region)
  RateLimit read_limit = {600, 50};              // per (project, region)
  std::function<void(const ApiCall&)> observer;  // called once per attempt; may be empty
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
  struct Call;     // one logical call: method, resource, HTTP request, bucket
  struct Attempt;  // the outcome of one HTTP attempt and whether to retry it
  struct Bucket {
    double tokens = 0;
    absl::Duration updated;
  };

  absl::StatusOr<HttpResponse> Execute(const Call& call);
  Attempt SendOnce(const Call& call, int attempt);
  void WaitForRateLimit(const Call& call);
  absl::Duration Backoff(int attempt);
  std::string Url(const std::string& path) const;

  HttpTransport* const transport_;
  TokenSource* const tokens_;
  const Clock* const clock_;
  Sleeper* const sleeper_;
  const CloudRunRestClientOptions options_;
  const std::string endpoint_;  // with a trailing slash
  absl::Mutex mutex_;
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mutex_);  // "w project/region"
  std::mt19937_64 random_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace runway
