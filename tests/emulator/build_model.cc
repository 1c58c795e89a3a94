#include "tests/emulator/build_model.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/emulator/build_filter.h"

namespace runway::emulator {
namespace {

constexpr char kMetadataType[] =
    "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata";
constexpr char kBuildType[] = "type.googleapis.com/google.devtools.cloudbuild.v1.Build";
constexpr char kNotFound[] = "Requested entity was not found.";
constexpr char kGlobal[] = "global";
constexpr char kDefaultTimeout[] = "3600s";
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
constexpr char kPageTokenVersion[] = "bt1";

// A set of field names written as one space-separated list.
std::set<std::string> FieldSet(const char* names) {
  return absl::StrSplit(names, ' ', absl::SkipEmpty());
}

// Every field of google.devtools.cloudbuild.v1.Build, output-only ones included: clients echo
// builds they have read, and the real API accepts that.
const std::set<std::string>& KnownBuildFields() {
  static const auto* fields = new std::set<std::string>(FieldSet(
      "name id projectId status statusDetail source steps results createTime startTime "
      "finishTime timeout images queueTtl artifacts logsBucket sourceProvenance buildTriggerId "
      "options logUrl substitutions tags secrets timing approval serviceAccount availableSecrets "
      "warnings gitConfig failureInfo dependencies"));
  return *fields;
}

const std::set<std::string>& KnownStepFields() {
  static const auto* fields = new std::set<std::string>(FieldSet(
      "name env args dir id waitFor entrypoint secretEnv volumes timing pullTiming "
      "timeout status allowFailure exitCode allowExitCodes script automapSubstitutions results"));
  return *fields;
}

// Output-only fields a client may send; create drops them and computes its own.
const std::set<std::string>& OutputOnlyBuildFields() {
  static const auto* fields = new std::set<std::string>(
      FieldSet("name id projectId status statusDetail results createTime startTime finishTime "
               "logUrl timing approval failureInfo warnings sourceProvenance buildTriggerId"));
  return *fields;
}

const std::set<std::string>& OutputOnlyStepFields() {
  static const auto* fields =
      new std::set<std::string>(FieldSet("status timing pullTiming exitCode results"));
  return *fields;
}

// The fields View() computes from the schedule; Seed drops them from non-terminal builds.
const std::set<std::string>& ComputedFields() {
  static const auto* fields = new std::set<std::string>(
      FieldSet("status startTime finishTime results failureInfo statusDetail"));
  return *fields;
}

bool IsTerminal(const std::string& status) {
  return status == "SUCCESS" || status == "FAILURE" || status == "INTERNAL_ERROR" ||
         status == "TIMEOUT" || status == "CANCELLED" || status == "EXPIRED";
}

bool IsScriptableOutcome(const std::string& outcome) {
  return outcome == "SUCCESS" || outcome == "FAILURE" || outcome == "INTERNAL_ERROR" ||
         outcome == "TIMEOUT";
}

// Null when `object` is not an object or has no such member. nlohmann's accessors assert or
// throw on missing keys and wrong types, which our code never does.
const Json* Member(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string StringAt(const Json& object, const char* key) {
  const Json* value = Member(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>() : "";
}

absl::Status NotFound() { return absl::NotFoundError(kNotFound); }

bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

bool IsIdentifier(const std::string& name) {
  if (name.empty() || !IsIdentStart(name[0])) return false;
  return std::all_of(name.begin(), name.end(), IsIdentChar);
}

// Cloud Build's rule for user substitution keys.
bool IsUserSubstitutionKey(const std::string& key) {
  if (key.size() < 2 || key[0] != '_') return false;
  return std::all_of(key.begin() + 1, key.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Cloud Build's rule for build tags: [\w][\w.-]{0,127}.
bool IsValidTag(const std::string& tag) {
  auto word = [](char c) { return IsIdentChar(c); };
  if (tag.empty() || tag.size() > 128 || !word(tag[0])) return false;
  return std::all_of(tag.begin(), tag.end(),
                     [&](char c) { return word(c) || c == '.' || c == '-'; });
}

// The key that BuildRule::source globs over; see build_model.h.
std::string SourceKey(const Json& build) {
  const Json* source = Member(build, "source");
  if (source == nullptr) return "";
  if (const Json* git = Member(*source, "gitSource"); git != nullptr && git->is_object()) {
    return absl::StrCat(StringAt(*git, "url"), "#", StringAt(*git, "revision"));
  }
  if (const Json* storage = Member(*source, "storageSource");
      storage != nullptr && storage->is_object()) {
    return absl::StrCat("gs://", StringAt(*storage, "bucket"), "/", StringAt(*storage, "object"));
  }
  if (const Json* repo = Member(*source, "repoSource"); repo != nullptr && repo->is_object()) {
    std::string revision = StringAt(*repo, "branchName");
    if (revision.empty()) revision = StringAt(*repo, "tagName");
    if (revision.empty()) revision = StringAt(*repo, "commitSha");
    return absl::StrCat(StringAt(*repo, "repoName"), "@", revision);
  }
  return "";
}

std::vector<std::string> StringsAt(const Json& object, const char* key) {
  std::vector<std::string> out;
  const Json* list = Member(object, key);
  if (list == nullptr || !list->is_array()) return out;
  for (const Json& item : *list) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

// The build's `timeout`, or the default of 60 minutes. `field` names it in errors.
absl::StatusOr<absl::Duration> TimeoutOf(const Json& build, const std::string& field) {
  const Json* timeout = Member(build, "timeout");
  if (timeout == nullptr) return absl::Seconds(3600);
  std::optional<absl::Duration> parsed;
  if (timeout->is_string()) parsed = ParseProtoDuration(timeout->get<std::string>());
  if (!parsed.has_value()) {
    return InvalidField(field, "must be a duration such as \"600s\"");
  }
  if (*parsed <= absl::ZeroDuration()) return InvalidField(field, "must be positive");
  return *parsed;
}

std::optional<absl::Time> ParseTimestamp(const std::string& text) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &error)) return std::nullopt;
  return t;
}

// Several violations become one InvalidArgument whose message lists them all.
absl::Status Violations(std::vector<FieldViolation> violations) {
  std::vector<std::string> parts;
  for (const FieldViolation& v : violations) {
    parts.push_back(absl::StrCat("Invalid value for field '", v.field, "': ", v.description));
  }
  return InvalidArgument(absl::StrJoin(parts, "; "), std::move(violations));
}

// Unknown members of `object` (at proto path `path`) in the wording of Google's JSON parser.
void CheckUnknown(const Json& object, const std::set<std::string>& known, const std::string& path,
                  std::vector<FieldViolation>& out) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (known.count(it.key()) == 0) {
      out.push_back({path, absl::StrCat("Invalid JSON payload received. Unknown name \"", it.key(),
                                        "\" at '", path, "': Cannot find field.")});
    }
  }
}

void CheckString(const Json& object, const char* key, const std::string& path,
                 std::vector<FieldViolation>& out) {
  const Json* value = Member(object, key);
  if (value != nullptr && !value->is_string()) out.push_back({path, "must be a string"});
}

void CheckStringArray(const Json& object, const char* key, const std::string& path,
                      std::vector<FieldViolation>& out) {
  const Json* list = Member(object, key);
  if (list == nullptr) return;
  if (!list->is_array()) {
    out.push_back({path, "must be an array of strings"});
    return;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_string()) {
      out.push_back({absl::StrCat(path, "[", i, "]"), "must be a string"});
    }
  }
}

// Server-side substitution over the string fields of one build (see Create in build_model.h).
class Expander {
 public:
  Expander(std::map<std::string, std::string> builtins, std::map<std::string, std::string> user,
           bool loose)
      : builtins_(std::move(builtins)), user_(std::move(user)), loose_(loose) {}

