#include "controller/adapters/cloud_run_rest_client.h"

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
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace runway {
namespace {

using Json = nlohmann::json;

constexpr char kLatestType[] = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
constexpr char kRevisionType[] = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";
constexpr char kBadRequestType[] = "type.googleapis.com/google.rpc.BadRequest";
constexpr size_t kMaxQuotedBody = 200;

// ---- strings and URLs ------------------------------------------------------------------------

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

std::string ParentName(const std::string& project, const std::string& region) {
  return absl::StrCat("projects/", project, "/locations/", region);
}

// Operation names are projects/{p}/locations/{l}/operations/{id}; returns "p/l".
std::optional<std::string> LocationOfOperation(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  if (parts.size() != 6 || parts[0] != "projects" || parts[2] != "locations" ||
      parts[4] != "operations" || parts[1].empty() || parts[3].empty() || parts[5].empty()) {
    return std::nullopt;
  }
  return absl::StrCat(parts[1], "/", parts[3]);
}

std::string Quote(const std::string& body) {
  std::string line(absl::StripAsciiWhitespace(body.substr(0, kMaxQuotedBody)));
  std::replace(line.begin(), line.end(), '\n', ' ');
  return line;
}

// ---- JSON reading: missing or mistyped fields read as empty, never throw ---------------------

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

std::vector<LiveTrafficTarget> TrafficFromJson(const Json& list) {
  std::vector<LiveTrafficTarget> out;
  if (!list.is_array()) return out;
  for (const Json& item : list) {
    if (!item.is_object()) continue;
    LiveTrafficTarget target;
    target.latest = Str(item, "type") == kLatestType;
    target.revision = LastSegment(Str(item, "revision"));
    target.percent = static_cast<int>(Int64(item, "percent"));  // absent = 0 (proto3 JSON)
    target.tag = Str(item, "tag");
    target.uri = Str(item, "uri");
    out.push_back(std::move(target));
  }
  return out;
}

std::optional<CloudRunServiceName> ServiceNameFromResource(const std::string& resource) {
  std::vector<std::string> parts = absl::StrSplit(resource, '/');
  if (parts.size() != 6 || parts[0] != "projects" || parts[2] != "locations" ||
      parts[4] != "services") {
    return std::nullopt;
  }
  return CloudRunServiceName{parts[1], parts[3], parts[5]};
}

LiveService ServiceFromJson(const Json& json) {
  LiveService service;
  if (auto name = ServiceNameFromResource(Str(json, "name"))) service.name = *name;
  service.etag = Str(json, "etag");
  service.generation = Int64(json, "generation");
  service.observed_generation = Int64(json, "observedGeneration");
  service.reconciling = Bool(json, "reconciling");
  const Json& terminal = Child(json, "terminalCondition");
  if (terminal.is_object()) {
    service.terminal_state = Str(terminal, "state");
    service.terminal_message = Str(terminal, "message");
  }
  service.latest_ready_revision = LastSegment(Str(json, "latestReadyRevision"));
  service.latest_created_revision = LastSegment(Str(json, "latestCreatedRevision"));
  const Json& revision_template = Child(json, "template");
  if (revision_template.is_object()) {
    service.template_revision = Str(revision_template, "revision");
    const Json& containers = Child(revision_template, "containers");
    if (containers.is_array() && !containers.empty() && containers[0].is_object()) {
      service.image = Str(containers[0], "image");
    }
  }
  service.traffic = TrafficFromJson(Child(json, "traffic"));
  service.traffic_statuses = TrafficFromJson(Child(json, "trafficStatuses"));
  const Json& annotations = Child(json, "annotations");
  if (annotations.is_object()) {
    for (auto it = annotations.begin(); it != annotations.end(); ++it) {
      if (it.value().is_string()) service.annotations[it.key()] = it.value().get<std::string>();
    }
  }
  return service;
}

OperationState OperationFromJson(const Json& json) {
  OperationState operation;
  operation.name = Str(json, "name");
  operation.done = Bool(json, "done");
  const Json& error = Child(json, "error");
  if (error.is_object()) {
    int64_t code = Int64(error, "code");
    absl::StatusCode status_code =
        code >= 1 && code <= 16 ? static_cast<absl::StatusCode>(code) : absl::StatusCode::kUnknown;
    std::string message = Str(error, "message");
    if (message.empty()) message = "the operation failed without a message";
    operation.error = absl::Status(status_code, message);
  }
  return operation;
}

// ---- JSON writing ----------------------------------------------------------------------------

Json EnvToJson(const EnvVar& env) {
  Json out = {{"name", env.name}};
  if (env.secret.has_value()) {
    std::string version = env.secret->version.empty() ? "latest" : env.secret->version;
    out["valueSource"] = {{"secretKeyRef", {{"secret", env.secret->name}, {"version", version}}}};
  } else {
    out["value"] = env.value.value_or("");
  }
  return out;
}

Json ContainerToJson(const ServiceUpdate& update) {
  Json container = Json::object();
  if (update.image.has_value()) container["image"] = *update.image;
  if (!update.revision_template.has_value()) return container;
  const RevisionTemplate& spec = *update.revision_template;
  container["ports"] = Json::array({{{"containerPort", spec.container_port}}});
  if (!spec.command.empty()) container["command"] = spec.command;
  if (!spec.args.empty()) container["args"] = spec.args;
  if (!spec.env.empty()) {
    Json env = Json::array();
    for (const EnvVar& var : spec.env) env.push_back(EnvToJson(var));
    container["env"] = std::move(env);
  }
  Json limits = Json::object();
  if (spec.cpu.has_value()) limits["cpu"] = *spec.cpu;
  if (spec.memory.has_value()) limits["memory"] = *spec.memory;
  if (!limits.empty()) container["resources"] = {{"limits", std::move(limits)}};
  return container;
}

// google.cloud.run.v2.RevisionTemplate from the update's template, image and revision name.
Json TemplateToJson(const ServiceUpdate& update) {
  Json out = Json::object();
  if (update.revision_name.has_value()) out["revision"] = *update.revision_name;
  out["containers"] = Json::array({ContainerToJson(update)});
  if (!update.revision_template.has_value()) return out;
  const RevisionTemplate& spec = *update.revision_template;
  if (!spec.labels.empty()) out["labels"] = spec.labels;
  out["scaling"] = {{"minInstanceCount", spec.min_instances},
                    {"maxInstanceCount", spec.max_instances}};
  if (spec.concurrency.has_value()) out["maxInstanceRequestConcurrency"] = *spec.concurrency;
  if (spec.request_timeout.has_value()) out["timeout"] = ProtoDuration(*spec.request_timeout);
  if (spec.service_account.has_value()) out["serviceAccount"] = *spec.service_account;
  return out;
}

Json TrafficToJson(const std::vector<LiveTrafficTarget>& traffic) {
  Json out = Json::array();
  for (const LiveTrafficTarget& target : traffic) {
    Json item = {{"type", target.latest ? kLatestType : kRevisionType}};
    if (!target.latest) item["revision"] = target.revision;
    if (target.percent != 0) item["percent"] = target.percent;
    if (!target.tag.empty()) item["tag"] = target.tag;
    out.push_back(std::move(item));
  }
  return out;
}

bool SetsTemplate(const ServiceUpdate& update) {
  return update.revision_template.has_value() || update.image.has_value() ||
         update.revision_name.has_value();
}

std::string UpdateMask(const ServiceUpdate& update) {
  std::vector<std::string> fields;
  if (SetsTemplate(update)) fields.push_back("template");
  if (update.traffic.has_value()) fields.push_back("traffic");
  if (!update.annotations.empty()) fields.push_back("annotations");
  return absl::StrJoin(fields, ",");
}

Json UpdateBody(const ServiceUpdate& update) {
  Json body = Json::object();
  if (!update.etag.empty()) body["etag"] = update.etag;
  if (SetsTemplate(update)) body["template"] = TemplateToJson(update);
  if (update.traffic.has_value()) body["traffic"] = TrafficToJson(*update.traffic);
  if (!update.annotations.empty()) body["annotations"] = update.annotations;
  return body;
}

std::string Dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
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
uint64_t RandomSeed(uint64_t configured) {
  if (configured != 0) return configured;
  try {
    return std::random_device{}();
  } catch (const std::exception&) {
    return static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  }
}

}  // namespace

// ---- CloudRunRestClient ----------------------------------------------------------------------

struct CloudRunRestClient::Call {
  Call(std::string method, std::string resource, std::string location, bool write = false)
      : method(std::move(method)),
        resource(std::move(resource)),
        location(std::move(location)),
        write(write) {}
  std::string Prefix() const { return absl::StrCat(method, " ", resource, ": "); }

  std::string method;    // "services.patch"
  std::string resource;  // named in error messages
  std::string location;  // "project/region": the rate-limit bucket
  bool write = false;
  HttpRequest request;  // without Authorization
};

struct CloudRunRestClient::Attempt {
  absl::StatusOr<HttpResponse> response;  // OK only for a 2xx answer
  bool retry = false;
  std::optional<absl::Duration> retry_after;
};

CloudRunRestClient::CloudRunRestClient(HttpTransport* transport, TokenSource* tokens,
                                       const Clock* clock, Sleeper* sleeper,
                                       CloudRunRestClientOptions options)
    : transport_(transport),
      tokens_(tokens),
      clock_(clock),
      sleeper_(sleeper),
      options_(std::move(options)),
      endpoint_(absl::EndsWith(options_.endpoint, "/") ? options_.endpoint
                                                       : options_.endpoint + "/"),
      random_(RandomSeed(options_.random_seed)) {}

std::string CloudRunRestClient::Url(const std::string& path) const {
  return absl::StrCat(endpoint_, path);
}

absl::Duration CloudRunRestClient::Backoff(int attempt) {
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
void CloudRunRestClient::WaitForRateLimit(const Call& call) {
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

CloudRunRestClient::Attempt CloudRunRestClient::SendOnce(const Call& call, int attempt) {
  Attempt out;
  absl::StatusOr<std::string> token = tokens_->AccessToken();
  if (!token.ok()) {
    out.response = absl::UnauthenticatedError(absl::StrCat(
        call.Prefix(), "no access token from ", tokens_->Name(), ": ", token.status().message()));
    return out;
  }
  HttpRequest request = call.request;
  if (!token->empty()) request.headers["Authorization"] = absl::StrCat("Bearer ", *token);
  const absl::Duration start = clock_->MonotonicNow();
  absl::StatusOr<HttpResponse> response = transport_->Send(request);
  ApiCall report{call.method, 0, absl::StatusCode::kOk, attempt, clock_->MonotonicNow() - start};
  if (!response.ok()) {
    absl::StatusCode code = response.status().code();
    out.retry =
        code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
    report.code = out.retry ? absl::StatusCode::kUnavailable : code;
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

absl::StatusOr<HttpResponse> CloudRunRestClient::Execute(const Call& call) {
  const int max_attempts = std::max(1, options_.max_attempts);
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

namespace {

// Parses a 2xx body; kInternal (without quoting it) when it is not a JSON object.
absl::StatusOr<Json> ParseBody(const std::string& prefix, const HttpResponse& response) {
  Json json = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::InternalError(
        absl::StrCat(prefix, "the ", response.status, " answer is not a JSON object"));
  }
  return json;
}

absl::Status CheckName(const std::string& method, const CloudRunServiceName& name) {
  if (name.project.empty() || name.region.empty() || name.service.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(method, " ", name.ResourceName(),
                                                   ": project, region and service are required"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LiveServicePage> CloudRunRestClient::ListServices(const std::string& project,
                                                                 const std::string& region,
                                                                 const std::string& page_token) {
  Call call("services.list", ParentName(project, region), absl::StrCat(project, "/", region));
  if (project.empty() || region.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(call.Prefix(), "project and region are required"));
  }
  call.request.method = "GET";
  call.request.url = Url(absl::StrCat("v2/", PercentEncode(call.resource, true),
                                      "/services?pageSize=", options_.page_size));
  if (!page_token.empty()) {
    absl::StrAppend(&call.request.url, "&pageToken=", PercentEncode(page_token, false));
  }
  call.request.timeout = options_.call_timeout;
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  absl::StatusOr<Json> json = ParseBody(call.Prefix(), *response);
  if (!json.ok()) return json.status();
  LiveServicePage page;
  const Json& services = Child(*json, "services");
  for (const Json& item : services) {
    if (services.is_array() && item.is_object()) page.services.push_back(ServiceFromJson(item));
  }
  page.next_page_token = Str(*json, "nextPageToken");
  return page;
}

absl::StatusOr<LiveService> CloudRunRestClient::GetService(const CloudRunServiceName& name) {
  if (absl::Status s = CheckName("services.get", name); !s.ok()) return s;
  Call call{"services.get", name.ResourceName(), absl::StrCat(name.project, "/", name.region)};
  call.request.method = "GET";
  call.request.url = Url(absl::StrCat("v2/", PercentEncode(call.resource, true)));
  call.request.timeout = options_.call_timeout;
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  absl::StatusOr<Json> json = ParseBody(call.Prefix(), *response);
  if (!json.ok()) return json.status();
  LiveService service = ServiceFromJson(*json);
  if (service.name.service.empty()) service.name = name;
  return service;
}

absl::StatusOr<OperationState> CloudRunRestClient::UpdateService(const ServiceUpdate& update) {
  if (absl::Status s = CheckName("services.patch", update.name); !s.ok()) return s;
  Call call{"services.patch", update.name.ResourceName(),
            absl::StrCat(update.name.project, "/", update.name.region), /*write=*/true};
  const std::string mask = UpdateMask(update);
  if (mask.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(call.Prefix(), "the update sets no field (template, traffic or annotations)"));
  }
  call.request.method = "PATCH";
  call.request.url = Url(
      absl::StrCat("v2/", PercentEncode(call.resource, true), "?updateMask=", mask,
                   "&allowMissing=true&validateOnly=", update.validate_only ? "true" : "false"));
  call.request.headers["Content-Type"] = "application/json";
  call.request.body = Dump(UpdateBody(update));
  call.request.timeout = options_.call_timeout;
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  absl::StatusOr<Json> json = ParseBody(call.Prefix(), *response);
  if (!json.ok()) return json.status();
  return OperationFromJson(*json);
}

absl::StatusOr<OperationState> CloudRunRestClient::GetOperation(const std::string& operation_name) {
  Call call("operations.get", operation_name, "");
  std::optional<std::string> location = LocationOfOperation(operation_name);
  if (!location.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(call.Prefix(), "want an operation name projects/P/locations/L/operations/ID"));
  }
  call.location = *location;
  call.request.method = "GET";
  call.request.url = Url(absl::StrCat("v2/", PercentEncode(operation_name, true)));
  call.request.timeout = options_.call_timeout;
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  absl::StatusOr<Json> json = ParseBody(call.Prefix(), *response);
  if (!json.ok()) return json.status();
  return OperationFromJson(*json);
}

absl::StatusOr<OperationState> CloudRunRestClient::WaitOperation(const std::string& name,
                                                                 absl::Duration timeout) {
  Call call("operations.wait", name, "");
  std::optional<std::string> location = LocationOfOperation(name);
  if (!location.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(call.Prefix(), "want an operation name projects/P/locations/L/operations/ID"));
  }
  call.location = *location;
  call.request.method = "POST";
  call.request.url = Url(absl::StrCat("v2/", PercentEncode(name, true), ":wait"));
  call.request.headers["Content-Type"] = "application/json";
  timeout = std::max(timeout, absl::ZeroDuration());
  call.request.body = Dump(Json{{"timeout", ProtoDuration(timeout)}});
  // The server holds the call for up to `timeout` before it answers.
  call.request.timeout = timeout + options_.call_timeout;
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  absl::StatusOr<Json> json = ParseBody(call.Prefix(), *response);
  if (!json.ok()) return json.status();
  return OperationFromJson(*json);
}

}  // namespace runway
