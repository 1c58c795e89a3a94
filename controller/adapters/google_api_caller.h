#pragma once

// GoogleApiCaller: one logical call to a Google REST API (Cloud Run v2, Cloud Build v1) through an
// HttpTransport, shared by the API clients so they retry, rate-limit, report and map errors the
// same way.
//
// Per call: take a token from the location's read or write bucket, fetch the access token, send,
// and map the answer. 5xx, 429 and transport failures (kUnavailable, kDeadlineExceeded) are
// retried up to `max_attempts` with capped exponential backoff and full jitter (a call marked
// not `retryable` is sent once: a create whose answer was lost must not run twice); a 429 with a
// Retry-After of N seconds waits N seconds instead (at most `max_retry_after`). Other 4xx are
// never retried.
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
// caller. Tokens never appear in messages or observer calls.

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "controller/adapters/token_source.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/http_transport.h"
#include "nlohmann/json.hpp"

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

// One HTTP attempt, reported to GoogleApiOptions::observer (e.g. to count requests per method and
// code). Not reported: attempts that never reached the transport (token failures).
struct ApiCall {
  std::string method;   // "services.patch", "services.list", "operations.get", "builds.create"...
  int http_status = 0;  // 0 when the transport failed
  absl::StatusCode code = absl::StatusCode::kOk;  // this attempt's outcome
  int attempt = 1;                                // 1-based
  absl::Duration duration;                        // transport time, excluding rate-limit waits
  // When the transport failed: refused, timeout, reset, tls or other (the connect-failure
  // reasons of runway_connect_failures_total). Empty when an answer came back.
  std::string connect_failure;
};

// A token bucket: `per_minute` tokens a minute, at most `burst` saved up. per_minute <= 0
// disables the limit.
struct RateLimit {
  double per_minute = 0;
  int burst = 1;
};

struct GoogleApiOptions {
  std::string endpoint;                             // trailing slash optional
  absl::Duration call_timeout = absl::Seconds(30);  // per attempt
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration max_retry_after = absl::Seconds(60);  // a longer Retry-After is cut to this
  // Full jitter: a retry waits random_fraction() * min(max_backoff, initial * 2^(n-1)).
  // random_fraction returns a value in [0, 1] and must be thread-safe; when unset, a
  // std::mt19937_64 seeded with `random_seed` (0: from std::random_device) is used.
  std::function<double()> random_fraction;
  uint64_t random_seed = 0;
  RateLimit write_limit = {60, 10};              // per location
  RateLimit read_limit = {600, 50};              // per location
  std::function<void(const ApiCall&)> observer;  // called once per attempt; may be empty
};

class GoogleApiCaller {
 public:
  struct Call {
    Call(std::string method, std::string resource, std::string location, bool write = false)
        : method(std::move(method)),
          resource(std::move(resource)),
          location(std::move(location)),
          write(write) {}
    std::string Prefix() const { return method + " " + resource + ": "; }

    std::string method;    // "services.patch"
    std::string resource;  // named in error messages
    std::string location;  // "project/region": the rate-limit bucket
    bool write = false;
    bool retryable = true;  // false: sent once whatever happens
    HttpRequest request;    // without Authorization; url relative to the endpoint
  };

  GoogleApiCaller(HttpTransport* transport, TokenSource* tokens, const Clock* clock,
                  Sleeper* sleeper, GoogleApiOptions options);

  // Sends `call` (its url is a path under the endpoint), retrying as above; OK only for a 2xx.
  absl::StatusOr<HttpResponse> Execute(Call call);
  // Execute, then parse the 2xx body as a JSON object (kInternal, not quoted, when it is not).
  absl::StatusOr<nlohmann::json> ExecuteJson(Call call);

  const GoogleApiOptions& options() const { return options_; }

 private:
  struct Attempt {
    absl::StatusOr<HttpResponse> response;  // OK only for a 2xx answer
    bool retry = false;
    std::optional<absl::Duration> retry_after;
  };
  struct Bucket {
    double tokens = 0;
    absl::Duration updated;
  };

  Attempt SendOnce(const Call& call, int attempt);
  void WaitForRateLimit(const Call& call);
  absl::Duration Backoff(int attempt);

  HttpTransport* const transport_;
  TokenSource* const tokens_;
  const Clock* const clock_;
  Sleeper* const sleeper_;
  const GoogleApiOptions options_;
  const std::string endpoint_;  // with a trailing slash
  absl::Mutex mutex_;
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mutex_);  // "w project/region"
  std::mt19937_64 random_ ABSL_GUARDED_BY(mutex_);
};

// JSON and URL helpers shared by the Google API clients. Readers never throw: a missing or
// mistyped field reads as empty.
namespace gapi {

using Json = nlohmann::json;

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when `keep_slash`).
std::string PercentEncode(const std::string& text, bool keep_slash);
// google.protobuf.Duration JSON: "300s", "1.5s".
std::string ProtoDuration(absl::Duration d);
// "projects/p/locations/r/services/s/revisions/x" -> "x"; short names pass through.
std::string LastSegment(const std::string& name);
std::string Str(const Json& json, const char* key);
// int64 fields are JSON strings in Google APIs ("3"); numbers are accepted too.
int64_t Int64(const Json& json, const char* key);
bool Bool(const Json& json, const char* key);
const Json& Child(const Json& json, const char* key);
std::string Dump(const Json& json);

}  // namespace gapi
}  // namespace runway