  // Expands a string, or every string of an array, in place. `field` locates it in errors.
  absl::Status ExpandValue(Json& value, const std::string& field) {
    if (value.is_string()) {
      absl::StatusOr<std::string> expanded = Expand(value.get<std::string>(), field);
      if (!expanded.ok()) return expanded.status();
      value = *std::move(expanded);
    } else if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        absl::Status status = ExpandValue(value[i], absl::StrCat(field, "[", i, "]"));
        if (!status.ok()) return status;
      }
    }
    return absl::OkStatus();
  }

  absl::Status ExpandMember(Json& object, const char* key, const std::string& field) {
    if (!object.is_object() || !object.contains(key)) return absl::OkStatus();
    return ExpandValue(object[key], field);
  }

  // MUST_MATCH also refuses user substitutions the template never uses.
  absl::Status CheckAllUsed() const {
    if (loose_) return absl::OkStatus();
    for (const auto& [key, value] : user_) {
      if (used_.count(key) == 0) {
        return Error(absl::StrCat("key \"", key,
                                  "\" in the substitution data is not matched in the template"));
      }
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status Error(const std::string& description) {
    return InvalidArgument(absl::StrCat("invalid value for 'build.substitutions': ", description,
                                        "; set options.substitutionOption to ALLOW_LOOSE to "
                                        "tolerate this"),
                           {{"build.substitutions", description}});
  }

  absl::StatusOr<std::string> Expand(const std::string& text, const std::string& field) {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
      char c = text[i];
      if (c != '$' || i + 1 == text.size()) {
        out.push_back(c);
        ++i;
        continue;
      }
      char next = text[i + 1];
      if (next == '$') {  // "$$" is a literal '$'
        out.push_back('$');
        i += 2;
        continue;
      }
      std::string name;
      size_t end = 0;
      if (next == '{') {
        size_t close = text.find('}', i + 2);
        if (close != std::string::npos) name = text.substr(i + 2, close - i - 2);
        if (close == std::string::npos || !IsIdentifier(name)) {
          if (!loose_) {
            return Error(absl::StrCat("malformed substitution in ", field, " at byte ", i,
                                      "; write $$ for a literal $"));
          }
          out.push_back(c);
          ++i;
          continue;
        }
        end = close + 1;
      } else if (IsIdentStart(next)) {
        end = i + 1;
        while (end < text.size() && IsIdentChar(text[end])) ++end;
        name = text.substr(i + 1, end - i - 1);
      } else {  // "$1", "$ ", ...: not a substitution
        out.push_back(c);
        ++i;
        continue;
      }
      absl::StatusOr<std::string> value = Resolve(name, field);
      if (!value.ok()) return value.status();
      out += *value;
      i = end;
    }
    return out;
  }

  absl::StatusOr<std::string> Resolve(const std::string& name, const std::string& field) {
    if (name[0] == '_') {
      auto it = user_.find(name);
      if (it != user_.end()) {
        used_.insert(name);
        return it->second;
      }
      if (loose_) return std::string();
      return Error(absl::StrCat("key \"", name, "\" in the template (", field,
                                ") is not matched in the substitution data"));
    }
    auto it = builtins_.find(name);
    if (it != builtins_.end()) return it->second;
    if (loose_) return std::string();
    return Error(absl::StrCat("key \"", name, "\" in the template (", field,
                              ") is not a valid built-in substitution"));
  }

  std::map<std::string, std::string> builtins_;
  std::map<std::string, std::string> user_;
  std::set<std::string> used_;
  bool loose_;
};

