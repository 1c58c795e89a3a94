#include "controller/adapters/manifest_parser.h"

#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace runway {
namespace {

using nlohmann::json;

// Typed field access that tolerates absence and wrong types (already reported by the schema).
class Fields {
 public:
  Fields(const json& object, std::string path, FieldErrors& errors)
      : object_(object.is_object() ? object : Empty()), path_(std::move(path)), errors_(errors) {}

  std::string Path(const std::string& key) const {
    return path_.empty() ? key : absl::StrCat(path_, ".", key);
  }
  bool Has(const std::string& key) const { return object_.contains(key); }
  const json& Raw(const std::string& key) const {
    auto it = object_.find(key);
    return it == object_.end() ? Empty() : *it;
  }
  Fields Child(const std::string& key) const { return Fields(Raw(key), Path(key), errors_); }

  std::string String(const std::string& key, const std::string& fallback = "") const {
    const json& value = Raw(key);
    return value.is_string() ? value.get<std::string>() : fallback;
  }
  std::optional<std::string> OptionalString(const std::string& key) const {
    const json& value = Raw(key);
    if (!value.is_string()) return std::nullopt;
    return value.get<std::string>();
  }
  int Int(const std::string& key, int fallback) const {
    const json& value = Raw(key);
    return value.is_number_integer() ? value.get<int>() : fallback;
  }
  std::optional<double> OptionalNumber(const std::string& key) const {
    const json& value = Raw(key);
    if (!value.is_number()) return std::nullopt;
    return value.get<double>();
  }
  bool Bool(const std::string& key, bool fallback) const {
    const json& value = Raw(key);
    return value.is_boolean() ? value.get<bool>() : fallback;
  }
  std::vector<std::string> Strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const json& item : ArrayOf(key)) {
      if (item.is_string()) out.push_back(item.get<std::string>());
    }
    return out;
  }
  const json& ArrayOf(const std::string& key) const {
    const json& value = Raw(key);
    return value.is_array() ? value : EmptyArray();
  }
  // Parses a Go-style duration ("90s", "1h30m"); reports the field when it does not parse.
  absl::Duration Duration(const std::string& key, absl::Duration fallback) const {
    const json& value = Raw(key);
    if (!value.is_string()) return fallback;
    absl::Duration parsed;
    if (!absl::ParseDuration(value.get<std::string>(), &parsed) ||
        parsed == absl::InfiniteDuration()) {
      errors_.push_back({Path(key), absl::StrCat("\"", value.get<std::string>(),
                                                 "\" is not a duration: write it like 90s, 5m "
                                                 "or 1h30m")});
      return fallback;
    }
    return parsed;
  }
  FieldErrors& errors() const { return errors_; }

 private:
  static const json& Empty() {
    static const auto* empty = new json(json::object());
    return *empty;
  }
  static const json& EmptyArray() {
    static const auto* empty = new json(json::array());
    return *empty;
  }

  const json& object_;
  std::string path_;
  FieldErrors& errors_;
};

Builder ParseBuilder(const std::string& text) {
  if (text == "cloudBuild") return Builder::kCloudBuild;
  if (text == "local") return Builder::kLocal;
  return Builder::kAuto;
}

EngineRuntime ParseRuntime(const std::string& text) {
  if (text == "docker") return EngineRuntime::kDocker;
  if (text == "podman") return EngineRuntime::kPodman;
  return EngineRuntime::kAuto;
}

BuildSpec ParseBuild(const Fields& build) {
  BuildSpec spec;
  const Fields source = build.Child("source");
  if (source.Has("git")) {
    const Fields git = source.Child("git");
    spec.git = GitSource{git.String("url"), git.String("revision"), git.String("directory", ".")};
  }
  if (source.Has("storage")) {
    const Fields storage = source.Child("storage");
    StorageSource parsed{storage.String("bucket"), storage.String("object"), std::nullopt};
    if (storage.Raw("generation").is_number_integer()) {
      parsed.generation = storage.Raw("generation").get<int64_t>();
    }
    spec.storage = parsed;
  }
  spec.repository = build.String("repository");
  spec.dockerfile = build.String("dockerfile", "Dockerfile");
  spec.builder = ParseBuilder(build.String("builder", "auto"));
  spec.runtime = ParseRuntime(build.String("runtime", "auto"));
  spec.timeout = build.Duration("timeout", absl::Minutes(20));
  return spec;
}

