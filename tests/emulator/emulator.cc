#include "tests/emulator/emulator.h"

#include <algorithm>
#include <regex>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "controller/adapters/document_reader.h"
#include "tests/emulator/knative_view.h"
#include "tests/emulator/message_schema.h"

namespace runway::emulator {
namespace {

constexpr int kMaxJsonDepth = 64;
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

bool IsWrite(const std::string& method) {
  return method == "POST" || method == "PATCH" || method == "PUT" || method == "DELETE";
}

// Refuses bodies nested deeper than `limit` before any recursive code sees them.
bool NestsDeeperThan(const std::string& text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

// Parses a JSON request body; an empty body is an empty object when `empty_ok`.
absl::StatusOr<Json> ParseBody(const EmuRequest& request, bool empty_ok) {
  if (request.body.empty()) {
    if (empty_ok) return Json::object();
    return InvalidArgument("Invalid JSON payload received. The request body is empty.");
  }
  if (NestsDeeperThan(request.body, kMaxJsonDepth)) {
    return InvalidArgument(absl::StrCat("Invalid JSON payload received. Nesting deeper than ",
                                        kMaxJsonDepth, " levels."));
  }
  Json body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return InvalidArgument("Invalid JSON payload received. The body is not valid JSON.");
  }
  if (!body.is_object()) {
    return InvalidArgument("Invalid JSON payload received. The body must be a JSON object.");
  }
  return body;
}

std::string Query(const EmuRequest& request, const std::string& key) {
  auto it = request.query.find(key);
  return it == request.query.end() ? "" : it->second;
}

absl::StatusOr<bool> QueryBool(const EmuRequest& request, const std::string& key) {
  std::optional<bool> value = ParseQueryBool(Query(request, key));
  if (!value) {
    return InvalidField(key, absl::StrCat("'", Query(request, key), "' is not a boolean"));
  }
  return *value;
}

struct PageRange {
  size_t begin = 0, end = 0;
  std::string next_token;
};

absl::StatusOr<PageRange> Paginate(size_t total, const std::string& size_text,
                                   const std::string& token, const std::string& size_field,
                                   const std::string& token_field) {
  int size = kDefaultPageSize;
  if (!size_text.empty()) {
    if (!absl::SimpleAtoi(size_text, &size) || size < 0) {
      return InvalidField(size_field, absl::StrCat("'", size_text, "' is not a page size"));
    }
    if (size == 0) size = kDefaultPageSize;
    size = std::min(size, kMaxPageSize);
  }
  PageRange range;
  if (!token.empty()) {
    std::string decoded;
    int64_t offset = -1;
    if (!absl::Base64Unescape(token, &decoded) || !absl::StartsWith(decoded, "offset:") ||
        !absl::SimpleAtoi(decoded.substr(7), &offset) || offset < 0) {
      return InvalidField(token_field, "the page token is not one this server issued");
    }
    range.begin = std::min<size_t>(static_cast<size_t>(offset), total);
  }
  range.end = std::min(total, range.begin + static_cast<size_t>(size));
  if (range.end < total) range.next_token = Base64(absl::StrCat("offset:", range.end));
  return range;
}

std::string RegionFromHost(const std::string& host, const std::string& fallback) {
  // gcloud's regional host is "<region>-<override host>", e.g. us-central1-127.0.0.1:8080.
  static const std::regex kRegional("^([a-z]+-[a-z]+[0-9]+)-.+");
  std::smatch match;
  if (host.size() < 200 && std::regex_match(host, match, kRegional)) return match[1];
  return fallback;
}

absl::StatusCode CodeForHttp(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAborted;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 503:
      return absl::StatusCode::kUnavailable;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

HandlerResult Respond(EmuResponse response) {
  HandlerResult result;
  result.response = std::move(response);
  return result;
}

HandlerResult Error(const absl::Status& status) { return Respond(GoogleErrorResponse(status)); }

HandlerResult NotRouted(const EmuRequest& request) {
  return Error(absl::NotFoundError(absl::StrCat("The emulator does not serve ", request.method, " ",
                                                request.path, " (see docs/emulator.md)")));
}

HandlerResult MethodNotAllowed(const EmuRequest& request) {
  HandlerResult result = Error(absl::UnimplementedError(
      absl::StrCat("Method ", request.method, " is not supported on ", request.path)));
  result.response.status = 405;
  return result;
}

std::optional<absl::Duration> DurationField(const Json& body, const std::string& key) {
  if (!body.contains(key)) return std::nullopt;
  if (body[key].is_number()) return absl::Milliseconds(body[key].get<double>());
  if (body[key].is_string()) return ParseProtoDuration(body[key].get<std::string>());
  return std::nullopt;
}

absl::StatusOr<ReadinessRule> ReadinessRuleFromJson(const Json& json) {
  ReadinessRule rule;
  rule.image = json.value("image", "*");
  std::string outcome = json.value("outcome", "READY");
  if (outcome == "READY") {
    rule.outcome = ReadinessRule::Outcome::kReady;
  } else if (outcome == "NEVER") {
    rule.outcome = ReadinessRule::Outcome::kNever;
  } else if (outcome == "FAIL") {
    rule.outcome = ReadinessRule::Outcome::kFail;
  } else {
    return InvalidField("outcome", "use READY, NEVER or FAIL");
  }
  rule.reason = json.value("reason", rule.reason);
  rule.message = json.value("message", "");
  if (json.contains("delay")) {
    std::optional<absl::Duration> delay = DurationField(json, "delay");
    if (!delay) return InvalidField("delay", "use a duration such as \"2s\"");
    rule.delay = *delay;
  }
  rule.serve_status = json.value("serveStatus", 200);
  if (rule.serve_status < 100 || rule.serve_status > 599) {
    return InvalidField("serveStatus", "use an HTTP status from 100 to 599");
  }
  return rule;
}

Json ReadinessRuleToJson(const ReadinessRule& rule) {
  const char* outcomes[] = {"READY", "NEVER", "FAIL"};
  return {{"image", rule.image},
          {"outcome", outcomes[static_cast<int>(rule.outcome)]},
          {"reason", rule.reason},
          {"message", rule.message},
          {"delay", FormatProtoDuration(rule.delay)},
          {"serveStatus", rule.serve_status}};
}

absl::StatusOr<BuildRule> BuildRuleFromJson(const Json& json, const BuildConfig& config) {
  BuildRule rule;
  rule.source = json.value("source", "*");
  rule.outcome = json.value("outcome", "SUCCESS");
  if (rule.outcome != "SUCCESS" && rule.outcome != "FAILURE" && rule.outcome != "INTERNAL_ERROR" &&
      rule.outcome != "TIMEOUT") {
    return InvalidField("outcome", "use SUCCESS, FAILURE, INTERNAL_ERROR or TIMEOUT");
  }
  rule.queue_for = DurationField(json, "queueFor").value_or(config.queue_for);
  rule.work_for = DurationField(json, "workFor").value_or(config.work_for);
  rule.failure_type = json.value("failureType", rule.failure_type);
  rule.failure_detail = json.value("failureDetail", "");
  return rule;
}

Json BuildRuleToJson(const BuildRule& rule) {
  return {{"source", rule.source},
          {"outcome", rule.outcome},
          {"queueFor", FormatProtoDuration(rule.queue_for)},
          {"workFor", FormatProtoDuration(rule.work_for)},
          {"failureType", rule.failure_type},
          {"failureDetail", rule.failure_detail}};
}

absl::StatusOr<FaultRule> FaultRuleFromJson(const Json& json) {
  FaultRule rule;
  rule.method = json.value("method", "*");
  rule.path = json.value("path", "*");
  rule.remaining = json.value("count", 1);
  if (rule.remaining == 0 || rule.remaining < -1) {
    return InvalidField("count", "use a positive count, or -1 for every request");
  }
  std::string action = json.value("action", "error");
  if (action == "error") {
    rule.action = FaultRule::Action::kError;
  } else if (action == "latency") {
    rule.action = FaultRule::Action::kLatency;
  } else if (action == "stall") {
    rule.action = FaultRule::Action::kStall;
  } else if (action == "close") {
    rule.action = FaultRule::Action::kClose;
  } else if (action == "refuse") {
    rule.action = FaultRule::Action::kRefuse;
  } else {
    return InvalidField("action", "use error, latency, stall, close or refuse");
  }
  rule.http_status = json.value("code", 503);
  if (rule.http_status < 400 || rule.http_status > 599) {
    return InvalidField("code", "use an HTTP error status from 400 to 599");
  }
  rule.message = json.value("message", "");
  rule.retry_after_seconds = json.value("retryAfter", -1);
  if (json.contains("latency")) {
    std::optional<absl::Duration> latency = DurationField(json, "latency");
    if (!latency) return InvalidField("latency", "use a duration such as \"1.5s\"");
    rule.latency = *latency;
  }
  if (json.contains("duration")) {
    std::optional<absl::Duration> duration = DurationField(json, "duration");
    if (!duration) return InvalidField("duration", "use a duration such as \"5s\"");
    rule.duration = *duration;
  }
  return rule;
}

Json FaultRuleToJson(const FaultRule& rule) {
  const char* actions[] = {"error", "latency", "stall", "close", "refuse"};
  Json out = {{"method", rule.method},
              {"path", rule.path},
              {"count", rule.remaining},
              {"action", actions[static_cast<int>(rule.action)]},
              {"code", rule.http_status},
              {"latency", FormatProtoDuration(rule.latency)},
              {"duration", FormatProtoDuration(rule.duration)}};
  if (!rule.message.empty()) out["message"] = rule.message;
  if (rule.retry_after_seconds >= 0) out["retryAfter"] = rule.retry_after_seconds;
  return out;
}

// One rule or a list of them: {"rules":[...]} / [...] / {...}.
std::vector<Json> RuleItems(const Json& body, const std::string& key) {
  if (body.is_array()) return body.get<std::vector<Json>>();
  if (body.is_object() && body.contains(key) && body[key].is_array()) {
    return body[key].get<std::vector<Json>>();
  }
  return {body};
}

// The admin endpoints that hold a list of rules: POST adds one rule, a list, or {key: [...]} (all
// or nothing), DELETE clears, and every call answers with the whole list under `list_key`.
template <typename Rule, typename BodyOf, typename Parse, typename Render>
HandlerResult RuleEndpoint(const std::string& method, BodyOf& body_of, std::vector<Rule>& rules,
                           const std::string& body_key, const std::string& list_key, Parse parse,
                           Render render) {
  if (method == "DELETE") rules.clear();
  if (method == "POST") {
    absl::StatusOr<Json> body = body_of(false);
    if (!body.ok()) return Error(body.status());
    std::vector<Rule> added;
    for (const Json& item : RuleItems(*body, body_key)) {
      absl::StatusOr<Rule> rule = parse(item);
      if (!rule.ok()) return Error(rule.status());
      added.push_back(*rule);
    }
    rules.insert(rules.end(), added.begin(), added.end());
  }
  Json list = Json::array();
  for (const Rule& rule : rules) list.push_back(render(rule));
  return Respond(JsonResponse({{list_key, list}}));
}

std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

bool IsMetricName(const std::string& name) {
  static const std::regex kName("^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$");
  return std::regex_match(name, kName);
}

// JSON seeds (the usual case for large ones) skip the much slower YAML parser.
DocumentFormat SeedFormat(const std::string& text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string::npos && text[first] == '{' ? DocumentFormat::kJson
                                                          : DocumentFormat::kYaml;
}

}  // namespace

Emulator::Emulator(const Clock* clock, uint64_t seed)
    : clock_(clock), run_(clock, seed), build_(clock, seed ^ 0x9e3779b97f4a7c15ULL) {}

void Emulator::SetBaseUrl(const std::string& base_url) {
  absl::MutexLock lock(&mutex_);
  run_.config().base_url = base_url;
}

HandlerResult Emulator::Handle(const EmuRequest& request) {
  absl::MutexLock lock(&mutex_);
  std::string route = "unrouted";
  std::string fault;
  bool admin = absl::StartsWith(request.path, "/_emulator/") || request.path == "/_emulator";
  if (!admin) {
    if (std::optional<HandlerResult> faulted = ApplyFault(request, fault)) {
      Record(request, "fault", faulted->response.status, fault);
      return *faulted;
    }
  }
  HandlerResult result;
  if (request.body.size() > max_body_bytes_) {
    result = Error(
        InvalidArgument(absl::StrCat("The request body of ", request.body.size(),
                                     " bytes exceeds the limit of ", max_body_bytes_, " bytes.")));
  } else {
    result = Dispatch(request, route);
  }
  if (!admin) Record(request, route, result.response.status, fault);
  return result;
}

std::optional<HandlerResult> Emulator::ApplyFault(const EmuRequest& request, std::string& fault) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    FaultRule& rule = *it;
    if (!GlobMatch(rule.method, request.method) || !GlobMatch(rule.path, request.path)) continue;
    FaultRule applied = rule;
    if (rule.remaining > 0 && --rule.remaining == 0) faults_.erase(it);
    HandlerResult result;
    switch (applied.action) {
      case FaultRule::Action::kError: {
        fault = "error";
        std::string message = applied.message;
        if (message.empty() && applied.http_status == 429) {
          message =
              "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per "
              "minute per region' of service 'run.googleapis.com' (injected by the emulator)";
        }
        if (message.empty()) message = "Injected fault (the emulator's fault injection).";
        result = Error(absl::Status(CodeForHttp(applied.http_status), message));
        result.response.status = applied.http_status;
        if (applied.retry_after_seconds >= 0) {
          result.response.headers.emplace_back("Retry-After",
                                               absl::StrCat(applied.retry_after_seconds));
        }
        return result;
      }
      case FaultRule::Action::kLatency: {
        fault = "latency";
        std::string route;
        result = Dispatch(request, route);
        result.delay += applied.latency;
        Record(request, route, result.response.status, fault);
        fault = "latency-recorded";
        return result;
      }
      case FaultRule::Action::kStall:
        fault = "stall";
        result.action = ConnectionAction::kStall;
        result.hold = applied.duration;
        result.response.status = 0;
        return result;
      case FaultRule::Action::kClose:
        fault = "close";
        result.action = ConnectionAction::kClose;
        result.response.status = 0;
        return result;
      case FaultRule::Action::kRefuse:
        fault = "refuse";
        result.action = ConnectionAction::kClose;
        result.refuse_for = applied.duration;
        result.response.status = 0;
        return result;
    }
  }
  return std::nullopt;
}