std::map<std::string, std::string> Builtins(const std::string& project, const std::string& location,
                                            const std::string& id, const Json& build) {
  std::map<std::string, std::string> out = {
      {"PROJECT_ID", project},
      {"BUILD_ID", id},
      {"LOCATION", location},
      {"PROJECT_NUMBER", CloudBuildStore::ProjectNumber(project)},
  };
  // Trigger-style built-ins exist for every build; they are empty unless the source says more.
  const Json* source = Member(build, "source");
  const Json* repo = source != nullptr ? Member(*source, "repoSource") : nullptr;
  Json empty = Json::object();
  const Json& r = repo != nullptr && repo->is_object() ? *repo : empty;
  std::string commit = StringAt(r, "commitSha");
  std::string branch = StringAt(r, "branchName");
  std::string tag = StringAt(r, "tagName");
  out["REPO_NAME"] = StringAt(r, "repoName");
  out["BRANCH_NAME"] = branch;
  out["TAG_NAME"] = tag;
  out["COMMIT_SHA"] = commit;
  out["SHORT_SHA"] = commit.substr(0, std::min<size_t>(7, commit.size()));
  out["REVISION_ID"] = !commit.empty() ? commit : !branch.empty() ? branch : tag;
  return out;
}

// Default failureInfo.detail for a scripted FAILURE.
std::string DefaultFailureDetail(const std::string& type, const Json& build) {
  if (type == "USER_BUILD_STEP") {
    std::string step;
    const Json* steps = Member(build, "steps");
    if (steps != nullptr && steps->is_array() && !steps->empty()) {
      step = StringAt((*steps)[0], "name");
    }
    return absl::StrCat("Build step failure: build step 0 \"", step,
                        "\" failed: step exited with non-zero status: 1");
  }
  return absl::StrCat("Build failed: ", type);
}

// The google.rpc error of a finished, unsuccessful build's operation; see build_model.h.
Json OperationError(const std::string& status) {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  std::string message = "Build failed; check build logs for details";
  if (status == "TIMEOUT") {
    code = absl::StatusCode::kDeadlineExceeded;
    message = "Build timed out";
  } else if (status == "EXPIRED") {
    code = absl::StatusCode::kDeadlineExceeded;
    message = "Build expired before it started: its queueTtl passed";
  } else if (status == "CANCELLED") {
    code = absl::StatusCode::kCancelled;
    message = "Build was cancelled";
  } else if (status == "INTERNAL_ERROR") {
    code = absl::StatusCode::kInternal;
    message = "Build failed due to an internal error";
  }
  return {{"code", static_cast<int>(code)}, {"message", message}};
}

