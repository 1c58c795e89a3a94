#include "tests/emulator/knative_view.h"

#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace runway::emulator {
namespace {

constexpr char kApiVersion[] = "serving.knative.dev/v1";
constexpr char kLocationLabel[] = "cloud.googleapis.com/location";
constexpr char kMaxScale[] = "autoscaling.knative.dev/maxScale";
constexpr char kMinScale[] = "autoscaling.knative.dev/minScale";
constexpr char kIngress[] = "run.googleapis.com/ingress";

// Annotations the v1 view adds from other fields; a client echoing them back must not store them.
const std::set<std::string>& ComputedAnnotations() {
  static const auto* keys = new std::set<std::string>{
      "serving.knative.dev/creator",       "serving.knative.dev/lastModifier",
      "run.googleapis.com/ingress-status", "run.googleapis.com/operation-id",
      "run.googleapis.com/urls",           kIngress};
  return *keys;
}

std::string KubeTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

std::string IngressToV1(const std::string& v2) {
  if (v2 == "INGRESS_TRAFFIC_INTERNAL_ONLY") return "internal";
  if (v2 == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER") return "internal-and-cloud-load-balancing";
  if (v2 == "INGRESS_TRAFFIC_NONE") return "none";
  return "all";
}

std::optional<std::string> IngressToV2(const std::string& v1) {
  if (v1 == "all") return "INGRESS_TRAFFIC_ALL";
  if (v1 == "internal") return "INGRESS_TRAFFIC_INTERNAL_ONLY";
  if (v1 == "internal-and-cloud-load-balancing") return "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER";
  if (v1 == "none") return "INGRESS_TRAFFIC_NONE";
  return std::nullopt;
}

Json ContainerToV1(const Json& container) {
  Json out = container;
  if (out.contains("env")) {
    for (Json& env : out["env"]) {
      if (!env.contains("valueSource")) continue;
      const Json& ref = env["valueSource"].value("secretKeyRef", Json::object());
      env["valueFrom"] = {
          {"secretKeyRef", {{"name", ref.value("secret", "")}, {"key", ref.value("version", "")}}}};
      env.erase("valueSource");
    }
  }
  return out;
}

Json ContainerToV2(const Json& container) {
  Json out = container;
  if (out.contains("env") && out["env"].is_array()) {
    for (Json& env : out["env"]) {
      if (!env.is_object() || !env.contains("valueFrom")) continue;
      const Json& ref = env["valueFrom"].value("secretKeyRef", Json::object());
      env["valueSource"] = {
          {"secretKeyRef", {{"secret", ref.value("name", "")}, {"version", ref.value("key", "")}}}};
      env.erase("valueFrom");
    }
  }
  if (out.contains("ports") && out["ports"].is_array()) {
    for (Json& port : out["ports"]) {
      if (port.is_object()) port.erase("protocol");
    }
  }
  if (out.contains("resources") && out["resources"].is_object()) out["resources"].erase("requests");
  return out;
}

Json TemplateToV1(const Json& tmpl) {
  Json metadata = Json::object();
  if (tmpl.contains("revision")) metadata["name"] = tmpl["revision"];
  if (tmpl.contains("labels")) metadata["labels"] = tmpl["labels"];
  Json annotations = tmpl.value("annotations", Json::object());
  Json scaling = tmpl.value("scaling", Json::object());
  if (scaling.contains("maxInstanceCount")) {
    annotations[kMaxScale] = absl::StrCat(scaling["maxInstanceCount"].get<int64_t>());
  }
  if (scaling.contains("minInstanceCount")) {
    annotations[kMinScale] = absl::StrCat(scaling["minInstanceCount"].get<int64_t>());
  }
  metadata["annotations"] = annotations;
  Json spec = Json::object();
  spec["containerConcurrency"] = tmpl.value("maxInstanceRequestConcurrency", 80);
  std::optional<absl::Duration> timeout = ParseProtoDuration(tmpl.value("timeout", "300s"));
  spec["timeoutSeconds"] = timeout ? absl::ToInt64Seconds(*timeout) : 300;
  if (tmpl.contains("serviceAccount")) spec["serviceAccountName"] = tmpl["serviceAccount"];
  Json containers = Json::array();
  for (const Json& c : tmpl.value("containers", Json::array()))
    containers.push_back(ContainerToV1(c));
  spec["containers"] = containers;
  for (const char* passthrough : {"volumes", "nodeSelector"}) {
    if (tmpl.contains(passthrough)) spec[passthrough] = tmpl[passthrough];
  }
  return {{"metadata", metadata}, {"spec", spec}};
}

// The image by digest, as status.imageDigest reports it: "repo@sha256:...", the tag replaced
// (gcloud pins a revision's image to this when a change must not alter the running code).
std::string ImageDigest(const std::string& image) {
  if (image.find("@sha256:") != std::string::npos) return image;
  size_t slash = image.rfind('/');
  size_t colon = image.find(':', slash == std::string::npos ? 0 : slash);
  return absl::StrCat(image.substr(0, colon), "@sha256:", Sha256Hex(image));
}

Json Condition(const std::string& type, const std::string& status, absl::Time when) {
  return {{"type", type}, {"status", status}, {"lastTransitionTime", KubeTime(when)}};
}

std::string StatusOf(const std::string& v2_state) {
  if (v2_state == "CONDITION_SUCCEEDED") return "True";
  if (v2_state == "CONDITION_FAILED") return "False";
  return "Unknown";
}

Json ConditionToV1(const Json& v2) {
  Json out = {{"type", v2["type"]},
              {"status", StatusOf(v2.value("state", ""))},
              {"lastTransitionTime", v2.value("lastTransitionTime", "")}};
  if (v2.contains("message")) out["message"] = v2["message"];
  if (v2.contains("reason")) out["reason"] = v2["reason"];
  if (v2.contains("revisionReason")) out["reason"] = v2["revisionReason"];
  if (v2.contains("severity")) out["severity"] = absl::AsciiStrToLower(v2.value("severity", ""));
  if (out["severity"] == "error") out["severity"] = "Error";
  if (v2.value("state", "") == "CONDITION_SUCCEEDED") out.erase("severity");
  return out;
}

}  // namespace

Json KnativeService(const CloudRunStore& store, const ServiceRecord& service) {
  Json v2 = store.ServiceV2(service);
  Json labels = service.spec.value("labels", Json::object());
  labels[kLocationLabel] = service.location;
  Json annotations = service.spec.value("annotations", Json::object());
  annotations["serving.knative.dev/creator"] = service.creator;
  annotations["serving.knative.dev/lastModifier"] = service.last_modifier;
  std::string ingress = IngressToV1(service.spec.value("ingress", "INGRESS_TRAFFIC_ALL"));
  annotations[kIngress] = ingress;
  annotations["run.googleapis.com/ingress-status"] = ingress;
  Json metadata = {{"name", service.id},
                   {"namespace", service.project},
                   {"uid", service.uid},
                   {"generation", service.generation},
                   {"resourceVersion", absl::StrCat(service.resource_version)},
                   {"creationTimestamp", KubeTime(service.create_time)},
                   {"selfLink", absl::StrCat("/apis/serving.knative.dev/v1/namespaces/",
                                             service.project, "/services/", service.id)},
                   {"labels", labels},
                   {"annotations", annotations}};
  Json traffic = Json::array();
  for (const Json& t : service.spec["traffic"]) {
    Json target = Json::object();
    if (t["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST") {
      target["latestRevision"] = true;
    } else {
      target["revisionName"] = t["revision"];
    }
    if (t.value("percent", 0) > 0) target["percent"] = t["percent"];
    if (t.contains("tag")) target["tag"] = t["tag"];
    traffic.push_back(target);
  }
  Json status = Json::object();
  status["observedGeneration"] = service.terminal_generation;
  Json conditions = Json::array({ConditionToV1(v2["terminalCondition"])});
  for (const Json& c : v2["conditions"]) {
    // Knative lists ConfigurationsReady before RoutesReady.
    conditions.insert(conditions.begin() + 1, ConditionToV1(c));
  }
  status["conditions"] = conditions;
  if (!service.latest_ready.empty()) status["latestReadyRevisionName"] = service.latest_ready;
  if (!service.latest_created.empty()) {
    status["latestCreatedRevisionName"] = service.latest_created;
  }
  Json status_traffic = Json::array();
  for (const Json& t : service.traffic_statuses) {
    Json target = {{"revisionName", t.value("revision", "")}};
    if (t.value("percent", 0) > 0) target["percent"] = t["percent"];
    if (t["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST") target["latestRevision"] = true;
    if (t.contains("tag")) target["tag"] = t["tag"];
    if (t.contains("uri")) target["url"] = t["uri"];
    status_traffic.push_back(target);
  }
  status["traffic"] = status_traffic;
  if (service.observed_generation > 0) {
    status["url"] = store.ServiceUri(service);
    status["address"] = {{"url", store.ServiceUri(service)}};
  }
  return {{"apiVersion", kApiVersion},
          {"kind", "Service"},
          {"metadata", metadata},
          {"spec", {{"template", TemplateToV1(service.spec["template"])}, {"traffic", traffic}}},
          {"status", status}};
}

Json KnativeRevision(const CloudRunStore& store, const ServiceRecord& service,
                     const RevisionRecord& revision) {
  Json v2 = store.RevisionV2(service, revision);
  Json tmpl = TemplateToV1(revision.template_spec);
  Json labels = tmpl["metadata"].value("labels", Json::object());
  labels["serving.knative.dev/service"] = service.id;
  labels["serving.knative.dev/configuration"] = service.id;
  labels["serving.knative.dev/configurationGeneration"] = absl::StrCat(revision.config_generation);
  labels[kLocationLabel] = service.location;
  if (store.RevisionServes(service, revision.name))
    labels["serving.knative.dev/route"] = service.id;
  // gcloud's DEPLOYED BY column.
  Json annotations = tmpl["metadata"]["annotations"];
  if (!revision.creator.empty()) annotations["serving.knative.dev/creator"] = revision.creator;
  Json metadata = {{"name", revision.name},
                   {"namespace", service.project},
                   {"uid", revision.uid},
                   {"generation", 1},
                   {"resourceVersion", revision.etag.substr(1, revision.etag.size() - 2)},
                   {"creationTimestamp", KubeTime(revision.create_time)},
                   {"selfLink", absl::StrCat("/apis/serving.knative.dev/v1/namespaces/",
                                             service.project, "/revisions/", revision.name)},
                   {"labels", labels},
                   {"annotations", annotations},
                   {"ownerReferences", Json::array({{{"kind", "Configuration"},
                                                     {"name", service.id},
                                                     {"apiVersion", kApiVersion},
                                                     {"controller", true},
                                                     {"blockOwnerDeletion", true}}})}};
  Json conditions = Json::array();
  for (const Json& c : v2["conditions"]) conditions.push_back(ConditionToV1(c));
  bool serves = store.RevisionServes(service, revision.name);
  int state = store.RevisionState(revision);
  bool has_active = false;
  for (Json& c : conditions) {
    if (c["type"] == "Active") {
      has_active = true;
      c["status"] = serves ? "True" : "False";
    }
  }
  if (!has_active && state == 1) {
    Json active = Condition("Active", serves ? "True" : "False", revision.settle_time);
    if (!serves) active["reason"] = "Reserve";
    conditions.push_back(active);
  }
  Json status = {{"observedGeneration", 1},
                 {"conditions", conditions},
                 {"logUrl", v2["logUri"]},
                 {"imageDigest", ImageDigest(revision.image)}};
  return {{"apiVersion", kApiVersion},
          {"kind", "Revision"},
          {"metadata", metadata},
          {"spec", tmpl["spec"]},
          {"status", status}};
}

Json KnativeList(const std::string& kind, Json items, const std::string& continue_token) {
  Json metadata = Json::object();
  if (!continue_token.empty()) metadata["continue"] = continue_token;
  return {{"apiVersion", kApiVersion},
          {"kind", kind},
          {"metadata", metadata},
          {"items", std::move(items)},
          {"unreachable", Json::array()}};
}

Json KnativeDeleteStatus(const std::string& kind, const std::string& name, const std::string& uid) {
  return {{"apiVersion", "v1"},
          {"kind", "Status"},
          {"metadata", Json::object()},
          {"status", "Success"},
          {"details",
           {{"name", name}, {"group", "serving.knative.dev"}, {"kind", kind}, {"uid", uid}}}};
}

absl::StatusOr<ServiceWrite> KnativeServiceWrite(const Json& body, const std::string& project,
                                                 const std::string& region,
                                                 const std::string& path_name) {
  if (!body.is_object()) return InvalidField("service", "the body must be a Service object");
  std::vector<FieldViolation> errors;
  if (body.contains("kind") && body["kind"] != "Service") {
    errors.push_back({"kind", "kind must be Service"});
  }
  const Json metadata = body.value("metadata", Json::object());
  const Json spec = body.value("spec", Json::object());
  if (!metadata.is_object() || !spec.is_object()) {
    return InvalidField("service", "metadata and spec must be objects");
  }
  std::string name = metadata.value("name", "");
  if (name.empty()) name = path_name;
  if (name.empty()) errors.push_back({"metadata.name", "metadata.name is required"});
  if (!path_name.empty() && name != path_name) {
    errors.push_back(
        {"metadata.name", absl::StrCat("metadata.name '", name,
                                       "' does not match the name in the URL '", path_name, "'")});
  }
  if (metadata.contains("namespace") && metadata["namespace"].is_string() &&
      !metadata["namespace"].get<std::string>().empty() && metadata["namespace"] != project) {
    errors.push_back({"metadata.namespace", "metadata.namespace does not match the URL"});
  }
  ServiceWrite write;
  write.project = project;
  write.location = region;
  write.id = name;
  write.replace_all = true;
  write.strict_v2_keys = false;
  if (metadata.contains("resourceVersion") && metadata["resourceVersion"].is_string()) {
    write.resource_version = metadata["resourceVersion"];
  }
  Json labels = metadata.value("labels", Json::object());
  if (labels.is_object()) labels.erase(kLocationLabel);
  Json annotations = metadata.value("annotations", Json::object());
  if (annotations.is_object()) {
    if (annotations.contains(kIngress)) {
      std::optional<std::string> ingress =
          annotations[kIngress].is_string() ? IngressToV2(annotations[kIngress]) : std::nullopt;
      if (!ingress) {
        errors.push_back({"metadata.annotations[run.googleapis.com/ingress]",
                          "use all, internal, internal-and-cloud-load-balancing or none"});
      } else {
        write.fields["ingress"] = *ingress;
      }
    }
    for (const std::string& key : ComputedAnnotations()) annotations.erase(key);
  }
  if (!labels.empty()) write.fields["labels"] = labels;
  if (!annotations.empty()) write.fields["annotations"] = annotations;

  const Json tmpl = spec.value("template", Json::object());
  const Json tmeta = tmpl.is_object() ? tmpl.value("metadata", Json::object()) : Json::object();
  const Json tspec = tmpl.is_object() ? tmpl.value("spec", Json::object()) : Json::object();
  Json v2 = Json::object();
  if (tmeta.is_object()) {
    if (tmeta.contains("name")) v2["revision"] = tmeta["name"];
    if (tmeta.contains("labels")) v2["labels"] = tmeta["labels"];
    Json tannotations = tmeta.value("annotations", Json::object());
    if (tannotations.is_object()) {
      Json scaling = Json::object();
      for (const auto& [key, field] :
           {std::pair<std::string, std::string>{kMaxScale, "maxInstanceCount"},
            {kMinScale, "minInstanceCount"}}) {
        if (!tannotations.contains(key)) continue;
        const Json& value = tannotations[key];
        char* end = nullptr;
        std::string text = value.is_string() ? value.get<std::string>() : "";
        long long number = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || number < 0) {
          errors.push_back({absl::StrCat("spec.template.metadata.annotations[", key, "]"),
                            "must be a non-negative integer string"});
        } else {
          scaling[field] = number;
        }
        tannotations.erase(key);
      }
      if (!scaling.empty()) v2["scaling"] = scaling;
      if (!tannotations.empty()) v2["annotations"] = tannotations;
    }
  }
  if (tspec.is_object()) {
    if (tspec.contains("containerConcurrency")) {
      v2["maxInstanceRequestConcurrency"] = tspec["containerConcurrency"];
    }
    if (tspec.contains("timeoutSeconds")) {
      if (!tspec["timeoutSeconds"].is_number_integer()) {
        errors.push_back({"spec.template.spec.timeoutSeconds", "must be an integer"});
      } else {
        v2["timeout"] = absl::StrCat(tspec["timeoutSeconds"].get<int64_t>(), "s");
      }
    }
    if (tspec.contains("serviceAccountName")) v2["serviceAccount"] = tspec["serviceAccountName"];
    Json containers = Json::array();
    const Json& list = tspec.contains("containers") ? tspec["containers"] : Json::array();
    if (!list.is_array()) {
      errors.push_back({"spec.template.spec.containers", "must be a list"});
    } else {
      for (const Json& c : list) {
        if (!c.is_object()) {
          errors.push_back({"spec.template.spec.containers", "each container must be an object"});
          continue;
        }
        containers.push_back(ContainerToV2(c));
      }
    }
    v2["containers"] = containers;
    for (const char* passthrough : {"volumes", "nodeSelector"}) {
      if (tspec.contains(passthrough)) v2[passthrough] = tspec[passthrough];
    }
  }
  write.fields["template"] = v2;

  Json traffic = Json::array();
  const Json& v1_traffic = spec.contains("traffic") ? spec["traffic"] : Json::array();
  if (!v1_traffic.is_array()) {
    errors.push_back({"spec.traffic", "must be a list"});
  } else {
    for (size_t i = 0; i < v1_traffic.size(); ++i) {
      const Json& t = v1_traffic[i];
      std::string path = absl::StrCat("spec.traffic[", i, "]");
      if (!t.is_object()) {
        errors.push_back({path, "must be an object"});
        continue;
      }
      bool latest = t.value("latestRevision", false);
      std::string revision = t.value("revisionName", "");
      if (latest && !revision.empty()) {
        errors.push_back({path, "may not set revisionName if latestRevision is true"});
      }
      Json target = {{"type", latest || revision.empty()
                                  ? "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
                                  : "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"}};
      if (!latest && !revision.empty()) target["revision"] = revision;
      if (t.contains("percent")) {
        if (!t["percent"].is_number_integer()) {
          errors.push_back({path + ".percent", "percent must be an integer from 0 to 100"});
        } else {
          target["percent"] = t["percent"];
        }
      }
      if (t.contains("tag")) target["tag"] = t["tag"];
      traffic.push_back(target);
    }
  }
  write.fields["traffic"] = traffic;
  if (!errors.empty()) return FirstViolation(std::move(errors));
  return write;
}

absl::Status KnativeWriteError(const absl::Status& status) {
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (violations.empty()) return status;
  // v2 prefix -> v1 field. `whole`: the v1 field stands for the whole v2 subtree.
  struct Rename {
    const char* v2;
    const char* v1;
    bool whole;
  };
  static constexpr Rename kRenames[] = {
      {"service.traffic", "spec.traffic", false},
      {"service.template.revision", "spec.template.metadata.name", true},
      {"service.template.labels", "spec.template.metadata.labels", false},
      {"service.template.annotations", "spec.template.metadata.annotations", false},
      {"service.template.scaling", "spec.template.metadata.annotations", true},
      {"service.template.timeout", "spec.template.spec.timeoutSeconds", true},
      {"service.template.maxInstanceRequestConcurrency", "spec.template.spec.containerConcurrency",
       true},
      {"service.template.serviceAccount", "spec.template.spec.serviceAccountName", true},
      {"service.template.", "spec.template.spec.", false},
      {"service.template", "spec.template", false},
      {"service.labels", "metadata.labels", false},
      {"service.annotations", "metadata.annotations", false},
      {"service_id", "metadata.name", true},
  };
  for (FieldViolation& violation : violations) {
    const std::string& field = violation.field;
    for (const Rename& rename : kRenames) {
      std::string prefix = rename.v2;
      if (!absl::StartsWith(field, prefix)) continue;
      std::string rest = field.substr(prefix.size());
      if (!rest.empty() && prefix.back() != '.' && rest[0] != '.' && rest[0] != '[') continue;
      if (absl::StartsWith(field, "service.traffic") && absl::EndsWith(rest, ".revision")) {
        rest += "Name";  // a v1 TrafficTarget names its revision in revisionName
      }
      violation.field = absl::StrCat(rename.v1, rename.whole ? "" : rest);
      break;
    }
  }
  Json list = Json::array();
  for (const FieldViolation& v : violations) {
    list.push_back({{"field", v.field}, {"description", v.description}});
  }
  absl::Status renamed(status.code(), status.message());
  renamed.SetPayload(kBadRequestType, absl::Cord(list.dump()));
  return renamed;
}

bool MatchesLabelSelector(const std::string& selector, const Json& labels) {
  for (absl::string_view raw : absl::StrSplit(selector, ',', absl::SkipWhitespace())) {
    std::string term(absl::StripAsciiWhitespace(raw));
    bool negate = false;
    size_t op = term.find("!=");
    size_t op_length = 2;
    if (op != std::string::npos) {
      negate = true;
    } else if ((op = term.find("==")) != std::string::npos) {
      op_length = 2;
    } else if ((op = term.find('=')) != std::string::npos) {
      op_length = 1;
    }
    if (op == std::string::npos) {
      if (!labels.contains(term)) return false;
      continue;
    }
    std::string key(absl::StripAsciiWhitespace(term.substr(0, op)));
    std::string value(absl::StripAsciiWhitespace(term.substr(op + op_length)));
    bool equal = labels.contains(key) && labels[key].is_string() && labels[key] == value;
    if (equal == negate) return false;
  }
  return true;
}

}  // namespace runway::emulator