void Emulator::Record(const EmuRequest& request, const std::string& route, int status,
                      const std::string& fault) {
  if (fault == "latency-recorded") return;
  RequestLogEntry entry;
  entry.seq = ++log_seq_;
  entry.time = clock_->Now();
  entry.method = request.method;
  entry.path = request.path;
  entry.query = request.raw_query;
  entry.route = route;
  entry.status = status;
  entry.fault = fault;
  log_.push_back(std::move(entry));
  if (log_.size() > kMaxLogEntries) log_.pop_front();
  std::string method_route = absl::StrCat(request.method, " ", route);
  ++counters_.by_route[method_route];
  if (counters_.by_path.size() < 100000 || counters_.by_path.count(request.path)) {
    ++counters_.by_path[absl::StrCat(request.method, " ", request.path)];
  }
  ++served_[absl::StrCat("route\t", route, "\t", status)];
  bool api = absl::StartsWith(route, "v2.") || absl::StartsWith(route, "v1.") ||
             absl::StartsWith(route, "knative.") || absl::StartsWith(route, "cloudbuild.") ||
             absl::StartsWith(route, "crm.");
  if (api || route == "fault") {
    if (IsWrite(request.method)) {
      ++counters_.writes;
    } else {
      ++counters_.reads;
    }
  }
}