// Compact JSON with sorted keys (nlohmann objects are ordered maps). Invalid UTF-8 is replaced
// rather than thrown on.
std::string Canonical(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Same (project, image name, source, steps): same digest, whichever build produced it.
std::string ImageDigest(const std::string& project, const std::string& image, const Json& build) {
  const Json* source = Member(build, "source");
  const Json* steps = Member(build, "steps");
  return absl::StrCat("sha256:", Sha256Hex(absl::StrCat(
                                     "project\n", project, "\nimage\n", image, "\nsource\n",
                                     source != nullptr ? Canonical(*source) : "null", "\nsteps\n",
                                     steps != nullptr ? Canonical(*steps) : "null")));
}

std::string LogUrl(const std::string& project, const std::string& location, const std::string& id) {
  return absl::StrCat("https://console.cloud.google.com/cloud-build/builds;region=", location, "/",
                      id, "?project=", CloudBuildStore::ProjectNumber(project));
}

std::string PageTokenBinding(const std::string& project, const std::string& location,
                             const std::string& filter) {
  return Sha256Hex(absl::StrCat(project, "\n", location, "\n", filter)).substr(0, 16);
}

}  // namespace

std::string CloudBuildStore::ProjectNumber(const std::string& project) {
  uint64_t value = std::strtoull(Sha256Hex(project).substr(0, 15).c_str(), nullptr, 16);
  return absl::StrCat(100000000000ULL + value % 900000000000ULL);
}

CloudBuildStore::CloudBuildStore(const Clock* clock, uint64_t seed) : clock_(clock), ids_(seed) {}

std::string CloudBuildStore::Key(const std::string& project, const std::string& location,
                                 const std::string& id) {
  return absl::StrCat(project, "/", location, "/", id);
}

CloudBuildStore::Record* CloudBuildStore::Find(const std::string& project,
                                               const std::string& location, const std::string& id) {
  auto it = builds_.find(Key(project, location, id));
  return it == builds_.end() ? nullptr : &it->second;
}

const BuildRule* CloudBuildStore::RuleFor(const Json& build) const {
  std::string key = SourceKey(build);
  std::vector<std::string> tags = StringsAt(build, "tags");
  for (const BuildRule& rule : rules_) {
    if (GlobMatch(rule.source, key)) return &rule;
    for (const std::string& tag : tags) {
      if (GlobMatch(rule.source, tag)) return &rule;
    }
  }
  return nullptr;
}

absl::Status CloudBuildStore::Schedule(Record& record, std::optional<absl::Time> started) const {
  const BuildRule* rule = RuleFor(record.base);
  absl::Duration queue_for = rule != nullptr ? rule->queue_for : config_.queue_for;
  absl::Duration work_for = rule != nullptr ? rule->work_for : config_.work_for;
  record.outcome = rule != nullptr ? rule->outcome : "SUCCESS";
  if (!IsScriptableOutcome(record.outcome)) {
    return absl::FailedPreconditionError(
        absl::StrCat("emulator build rule for source \"", rule->source, "\" has outcome \"",
                     record.outcome, "\"; expected SUCCESS, FAILURE, INTERNAL_ERROR or TIMEOUT"));
  }
  queue_for = std::max(queue_for, absl::ZeroDuration());
  work_for = std::max(work_for, absl::ZeroDuration());
  record.start_time = started.value_or(record.create_time + queue_for);
  // The build's own timeout, counted from startTime, beats the script.
  if (record.outcome == "TIMEOUT" || record.timeout < work_for) {
    record.outcome = "TIMEOUT";
    record.finish_time = record.start_time + record.timeout;
  } else {
    record.finish_time = record.start_time + work_for;
  }
  if (record.outcome == "FAILURE") {
    record.failure_type = rule->failure_type;
    record.failure_detail = rule->failure_detail.empty()
                                ? DefaultFailureDetail(rule->failure_type, record.base)
                                : rule->failure_detail;
  }
  return absl::OkStatus();
}

std::string CloudBuildStore::StatusAt(const Record& record, absl::Time now) const {
  if (record.frozen) return StringAt(record.base, "status");
  if (record.cancel_time.has_value()) return "CANCELLED";
  if (now < record.start_time) return "QUEUED";
  if (now < record.finish_time) return "WORKING";
  return record.outcome;
}

