#include "tests/emulator/run_model.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/emulator/message_schema.h"

namespace runway::emulator {
namespace {

constexpr char kServiceType[] = "type.googleapis.com/google.cloud.run.v2.Service";
constexpr char kRevisionType[] = "type.googleapis.com/google.cloud.run.v2.Revision";
constexpr char kLatest[] = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
constexpr char kRevision[] = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";

const std::set<std::string>& WritableServiceFields() {
  static const auto* fields = new std::set<std::string>{
      "description",     "labels",      "annotations", "client",
      "clientVersion",   "ingress",     "launchStage", "binaryAuthorization",
      "template",        "traffic",     "scaling",     "defaultUriDisabled",
      "customAudiences", "buildConfig", "iapEnabled",  "invokerIamDisabled"};
  return *fields;
}

// v2 refuses keys in these namespaces; v1 clients (gcloud) set them freely.
bool IsReservedKey(const std::string& key) {
  size_t slash = key.find('/');
  if (slash == std::string::npos) return false;
  std::string prefix = key.substr(0, slash);
  for (const char* ns : {"run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev",
                         "autoscaling.knative.dev"}) {
    if (prefix == ns || absl::EndsWith(prefix, absl::StrCat(".", ns))) return true;
  }
  return false;
}

void CheckKeys(const Json& map, const std::string& path, bool strict,
               std::vector<FieldViolation>& out) {
  if (!map.is_object()) return;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (strict && IsReservedKey(it.key())) {
      out.push_back({absl::StrCat(path, "[", it.key(), "]"),
                     absl::StrCat("Keys in the run.googleapis.com, cloud.googleapis.com, "
                                  "serving.knative.dev and autoscaling.knative.dev namespaces "
                                  "are reserved; remove '",
                                  it.key(), "'")});
    }
  }
}

Json WithoutReservedKeys(const Json& map) {
  Json out = Json::object();
  if (!map.is_object()) return out;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!IsReservedKey(it.key())) out[it.key()] = it.value();
  }
  return out;
}

// The part of a template that decides whether a write makes a new revision.
Json TemplateIdentity(const Json& template_spec) {
  Json body = template_spec;
  body.erase("revision");
  if (body.contains("annotations")) body["annotations"] = WithoutReservedKeys(body["annotations"]);
  if (body.contains("labels")) body["labels"] = WithoutReservedKeys(body["labels"]);
  return Prune(body);
}

int64_t AsInt(const Json& value, int64_t fallback) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) return static_cast<int64_t>(value.get<double>());
  if (value.is_string()) {
    char* end = nullptr;
    long long v = std::strtoll(value.get_ref<const std::string&>().c_str(), &end, 10);
    if (end && *end == '\0') return v;
  }
  return fallback;
}

bool IsRevisionReason(const std::string& reason) {
  static const auto* reasons = new std::set<std::string>{"PENDING",
                                                         "RESERVE",
                                                         "RETIRED",
                                                         "RETIRING",
                                                         "RECREATING",
                                                         "HEALTH_CHECK_CONTAINER_ERROR",
                                                         "CUSTOMIZED_PATH_RESPONSE_PENDING",
                                                         "MIN_INSTANCES_NOT_PROVISIONED",
                                                         "ACTIVE_REVISION_LIMIT_REACHED",
                                                         "NO_DEPLOYMENT",
                                                         "HEALTH_CHECK_SKIPPED",
                                                         "MIN_INSTANCES_WARMING"};
  return reasons->count(reason) > 0;
}

Json Condition(const std::string& type, const std::string& state, absl::Time when) {
  return {{"type", type}, {"state", state}, {"lastTransitionTime", FormatRfc3339(when)}};
}

void AddFailure(Json& condition, const std::string& reason, const std::string& message) {
  condition["message"] = message;
  condition["severity"] = "ERROR";
  condition[IsRevisionReason(reason) ? "revisionReason" : "reason"] = reason;
}

}  // namespace

std::string ServiceRecord::ResourceName() const {
  return absl::StrCat("projects/", project, "/locations/", location, "/services/", id);
}

std::string ServiceRecord::RevisionResourceName(const std::string& revision) const {
  return absl::StrCat(ResourceName(), "/revisions/", revision);
}