HandlerResult Emulator::Dispatch(const EmuRequest& request, std::string& route) {
  if (request.method == "CONNECT") {
    route = "connect";
    return Error(absl::UnimplementedError(absl::StrCat(
        "The emulator is not a tunnelling proxy; a client tried to reach ", request.host,
        " through it. Point that API's endpoint override at the emulator too.")));
  }
  std::vector<std::string> parts = absl::StrSplit(request.path, '/', absl::SkipEmpty());
  if (parts.empty()) return NotRouted(request);
  const std::string& head = parts[0];
  if (head == "_emulator") return HandleAdmin(request, parts, route);
  if (head == "metrics" && parts.size() == 1) {
    route = "metrics";
    return Respond(Metrics());
  }
  if (head == "_run") return HandleServing(request, parts, false, route);
  if (head == "_tag") return HandleServing(request, parts, true, route);
  if (head == "v2" && parts.size() >= 6 && parts[1] == "projects" && parts[3] == "locations") {
    return HandleCloudRunV2(request, parts, route);
  }
  if (head == "apis" && parts.size() >= 6 && parts[1] == "serving.knative.dev" &&
      parts[2] == "v1" && parts[3] == "namespaces") {
    return HandleKnative(request, parts, route);
  }
  if (head == "v1" && parts.size() >= 2 && parts[1] == "operations") {
    return HandleCloudBuild(request, parts, route);
  }
  if (head == "v1" && parts.size() >= 3 && parts[1] == "projects") {
    if (parts.size() == 3 && request.method == "GET") {
      route = "crm.projects.get";
      const std::string& project = parts[2];
      int64_t number = 0;
      std::string digits = Sha256Hex(project).substr(0, 10);
      for (char c : digits) number = number * 10 + (c % 10);
      return Respond(JsonResponse({{"projectId", project},
                                   {"projectNumber", absl::StrCat(100000000000 + number)},
                                   {"name", project},
                                   {"lifecycleState", "ACTIVE"}}));
    }
    if (parts.size() >= 4 && parts[3].rfind("builds", 0) == 0) {
      return HandleCloudBuild(request, parts, route);
    }
    if (parts.size() >= 6 && parts[3] == "locations") {
      const std::string collection = parts[5].substr(0, parts[5].find(':'));
      if (collection == "builds") return HandleCloudBuild(request, parts, route);
      if (collection == "operations" && parts.size() >= 7) {
        std::string name = absl::StrJoin(parts.begin() + 1, parts.end(), "/");
        name =
            name.substr(0, name.rfind(':') == std::string::npos || name.rfind(':') < name.rfind('/')
                               ? name.size()
                               : name.rfind(':'));
        if (build_.GetOperation(name).ok()) return HandleCloudBuild(request, parts, route);
      }
      return HandleRunV1Platform(request, parts, route);
    }
  }
  return NotRouted(request);
}

Json Emulator::OperationJson(const OperationRecord& operation) {
  Json out = {{"name", operation.name}, {"metadata", operation.metadata}};
  if (operation.done) {
    out["done"] = true;
    if (operation.error) {
      out["error"] = {{"code", static_cast<int>(operation.error->code())},
                      {"message", std::string(operation.error->message())}};
    } else {
      out["response"] = operation.response;
    }
  }
  return out;
}

HandlerResult Emulator::WaitOperation(const std::string& name, absl::Duration timeout) {
  absl::StatusOr<const OperationRecord*> operation = run_.GetOperation(name);
  if (!operation.ok()) return Error(operation.status());
  absl::Duration remaining = run_.OperationDueTime(name) - clock_->Now();
  if ((*operation)->done || remaining <= absl::ZeroDuration()) {
    return Respond(JsonResponse(OperationJson(**operation)));
  }
  HandlerResult result;
  result.delay = std::min(remaining + absl::Milliseconds(1), timeout);
  result.response = JsonResponse(OperationJson(**operation));
  result.after_delay = [this, name]() {
    absl::MutexLock lock(&mutex_);
    absl::StatusOr<const OperationRecord*> later = run_.GetOperation(name);
    if (!later.ok()) return GoogleErrorResponse(later.status());
    return JsonResponse(OperationJson(**later));
  };
  return result;
}