Json CloudBuildStore::View(const Record& record, absl::Time now) const {
  if (record.frozen) return record.base;
  Json build = record.base;
  std::string status = StatusAt(record, now);
  build["status"] = status;
  absl::Time until = record.cancel_time.value_or(now);
  if (until >= record.start_time && now >= record.start_time) {
    build["startTime"] = FormatRfc3339(record.start_time);
  }
  if (!IsTerminal(status)) return build;
  build["finishTime"] = FormatRfc3339(record.cancel_time.value_or(record.finish_time));
  if (status == "SUCCESS") {
    Json results = Json::object();
    Json images = Json::array();
    for (const std::string& image : StringsAt(build, "images")) {
      images.push_back({{"name", image}, {"digest", ImageDigest(record.project, image, build)}});
    }
    if (!images.empty()) results["images"] = std::move(images);
    Json step_images = Json::array();
    const Json* steps = Member(build, "steps");
    if (steps != nullptr && steps->is_array()) {
      for (const Json& step : *steps) {
        step_images.push_back(
            absl::StrCat("sha256:", Sha256Hex(absl::StrCat("step\n", StringAt(step, "name")))));
      }
    }
    results["buildStepImages"] = std::move(step_images);
    build["results"] = std::move(results);
  } else if (status == "FAILURE") {
    build["failureInfo"] = {{"type", record.failure_type}, {"detail", record.failure_detail}};
    build["statusDetail"] = record.failure_detail;
  } else if (status == "TIMEOUT") {
    build["statusDetail"] =
        absl::StrCat("Build timed out after ", FormatProtoDuration(record.timeout));
  } else if (status == "INTERNAL_ERROR") {
    build["statusDetail"] = "Build failed due to an internal error";
  }
  return build;
}

Json CloudBuildStore::OperationView(const Record& record, absl::Time now) const {
  Json build = View(record, now);
  Json operation = {{"name", record.operation_name},
                    {"metadata", {{"@type", kMetadataType}, {"build", build}}}};
  std::string status = StringAt(build, "status");
  if (!IsTerminal(status)) return operation;
  operation["done"] = true;
  if (status != "SUCCESS") operation["error"] = OperationError(status);
  if (status == "SUCCESS" || config_.failed_operation_has_response) {
    Json response = std::move(build);
    response["@type"] = kBuildType;
    operation["response"] = std::move(response);
  }
  return operation;
}

std::string CloudBuildStore::NewOperationName(const std::string& project,
                                              const std::string& location, const std::string& id) {
  if (location == kGlobal) return absl::StrCat("operations/build/", project, "/", Base64(id));
  return absl::StrCat("projects/", project, "/locations/", location, "/operations/", ids_.Uuid4());
}

std::vector<const CloudBuildStore::Record*> CloudBuildStore::Ordered() const {
  std::vector<const Record*> out;
  out.reserve(builds_.size());
  for (const auto& [key, record] : builds_) out.push_back(&record);
  std::sort(out.begin(), out.end(), [](const Record* a, const Record* b) {
    return std::tie(a->create_time, a->seq) < std::tie(b->create_time, b->seq);
  });
  return out;
}

