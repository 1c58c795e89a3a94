#include "controller/adapters/google_api_caller.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace runway {
namespace gapi {

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when `keep_slash`).
std::string PercentEncode(const std::string& text, bool keep_slash) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// "projects/p/locations/r/services/s/revisions/x" -> "x"; short names pass through.
std::string LastSegment(const std::string& name) {
  size_t slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

// google.protobuf.Duration JSON: "300s", "1.5s".
std::string ProtoDuration(absl::Duration d) {
  if (d % absl::Seconds(1) == absl::ZeroDuration()) {
    return absl::StrCat(absl::ToInt64Seconds(d), "s");
  }
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d));
}

std::string Str(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// int64 fields are JSON strings in v2 ("3"); numbers are accepted too.
int64_t Int64(const Json& json, const char* key) {
  auto it = json.find(key);
  if (it == json.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    double d = it->get<double>();
    // Casting a double outside int64's range is undefined behaviour.
    return std::isfinite(d) && d > -9.2e18 && d < 9.2e18 ? static_cast<int64_t>(d) : 0;
  }
  int64_t value = 0;
  if (it->is_string() && absl::SimpleAtoi(it->get<std::string>(), &value)) return value;
  return 0;
}

bool Bool(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_boolean() && it->get<bool>();
}

const Json& Child(const Json& json, const char* key) {
  static const Json* const kNull = new Json();
  auto it = json.find(key);
  return it == json.end() ? *kNull : *it;
}

std::string Dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace gapi

namespace {

using gapi::Child;
using gapi::Json;
using gapi::Str;

constexpr char kBadRequestType[] = "type.googleapis.com/google.rpc.BadRequest";
constexpr size_t kMaxQuotedBody = 200;

std::string Quote(const std::string& body) {
  std::string line(absl::StripAsciiWhitespace(body.substr(0, kMaxQuotedBody)));
  std::replace(line.begin(), line.end(), '\n', ' ');
  return line;
}

// ---- errors ----------------------------------------------------------------------------------

absl::StatusCode CodeForHttp(int http_status, const std::string& rpc_status) {
  switch (http_status) {
    case 400:
      if (rpc_status == "FAILED_PRECONDITION") return absl::StatusCode::kFailedPrecondition;
      if (rpc_status == "OUT_OF_RANGE") return absl::StatusCode::kOutOfRange;
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return rpc_status == "ALREADY_EXISTS" ? absl::StatusCode::kAlreadyExists
                                            : absl::StatusCode::kAborted;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 501:
      return absl::StatusCode::kUnimplemented;
    default:
      return http_status >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

bool RetryableHttp(int http_status) {
  return http_status == 429 || (http_status >= 500 && http_status != 501);
}

// "400 INVALID_ARGUMENT: <message> (service.traffic: <description>)" from a google.rpc.Status
// body; falls back to a short quote of a body that is not one (e.g. a proxy's HTML page).
struct HttpError {
  absl::StatusCode code;
  std::string text;
};

HttpError ErrorFromResponse(const HttpResponse& response) {
  Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  const Json& error = Child(body, "error");  // find() on a non-object finds nothing
  std::string rpc_status, message, field, description;
  if (error.is_object()) {
    rpc_status = Str(error, "status");
    message = Str(error, "message");
    const Json& details = Child(error, "details");
    for (const Json& detail : details) {  // iterating null visits nothing
      if (!detail.is_object() || Str(detail, "@type") != kBadRequestType) continue;
      const Json& violations = Child(detail, "fieldViolations");
      if (violations.is_array() && !violations.empty() && violations[0].is_object()) {
        field = Str(violations[0], "field");
        description = Str(violations[0], "description");
        break;
      }
    }
  } else {
    message = Quote(response.body);
  }
  absl::StatusCode code = CodeForHttp(response.status, rpc_status);
  if (rpc_status.empty()) rpc_status = absl::StatusCodeToString(code);
  if (!field.empty()) {
    std::string violation = absl::StrCat(field, ": ", description);
    message = message.empty() || message == description
                  ? violation
                  : absl::StrCat(message, " (", violation, ")");
  }
  if (message.empty()) message = "no error message";
  return {code, absl::StrCat(response.status, " ", rpc_status, ": ", message)};
}

std::optional<absl::Duration> RetryAfter(const HttpResponse& response) {
  auto it = response.headers.find("retry-after");
  int64_t seconds = 0;
  if (it == response.headers.end() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(it->second), &seconds) || seconds < 0) {
    return std::nullopt;  // HTTP-date forms are rare for Google APIs; backoff covers them
  }
  return absl::Seconds(seconds);
}

// std::random_device may throw where no entropy source exists; fall back to the time then.
// The runway_connect_failures_total reason for a transport failure, from the transport's
// message (cpprest_http_transport.cc words them "connection refused to", "connection reset by",
// "TLS with ... failed", "no answer from").
std::string ConnectFailureReason(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kDeadlineExceeded) return "timeout";
  const std::string message(status.message());
  if (absl::StrContains(message, "refused")) return "refused";
  if (absl::StrContains(message, "reset")) return "reset";
  if (absl::StrContains(message, "TLS")) return "tls";
  return "other";
}

uint64_t RandomSeed(uint64_t configured) {
  if (configured != 0) return configured;
  try {
    return std::random_device{}();
  } catch (const std::exception&) {
    return static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  }
}

}  // namespace

GoogleApiCaller::GoogleApiCaller(HttpTransport* transport, TokenSource* tokens, const Clock* clock,
                                 Sleeper* sleeper, GoogleApiOptions options)
    : transport_(transport),
      tokens_(tokens),
      clock_(clock),
      sleeper_(sleeper),
      options_(std::move(options)),
      endpoint_(absl::EndsWith(options_.endpoint, "/") ? options_.endpoint
                                                       : options_.endpoint + "/"),
      random_(RandomSeed(options_.random_seed)) {}

absl::Duration GoogleApiCaller::Backoff(int attempt) {
  absl::Duration ceiling = options_.initial_backoff;
  for (int i = 1; i < attempt && ceiling < options_.max_backoff; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, options_.max_backoff);
  double fraction = 0;
  if (options_.random_fraction) {
    fraction = options_.random_fraction();
  } else {
    absl::MutexLock lock(&mutex_);
    fraction = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  }
  return ceiling * std::clamp(fraction, 0.0, 1.0);
}

// Reserves one request from the bucket now and sleeps off any debt, so concurrent callers queue
// in arrival order without holding the lock while asleep.
void GoogleApiCaller::WaitForRateLimit(const Call& call) {
  const RateLimit& limit = call.write ? options_.write_limit : options_.read_limit;
  if (limit.per_minute <= 0) return;
  const double per_second = limit.per_minute / 60.0;
  absl::Duration wait = absl::ZeroDuration();
  {
    absl::MutexLock lock(&mutex_);
    const absl::Duration now = clock_->MonotonicNow();
    auto [it, inserted] =
        buckets_.try_emplace(absl::StrCat(call.write ? "w " : "r ", call.location));
    Bucket& bucket = it->second;
    if (inserted) {
      bucket.tokens = std::max(1, limit.burst);
      bucket.updated = now;
    }
    const double elapsed =
        absl::ToDoubleSeconds(std::max(now - bucket.updated, absl::ZeroDuration()));
    bucket.tokens =
        std::min<double>(std::max(1, limit.burst), bucket.tokens + elapsed * per_second);
    bucket.updated = now;
    bucket.tokens -= 1;
    if (bucket.tokens < 0) wait = absl::Seconds(-bucket.tokens / per_second);
  }
  if (wait > absl::ZeroDuration()) sleeper_->Sleep(wait);
}

GoogleApiCaller::Attempt GoogleApiCaller::SendOnce(const Call& call, int attempt) {
  Attempt out;
  absl::StatusOr<std::string> token = tokens_->AccessToken();
  if (!token.ok()) {
    out.response = absl::UnauthenticatedError(absl::StrCat(
        call.Prefix(), "no access token from ", tokens_->Name(), ": ", token.status().message()));
    return out;
  }
  HttpRequest request = call.request;
  request.url = absl::StrCat(endpoint_, call.request.url);
  if (!token->empty()) request.headers["Authorization"] = absl::StrCat("Bearer ", *token);
  const absl::Duration start = clock_->MonotonicNow();
  absl::StatusOr<HttpResponse> response = transport_->Send(request);
  ApiCall report;
  report.method = call.method;
  report.attempt = attempt;
  report.duration = clock_->MonotonicNow() - start;
  if (!response.ok()) {
    absl::StatusCode code = response.status().code();
    out.retry =
        code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
    report.code = out.retry ? absl::StatusCode::kUnavailable : code;
    report.connect_failure = ConnectFailureReason(response.status());
    out.response =
        absl::Status(report.code, absl::StrCat(call.Prefix(), response.status().message()));
  } else if (response->status < 200 || response->status > 299) {
    HttpError error = ErrorFromResponse(*response);
    report.http_status = response->status;
    report.code = error.code;
    out.retry = RetryableHttp(response->status);
    if (response->status == 429) out.retry_after = RetryAfter(*response);
    out.response = absl::Status(error.code, absl::StrCat(call.Prefix(), error.text));
  } else {
    report.http_status = response->status;
    out.response = std::move(response);
  }
  if (options_.observer) options_.observer(report);
  return out;
}

absl::StatusOr<HttpResponse> GoogleApiCaller::Execute(Call call) {
  const int max_attempts = call.retryable ? std::max(1, options_.max_attempts) : 1;
  for (int attempt = 1;; ++attempt) {
    WaitForRateLimit(call);
    Attempt outcome = SendOnce(call, attempt);
    if (outcome.response.ok() || !outcome.retry || attempt >= max_attempts) {
      if (outcome.response.ok() || attempt == 1) return std::move(outcome.response);
      const absl::Status& error = outcome.response.status();
      return absl::Status(error.code(),
                          absl::StrCat(error.message(), " (after ", attempt, " attempts)"));
    }
    sleeper_->Sleep(outcome.retry_after.has_value()
                        ? std::min(*outcome.retry_after, options_.max_retry_after)
                        : Backoff(attempt));
  }
}

absl::StatusOr<Json> GoogleApiCaller::ExecuteJson(Call call) {
  const std::string prefix = call.Prefix();
  absl::StatusOr<HttpResponse> response = Execute(std::move(call));
  if (!response.ok()) return response.status();
  Json json = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::InternalError(
        absl::StrCat(prefix, "the ", response->status, " answer is not a JSON object"));
  }
  return json;
}

}  // namespace runway