HandlerResult Emulator::HandleCloudRunV2(const EmuRequest& request,
                                         const std::vector<std::string>& parts,
                                         std::string& route) {
  const std::string& project = parts[2];
  const std::string& location = parts[4];
  const std::string collection = parts[5];
  const std::string& method = request.method;
  if (collection == "services") {
    if (parts.size() == 6) {
      if (method == "GET") {
        route = "v2.services.list";
        if (location == "-") {
          return Error(InvalidField("parent", "services.list needs a region, not '-'"));
        }
        std::vector<const ServiceRecord*> services = run_.ListServices(project, location);
        absl::StatusOr<PageRange> page =
            Paginate(services.size(), Query(request, "pageSize"), Query(request, "pageToken"),
                     "page_size", "page_token");
        if (!page.ok()) return Error(page.status());
        Json items = Json::array();
        for (size_t i = page->begin; i < page->end; ++i)
          items.push_back(run_.ServiceV2(*services[i]));
        Json body = {{"services", items}};
        if (!page->next_token.empty()) body["nextPageToken"] = page->next_token;
        return Respond(JsonResponse(body));
      }
      if (method == "POST") {
        route = "v2.services.create";
        absl::StatusOr<Json> body = ParseBody(request, false);
        if (!body.ok()) return Error(body.status());
        if (absl::Status s = CheckMessage(*body, "Service", "service"); !s.ok()) return Error(s);
        absl::StatusOr<bool> validate_only = QueryBool(request, "validateOnly");
        if (!validate_only.ok()) return Error(validate_only.status());
        ServiceWrite write;
        write.project = project;
        write.location = location;
        write.id = Query(request, "serviceId");
        if (write.id.empty()) {
          return Error(InvalidField("service_id", "serviceId is required: add ?serviceId=NAME"));
        }
        write.fields = *body;
        write.allow_create = write.must_create = write.replace_all = true;
        write.validate_only = *validate_only;
        absl::StatusOr<WriteResult> result = run_.WriteService(write);
        if (!result.ok()) return Error(result.status());
        if (write.validate_only) {
          return Respond(JsonResponse({{"name", absl::StrCat("projects/", project, "/locations/",
                                                             location, "/operations/validate")},
                                       {"done", true},
                                       {"response", result->preview}}));
        }
        return Respond(JsonResponse(OperationJson(*result->operation)));
      }
      return MethodNotAllowed(request);
    }
    std::string service = parts[6];
    std::string verb;
    if (size_t colon = service.find(':'); colon != std::string::npos) {
      verb = service.substr(colon + 1);
      service = service.substr(0, colon);
    }
    if (parts.size() == 7 && !verb.empty()) {
      route = absl::StrCat("v2.services.", verb);
      absl::StatusOr<const ServiceRecord*> record = run_.GetService(project, location, service);
      if (!record.ok()) return Error(record.status());
      if (verb == "getIamPolicy") {
        Json policy = (*record)->iam_policy;
        if (!policy.contains("etag")) policy["etag"] = "ACAB";
        return Respond(JsonResponse(policy));
      }
      absl::StatusOr<Json> body = ParseBody(request, true);
      if (!body.ok()) return Error(body.status());
      if (verb == "setIamPolicy" && method == "POST") {
        if (absl::Status s = run_.SetIamPolicy(project, location, service,
                                               body->value("policy", Json::object()));
            !s.ok()) {
          return Error(s);
        }
        return Respond(JsonResponse((*record)->iam_policy));
      }
      if (verb == "testIamPermissions" && method == "POST") {
        return Respond(JsonResponse({{"permissions", body->value("permissions", Json::array())}}));
      }
      return NotRouted(request);
    }
    if (parts.size() == 7) {
      if (method == "GET") {
        route = "v2.services.get";
        absl::StatusOr<const ServiceRecord*> record = run_.GetService(project, location, service);
        if (!record.ok()) return Error(record.status());
        return Respond(JsonResponse(run_.ServiceV2(**record)));
      }
      if (method == "PATCH") {
        route = "v2.services.patch";
        absl::StatusOr<Json> body = ParseBody(request, false);
        if (!body.ok()) return Error(body.status());
        if (absl::Status s = CheckMessage(*body, "Service", "service"); !s.ok()) return Error(s);
        absl::StatusOr<bool> validate_only = QueryBool(request, "validateOnly");
        if (!validate_only.ok()) return Error(validate_only.status());
        absl::StatusOr<bool> allow_missing = QueryBool(request, "allowMissing");
        if (!allow_missing.ok()) return Error(allow_missing.status());
        ServiceWrite write;
        write.project = project;
        write.location = location;
        write.id = service;
        std::string expected_name =
            absl::StrCat("projects/", project, "/locations/", location, "/services/", service);
        std::string body_name = body->value("name", "");
        if (!body_name.empty() && body_name != expected_name) {
          return Error(InvalidField(
              "service.name",
              absl::StrCat("'", body_name, "' does not match the URL ('", expected_name, "')")));
        }
        write.fields = *body;
        write.etag = body->value("etag", "");
        for (absl::string_view field :
             absl::StrSplit(Query(request, "updateMask"), ',', absl::SkipWhitespace())) {
          write.mask.insert(std::string(absl::StripAsciiWhitespace(field)));
        }
        write.allow_create = *allow_missing;
        write.validate_only = *validate_only;
        absl::StatusOr<WriteResult> result = run_.WriteService(write);
        if (!result.ok()) return Error(result.status());
        if (write.validate_only) {
          return Respond(JsonResponse({{"name", absl::StrCat("projects/", project, "/locations/",
                                                             location, "/operations/validate")},
                                       {"done", true},
                                       {"response", result->preview}}));
        }
        return Respond(JsonResponse(OperationJson(*result->operation)));
      }
      if (method == "DELETE") {
        route = "v2.services.delete";
        absl::StatusOr<bool> validate_only = QueryBool(request, "validateOnly");
        if (!validate_only.ok()) return Error(validate_only.status());
        Json view;
        absl::StatusOr<const OperationRecord*> operation = run_.DeleteService(
            project, location, service, Query(request, "etag"), *validate_only, &view);
        if (!operation.ok()) return Error(operation.status());
        if (*validate_only) return Respond(JsonResponse({{"done", true}, {"response", view}}));
        return Respond(JsonResponse(OperationJson(**operation)));
      }
      return MethodNotAllowed(request);
    }
    if (parts[7] != "revisions") return NotRouted(request);
    if (parts.size() == 8) {
      if (method != "GET") return MethodNotAllowed(request);
      route = "v2.revisions.list";
      std::vector<std::pair<const ServiceRecord*, const RevisionRecord*>> revisions;
      std::vector<const ServiceRecord*> owners;
      if (service == "-") {
        owners = run_.ListServices(project, location);
      } else {
        absl::StatusOr<const ServiceRecord*> record = run_.GetService(project, location, service);
        if (!record.ok()) return Error(record.status());
        owners.push_back(*record);
      }
      // Newest first; revisions created at the same instant keep creation order, reversed.
      for (const ServiceRecord* owner : owners) {
        for (auto it = owner->revision_order.rbegin(); it != owner->revision_order.rend(); ++it) {
          revisions.emplace_back(owner, &owner->revisions.at(*it));
        }
      }
      std::stable_sort(revisions.begin(), revisions.end(), [](const auto& a, const auto& b) {
        return a.second->create_time > b.second->create_time;
      });
      absl::StatusOr<PageRange> page =
          Paginate(revisions.size(), Query(request, "pageSize"), Query(request, "pageToken"),
                   "page_size", "page_token");
      if (!page.ok()) return Error(page.status());
      Json items = Json::array();
      for (size_t i = page->begin; i < page->end; ++i) {
        items.push_back(run_.RevisionV2(*revisions[i].first, *revisions[i].second));
      }
      Json body = {{"revisions", items}};
      if (!page->next_token.empty()) body["nextPageToken"] = page->next_token;
      return Respond(JsonResponse(body));
    }
    if (parts.size() == 9) {
      const std::string& revision = parts[8];
      if (method == "GET") {
        route = "v2.revisions.get";
        auto found = run_.GetRevision(project, location, service, revision);
        if (!found.ok()) return Error(found.status());
        return Respond(JsonResponse(run_.RevisionV2(*found->first, *found->second)));
      }
      if (method == "DELETE") {
        route = "v2.revisions.delete";
        absl::StatusOr<bool> validate_only = QueryBool(request, "validateOnly");
        if (!validate_only.ok()) return Error(validate_only.status());
        Json view;
        auto operation =
            run_.DeleteRevision(project, location, service, revision, *validate_only, &view);
        if (!operation.ok()) return Error(operation.status());
        if (*validate_only) return Respond(JsonResponse({{"done", true}, {"response", view}}));
        return Respond(JsonResponse(OperationJson(**operation)));
      }
      return MethodNotAllowed(request);
    }
    return NotRouted(request);
  }
  if (collection == "operations") {
    if (parts.size() == 6) {
      if (method != "GET") return MethodNotAllowed(request);
      route = "v2.operations.list";
      std::vector<const OperationRecord*> operations = run_.ListOperations(project, location);
      absl::StatusOr<PageRange> page =
          Paginate(operations.size(), Query(request, "pageSize"), Query(request, "pageToken"),
                   "page_size", "page_token");
      if (!page.ok()) return Error(page.status());
      Json items = Json::array();
      for (size_t i = page->begin; i < page->end; ++i)
        items.push_back(OperationJson(*operations[i]));
      Json body = {{"operations", items}};
      if (!page->next_token.empty()) body["nextPageToken"] = page->next_token;
      return Respond(JsonResponse(body));
    }
    if (parts.size() == 7) {
      std::string id = parts[6];
      std::string verb;
      if (size_t colon = id.find(':'); colon != std::string::npos) {
        verb = id.substr(colon + 1);
        id = id.substr(0, colon);
      }
      std::string name =
          absl::StrCat("projects/", project, "/locations/", location, "/operations/", id);
      if (verb == "wait" && method == "POST") {
        route = "v2.operations.wait";
        absl::StatusOr<Json> body = ParseBody(request, true);
        if (!body.ok()) return Error(body.status());
        absl::Duration timeout = absl::Seconds(30);
        if (body->contains("timeout")) {
          std::optional<absl::Duration> parsed = DurationField(*body, "timeout");
          if (!parsed) return Error(InvalidField("timeout", "use a duration such as \"30s\""));
          timeout = std::min(*parsed, absl::Minutes(5));
        }
        return WaitOperation(name, timeout);
      }
      if (!verb.empty()) return NotRouted(request);
      if (method == "GET") {
        route = "v2.operations.get";
        absl::StatusOr<const OperationRecord*> operation = run_.GetOperation(name);
        if (!operation.ok()) return Error(operation.status());
        return Respond(JsonResponse(OperationJson(**operation)));
      }
      if (method == "DELETE") {
        route = "v2.operations.delete";
        if (absl::Status s = run_.DeleteOperation(name); !s.ok()) return Error(s);
        return Respond(JsonResponse(Json::object()));
      }
      return MethodNotAllowed(request);
    }
  }
  return NotRouted(request);
}