absl::StatusOr<Json> CloudBuildStore::Create(const std::string& project,
                                             const std::string& location, const Json& input) {
  if (project.empty()) return InvalidField("projectId", "is required");
  if (location.empty()) return InvalidField("location", "is required");
  if (!input.is_object()) return InvalidField("build", "must be a JSON object");

  // Unknown names first: Google's JSON parser rejects them before any semantic check.
  std::vector<FieldViolation> unknown;
  CheckUnknown(input, KnownBuildFields(), "build", unknown);
  if (const Json* steps = Member(input, "steps"); steps != nullptr && steps->is_array()) {
    for (size_t i = 0; i < steps->size(); ++i) {
      if ((*steps)[i].is_object()) {
        CheckUnknown((*steps)[i], KnownStepFields(), absl::StrCat("build.steps[", i, "]"), unknown);
      }
    }
  }
  if (!unknown.empty()) {
    std::vector<std::string> messages;
    for (const FieldViolation& v : unknown) messages.push_back(v.description);
    return InvalidArgument(absl::StrJoin(messages, "\n"), std::move(unknown));
  }

  // Null and empty members mean "unset" in proto3 JSON.
  Json build = Prune(input);
  for (const std::string& field : OutputOnlyBuildFields()) build.erase(field);

  std::vector<FieldViolation> violations;
  const Json* steps = Member(build, "steps");
  if (steps == nullptr) {
    violations.push_back({"build.steps", "is required: a build needs at least one step"});
  } else if (!steps->is_array()) {
    violations.push_back({"build.steps", "must be an array of build steps"});
  } else {
    for (size_t i = 0; i < steps->size(); ++i) {
      const Json& step = (*steps)[i];
      std::string path = absl::StrCat("build.steps[", i, "]");
      if (!step.is_object()) {
        violations.push_back({path, "must be a build step object"});
        continue;
      }
      const Json* name = Member(step, "name");
      if (name == nullptr) {
        violations.push_back({path + ".name", "is required: the step's builder image"});
      } else if (!name->is_string()) {
        violations.push_back({path + ".name", "must be a string"});
      }
      CheckStringArray(step, "args", path + ".args", violations);
      CheckStringArray(step, "env", path + ".env", violations);
      CheckStringArray(step, "waitFor", path + ".waitFor", violations);
      CheckStringArray(step, "secretEnv", path + ".secretEnv", violations);
      CheckString(step, "dir", path + ".dir", violations);
      CheckString(step, "id", path + ".id", violations);
      CheckString(step, "entrypoint", path + ".entrypoint", violations);
      CheckString(step, "script", path + ".script", violations);
      if (const Json* timeout = Member(step, "timeout");
          timeout != nullptr &&
          !(timeout->is_string() && ParseProtoDuration(timeout->get<std::string>()))) {
        violations.push_back({path + ".timeout", "must be a duration such as \"600s\""});
      }
    }
  }
  CheckStringArray(build, "images", "build.images", violations);
  CheckStringArray(build, "tags", "build.tags", violations);
  CheckString(build, "logsBucket", "build.logsBucket", violations);
  CheckString(build, "serviceAccount", "build.serviceAccount", violations);
  if (const Json* source = Member(build, "source"); source != nullptr && !source->is_object()) {
    violations.push_back({"build.source", "must be an object"});
  }
  std::map<std::string, std::string> user;
  if (const Json* subs = Member(build, "substitutions"); subs != nullptr) {
    if (!subs->is_object()) {
      violations.push_back({"build.substitutions", "must be a map of strings"});
    } else {
      for (auto it = subs->begin(); it != subs->end(); ++it) {
        if (!IsUserSubstitutionKey(it.key())) {
          violations.push_back(
              {"build.substitutions",
               absl::StrCat("key \"", it.key(),
                            "\" must begin with '_' and use only A-Z, 0-9 and '_'")});
        } else if (!it.value().is_string()) {
          violations.push_back(
              {absl::StrCat("build.substitutions[", it.key(), "]"), "must be a string"});
        } else {
          user[it.key()] = it.value().get<std::string>();
        }
      }
    }
  }
  bool loose = false;
  if (const Json* options = Member(build, "options"); options != nullptr) {
    if (!options->is_object()) {
      violations.push_back({"build.options", "must be an object"});
    } else if (const Json* option = Member(*options, "substitutionOption"); option != nullptr) {
      if (option->is_string() && *option == "ALLOW_LOOSE") {
        loose = true;
      } else if (!(option->is_string() && *option == "MUST_MATCH")) {
        violations.push_back(
            {"build.options.substitutionOption", "must be MUST_MATCH or ALLOW_LOOSE"});
      }
    }
  }
  absl::StatusOr<absl::Duration> timeout = TimeoutOf(build, "build.timeout");
  if (!timeout.ok()) {
    for (FieldViolation& v : FieldViolationsOf(timeout.status())) violations.push_back(v);
  }
  if (!violations.empty()) return Violations(std::move(violations));

  std::string id = ids_.Uuid4();
  Expander expander(Builtins(project, location, id, build), std::move(user), loose);
  Json& step_list = build["steps"];
  for (size_t i = 0; i < step_list.size(); ++i) {
    Json& step = step_list[i];
    for (const std::string& field : OutputOnlyStepFields()) step.erase(field);
    std::string path = absl::StrCat("build.steps[", i, "]");
    for (const char* key : {"name", "entrypoint", "args", "env", "dir", "script"}) {
      absl::Status status = expander.ExpandMember(step, key, absl::StrCat(path, ".", key));
      if (!status.ok()) return status;
    }
  }
  for (const char* key : {"images", "tags"}) {
    absl::Status status = expander.ExpandMember(build, key, absl::StrCat("build.", key));
    if (!status.ok()) return status;
  }
  if (absl::Status status = expander.CheckAllUsed(); !status.ok()) return status;
  // Tags are checked as expanded, which is what the server stores and filters on.
  std::vector<std::string> tags = StringsAt(build, "tags");
  for (size_t i = 0; i < tags.size(); ++i) {
    if (!IsValidTag(tags[i])) {
      violations.push_back(
          {absl::StrCat("build.tags[", i, "]"),
           absl::StrCat("invalid build tag \"", tags[i], "\": must match ^[\\w][\\w.-]{0,127}$")});
    }
  }
  if (!violations.empty()) return Violations(std::move(violations));

  absl::Time now = clock_->Now();
  Record record;
  record.project = project;
  record.location = location;
  record.id = id;
  record.seq = ++sequence_;
  record.create_time = now;
  record.timeout = *timeout;
  build["id"] = id;
  build["name"] = absl::StrCat("projects/", project, "/locations/", location, "/builds/", id);
  build["projectId"] = project;
  build["createTime"] = FormatRfc3339(now);
  build["logUrl"] = LogUrl(project, location, id);
  if (!build.contains("timeout")) build["timeout"] = kDefaultTimeout;
  if (!build.contains("logsBucket")) {
    build["logsBucket"] =
        absl::StrCat("gs://", ProjectNumber(project), ".cloudbuild-logs.googleusercontent.com");
  }
  record.base = std::move(build);
  if (absl::Status status = Schedule(record, std::nullopt); !status.ok()) return status;
  record.operation_name = NewOperationName(project, location, id);

  std::string key = Key(project, location, id);
  operations_[record.operation_name] = key;
  Record& stored = builds_[key] = std::move(record);
  return OperationView(stored, now);
}

