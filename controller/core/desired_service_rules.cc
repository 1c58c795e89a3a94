#include "controller/core/desired_service_rules.h"

#include <map>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace runway {
namespace {

std::string Indexed(const std::string& path, size_t index) {
  return absl::StrCat(path, "[", index, "]");
}

std::string Quoted(const std::string& text) { return absl::StrCat("\"", text, "\""); }

bool IsLowerHex(const std::string& text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Reports `path` when `value` lies outside [min, max], naming the allowed range.
void CheckDurationRange(absl::Duration value, absl::Duration min, absl::Duration max,
                        const std::string& path, FieldErrors& errors) {
  if (value < min || value > max) {
    errors.push_back(
        {path, absl::StrCat("duration ", absl::FormatDuration(value),
                            " is out of range: use a value from ", absl::FormatDuration(min),
                            " to ", absl::FormatDuration(max))});
  }
}

void CheckImageOrBuild(const DesiredService& service, FieldErrors& errors) {
  if (service.image && service.build) {
    errors.push_back({"spec.build",
                      "spec.image and spec.build are both set: keep image to deploy a prebuilt "
                      "digest, or build to build from source, not both"});
  } else if (!service.image && !service.build) {
    errors.push_back({"spec",
                      "neither spec.image nor spec.build is set: add image (REPOSITORY@sha256:<64 "
                      "hex>) or build (a source to build)"});
  }
  if (service.image && !IsDigestPinnedImage(*service.image)) {
    errors.push_back(
        {"spec.image",
         absl::StrCat("image ", Quoted(*service.image),
                      " is not pinned by digest: deploy REPOSITORY@sha256:<64 hex> so every "
                      "revision is reproducible (`gcloud artifacts docker images describe IMAGE` "
                      "prints the digest), or use spec.build")});
  }
  if (!service.build) return;
  const BuildSpec& build = *service.build;
  if (build.git.has_value() == build.storage.has_value()) {
    errors.push_back(
        {"spec.build.source", build.git ? "both git and storage are set: keep exactly one"
                                        : "no source is set: add git {url, revision} or storage "
                                          "{bucket, object}"});
  }
  CheckDurationRange(build.timeout, absl::Seconds(1), absl::Hours(24), "spec.build.timeout",
                     errors);
}

void CheckTemplate(const RevisionTemplate& tmpl, FieldErrors& errors) {
  if (tmpl.min_instances > tmpl.max_instances) {
    errors.push_back({"spec.template.scaling.min",
                      absl::StrCat("min (", tmpl.min_instances, ") is above max (",
                                   tmpl.max_instances, "): lower min or raise max")});
  }
  std::map<std::string, size_t> env_index;
  for (size_t i = 0; i < tmpl.env.size(); ++i) {
    const EnvVar& var = tmpl.env[i];
    const std::string path = Indexed("spec.template.env", i);
    auto [it, inserted] = env_index.emplace(var.name, i);
    if (!inserted) {
      errors.push_back({path + ".name", absl::StrCat(Quoted(var.name), " is already set at ",
                                                     Indexed("spec.template.env", it->second),
                                                     ": remove one of the two")});
    }
    if (var.value.has_value() == var.secret.has_value()) {
      errors.push_back({path, var.value ? "both value and secret are set: keep exactly one"
                                        : "neither value nor secret is set: add one"});
    }
  }
  if (tmpl.request_timeout) {
    CheckDurationRange(*tmpl.request_timeout, absl::Seconds(1), absl::Minutes(60),
                       "spec.template.timeout", errors);
  }
  static constexpr const char* kReservedLabelPrefixes[] = {
      "run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev",
      "autoscaling.knative.dev", "runway.dev"};
  for (const auto& [key, value] : tmpl.labels) {
    const std::string path = absl::StrCat("spec.template.labels[", Quoted(key), "]");
    bool reserved = false;
    for (const char* prefix : kReservedLabelPrefixes) {
      if (absl::StartsWith(key, prefix)) {
        errors.push_back({path, absl::StrCat("label keys under ", prefix,
                                             " are reserved for Cloud Run and Runway: rename it")});
        reserved = true;
        break;
      }
    }
    if (reserved) continue;
    bool key_ok = !key.empty() && key.size() <= 63 && key[0] >= 'a' && key[0] <= 'z';
    for (char c : key) {
      key_ok = key_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
    }
    bool value_ok = value.size() <= 63;
    for (char c : value) {
      value_ok =
          value_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
    }
    if (!key_ok) {
      errors.push_back({path,
                        "Cloud Run label keys start with a lowercase letter and hold at most 63 "
                        "lowercase letters, digits, '_' or '-': rename it"});
    } else if (!value_ok) {
      errors.push_back({path, absl::StrCat("value ", Quoted(value),
                                           " is not a valid Cloud Run label value: use at most 63 "
                                           "lowercase letters, digits, '_' or '-'")});
    }
  }
}

void CheckTraffic(const DesiredService& service, FieldErrors& errors) {
  int sum = 0;
  std::optional<size_t> new_index;
  std::map<std::string, size_t> tag_index;
  const std::string prefix = service.target.service + "-";
  for (size_t i = 0; i < service.traffic.size(); ++i) {
    const TrafficTarget& target = service.traffic[i];
    const std::string path = Indexed("spec.traffic", i);
    sum += target.percent;
    if (target.IsNew()) {
      if (new_index) {
        errors.push_back({path + ".revision", absl::StrCat("'@new' is already the target at ",
                                                           Indexed("spec.traffic", *new_index),
                                                           ": name the new revision once")});
      } else {
        new_index = i;
      }
    } else if (!absl::StartsWith(target.revision, prefix) ||
               target.revision.size() == prefix.size()) {
      errors.push_back(
          {path + ".revision",
           absl::StrCat("revision ", Quoted(target.revision), " does not belong to service ",
                        Quoted(service.target.service), ": Cloud Run revision names start with ",
                        Quoted(prefix), " (see `gcloud run revisions list --service ",
                        service.target.service, "`)")});
    }
    if (!target.tag.empty()) {
      auto [it, inserted] = tag_index.emplace(target.tag, i);
      if (!inserted) {
        errors.push_back(
            {path + ".tag",
             absl::StrCat("tag ", Quoted(target.tag), " is already used by ",
                          Indexed("spec.traffic", it->second), ": tags must be unique")});
      }
    }
  }
  if (sum != 100) {
    errors.push_back({"spec.traffic", absl::StrCat("percents sum to ", sum,
                                                   ", want exactly 100: adjust them so they "
                                                   "add up to 100")});
  }
}

int NewRevisionPercent(const DesiredService& service) {
  for (const TrafficTarget& target : service.traffic) {
    if (target.IsNew()) return target.percent;
  }
  return 0;
}

void CheckSteps(const DesiredService& service, FieldErrors& errors) {
  const RolloutSpec& rollout = service.rollout;
  const int final_percent = NewRevisionPercent(service);
  for (size_t i = 0; i < rollout.steps.size(); ++i) {
    const CanaryStep& step = rollout.steps[i];
    const std::string path = Indexed("spec.rollout.steps", i);
    if (i > 0 && step.percent <= rollout.steps[i - 1].percent) {
      errors.push_back(
          {path + ".percent",
           absl::StrCat(step.percent, " is not above the previous step's ",
                        rollout.steps[i - 1].percent, ": step percents must strictly increase")});
    } else if (step.percent >= final_percent && final_percent > 0) {
      errors.push_back(
          {path + ".percent",
           absl::StrCat(step.percent, " is not below the final share of '@new' (", final_percent,
                        "% in spec.traffic): remove the step, the rollout ends at "
                        "spec.traffic")});
    }
    CheckDurationRange(step.pause, absl::ZeroDuration(), absl::Hours(24), path + ".pause", errors);
  }
}

void CheckRollout(const DesiredService& service, FieldErrors& errors) {
  const RolloutSpec& rollout = service.rollout;
  switch (rollout.strategy) {
    case RolloutStrategy::kDirect:
      if (!rollout.steps.empty()) {
        errors.push_back({"spec.rollout.steps",
                          "steps are only used by strategy canary or manual: remove them or set "
                          "spec.rollout.strategy: canary"});
      }
      if (rollout.analysis) {
        errors.push_back({"spec.rollout.analysis",
                          "analysis runs after canary steps: set spec.rollout.strategy: canary "
                          "or remove analysis"});
      }
      break;
    case RolloutStrategy::kCanary:
      if (rollout.steps.empty()) {
        errors.push_back({"spec.rollout.steps",
                          "strategy canary needs at least one step, e.g. [{percent: 10, pause: "
                          "5m}]: add steps or use strategy direct"});
      }
      if (NewRevisionPercent(service) == 0) {
        errors.push_back({"spec.traffic",
                          "strategy canary promotes '@new', but spec.traffic gives it no "
                          "traffic: add {revision: '@new', percent: 100} or use strategy manual"});
      }
      break;
    case RolloutStrategy::kManual:
      break;
  }
  CheckSteps(service, errors);
  if (rollout.verify) {
    CheckDurationRange(rollout.verify->timeout, absl::Milliseconds(1), absl::Minutes(5),
                       "spec.rollout.verify.timeout", errors);
  }
  if (rollout.analysis) {
    const AnalysisSpec& analysis = *rollout.analysis;
    if (!analysis.max_value && !analysis.min_value) {
      errors.push_back({"spec.rollout.analysis.prometheus",
                        "neither maxValue nor minValue is set, so the query can never fail: set "
                        "one or both"});
    } else if (analysis.max_value && analysis.min_value &&
               *analysis.min_value > *analysis.max_value) {
      errors.push_back({"spec.rollout.analysis.prometheus.minValue",
                        absl::StrCat("minValue (", *analysis.min_value, ") is above maxValue (",
                                     *analysis.max_value, "): no result could pass")});
    }
    CheckDurationRange(analysis.interval, absl::Seconds(1), absl::Hours(24),
                       "spec.rollout.analysis.interval", errors);
  }
  CheckDurationRange(rollout.progress_deadline, absl::Seconds(1), absl::Hours(24),
                     "spec.rollout.progressDeadline", errors);
}

}  // namespace

bool IsDigestPinnedImage(const std::string& image) {
  static constexpr std::string_view kMarker = "@sha256:";
  const size_t at = image.rfind(kMarker);
  if (at == std::string::npos || at == 0) return false;
  const std::string hex = image.substr(at + kMarker.size());
  return hex.size() == 64 && IsLowerHex(hex);
}

FieldErrors ValidateDesiredService(const DesiredService& service) {
  FieldErrors errors;
  CheckImageOrBuild(service, errors);
  CheckTemplate(service.revision_template, errors);
  CheckTraffic(service, errors);
  CheckRollout(service, errors);
  return errors;
}

std::vector<OwnershipConflict> FindOwnershipConflicts(const std::vector<ServiceClaim>& claims) {
  std::vector<OwnershipConflict> conflicts;
  std::map<CloudRunServiceName, size_t> by_target;
  std::map<ObjectKey, size_t> by_key;
  for (size_t i = 0; i < claims.size(); ++i) {
    const ServiceClaim& claim = claims[i];
    auto [target_it, target_new] = by_target.emplace(claim.target, i);
    if (!target_new) {
      const ServiceClaim& first = claims[target_it->second];
      const std::string what = absl::StrCat("Cloud Run service ", claim.target.ResourceName());
      conflicts.push_back(
          {i,
           {"spec.service", absl::StrCat(what, " is also managed by ", first.origin,
                                         ": each service needs exactly one manifest; delete "
                                         "one or point it at another service")}});
      conflicts.push_back(
          {target_it->second,
           {"spec.service", absl::StrCat(what, " is also managed by ", claim.origin,
                                         ": each service needs exactly one manifest; delete one "
                                         "or point it at another service")}});
    }
    auto [key_it, key_new] = by_key.emplace(claim.key, i);
    if (!key_new) {
      conflicts.push_back(
          {i,
           {"metadata.name",
            absl::StrCat("CloudRunService ", claim.key.ToString(), " is already defined in ",
                         claims[key_it->second].origin, ": give one of them another name")}});
    }
  }
  return conflicts;
}

}  // namespace runway