absl::StatusOr<Json> CanonicalTemplate(const Json& template_spec, const std::string& service_id,
                                       const std::string& path, bool strict_v2_keys) {
  if (!template_spec.is_object()) {
    return InvalidField(path, "a revision template is required (at least one container image)");
  }
  std::vector<FieldViolation> errors;
  Json out = Prune(template_spec);
  std::string revision = out.value("revision", "");
  if (!revision.empty()) {
    if (!absl::StartsWith(revision, service_id + "-") || revision.size() <= service_id.size() + 1) {
      errors.push_back({path + ".revision",
                        absl::StrCat("The revision name must be prefixed by the name of the "
                                     "enclosing Service or Configuration with a trailing -: got '",
                                     revision, "', expected '", service_id, "-...'")});
    } else if (!IsDnsLabel(revision, 63)) {
      errors.push_back({path + ".revision",
                        absl::StrCat("revision name '", revision,
                                     "' must be lower-case letters, digits and '-', start with a "
                                     "letter, not end with '-', and be at most 63 characters")});
    }
  }
  CheckKeys(out.value("labels", Json::object()), path + ".labels", strict_v2_keys, errors);
  CheckKeys(out.value("annotations", Json::object()), path + ".annotations", strict_v2_keys,
            errors);
  Json containers = out.value("containers", Json::array());
  if (containers.empty()) {
    errors.push_back({path + ".containers", "at least one container with an image is required"});
  }
  if (containers.size() > 10) {
    errors.push_back({path + ".containers", "at most 10 containers are allowed"});
  }
  for (size_t i = 0; i < containers.size(); ++i) {
    Json& c = containers[i];
    std::string cpath = absl::StrCat(path, ".containers[", i, "]");
    if (!c.contains("image") || c["image"].get<std::string>().empty()) {
      errors.push_back({cpath + ".image", "container image is required"});
    }
    std::set<std::string> env_names;
    Json env = c.value("env", Json::array());
    for (size_t e = 0; e < env.size(); ++e) {
      std::string name = env[e].value("name", "");
      if (name.empty()) {
        errors.push_back({absl::StrCat(cpath, ".env[", e, "].name"), "env var name is required"});
      } else if (!env_names.insert(name).second) {
        errors.push_back(
            {absl::StrCat(cpath, ".env[", e, "].name"), absl::StrCat("duplicate env var ", name)});
      }
    }
    if (i == 0 && !c.contains("ports")) {
      c["ports"] = Json::array({{{"name", "http1"}, {"containerPort", 8080}}});
    }
    if (c.contains("ports") && c["ports"].size() > 1) {
      errors.push_back({cpath + ".ports", "at most one container port is allowed"});
    }
    if (!c.contains("resources")) c["resources"] = Json::object();
    if (!c["resources"].contains("limits")) {
      c["resources"]["limits"] = {{"cpu", "1000m"}, {"memory", "512Mi"}};
    }
  }
  out["containers"] = containers;
  Json scaling = out.value("scaling", Json::object());
  int64_t min_instances = AsInt(scaling.value("minInstanceCount", Json(0)), 0);
  int64_t max_instances = AsInt(scaling.value("maxInstanceCount", Json(100)), 100);
  if (min_instances < 0) errors.push_back({path + ".scaling.minInstanceCount", "must be >= 0"});
  if (max_instances < 0 || (max_instances != 0 && min_instances > max_instances)) {
    errors.push_back({path + ".scaling",
                      "minInstanceCount must not exceed maxInstanceCount (0 means unlimited)"});
  }
  if (min_instances > 0) scaling["minInstanceCount"] = min_instances;
  scaling["maxInstanceCount"] = max_instances;
  out["scaling"] = scaling;
  absl::Duration timeout = absl::Seconds(300);
  if (out.contains("timeout")) {
    std::optional<absl::Duration> parsed = ParseProtoDuration(out["timeout"].get<std::string>());
    if (!parsed || *parsed > absl::Hours(1) || *parsed <= absl::ZeroDuration()) {
      errors.push_back({path + ".timeout", "timeout must be between 1s and 3600s"});
    } else {
      timeout = *parsed;
    }
  }
  out["timeout"] = FormatProtoDuration(timeout);
  int64_t concurrency = AsInt(out.value("maxInstanceRequestConcurrency", Json(0)), 0);
  if (concurrency < 0 || concurrency > 1000) {
    errors.push_back({path + ".maxInstanceRequestConcurrency", "must be between 0 and 1000"});
  }
  out["maxInstanceRequestConcurrency"] = concurrency == 0 ? 80 : concurrency;
  if (!errors.empty()) {
    std::string message = errors.front().description;
    return InvalidArgument(message, std::move(errors));
  }
  return out;
}

absl::StatusOr<Json> CanonicalTraffic(const Json& traffic, const std::string& path) {
  if (traffic.is_null() || (traffic.is_array() && traffic.empty())) {
    return Json::array({{{"type", kLatest}, {"percent", 100}}});
  }
  std::vector<FieldViolation> errors;
  Json out = Json::array();
  std::set<std::string> tags;
  int64_t sum = 0;
  for (size_t i = 0; i < traffic.size(); ++i) {
    const Json& t = traffic[i];
    std::string tpath = absl::StrCat(path, "[", i, "]");
    std::string type = t.value("type", "");
    std::string revision = t.value("revision", "");
    if (type.empty() || type == "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED") {
      type = revision.empty() ? kLatest : kRevision;
    }
    if (type == kLatest && !revision.empty()) {
      errors.push_back(
          {tpath + ".revision",
           "revision must be empty when type is TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"});
    }
    if (type == kRevision && revision.empty()) {
      errors.push_back(
          {tpath + ".revision",
           "revision is required when type is TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"});
    }
    int64_t percent = AsInt(t.value("percent", Json(0)), 0);
    if (percent < 0 || percent > 100) {
      errors.push_back(
          {tpath + ".percent", absl::StrCat("percent must be between 0 and 100, got ", percent)});
    }
    sum += percent;
    std::string tag = t.value("tag", "");
    if (!tag.empty()) {
      if (!IsDnsLabel(tag, 46)) {
        errors.push_back({tpath + ".tag",
                          absl::StrCat("tag '", tag,
                                       "' must be lower-case letters, digits and '-', start with "
                                       "a letter and be at most 46 characters")});
      } else if (!tags.insert(tag).second) {
        errors.push_back({tpath + ".tag", absl::StrCat("tag '", tag, "' is used more than once")});
      }
    }
    Json target = {{"type", type}, {"percent", percent}};
    if (!revision.empty()) target["revision"] = revision;
    if (!tag.empty()) target["tag"] = tag;
    out.push_back(target);
  }
  if (errors.empty() && sum != 100) {
    errors.push_back({path, absl::StrCat("Traffic targets sum to ", sum, ", want 100")});
  }
  if (!errors.empty()) {
    std::string message = errors.front().description;
    return InvalidArgument(message, std::move(errors));
  }
  return out;
}