namespace {

// Shared by the Knative paths and the v1 "one platform" paths.
struct V1Target {
  std::string project, region, collection, name, verb;
};

}  // namespace

HandlerResult Emulator::HandleKnative(const EmuRequest& request,
                                      const std::vector<std::string>& parts, std::string& route) {
  // apis/serving.knative.dev/v1/namespaces/{ns}/{collection}[/{name}]
  std::vector<std::string> platform = {"v1", "projects", parts[4], "locations",
                                       RegionFromHost(request.host, default_region_)};
  for (size_t i = 5; i < parts.size(); ++i) platform.push_back(parts[i]);
  std::string inner;
  HandlerResult result = HandleRunV1Platform(request, platform, inner);
  route = absl::StrCat("knative.", inner.substr(inner.find('.') + 1));
  return result;
}

HandlerResult Emulator::HandleRunV1Platform(const EmuRequest& request,
                                            const std::vector<std::string>& parts,
                                            std::string& route) {
  // v1/projects/{p}/locations/{l}/{collection}[/{name}[:verb]]
  const std::string& project = parts[2];
  const std::string& region = parts[4];
  const std::string& collection = parts[5];
  const std::string& method = request.method;
  std::string name, verb;
  if (parts.size() >= 7) {
    name = parts[6];
    if (size_t colon = name.find(':'); colon != std::string::npos) {
      verb = name.substr(colon + 1);
      name = name.substr(0, colon);
    }
  }
  if (parts.size() > 7) return NotRouted(request);
  if (collection == "services") {
    if (parts.size() == 6) {
      if (method == "GET") {
        route = "v1.services.list";
        std::string selector = Query(request, "labelSelector");
        Json items = Json::array();
        for (const ServiceRecord* service : run_.ListServices(project, region)) {
          Json item = KnativeService(run_, *service);
          if (selector.empty() || MatchesLabelSelector(selector, item["metadata"]["labels"])) {
            items.push_back(std::move(item));
          }
        }
        return Respond(JsonResponse(KnativeList("ServiceList", items, "")));
      }
      if (method == "POST") {
        route = "v1.services.create";
        if (region == "-") return Error(InvalidField("parent", "create needs a region"));
        absl::StatusOr<Json> body = ParseBody(request, false);
        if (!body.ok()) return Error(body.status());
        absl::StatusOr<ServiceWrite> write = KnativeServiceWrite(*body, project, region, "");
        if (!write.ok()) return Error(write.status());
        write->allow_create = write->must_create = true;
        write->validate_only = Query(request, "dryRun") == "All";
        absl::StatusOr<WriteResult> result = run_.WriteService(*write);
        if (!result.ok()) return Error(KnativeWriteError(result.status()));
        if (write->validate_only) return Respond(JsonResponse(result->preview));
        return Respond(JsonResponse(KnativeService(run_, *result->service)));
      }
      return MethodNotAllowed(request);
    }
    if (!verb.empty()) {
      route = absl::StrCat("v1.services.", verb);
      if (verb == "testIamPermissions" && method == "POST") {
        // gcloud asks before creating a service, so the service may not exist yet.
        absl::StatusOr<Json> body = ParseBody(request, true);
        if (!body.ok()) return Error(body.status());
        return Respond(JsonResponse({{"permissions", body->value("permissions", Json::array())}}));
      }
      absl::StatusOr<const ServiceRecord*> record = run_.GetService(project, region, name);
      if (!record.ok()) return Error(record.status());
      if (verb == "getIamPolicy") {
        Json policy = (*record)->iam_policy;
        if (!policy.contains("etag")) policy["etag"] = "ACAB";
        return Respond(JsonResponse(policy));
      }
      if (verb == "setIamPolicy" && method == "POST") {
        absl::StatusOr<Json> body = ParseBody(request, false);
        if (!body.ok()) return Error(body.status());
        if (absl::Status s =
                run_.SetIamPolicy(project, region, name, body->value("policy", Json::object()));
            !s.ok()) {
          return Error(s);
        }
        return Respond(JsonResponse((*record)->iam_policy));
      }
      return NotRouted(request);
    }
    if (method == "GET") {
      route = "v1.services.get";
      absl::StatusOr<const ServiceRecord*> record = run_.GetService(project, region, name);
      if (!record.ok()) return Error(record.status());
      return Respond(JsonResponse(KnativeService(run_, **record)));
    }
    if (method == "PUT") {
      route = "v1.services.replace";
      absl::StatusOr<Json> body = ParseBody(request, false);
      if (!body.ok()) return Error(body.status());
      absl::StatusOr<ServiceWrite> write = KnativeServiceWrite(*body, project, region, name);
      if (!write.ok()) return Error(write.status());
      write->validate_only = Query(request, "dryRun") == "All";
      absl::StatusOr<WriteResult> result = run_.WriteService(*write);
      if (!result.ok()) return Error(KnativeWriteError(result.status()));
      if (write->validate_only) return Respond(JsonResponse(result->preview));
      return Respond(JsonResponse(KnativeService(run_, *result->service)));
    }
    if (method == "DELETE") {
      route = "v1.services.delete";
      Json view;
      absl::StatusOr<const ServiceRecord*> record = run_.GetService(project, region, name);
      if (!record.ok()) return Error(record.status());
      std::string uid = (*record)->uid;
      absl::StatusOr<const OperationRecord*> operation =
          run_.DeleteService(project, region, name, "", Query(request, "dryRun") == "All", &view);
      if (!operation.ok()) return Error(operation.status());
      return Respond(JsonResponse(KnativeDeleteStatus("services", name, uid)));
    }
    return MethodNotAllowed(request);
  }
  if (collection == "revisions") {
    if (parts.size() == 6) {
      if (method != "GET") return MethodNotAllowed(request);
      route = "v1.revisions.list";
      std::string selector = Query(request, "labelSelector");
      std::vector<std::pair<const ServiceRecord*, const RevisionRecord*>> revisions;
      for (const ServiceRecord* service : run_.ListServices(project, region)) {
        for (auto it = service->revision_order.rbegin(); it != service->revision_order.rend();
             ++it) {
          revisions.emplace_back(service, &service->revisions.at(*it));
        }
      }
      std::stable_sort(revisions.begin(), revisions.end(), [](const auto& a, const auto& b) {
        return a.second->create_time > b.second->create_time;
      });
      Json items = Json::array();
      for (const auto& [service, revision] : revisions) {
        Json item = KnativeRevision(run_, *service, *revision);
        if (selector.empty() || MatchesLabelSelector(selector, item["metadata"]["labels"])) {
          items.push_back(std::move(item));
        }
      }
      return Respond(JsonResponse(KnativeList("RevisionList", items, "")));
    }
    auto found = run_.GetRevision(project, region, "", name);
    if (method == "GET") {
      route = "v1.revisions.get";
      if (!found.ok()) return Error(found.status());
      return Respond(JsonResponse(KnativeRevision(run_, *found->first, *found->second)));
    }
    if (method == "DELETE") {
      route = "v1.revisions.delete";
      if (!found.ok()) return Error(found.status());
      std::string uid = found->second->uid;
      Json view;
      auto operation = run_.DeleteRevision(project, region, found->first->id, name,
                                           Query(request, "dryRun") == "All", &view);
      if (!operation.ok()) return Error(operation.status());
      return Respond(JsonResponse(KnativeDeleteStatus("revisions", name, uid)));
    }
    return MethodNotAllowed(request);
  }
  if (collection == "operations" && parts.size() == 7) {
    std::string op_name =
        absl::StrCat("projects/", project, "/locations/", region, "/operations/", name);
    route = "v1.operations.get";
    absl::StatusOr<const OperationRecord*> operation = run_.GetOperation(op_name);
    if (!operation.ok()) return Error(operation.status());
    return Respond(JsonResponse(OperationJson(**operation)));
  }
  return NotRouted(request);
}

