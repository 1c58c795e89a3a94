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

using gapi::Bool;
using gapi::Child;
using gapi::Dump;
using gapi::Int64;
using gapi::Json;
using gapi::LastSegment;
using gapi::PercentEncode;
using gapi::ProtoDuration;
using gapi::Str;
using Call = GoogleApiCaller::Call;

constexpr char kLatestType[] = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
constexpr char kRevisionType[] = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";

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

}  // namespace

CloudRunRestClient::CloudRunRestClient(HttpTransport* transport, TokenSource* tokens,
                                       const Clock* clock, Sleeper* sleeper,
                                       CloudRunRestClientOptions options)
    : caller_(transport, tokens, clock, sleeper, options), page_size_(options.page_size) {}

namespace {

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
  call.request.url =
      absl::StrCat("v2/", PercentEncode(call.resource, true), "/services?pageSize=", page_size_);
  if (!page_token.empty()) {
    absl::StrAppend(&call.request.url, "&pageToken=", PercentEncode(page_token, false));
  }
  call.request.timeout = caller_.options().call_timeout;
  absl::StatusOr<Json> json = caller_.ExecuteJson(std::move(call));
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
  call.request.url = absl::StrCat("v2/", PercentEncode(call.resource, true));
  call.request.timeout = caller_.options().call_timeout;
  absl::StatusOr<Json> json = caller_.ExecuteJson(std::move(call));
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
  call.request.url =
      absl::StrCat("v2/", PercentEncode(call.resource, true), "?updateMask=", mask,
                   "&allowMissing=true&validateOnly=", update.validate_only ? "true" : "false");
  call.request.headers["Content-Type"] = "application/json";
  call.request.body = Dump(UpdateBody(update));
  call.request.timeout = caller_.options().call_timeout;
  absl::StatusOr<Json> json = caller_.ExecuteJson(std::move(call));
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
  call.request.url = absl::StrCat("v2/", PercentEncode(operation_name, true));
  call.request.timeout = caller_.options().call_timeout;
  absl::StatusOr<Json> json = caller_.ExecuteJson(std::move(call));
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
  call.request.url = absl::StrCat("v2/", PercentEncode(name, true), ":wait");
  call.request.headers["Content-Type"] = "application/json";
  timeout = std::max(timeout, absl::ZeroDuration());
  call.request.body = Dump(Json{{"timeout", ProtoDuration(timeout)}});
  // The server holds the call for up to `timeout` before it answers.
  call.request.timeout = timeout + caller_.options().call_timeout;
  absl::StatusOr<Json> json = caller_.ExecuteJson(std::move(call));
  if (!json.ok()) return json.status();
  return OperationFromJson(*json);
}

}  // namespace runway