CloudRunStore::CloudRunStore(const Clock* clock, uint64_t seed) : clock_(clock), ids_(seed) {}

CloudRunStore::Region& CloudRunStore::RegionOf(const std::string& project,
                                               const std::string& location) {
  return regions_[absl::StrCat(project, "/", location)];
}

ServiceRecord* CloudRunStore::FindService(const std::string& project, const std::string& location,
                                          const std::string& id) {
  auto region = regions_.find(absl::StrCat(project, "/", location));
  if (region == regions_.end()) return nullptr;
  auto it = region->second.services.find(id);
  return it == region->second.services.end() ? nullptr : it->second.get();
}

std::string CloudRunStore::NewEtag() { return absl::StrCat("\"C", ids_.Hex(20), "\""); }

const ReadinessRule* CloudRunStore::RuleFor(const std::string& image) const {
  for (const ReadinessRule& rule : readiness_rules_) {
    if (GlobMatch(rule.image, image)) return &rule;
  }
  return nullptr;
}

absl::StatusOr<Json> CloudRunStore::BuildSpec(const ServiceWrite& write,
                                              const ServiceRecord* existing) const {
  Json spec = (existing && !write.replace_all) ? existing->spec : Json::object();
  std::vector<FieldViolation> errors;
  if (write.mask.empty()) {
    for (const std::string& field : WritableServiceFields()) {
      if (write.fields.contains(field) && !write.fields[field].is_null()) {
        spec[field] = write.fields[field];
      }
    }
  } else {
    for (const std::string& path : write.mask) {
      std::vector<std::string> parts = absl::StrSplit(path, '.');
      if (!WritableServiceFields().count(parts[0])) {
        errors.push_back({"update_mask", absl::StrCat("'", path,
                                                      "' is not a writable Service field; use "
                                                      "e.g. template, traffic, labels")});
        continue;
      }
      // Walk the dotted path in both the body and the spec; an absent value clears the field.
      const Json* from = &write.fields;
      Json* to = &spec;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        from =
            (from && from->is_object() && from->contains(parts[i])) ? &(*from)[parts[i]] : nullptr;
        if (!to->contains(parts[i]) || !(*to)[parts[i]].is_object()) {
          (*to)[parts[i]] = Json::object();
        }
        to = &(*to)[parts[i]];
      }
      const std::string& leaf = parts.back();
      if (from && from->is_object() && from->contains(leaf) && !(*from)[leaf].is_null()) {
        (*to)[leaf] = (*from)[leaf];
      } else {
        to->erase(leaf);
      }
    }
  }
  if (!errors.empty()) return FirstViolation(std::move(errors));
  // Only the maps this write sets are held to the v2 key rules: a service deployed through v1
  // (gcloud) keeps its run.googleapis.com/... annotations, which the v2 view hides, so a v2 write
  // that leaves them alone must not be refused for them.
  for (const char* path : {"labels", "annotations", "template.labels", "template.annotations"}) {
    std::vector<std::string> parts = absl::StrSplit(path, '.');
    const Json* value = &write.fields;
    for (const std::string& part : parts) {
      value = value->is_object() && value->contains(part) ? &(*value)[part] : nullptr;
      if (!value) break;
    }
    bool written = write.mask.empty() && value;
    for (const std::string& masked : write.mask) {
      // "template" covers "template.labels"; "labels.team" is part of "labels".
      if (masked == path || absl::StartsWith(path, masked + ".") ||
          absl::StartsWith(masked, absl::StrCat(path, "."))) {
        written = true;
      }
    }
    if (written && value) {
      CheckKeys(*value, absl::StrCat("service.", path), write.strict_v2_keys, errors);
    }
  }
  if (spec.value("description", "").size() > 512) {
    errors.push_back({"service.description", "description must be at most 512 characters"});
  }
  if (!errors.empty()) return FirstViolation(std::move(errors));
  absl::StatusOr<Json> tmpl = CanonicalTemplate(spec.value("template", Json()), write.id,
                                                "service.template", /*strict_v2_keys=*/false);
  if (!tmpl.ok()) return tmpl.status();
  spec["template"] = *tmpl;
  absl::StatusOr<Json> traffic = CanonicalTraffic(spec.value("traffic", Json()), "service.traffic");
  if (!traffic.ok()) return traffic.status();
  spec["traffic"] = *traffic;
  if (!spec.contains("ingress") || spec["ingress"] == "INGRESS_TRAFFIC_UNSPECIFIED") {
    spec["ingress"] = "INGRESS_TRAFFIC_ALL";
  }
  if (!spec.contains("launchStage") || spec["launchStage"] == "LAUNCH_STAGE_UNSPECIFIED") {
    spec["launchStage"] = "GA";
  }
  return Prune(spec);
}