HandlerResult Emulator::HandleCloudBuild(const EmuRequest& request,
                                         const std::vector<std::string>& parts,
                                         std::string& route) {
  const std::string& method = request.method;
  if (parts[1] == "operations" ||
      (parts.size() >= 7 && parts[3] == "locations" && parts[5] == "operations")) {
    route = "cloudbuild.operations.get";
    std::string name = absl::StrJoin(parts.begin() + 1, parts.end(), "/");
    if (method != "GET") return MethodNotAllowed(request);
    absl::StatusOr<Json> operation = build_.GetOperation(name);
    if (!operation.ok()) return Error(operation.status());
    return Respond(JsonResponse(*operation));
  }
  // v1/projects/{p}/builds[/{id}[:cancel]] or v1/projects/{p}/locations/{l}/builds[/...]
  const std::string& project = parts[2];
  std::string location = "global";
  size_t index = 3;
  if (parts[3] == "locations") {
    if (parts.size() < 6) return NotRouted(request);
    location = parts[4];
    index = 5;
  }
  if (parts[index] != "builds") return NotRouted(request);
  if (parts.size() == index + 1) {
    if (method == "GET") {
      route = "cloudbuild.builds.list";
      int page_size = 0;
      std::string size_text = Query(request, "pageSize");
      if (!size_text.empty() && !absl::SimpleAtoi(size_text, &page_size)) {
        return Error(InvalidField("page_size", "must be an integer"));
      }
      absl::StatusOr<Json> list = build_.List(project, location, Query(request, "filter"),
                                              page_size, Query(request, "pageToken"));
      if (!list.ok()) return Error(list.status());
      return Respond(JsonResponse(*list));
    }
    if (method == "POST") {
      route = "cloudbuild.builds.create";
      absl::StatusOr<Json> body = ParseBody(request, false);
      if (!body.ok()) return Error(body.status());
      absl::StatusOr<Json> operation = build_.Create(project, location, *body);
      if (!operation.ok()) return Error(operation.status());
      return Respond(JsonResponse(*operation));
    }
    return MethodNotAllowed(request);
  }
  if (parts.size() != index + 2) return NotRouted(request);
  std::string id = parts[index + 1];
  std::string verb;
  if (size_t colon = id.find(':'); colon != std::string::npos) {
    verb = id.substr(colon + 1);
    id = id.substr(0, colon);
  }
  if (verb.empty() && method == "GET") {
    route = "cloudbuild.builds.get";
    absl::StatusOr<Json> build = build_.Get(project, location, id);
    if (!build.ok()) return Error(build.status());
    return Respond(JsonResponse(*build));
  }
  if (verb == "cancel" && method == "POST") {
    route = "cloudbuild.builds.cancel";
    absl::StatusOr<Json> build = build_.Cancel(project, location, id);
    if (!build.ok()) return Error(build.status());
    return Respond(JsonResponse(*build));
  }
  return NotRouted(request);
}

HandlerResult Emulator::HandleServing(const EmuRequest& /*request*/,
                                      const std::vector<std::string>& parts, bool by_tag,
                                      std::string& route) {
  route = by_tag ? "serve.tag" : "serve.service";
  size_t needed = by_tag ? 5 : 4;
  EmuResponse response;
  response.content_type = "application/json";
  if (parts.size() < needed) {
    response.status = 404;
    response.body = R"({"error":"expected /_run/PROJECT/REGION/SERVICE or /_tag/.../TAG"})";
    return Respond(response);
  }
  absl::StatusOr<const ServiceRecord*> record = run_.GetService(parts[1], parts[2], parts[3]);
  if (!record.ok()) return Error(record.status());
  const ServiceRecord& service = **record;
  std::string revision, tag;
  if (by_tag) {
    tag = parts[4];
    for (const Json& t : service.traffic_statuses) {
      if (t.value("tag", "") == tag) revision = t.value("revision", "");
    }
  } else {
    // Deterministic weighted choice: the n-th request goes where n falls in the cumulative split.
    int64_t& counter = served_[absl::StrCat("rr\t", service.ResourceName())];
    int64_t slot = counter++ % 100;
    int64_t cumulative = 0;
    for (const Json& t : service.traffic_statuses) {
      cumulative += t.value("percent", 0);
      if (slot < cumulative) {
        revision = t.value("revision", "");
        break;
      }
    }
  }
  auto it = service.revisions.find(revision);
  if (revision.empty() || it == service.revisions.end()) {
    response.status = 404;
    response.body = Json({{"error", absl::StrCat("no revision serves ",
                                                 by_tag ? "tag " + tag : "this service")}})
                        .dump();
    return Respond(response);
  }
  int status = 200;
  for (const ReadinessRule& rule : run_.readiness_rules()) {
    if (GlobMatch(rule.image, it->second.image)) {
      status = rule.serve_status;
      break;
    }
  }
  if (run_.RevisionState(it->second) != 1) status = 503;
  std::string rest;
  for (size_t i = needed; i < parts.size(); ++i) rest += "/" + parts[i];
  response.status = status;
  response.body = Json({{"service", service.id},
                        {"revision", revision},
                        {"image", it->second.image},
                        {"tag", tag},
                        {"path", rest.empty() ? "/" : rest}})
                      .dump();
  response.headers.emplace_back("X-Serving-Revision", revision);
  ++served_[absl::StrCat("rev\t", service.project, "\t", service.location, "\t", service.id, "\t",
                         revision, "\t", status)];
  return Respond(response);
}