absl::StatusOr<Json> CloudBuildStore::Get(const std::string& project, const std::string& location,
                                          const std::string& id) {
  Record* record = Find(project, location, id);
  if (record == nullptr) return NotFound();
  return View(*record, clock_->Now());
}

absl::StatusOr<Json> CloudBuildStore::List(const std::string& project, const std::string& location,
                                           const std::string& filter, int page_size,
                                           const std::string& page_token) {
  absl::StatusOr<BuildFilter> parsed = BuildFilter::Parse(filter);
  if (!parsed.ok()) {
    std::string message(parsed.status().message());
    return InvalidArgument(message, {{"filter", message}});
  }
  if (page_size < 0) return InvalidField("pageSize", "must not be negative");
  size_t limit = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  std::string binding = PageTokenBinding(project, location, filter);

  // The cursor is the (createTime, seq) of the last build served; the next page starts below it.
  std::optional<std::pair<int64_t, int64_t>> cursor;
  if (!page_token.empty()) {
    std::string raw;
    std::vector<std::string> parts;
    if (absl::WebSafeBase64Unescape(page_token, &raw)) parts = absl::StrSplit(raw, '|');
    int64_t nanos = 0, seq = 0;
    if (parts.size() != 4 || parts[0] != kPageTokenVersion || !absl::SimpleAtoi(parts[2], &nanos) ||
        !absl::SimpleAtoi(parts[3], &seq)) {
      return InvalidField("pageToken", "is not a page token issued by this server");
    }
    if (parts[1] != binding) {
      return InvalidField("pageToken", "was issued for a different project, location or filter");
    }
    cursor.emplace(nanos, seq);
  }

  absl::Time now = clock_->Now();
  std::vector<const Record*> ordered = Ordered();
  Json builds = Json::array();
  const Record* last = nullptr;
  bool more = false;
  for (auto it = ordered.rbegin(); it != ordered.rend(); ++it) {
    const Record& record = **it;
    if (record.project != project || record.location != location) continue;
    if (cursor.has_value() &&
        std::make_pair(absl::ToUnixNanos(record.create_time), record.seq) >= *cursor) {
      continue;
    }
    Json view = View(record, now);
    if (!parsed->Matches(view)) continue;
    if (builds.size() == limit) {
      more = true;
      break;
    }
    builds.push_back(std::move(view));
    last = &record;
  }
  Json out = {{"builds", std::move(builds)}};
  if (more) {
    out["nextPageToken"] = absl::WebSafeBase64Escape(
        absl::StrCat(kPageTokenVersion, "|", binding, "|", absl::ToUnixNanos(last->create_time),
                     "|", last->seq));
  }
  return out;
}

absl::StatusOr<Json> CloudBuildStore::Cancel(const std::string& project,
                                             const std::string& location, const std::string& id) {
  Record* record = Find(project, location, id);
  if (record == nullptr) return NotFound();
  absl::Time now = clock_->Now();
  std::string status = StatusAt(*record, now);
  if (IsTerminal(status)) {
    return absl::FailedPreconditionError(
        absl::StrCat("Build ", id, " has already finished with status ", status,
                     "; only QUEUED or WORKING builds can be cancelled"));
  }
  record->cancel_time = now;
  return View(*record, now);
}

absl::StatusOr<Json> CloudBuildStore::GetOperation(const std::string& name) {
  auto it = operations_.find(name);
  if (it == operations_.end()) return NotFound();
  auto build = builds_.find(it->second);
  if (build == builds_.end()) return NotFound();
  return OperationView(build->second, clock_->Now());
}