absl::StatusOr<WriteResult> CloudRunStore::WriteService(const ServiceWrite& write) {
  absl::Time now = clock_->Now();
  ServiceRecord* existing = FindService(write.project, write.location, write.id);
  if (existing) Settle(*existing);
  std::string name = absl::StrCat("projects/", write.project, "/locations/", write.location,
                                  "/services/", write.id);
  if (existing && write.must_create) {
    return absl::AlreadyExistsError(absl::StrCat("Resource '", name, "' already exists."));
  }
  if (!existing && !write.allow_create) {
    return absl::NotFoundError(absl::StrCat("Resource '", name, "' was not found"));
  }
  if (!existing && !IsDnsLabel(write.id, 49)) {
    return InvalidField("service_id",
                        absl::StrCat("'", write.id,
                                     "' is not a valid service id: use lower-case letters, digits "
                                     "and '-', start with a letter, do not end with '-', and stay "
                                     "under 50 characters"));
  }
  if (existing && !write.etag.empty() && write.etag != existing->etag) {
    return absl::AbortedError(absl::StrCat("The etag \"", write.etag, "\" of service '", name,
                                           "' is stale: read the service and retry"));
  }
  if (existing && !write.resource_version.empty() &&
      write.resource_version != absl::StrCat(existing->resource_version)) {
    return absl::AbortedError(
        absl::StrCat("Operation cannot be fulfilled on services.serving.knative.dev \"", write.id,
                     "\": the object has been modified; please apply your changes to the latest "
                     "version and try again"));
  }
  absl::StatusOr<Json> spec = BuildSpec(write, existing);
  if (!spec.ok()) return spec.status();

  Region& region = RegionOf(write.project, write.location);
  // Revision decision: reuse an identical named revision, refuse a conflicting one, else create
  // one when the template differs from the latest created revision's.
  const Json& tmpl = (*spec)["template"];
  Json identity = TemplateIdentity(tmpl);
  std::string explicit_name = tmpl.value("revision", "");
  std::string new_revision;  // to create
  std::string latest_created = existing ? existing->latest_created : "";
  if (!explicit_name.empty()) {
    auto owner = region.revision_owner.find(explicit_name);
    if (owner != region.revision_owner.end() && owner->second != write.id) {
      return absl::AlreadyExistsError(absl::StrCat(
          "Revision named '", explicit_name, "' already exists in service '", owner->second, "'."));
    }
    if (existing && existing->revisions.count(explicit_name)) {
      if (TemplateIdentity(existing->revisions.at(explicit_name).template_spec) != identity) {
        return absl::AlreadyExistsError(absl::StrCat(
            "Revision named '", explicit_name, "' with different configuration already exists."));
      }
      latest_created = explicit_name;
    } else {
      new_revision = explicit_name;
    }
  } else if (!existing || existing->latest_created.empty() ||
             TemplateIdentity(existing->revisions.at(existing->latest_created).template_spec) !=
                 identity) {
    new_revision = "pending";  // named below, once the generation is known
  }

  // Traffic may name existing revisions of this service, or the one this write creates.
  const Json& traffic = (*spec)["traffic"];
  std::vector<FieldViolation> errors;
  for (size_t i = 0; i < traffic.size(); ++i) {
    std::string revision = traffic[i].value("revision", "");
    if (revision.empty() || revision == new_revision) continue;
    if (existing && existing->revisions.count(revision)) continue;
    auto owner = region.revision_owner.find(revision);
    std::string field = absl::StrCat("service.traffic[", i, "].revision");
    if (owner != region.revision_owner.end()) {
      errors.push_back({field, absl::StrCat("Revision '", revision, "' belongs to service '",
                                            owner->second, "', not to '", write.id, "'.")});
    } else {
      errors.push_back(
          {field, absl::StrCat("Revision '", revision, "' referenced in traffic not found.")});
    }
  }
  if (!errors.empty()) return FirstViolation(std::move(errors));

  bool changed = !existing || existing->spec != *spec || !new_revision.empty() ||
                 latest_created != existing->latest_created;

  ServiceRecord scratch;
  ServiceRecord* target = nullptr;
  if (write.validate_only) {
    scratch = existing ? *existing : ServiceRecord();
    target = &scratch;
  } else if (existing) {
    target = existing;
  } else {
    auto record = std::make_unique<ServiceRecord>();
    target = record.get();
    region.services[write.id] = std::move(record);
  }
  if (!existing) {
    target->project = write.project;
    target->location = write.location;
    target->id = write.id;
    target->uid = ids_.Uuid4();
    target->create_seq = ++sequence_;
    target->create_time = now;
    target->creator = write.actor;
  }
  target->spec = *spec;
  target->etag = NewEtag();
  target->resource_version = ++sequence_;
  target->update_time = now;
  target->last_modifier = write.actor;
  if (changed) ++target->generation;
  if (!new_revision.empty()) {
    if (new_revision == "pending") {
      do {
        char number[16];
        std::snprintf(number, sizeof(number), "%05lld", static_cast<long long>(target->generation));
        new_revision = absl::StrCat(write.id, "-", number, "-", ids_.LowerLetters(3));
      } while (region.revision_owner.count(new_revision));
    }
    RevisionRecord revision;
    revision.name = new_revision;
    revision.uid = ids_.Uuid4();
    revision.etag = NewEtag();
    revision.creator = write.actor;
    revision.config_generation = target->generation;
    revision.template_spec = tmpl;
    revision.template_spec.erase("revision");
    revision.create_time = now;
    revision.image = tmpl["containers"][0].value("image", "");
    revision.settle_time = now;
    if (const ReadinessRule* rule = RuleFor(revision.image); rule && !write.seed) {
      revision.settle_time = rule->outcome == ReadinessRule::Outcome::kNever
                                 ? absl::InfiniteFuture()
                                 : now + rule->delay;
      revision.fails = rule->outcome == ReadinessRule::Outcome::kFail;
      revision.fail_reason = rule->reason;
      revision.fail_message =
          rule->message.empty()
              ? absl::StrCat(
                    "The user-provided container failed to start and listen on the port "
                    "defined provided by the PORT=8080 environment variable (image ",
                    revision.image, ").")
              : rule->message;
      revision.serve_status = rule->serve_status;
    } else if (const ReadinessRule* serve_rule = RuleFor(revision.image)) {
      revision.serve_status = serve_rule->serve_status;
    }
    target->revisions[new_revision] = revision;
    target->revision_order.push_back(new_revision);
    if (!write.validate_only) region.revision_owner[new_revision] = write.id;
    latest_created = new_revision;
  }
  target->latest_created = latest_created;
  if (changed) {
    target->reconciling = true;
    target->write_time = write.seed ? now - config_.reconcile_delay : now;
  }

  WriteResult result;
  if (write.validate_only) {
    result.preview = ServiceV2(scratch);
    return result;
  }
  result.service = target;
  if (write.seed) {
    Settle(*target);
    return result;
  }
  Json metadata = ServiceV2(*target);
  metadata["@type"] = kServiceType;
  OperationRecord* operation = NewOperation(*target, metadata);
  target->pending_operations.push_back(operation->name);
  Settle(*target);
  if (!target->reconciling) CompleteOperations(*target);
  result.operation = operation;
  return result;
}