EmuResponse Emulator::Metrics() {
  std::string out;
  out +=
      "# HELP cloudrun_emulator_requests_total Requests the emulator answered, by route and HTTP "
      "status.\n# TYPE cloudrun_emulator_requests_total counter\n";
  for (const auto& [key, count] : served_) {
    std::vector<std::string> f = absl::StrSplit(key, '\t');
    if (f[0] != "route") continue;
    absl::StrAppend(&out, "cloudrun_emulator_requests_total{route=\"", EscapeLabel(f[1]),
                    "\",code=\"", f[2], "\"} ", count, "\n");
  }
  out +=
      "# HELP cloudrun_emulator_revision_requests_total Requests served on revision and tag URLs, "
      "by revision and HTTP status.\n# TYPE cloudrun_emulator_revision_requests_total counter\n";
  for (const auto& [key, count] : served_) {
    std::vector<std::string> f = absl::StrSplit(key, '\t');
    if (f[0] != "rev") continue;
    absl::StrAppend(&out, "cloudrun_emulator_revision_requests_total{project=\"", EscapeLabel(f[1]),
                    "\",location=\"", EscapeLabel(f[2]), "\",service=\"", EscapeLabel(f[3]),
                    "\",revision=\"", EscapeLabel(f[4]), "\",code=\"", f[5], "\"} ", count, "\n");
  }
  std::string last_name;
  for (const auto& [key, value] : gauges_) {
    std::string name = key.substr(0, key.find('{'));
    if (name != last_name) {
      absl::StrAppend(&out, "# HELP ", name,
                      " Synthetic per-revision gauge set through "
                      "/_emulator/metrics.\n# TYPE ",
                      name, " gauge\n");
      last_name = name;
    }
    absl::StrAppend(&out, key, " ", value, "\n");
  }
  out +=
      "# HELP cloudrun_emulator_services Services held by the emulator.\n"
      "# TYPE cloudrun_emulator_services gauge\n";
  absl::StrAppend(&out, "cloudrun_emulator_services ", run_.AllServices().size(), "\n");
  EmuResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = std::move(out);
  return response;
}

HandlerResult Emulator::HandleAdmin(const EmuRequest& request,
                                    const std::vector<std::string>& parts, std::string& route) {
  const std::string& method = request.method;
  std::string what = parts.size() >= 2 ? parts[1] : "";
  route = absl::StrCat("admin.", what);
  if (parts.size() > 2) return NotRouted(request);
  auto body_or = [&](bool empty_ok) -> absl::StatusOr<Json> {
    if (request.body.empty() && empty_ok) return Json::object();
    if (NestsDeeperThan(request.body, kMaxJsonDepth)) {
      return InvalidArgument("body nests too deeply");
    }
    Json body = Json::parse(request.body, nullptr, false);
    if (body.is_discarded()) return InvalidArgument("the body is not valid JSON");
    return body;
  };
  if (what == "healthz") return Respond(JsonResponse({{"ok", true}}));
  if (what == "reset" && method == "POST") {
    run_.Reset();
    build_.Reset();
    build_.rules().clear();
    faults_.clear();
    log_.clear();
    counters_ = Counters();
    gauges_.clear();
    served_.clear();
    return Respond(JsonResponse({{"reset", true}}));
  }
  if (what == "seed" && method == "POST") {
    absl::StatusOr<std::vector<ParsedDocument>> documents =
        ReadDocuments(request.body, SeedFormat(request.body),
                      DocumentLimits{.max_file_bytes = max_body_bytes_, .max_nodes = 50000000});
    if (!documents.ok()) return Error(InvalidArgument(std::string(documents.status().message())));
    size_t before = run_.AllServices().size();
    for (const ParsedDocument& document : *documents) {
      if (document.error) return Error(InvalidArgument(*document.error));
      if (absl::Status s = SeedLocked(document.value); !s.ok()) return Error(s);
    }
    return Respond(JsonResponse({{"services", run_.AllServices().size() - before}}));
  }
  if (what == "state" && method == "GET") {
    Json services = Json::array();
    for (const ServiceRecord* service : run_.AllServices()) {
      Json item = run_.ServiceV2(*service);
      Json revisions = Json::array();
      for (const std::string& name : service->revision_order) {
        Json tmpl = service->revisions.at(name).template_spec;
        tmpl["revision"] = name;
        revisions.push_back(tmpl);
      }
      item["revisions"] = revisions;
      services.push_back(item);
    }
    return Respond(JsonResponse({{"services", services}, {"builds", build_.Dump()["builds"]}}));
  }
  if (what == "requests") {
    if (method == "DELETE") {
      log_.clear();
      counters_ = Counters();
      return Respond(JsonResponse({{"cleared", true}}));
    }
    int64_t since = 0;
    absl::SimpleAtoi(Query(request, "since"), &since);
    Json entries = Json::array();
    for (const RequestLogEntry& entry : log_) {
      if (entry.seq <= since) continue;
      Json item = {{"seq", entry.seq},       {"time", FormatRfc3339(entry.time)},
                   {"method", entry.method}, {"path", entry.path},
                   {"route", entry.route},   {"status", entry.status}};
      if (!entry.query.empty()) item["query"] = entry.query;
      if (!entry.fault.empty()) item["fault"] = entry.fault;
      entries.push_back(std::move(item));
    }
    return Respond(JsonResponse({{"requests", entries}, {"last", log_seq_}}));
  }
  if (what == "counters" && method == "GET") {
    return Respond(JsonResponse({{"byRoute", counters_.by_route},
                                 {"byPath", counters_.by_path},
                                 {"reads", counters_.reads},
                                 {"writes", counters_.writes}}));
  }
  if (what == "faults") {
    return RuleEndpoint(
        method, body_or, faults_, "faults", "faults",
        [](const Json& item) { return FaultRuleFromJson(item); }, FaultRuleToJson);
  }
  if (what == "readiness") {
    return RuleEndpoint(
        method, body_or, run_.readiness_rules(), "rules", "rules",
        [](const Json& item) { return ReadinessRuleFromJson(item); }, ReadinessRuleToJson);
  }
  if (what == "build-rules") {
    return RuleEndpoint(
        method, body_or, build_.rules(), "rules", "rules",
        [this](const Json& item)
            ABSL_NO_THREAD_SAFETY_ANALYSIS { return BuildRuleFromJson(item, build_.config()); },
        BuildRuleToJson);
  }
  if (what == "config") {
    if (method == "POST") {
      absl::StatusOr<Json> body = body_or(false);
      if (!body.ok()) return Error(body.status());
      for (const char* key : {"reconcileDelay", "buildQueue", "buildWork"}) {
        if (body->contains(key) && !DurationField(*body, key)) {
          return Error(InvalidField(key, "use a duration such as \"0.1s\""));
        }
      }
      if (auto d = DurationField(*body, "reconcileDelay")) run_.config().reconcile_delay = *d;
      if (auto d = DurationField(*body, "buildQueue")) build_.config().queue_for = *d;
      if (auto d = DurationField(*body, "buildWork")) build_.config().work_for = *d;
      if (body->contains("maxBodyBytes"))
        max_body_bytes_ = body->value("maxBodyBytes", max_body_bytes_);
    }
    return Respond(
        JsonResponse({{"reconcileDelay", FormatProtoDuration(run_.config().reconcile_delay)},
                      {"buildQueue", FormatProtoDuration(build_.config().queue_for)},
                      {"buildWork", FormatProtoDuration(build_.config().work_for)},
                      {"maxBodyBytes", max_body_bytes_},
                      {"baseUrl", run_.config().base_url}}));
  }
  if (what == "metrics") {
    if (method == "DELETE") {
      gauges_.clear();
      return Respond(JsonResponse({{"gauges", 0}}));
    }
    if (method != "POST") return MethodNotAllowed(request);
    absl::StatusOr<Json> body = body_or(false);
    if (!body.ok()) return Error(body.status());
    for (const Json& item : RuleItems(*body, "gauges")) {
      std::string name = item.value("name", "");
      if (!IsMetricName(name)) {
        return Error(InvalidField("name",
                                  "use a Prometheus metric name, e.g. "
                                  "cloudrun_revision_error_ratio"));
      }
      if (!item.contains("value") || !item["value"].is_number()) {
        return Error(InvalidField("value", "a number is required"));
      }
      std::map<std::string, std::string> labels;
      for (const char* key : {"project", "location", "service", "revision"}) {
        if (item.contains(key)) labels[key] = item.value(key, "");
      }
      if (item.contains("labels") && item["labels"].is_object()) {
        for (auto it = item["labels"].begin(); it != item["labels"].end(); ++it) {
          if (!IsMetricName(it.key()) || !it.value().is_string()) {
            return Error(InvalidField("labels",
                                      "label names must be identifiers and values "
                                      "strings"));
          }
          labels[it.key()] = it.value();
        }
      }
      std::vector<std::string> pairs;
      for (const auto& [k, v] : labels)
        pairs.push_back(absl::StrCat(k, "=\"", EscapeLabel(v), "\""));
      gauges_[absl::StrCat(name, "{", absl::StrJoin(pairs, ","), "}")] =
          item["value"].get<double>();
    }
    return Respond(JsonResponse({{"gauges", gauges_.size()}}));
  }
  return NotRouted(request);
}