absl::StatusOr<absl::Time> CloudBuildStore::OperationDueTime(const std::string& name) {
  auto it = operations_.find(name);
  if (it == operations_.end()) return NotFound();
  auto build = builds_.find(it->second);
  if (build == builds_.end()) return NotFound();
  const Record& record = build->second;
  absl::Time now = clock_->Now();
  if (IsTerminal(StatusAt(record, now))) return now;
  return record.finish_time;
}

Json CloudBuildStore::Dump() {
  absl::Time now = clock_->Now();
  Json builds = Json::array();
  for (const Record* record : Ordered()) builds.push_back(View(*record, now));
  return {{"builds", std::move(builds)}};
}

absl::Status CloudBuildStore::Seed(const Json& builds) {
  if (!builds.is_array()) return InvalidField("builds", "must be an array of Build objects");
  absl::Time now = clock_->Now();
  std::vector<Record> parsed;
  for (size_t i = 0; i < builds.size(); ++i) {
    const Json& build = builds[i];
    std::string path = absl::StrCat("builds[", i, "]");
    if (!build.is_object()) return InvalidField(path, "must be a Build object");
    Record record;
    record.id = StringAt(build, "id");
    if (record.id.empty() || record.id.find('/') != std::string::npos) {
      return InvalidField(path + ".id", "is required and may not contain '/'");
    }
    record.project = StringAt(build, "projectId");
    record.location = kGlobal;
    if (std::string name = StringAt(build, "name"); !name.empty()) {
      std::vector<std::string> parts = absl::StrSplit(name, '/');
      if (parts.size() != 6 || parts[0] != "projects" || parts[2] != "locations" ||
          parts[4] != "builds" || parts[5] != record.id || parts[1].empty() || parts[3].empty() ||
          (!record.project.empty() && parts[1] != record.project)) {
        return InvalidField(path + ".name",
                            "must be projects/{projectId}/locations/{location}/builds/{id} "
                            "matching id and projectId");
      }
      record.project = parts[1];
      record.location = parts[3];
    }
    if (record.project.empty()) {
      return InvalidField(path + ".projectId", "is required (or a name that contains it)");
    }
    record.create_time = now;
    if (std::string text = StringAt(build, "createTime"); !text.empty()) {
      std::optional<absl::Time> t = ParseTimestamp(text);
      if (!t.has_value()) return InvalidField(path + ".createTime", "must be RFC 3339");
      record.create_time = *t;
    }
    const Json* status = Member(build, "status");
    if (status != nullptr && !status->is_string()) {
      return InvalidField(path + ".status", "must be a string");
    }
    record.base = build;
    record.base["id"] = record.id;
    record.base["projectId"] = record.project;
    record.base["name"] = absl::StrCat("projects/", record.project, "/locations/", record.location,
                                       "/builds/", record.id);
    if (status != nullptr && IsTerminal(status->get<std::string>())) {
      record.frozen = true;
      if (!record.base.contains("createTime")) {
        record.base["createTime"] = FormatRfc3339(record.create_time);
      }
    } else {
      record.base["createTime"] = FormatRfc3339(record.create_time);
      absl::StatusOr<absl::Duration> timeout = TimeoutOf(build, path + ".timeout");
      if (!timeout.ok()) return timeout.status();
      record.timeout = *timeout;
      std::optional<absl::Time> started;
      if (std::string text = StringAt(build, "startTime");
          !text.empty() && StringAt(build, "status") == "WORKING") {
        started = ParseTimestamp(text);
        if (!started.has_value()) return InvalidField(path + ".startTime", "must be RFC 3339");
      }
      for (const std::string& field : ComputedFields()) record.base.erase(field);
      if (!record.base.contains("logUrl")) {
        record.base["logUrl"] = LogUrl(record.project, record.location, record.id);
      }
      if (absl::Status s = Schedule(record, started); !s.ok()) return s;
    }
    parsed.push_back(std::move(record));
  }

  for (Record& record : parsed) {
    std::string key = Key(record.project, record.location, record.id);
    if (auto old = builds_.find(key); old != builds_.end()) {
      operations_.erase(old->second.operation_name);
    }
    record.seq = ++sequence_;
    record.operation_name = NewOperationName(record.project, record.location, record.id);
    operations_[record.operation_name] = key;
    builds_[key] = std::move(record);
  }
  return absl::OkStatus();
}

void CloudBuildStore::Reset() {
  builds_.clear();
  operations_.clear();
  sequence_ = 0;
}

}  // namespace runway::emulator