absl::StatusOr<const ServiceRecord*> CloudRunStore::SeedService(const ServiceWrite& write) {
  ServiceWrite seeded = write;
  seeded.seed = true;
  seeded.allow_create = true;
  absl::StatusOr<WriteResult> result = WriteService(seeded);
  if (!result.ok()) return result.status();
  return result->service;
}

OperationRecord* CloudRunStore::NewOperation(const ServiceRecord& service, Json metadata) {
  auto operation = std::make_unique<OperationRecord>();
  operation->name = absl::StrCat("projects/", service.project, "/locations/", service.location,
                                 "/operations/", ids_.Uuid4());
  operation->project = service.project;
  operation->location = service.location;
  operation->service = service.id;
  operation->seq = ++sequence_;
  operation->create_time = clock_->Now();
  operation->metadata = std::move(metadata);
  OperationRecord* raw = operation.get();
  operations_[raw->name] = std::move(operation);
  operation_order_.push_back(raw->name);
  // Pending operations are kept (moved to the back); each is looked at once per call at most.
  for (size_t looked = 0, count = operation_order_.size();
       operation_order_.size() > kMaxOperations && looked < count; ++looked) {
    std::string oldest = std::move(operation_order_.front());
    operation_order_.pop_front();
    auto it = operations_.find(oldest);
    if (it == operations_.end()) continue;
    if (it->second->done) {
      operations_.erase(it);
    } else {
      operation_order_.push_back(std::move(oldest));
    }
  }
  return raw;
}

absl::Time CloudRunStore::DueTime(const ServiceRecord& service,
                                  const RevisionRecord** failing) const {
  absl::Time base = service.write_time + config_.reconcile_delay;
  std::set<std::string> deps;
  if (!service.latest_created.empty()) deps.insert(service.latest_created);
  for (const Json& t : service.spec.value("traffic", Json::array())) {
    std::string revision = t.value("revision", "");
    if (!revision.empty()) deps.insert(revision);
  }
  absl::Time all_ready = base;
  const RevisionRecord* first_failure = nullptr;
  for (const std::string& name : deps) {
    auto it = service.revisions.find(name);
    if (it == service.revisions.end()) continue;
    const RevisionRecord& revision = it->second;
    if (revision.fails) {
      if (!first_failure || revision.settle_time < first_failure->settle_time) {
        first_failure = &revision;
      }
    } else {
      all_ready = std::max(all_ready, revision.settle_time);
    }
  }
  *failing = first_failure;
  if (first_failure) return std::max(base, first_failure->settle_time);
  return all_ready;
}

void CloudRunStore::Settle(ServiceRecord& service) {
  if (!service.reconciling) return;
  const RevisionRecord* failing = nullptr;
  absl::Time due = DueTime(service, &failing);
  if (due > clock_->Now()) return;
  service.reconciling = false;
  service.terminal_generation = service.generation;
  service.last_transition = due;
  if (failing) {
    service.failed = true;
    service.failure_reason = failing->fail_reason;
    service.failure_message =
        absl::StrCat("Revision '", failing->name, "' is not ready and cannot serve traffic. ",
                     failing->fail_message);
  } else {
    service.failed = false;
    service.failure_reason.clear();
    service.failure_message.clear();
    service.observed_generation = service.generation;
    service.latest_ready = service.latest_created;
    Json statuses = Json::array();
    for (const Json& t : service.spec["traffic"]) {
      Json status = t;
      if (t["type"] == kLatest && !service.latest_ready.empty()) {
        status["revision"] = service.latest_ready;
      }
      if (t.contains("tag")) status["uri"] = TagUri(service, t["tag"]);
      statuses.push_back(status);
    }
    service.traffic_statuses = statuses;
  }
  CompleteOperations(service);
}