absl::Status Emulator::SeedLocked(const Json& seed) {
  if (!seed.is_object()) return InvalidArgument("the seed must be an object with services/builds");
  for (const auto& [key, value] : seed.items()) {
    if (key != "services" && key != "builds" && key != "readiness" && key != "buildRules" &&
        key != "config") {
      return InvalidField(key,
                          "unknown seed key; use services, builds, readiness, buildRules, "
                          "config");
    }
  }
  if (seed.contains("config")) {
    const Json& config = seed["config"];
    if (auto d = DurationField(config, "reconcileDelay")) run_.config().reconcile_delay = *d;
    if (auto d = DurationField(config, "buildQueue")) build_.config().queue_for = *d;
    if (auto d = DurationField(config, "buildWork")) build_.config().work_for = *d;
  }
  for (const Json& item : seed.value("readiness", Json::array())) {
    absl::StatusOr<ReadinessRule> rule = ReadinessRuleFromJson(item);
    if (!rule.ok()) return rule.status();
    run_.readiness_rules().push_back(*rule);
  }
  for (const Json& item : seed.value("buildRules", Json::array())) {
    absl::StatusOr<BuildRule> rule = BuildRuleFromJson(item, build_.config());
    if (!rule.ok()) return rule.status();
    build_.rules().push_back(*rule);
  }
  const Json& services = seed.contains("services") ? seed["services"] : Json::array();
  if (!services.is_array()) return InvalidField("services", "must be a list of v2 Services");
  for (size_t i = 0; i < services.size(); ++i) {
    const Json& item = services[i];
    std::string field = absl::StrCat("services[", i, "]");
    if (!item.is_object()) return InvalidField(field, "must be a v2 Service object");
    std::vector<std::string> name = absl::StrSplit(item.value("name", ""), '/');
    if (name.size() != 6 || name[0] != "projects" || name[2] != "locations" ||
        name[4] != "services") {
      return InvalidField(field + ".name", "use projects/P/locations/L/services/S");
    }
    Json fields = item;
    Json history = fields.contains("revisions") ? fields["revisions"] : Json::array();
    fields.erase("revisions");
    if (absl::Status s = CheckMessage(fields, "Service", field); !s.ok()) return s;
    ServiceWrite write;
    write.project = name[1];
    write.location = name[3];
    write.id = name[5];
    write.replace_all = true;
    write.strict_v2_keys = false;
    // Earlier revisions first, so traffic may name them.
    if (history.is_array()) {
      for (const Json& revision_template : history) {
        ServiceWrite earlier = write;
        earlier.fields = {{"template", revision_template}};
        if (absl::StatusOr<const ServiceRecord*> r = run_.SeedService(earlier); !r.ok()) {
          return r.status();
        }
      }
      if (!history.empty() && fields.contains("template") &&
          !fields["template"].contains("revision") && item.contains("latestCreatedRevision")) {
        std::string latest = item["latestCreatedRevision"];
        fields["template"]["revision"] = latest.substr(latest.rfind('/') + 1);
      }
    }
    write.fields = fields;
    if (absl::StatusOr<const ServiceRecord*> r = run_.SeedService(write); !r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat(field, ": ", r.status().message()));
    }
  }
  if (seed.contains("builds")) {
    if (absl::Status s = build_.Seed(seed["builds"]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Emulator::SeedFromText(const std::string& text) {
  absl::StatusOr<std::vector<ParsedDocument>> documents = ReadDocuments(
      text, SeedFormat(text), DocumentLimits{.max_file_bytes = 256 << 20, .max_nodes = 50000000});
  if (!documents.ok()) return documents.status();
  absl::MutexLock lock(&mutex_);
  for (const ParsedDocument& document : *documents) {
    if (document.error) return InvalidArgument(*document.error);
    if (absl::Status s = SeedLocked(document.value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

Json Emulator::DumpState() {
  EmuRequest request;
  request.method = "GET";
  request.path = "/_emulator/state";
  std::string route;
  HandlerResult result;
  {
    absl::MutexLock lock(&mutex_);
    result = HandleAdmin(request, {"_emulator", "state"}, route);
  }
  return Json::parse(result.response.body);
}

}  // namespace runway::emulator