RevisionTemplate ParseTemplate(const Fields& tmpl) {
  RevisionTemplate out;
  out.container_port = tmpl.Int("containerPort", 8080);
  out.command = tmpl.Strings("command");
  out.args = tmpl.Strings("args");
  size_t index = 0;
  for (const json& item : tmpl.ArrayOf("env")) {
    const Fields var(item, absl::StrCat(tmpl.Path("env"), "[", index++, "]"), tmpl.errors());
    EnvVar env{var.String("name"), var.OptionalString("value"), std::nullopt};
    if (var.Has("secret")) {
      const Fields secret = var.Child("secret");
      env.secret = SecretRef{secret.String("name"), secret.String("version", "latest")};
    }
    out.env.push_back(std::move(env));
  }
  const Fields scaling = tmpl.Child("scaling");
  out.min_instances = scaling.Int("min", 0);
  out.max_instances = scaling.Int("max", 100);
  const Fields resources = tmpl.Child("resources");
  out.cpu = resources.OptionalString("cpu");
  out.memory = resources.OptionalString("memory");
  if (tmpl.Raw("concurrency").is_number_integer()) out.concurrency = tmpl.Int("concurrency", 0);
  if (tmpl.Has("timeout")) out.request_timeout = tmpl.Duration("timeout", absl::Minutes(5));
  out.service_account = tmpl.OptionalString("serviceAccount");
  const json& labels = tmpl.Raw("labels");
  if (labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it->is_string()) out.labels[it.key()] = it->get<std::string>();
    }
  }
  return out;
}

RolloutSpec ParseRollout(const Fields& rollout) {
  RolloutSpec out;
  const std::string strategy = rollout.String("strategy", "direct");
  out.strategy = strategy == "canary"   ? RolloutStrategy::kCanary
                 : strategy == "manual" ? RolloutStrategy::kManual
                                        : RolloutStrategy::kDirect;
  size_t index = 0;
  for (const json& item : rollout.ArrayOf("steps")) {
    const Fields step(item, absl::StrCat(rollout.Path("steps"), "[", index++, "]"),
                      rollout.errors());
    out.steps.push_back({step.Int("percent", 0), step.Duration("pause", absl::Minutes(1))});
  }
  if (rollout.Has("verify")) {
    const Fields verify = rollout.Child("verify");
    out.verify = VerifySpec{verify.String("path", "/"), verify.Int("expectStatus", 200),
                            verify.Duration("timeout", absl::Seconds(5)), verify.Int("retries", 2)};
  }
  if (rollout.Has("analysis")) {
    const Fields analysis = rollout.Child("analysis");
    const Fields prometheus = analysis.Child("prometheus");
    AnalysisSpec spec;
    spec.prometheus_address = prometheus.String("address");
    spec.query = prometheus.String("query");
    spec.max_value = prometheus.OptionalNumber("maxValue");
    spec.min_value = prometheus.OptionalNumber("minValue");
    spec.interval = analysis.Duration("interval", absl::Minutes(1));
    spec.failure_limit = analysis.Int("failureLimit", 0);
    spec.consecutive_error_limit = analysis.Int("consecutiveErrorLimit", 4);
    spec.inconclusive = analysis.String("inconclusive", "pause") == "fail"
                            ? InconclusivePolicy::kFail
                            : InconclusivePolicy::kPause;
    spec.dry_run = analysis.Bool("dryRun", false);
    out.analysis = spec;
  }
  out.progress_deadline = rollout.Duration("progressDeadline", absl::Minutes(10));
  return out;
}

bool IsServiceId(const std::string& name) {
  static const auto* pattern = new std::regex("^[a-z]([-a-z0-9]*[a-z0-9])?$");
  return name.size() <= 49 && std::regex_match(name, *pattern);
}

}  // namespace

ParsedService DesiredServiceFromJson(const json& document) {
  ParsedService parsed;
  FieldErrors& errors = parsed.errors;
  DesiredService& service = parsed.service;
  const Fields root(document, "", errors);
  const Fields metadata = root.Child("metadata");
  service.key = ObjectKey{metadata.String("namespace", "default"), metadata.String("name")};
  if (metadata.Raw("generation").is_number_integer()) {
    service.generation = metadata.Raw("generation").get<int64_t>();
  }
  const Fields spec = root.Child("spec");
  service.target.project = spec.String("project");
  service.target.region = spec.String("region");
  service.target.service = spec.String("service");
  if (!spec.Has("service") && !service.key.name.empty()) {
    service.target.service = service.key.name;
    if (!IsServiceId(service.key.name)) {
      errors.push_back(
          {"metadata.name", absl::StrCat("\"", service.key.name,
                                         "\" cannot double as the Cloud Run service id (a letter "
                                         "first, at most 49 characters): set spec.service")});
    }
  }
  service.image = spec.OptionalString("image");
  if (spec.Has("build")) service.build = ParseBuild(spec.Child("build"));
  service.revision_template = ParseTemplate(spec.Child("template"));
  if (spec.Raw("traffic").is_array()) {
    for (const json& item : spec.ArrayOf("traffic")) {
      const Fields target(item, "", errors);
      service.traffic.push_back(
          {target.String("revision"), target.Int("percent", 0), target.String("tag")});
    }
  } else {
    service.traffic.push_back({kNewRevision, 100, ""});
  }
  service.rollout = ParseRollout(spec.Child("rollout"));
  const std::string drift = spec.String("driftPolicy", "enforce");
  service.drift_policy = drift == "warn"     ? DriftPolicy::kWarn
                         : drift == "ignore" ? DriftPolicy::kIgnore
                                             : DriftPolicy::kEnforce;
  service.suspend = spec.Bool("suspend", false);
  return parsed;
}

}  // namespace runway