void CloudRunStore::CompleteOperations(ServiceRecord& service) {
  if (service.reconciling) return;
  for (const std::string& name : service.pending_operations) {
    auto it = operations_.find(name);
    if (it == operations_.end()) continue;
    OperationRecord& operation = *it->second;
    operation.done = true;
    if (service.failed) {
      operation.error = absl::FailedPreconditionError(service.failure_message);
    } else {
      operation.response = ServiceV2(service);
      operation.response["@type"] = kServiceType;
    }
  }
  service.pending_operations.clear();
}

absl::StatusOr<const ServiceRecord*> CloudRunStore::GetService(const std::string& project,
                                                               const std::string& location,
                                                               const std::string& id) {
  ServiceRecord* service = FindService(project, location, id);
  if (!service) {
    return absl::NotFoundError(absl::StrCat("Resource 'projects/", project, "/locations/", location,
                                            "/services/", id, "' was not found"));
  }
  Settle(*service);
  return service;
}

std::vector<const ServiceRecord*> CloudRunStore::ListServices(const std::string& project,
                                                              const std::string& location) {
  std::vector<const ServiceRecord*> out;
  for (auto& [key, region] : regions_) {
    size_t slash = key.rfind('/');
    if (key.substr(0, slash) != project) continue;
    if (location != "-" && key.substr(slash + 1) != location) continue;
    for (auto& [id, service] : region.services) {
      Settle(*service);
      out.push_back(service.get());
    }
  }
  std::sort(out.begin(), out.end(), [](const ServiceRecord* a, const ServiceRecord* b) {
    return a->create_seq > b->create_seq;
  });
  return out;
}

std::vector<const ServiceRecord*> CloudRunStore::AllServices() {
  std::vector<const ServiceRecord*> out;
  for (auto& [key, region] : regions_) {
    for (auto& [id, service] : region.services) {
      Settle(*service);
      out.push_back(service.get());
    }
  }
  std::sort(out.begin(), out.end(), [](const ServiceRecord* a, const ServiceRecord* b) {
    return a->create_seq < b->create_seq;
  });
  return out;
}

absl::StatusOr<const OperationRecord*> CloudRunStore::DeleteService(
    const std::string& project, const std::string& location, const std::string& id,
    const std::string& etag, bool validate_only, Json* deleted_view) {
  ServiceRecord* service = FindService(project, location, id);
  if (!service) {
    return absl::NotFoundError(absl::StrCat("Resource 'projects/", project, "/locations/", location,
                                            "/services/", id, "' was not found"));
  }
  Settle(*service);
  if (!etag.empty() && etag != service->etag) {
    return absl::AbortedError(absl::StrCat("The etag \"", etag, "\" of service '",
                                           service->ResourceName(),
                                           "' is stale: read the service and retry"));
  }
  Json view = ServiceV2(*service);
  view["deleteTime"] = FormatRfc3339(clock_->Now());
  if (deleted_view) *deleted_view = view;
  if (validate_only) return nullptr;
  view["@type"] = kServiceType;
  OperationRecord* operation = NewOperation(*service, view);
  operation->done = true;
  operation->response = view;
  for (const std::string& name : service->pending_operations) {
    auto it = operations_.find(name);
    if (it == operations_.end()) continue;
    it->second->done = true;
    it->second->error = absl::AbortedError("The service was deleted before this operation ended.");
  }
  Region& region = RegionOf(project, location);
  for (const auto& [name, revision] : service->revisions) region.revision_owner.erase(name);
  region.services.erase(id);
  return operation;
}

absl::StatusOr<std::pair<const ServiceRecord*, const RevisionRecord*>> CloudRunStore::GetRevision(
    const std::string& project, const std::string& location, const std::string& service_id,
    const std::string& revision) {
  std::string owner = service_id;
  if (owner.empty() || owner == "-") {
    Region& region = RegionOf(project, location);
    auto it = region.revision_owner.find(revision);
    if (it != region.revision_owner.end()) owner = it->second;
  }
  ServiceRecord* service = FindService(project, location, owner);
  if (!service || !service->revisions.count(revision)) {
    return absl::NotFoundError(absl::StrCat("Resource 'projects/", project, "/locations/", location,
                                            "/services/", service_id.empty() ? "-" : service_id,
                                            "/revisions/", revision, "' was not found"));
  }
  Settle(*service);
  return std::make_pair(static_cast<const ServiceRecord*>(service),
                        static_cast<const RevisionRecord*>(&service->revisions.at(revision)));
}

bool CloudRunStore::RevisionServes(const ServiceRecord& service,
                                   const std::string& revision) const {
  for (const Json& t : service.traffic_statuses) {
    if (t.value("revision", "") == revision && t.value("percent", 0) > 0) return true;
  }
  return false;
}

absl::StatusOr<const OperationRecord*> CloudRunStore::DeleteRevision(
    const std::string& project, const std::string& location, const std::string& service_id,
    const std::string& revision, bool validate_only, Json* deleted_view) {
  absl::StatusOr<std::pair<const ServiceRecord*, const RevisionRecord*>> found =
      GetRevision(project, location, service_id, revision);
  if (!found.ok()) return found.status();
  ServiceRecord* service = FindService(project, location, found->first->id);
  bool referenced = RevisionServes(*service, revision);
  for (const Json& t : service->spec["traffic"]) {
    if (t.value("revision", "") == revision) referenced = true;
  }
  for (const Json& t : service->traffic_statuses) {
    if (t.value("revision", "") == revision && t.contains("tag")) referenced = true;
  }
  if (referenced) {
    return absl::FailedPreconditionError(
        absl::StrCat("Revision '", revision,
                     "' can receive traffic (it is in the service's traffic); move "
                     "its traffic and tags away before deleting it."));
  }
  if (service->revisions.size() == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("Revision '", revision, "' is the only revision of service '", service->id,
                     "' and cannot be deleted; delete the service instead."));
  }
  if (service->latest_created == revision) {
    return absl::FailedPreconditionError(absl::StrCat("Revision '", revision,
                                                      "' is the latest revision of service '",
                                                      service->id, "' and cannot be deleted."));
  }
  Json view = RevisionV2(*service, service->revisions.at(revision));
  view["deleteTime"] = FormatRfc3339(clock_->Now());
  if (deleted_view) *deleted_view = view;
  if (validate_only) return nullptr;
  view["@type"] = kRevisionType;
  OperationRecord* operation = NewOperation(*service, view);
  operation->done = true;
  operation->response = view;
  service->revisions.erase(revision);
  service->revision_order.erase(
      std::remove(service->revision_order.begin(), service->revision_order.end(), revision),
      service->revision_order.end());
  RegionOf(project, location).revision_owner.erase(revision);
  return operation;
}

absl::StatusOr<const OperationRecord*> CloudRunStore::GetOperation(const std::string& name) {
  auto it = operations_.find(name);
  if (it == operations_.end()) {
    return absl::NotFoundError(absl::StrCat("Operation '", name, "' was not found"));
  }
  OperationRecord& operation = *it->second;
  if (!operation.done) {
    if (ServiceRecord* service =
            FindService(operation.project, operation.location, operation.service)) {
      Settle(*service);
    }
  }
  return &operation;
}

absl::Time CloudRunStore::OperationDueTime(const std::string& name) {
  auto it = operations_.find(name);
  if (it == operations_.end() || it->second->done) return clock_->Now();
  ServiceRecord* service =
      FindService(it->second->project, it->second->location, it->second->service);
  if (!service) return clock_->Now();
  const RevisionRecord* failing = nullptr;
  return DueTime(*service, &failing);
}

std::vector<const OperationRecord*> CloudRunStore::ListOperations(const std::string& project,
                                                                  const std::string& location) {
  std::vector<const OperationRecord*> out;
  for (auto& [name, operation] : operations_) {
    if (operation->project != project || operation->location != location) continue;
    if (!operation->done) (void)GetOperation(name);
    out.push_back(operation.get());
  }
  std::sort(out.begin(), out.end(),
            [](const OperationRecord* a, const OperationRecord* b) { return a->seq > b->seq; });
  return out;
}

absl::Status CloudRunStore::DeleteOperation(const std::string& name) {
  if (!operations_.erase(name)) {
    return absl::NotFoundError(absl::StrCat("Operation '", name, "' was not found"));
  }
  return absl::OkStatus();
}

absl::Status CloudRunStore::SetIamPolicy(const std::string& project, const std::string& location,
                                         const std::string& id, const Json& policy) {
  ServiceRecord* service = FindService(project, location, id);
  if (!service) {
    return absl::NotFoundError(absl::StrCat("Resource 'projects/", project, "/locations/", location,
                                            "/services/", id, "' was not found"));
  }
  service->iam_policy = policy;
  service->iam_policy["etag"] = Base64(ids_.Hex(8));
  return absl::OkStatus();
}

void CloudRunStore::Reset() {
  regions_.clear();
  operations_.clear();
  operation_order_.clear();
  readiness_rules_.clear();
}

std::string CloudRunStore::ServiceUri(const ServiceRecord& service) const {
  return absl::StrCat(config_.base_url, "/_run/", service.project, "/", service.location, "/",
                      service.id);
}

std::string CloudRunStore::TagUri(const ServiceRecord& service, const std::string& tag) const {
  return absl::StrCat(config_.base_url, "/_tag/", service.project, "/", service.location, "/",
                      service.id, "/", tag);
}

int CloudRunStore::RevisionState(const RevisionRecord& revision) const {
  if (clock_->Now() < revision.settle_time) return 0;
  return revision.fails ? -1 : 1;
}

namespace {

// proto3 JSON leaves out zero percents.
Json TrafficOut(const Json& traffic) {
  Json out = Json::array();
  for (Json t : traffic) {
    if (t.value("percent", 0) == 0) t.erase("percent");
    out.push_back(t);
  }
  return out;
}

Json TemplateOut(const Json& template_spec) {
  Json out = template_spec;
  if (out.contains("annotations")) out["annotations"] = WithoutReservedKeys(out["annotations"]);
  if (out.contains("labels")) out["labels"] = WithoutReservedKeys(out["labels"]);
  return Prune(out);
}

}  // namespace

Json CloudRunStore::ServiceV2(const ServiceRecord& service) const {
  Json out = Json::object();
  out["name"] = service.ResourceName();
  out["uid"] = service.uid;
  out["generation"] = absl::StrCat(service.generation);
  for (auto it = service.spec.begin(); it != service.spec.end(); ++it) out[it.key()] = it.value();
  for (const char* map : {"labels", "annotations"}) {
    if (!out.contains(map)) continue;
    out[map] = WithoutReservedKeys(out[map]);
    if (out[map].empty()) out.erase(map);
  }
  out["template"] = TemplateOut(service.spec["template"]);
  out["traffic"] = TrafficOut(service.spec["traffic"]);
  out["createTime"] = FormatRfc3339(service.create_time);
  out["updateTime"] = FormatRfc3339(service.update_time);
  out["creator"] = service.creator;
  out["lastModifier"] = service.last_modifier;
  if (service.observed_generation > 0) {
    out["observedGeneration"] = absl::StrCat(service.observed_generation);
  }
  Json terminal = Condition("Ready", "CONDITION_SUCCEEDED", service.last_transition);
  Json routes = Condition("RoutesReady", "CONDITION_SUCCEEDED", service.last_transition);
  Json configurations =
      Condition("ConfigurationsReady", "CONDITION_SUCCEEDED", service.last_transition);
  if (service.reconciling) {
    terminal = Condition("Ready", "CONDITION_RECONCILING", service.write_time);
    routes = Condition("RoutesReady", "CONDITION_RECONCILING", service.write_time);
    auto latest = service.revisions.find(service.latest_created);
    if (latest != service.revisions.end() && RevisionState(latest->second) == 0) {
      configurations =
          Condition("ConfigurationsReady", "CONDITION_RECONCILING", service.write_time);
    }
    out["reconciling"] = true;
  } else if (service.failed) {
    terminal = Condition("Ready", "CONDITION_FAILED", service.last_transition);
    AddFailure(terminal, service.failure_reason, service.failure_message);
    auto latest = service.revisions.find(service.latest_created);
    if (latest != service.revisions.end() && latest->second.fails) {
      configurations =
          Condition("ConfigurationsReady", "CONDITION_FAILED", service.last_transition);
      AddFailure(configurations, service.failure_reason, service.failure_message);
    } else {
      routes = Condition("RoutesReady", "CONDITION_FAILED", service.last_transition);
      AddFailure(routes, service.failure_reason, service.failure_message);
    }
  }
  out["terminalCondition"] = terminal;
  out["conditions"] = Json::array({routes, configurations});
  if (!service.latest_ready.empty()) {
    out["latestReadyRevision"] = service.RevisionResourceName(service.latest_ready);
  }
  if (!service.latest_created.empty()) {
    out["latestCreatedRevision"] = service.RevisionResourceName(service.latest_created);
  }
  if (!service.traffic_statuses.empty()) {
    out["trafficStatuses"] = TrafficOut(service.traffic_statuses);
  }
  if (service.observed_generation > 0) {
    out["uri"] = ServiceUri(service);
    out["urls"] = Json::array({ServiceUri(service)});
  }
  out["etag"] = service.etag;
  return out;
}

Json CloudRunStore::RevisionV2(const ServiceRecord& service, const RevisionRecord& revision) const {
  Json out = TemplateOut(revision.template_spec);
  out["name"] = service.RevisionResourceName(revision.name);
  out["uid"] = revision.uid;
  out["generation"] = "1";
  out["observedGeneration"] = "1";
  out["createTime"] = FormatRfc3339(revision.create_time);
  out["updateTime"] = FormatRfc3339(revision.create_time);
  if (!revision.creator.empty()) out["creator"] = revision.creator;
  out["launchStage"] = service.spec.value("launchStage", "GA");
  out["service"] = service.ResourceName();
  out["etag"] = revision.etag;
  out["logUri"] = absl::StrCat(
      "https://console.cloud.google.com/logs/viewer?project=", service.project,
      "&resource=cloud_run_revision/service_name/", service.id, "/revision_name/", revision.name);
  int state = RevisionState(revision);
  absl::Time when = state == 0 ? revision.create_time : revision.settle_time;
  Json ready = Condition("Ready", "CONDITION_SUCCEEDED", when);
  Json healthy = Condition("ContainerHealthy", "CONDITION_SUCCEEDED", when);
  Json resources = Condition("ResourcesAvailable", "CONDITION_SUCCEEDED", when);
  if (state == 0) {
    ready["state"] = healthy["state"] = resources["state"] = "CONDITION_RECONCILING";
    out["reconciling"] = true;
  } else if (state < 0) {
    ready["state"] = healthy["state"] = "CONDITION_FAILED";
    AddFailure(ready, revision.fail_reason, revision.fail_message);
    AddFailure(healthy, revision.fail_reason, revision.fail_message);
  }
  if (state >= 0 && !RevisionServes(service, revision.name) && state == 1) {
    Json active = Condition("Active", "CONDITION_SUCCEEDED", when);
    active["revisionReason"] = "RESERVE";
    active["severity"] = "INFO";
    out["conditions"] = Json::array({ready, healthy, resources, active});
  } else {
    out["conditions"] = Json::array({ready, healthy, resources});
  }
  return out;
}

}  // namespace runway::emulator
