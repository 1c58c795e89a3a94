#include "controller/core/reconcile_decision.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/core/stable_hash.h"

namespace runway {
namespace {

bool Succeeded(const LiveService& live) { return live.terminal_state == "CONDITION_SUCCEEDED"; }

std::map<std::string, std::string> WithRunwayAnnotations(
    std::map<std::string, std::string> annotations, const std::string& phase,
    const std::string& candidate, const std::string& stable, const std::string& traffic) {
  annotations[kManagedByAnnotation] = "runway";
  annotations[kTrafficAnnotation] = traffic;
  annotations[kPhaseAnnotation] = phase;
  if (candidate.empty()) {
    annotations.erase(kCandidateAnnotation);
  } else {
    annotations[kCandidateAnnotation] = candidate;
  }
  if (!stable.empty()) annotations[kStableAnnotation] = stable;
  return annotations;
}

ServiceUpdate BaseUpdate(const DesiredService& desired, const std::optional<LiveService>& live) {
  ServiceUpdate update;
  update.name = desired.target;
  if (live) update.etag = live->etag;
  return update;
}

}  // namespace

std::string RevisionNameFor(const DesiredService& desired) {
  const RevisionTemplate& t = desired.revision_template;
  std::string canonical;
  AppendHashField(canonical, "image", desired.image.value_or(""));
  AppendHashField(canonical, "port", absl::StrCat(t.container_port));
  AppendHashField(canonical, "command", absl::StrJoin(t.command, "\x1f"));
  AppendHashField(canonical, "args", absl::StrJoin(t.args, "\x1f"));
  for (const EnvVar& env : t.env) {
    AppendHashField(canonical, "env", env.name);
    if (env.value) AppendHashField(canonical, "value", *env.value);
    if (env.secret)
      AppendHashField(canonical, "secret", env.secret->name + "@" + env.secret->version);
  }
  AppendHashField(canonical, "min", absl::StrCat(t.min_instances));
  AppendHashField(canonical, "max", absl::StrCat(t.max_instances));
  AppendHashField(canonical, "cpu", t.cpu.value_or(""));
  AppendHashField(canonical, "memory", t.memory.value_or(""));
  AppendHashField(canonical, "concurrency", t.concurrency ? absl::StrCat(*t.concurrency) : "");
  AppendHashField(
      canonical, "timeout",
      t.request_timeout ? absl::StrCat(absl::ToInt64Milliseconds(*t.request_timeout), "ms") : "");
  AppendHashField(canonical, "serviceAccount", t.service_account.value_or(""));
  for (const auto& [key, value] : t.labels) AppendHashField(canonical, "label", key + "=" + value);
  char hash[24];
  std::snprintf(hash, sizeof(hash), "%010llx",
                static_cast<unsigned long long>(StableHash(canonical) & 0xffffffffffULL));
  return absl::StrCat(desired.target.service, "-r", hash);
}

std::vector<LiveTrafficTarget> ResolveTraffic(const std::vector<TrafficTarget>& traffic,
                                              const std::string& revision) {
  std::vector<LiveTrafficTarget> out;
  for (const TrafficTarget& target : traffic) {
    LiveTrafficTarget live;
    live.revision = target.IsNew() ? revision : target.revision;
    live.percent = target.percent;
    live.tag = target.tag;
    out.push_back(live);
  }
  return out;
}

std::vector<LiveTrafficTarget> NormalizeTraffic(const std::vector<LiveTrafficTarget>& traffic) {
  std::vector<LiveTrafficTarget> out;
  for (const LiveTrafficTarget& target : traffic) {
    if (target.percent == 0 && target.tag.empty()) continue;
    LiveTrafficTarget normal;
    normal.revision = target.revision.empty() && target.latest ? "LATEST" : target.revision;
    normal.percent = target.percent;
    normal.tag = target.tag;
    out.push_back(normal);
  }
  std::sort(out.begin(), out.end(), [](const LiveTrafficTarget& a, const LiveTrafficTarget& b) {
    return std::tie(a.revision, a.tag, a.percent) < std::tie(b.revision, b.tag, b.percent);
  });
  return out;
}

bool SameTraffic(const std::vector<LiveTrafficTarget>& a, const std::vector<LiveTrafficTarget>& b) {
  std::vector<LiveTrafficTarget> x = NormalizeTraffic(a), y = NormalizeTraffic(b);
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].revision != y[i].revision || x[i].percent != y[i].percent || x[i].tag != y[i].tag) {
      return false;
    }
  }
  return true;
}

std::string DescribeTraffic(const std::vector<LiveTrafficTarget>& traffic) {
  std::vector<std::string> parts;
  for (const LiveTrafficTarget& t : NormalizeTraffic(traffic)) {
    std::string part = absl::StrCat(t.revision, " ", t.percent, "%");
    if (!t.tag.empty()) absl::StrAppend(&part, " (tag ", t.tag, ")");
    parts.push_back(part);
  }
  return parts.empty() ? "(none)" : absl::StrJoin(parts, ", ");
}

const char* StepName(Step step) {
  switch (step) {
    case Step::kCreate:
      return "Create";
    case Step::kDeployDark:
      return "DeployDark";
    case Step::kWaitCloudRun:
      return "WaitCloudRun";
    case Step::kWaitCandidate:
      return "WaitCandidate";
    case Step::kPromote:
      return "Promote";
    case Step::kApplyTraffic:
      return "ApplyTraffic";
    case Step::kCorrectDrift:
      return "CorrectDrift";
    case Step::kReportDrift:
      return "DriftDetected";
    case Step::kConverged:
      return "Converged";
    case Step::kSuspended:
      return "Suspended";
    case Step::kCandidateFailed:
      return "CandidateFailed";
    case Step::kCloudRunFailed:
      return "CloudRunFailed";
    case Step::kAwaitingPromotion:
      return "AwaitingPromotion";
    case Step::kBuildImage:
      return "BuildImage";
    case Step::kBuilding:
      return "Building";
    case Step::kBuildFailed:
      return "BuildFailed";
  }
  return "Unknown";
}

Decision Decide(const DesiredService& desired, const std::optional<LiveService>& live) {
  Decision decision;
  decision.revision = RevisionNameFor(desired);
  const std::string& revision = decision.revision;
  std::vector<LiveTrafficTarget> wanted = ResolveTraffic(desired.traffic, revision);
  decision.desired_traffic = NormalizeTraffic(wanted);
  if (live) decision.live_traffic = NormalizeTraffic(live->traffic_statuses);

  if (!desired.image) {
    if (desired.suspend) {
      decision.step = Step::kSuspended;
      decision.message = "Suspended: the image is not built and nothing is written.";
      return decision;
    }
    decision.step = Step::kBuildImage;
    decision.message =
        "The image is built from spec.build first; its digest is then deployed dark.";
    return decision;
  }

  if (!live) {
    if (desired.suspend) {
      decision.step = Step::kSuspended;
      decision.message = "The service does not exist; suspended, so it is not created.";
      return decision;
    }
    decision.step = Step::kCreate;
    ServiceUpdate update = BaseUpdate(desired, live);
    update.revision_template = desired.revision_template;
    update.image = desired.image;
    update.revision_name = revision;
    update.traffic = wanted;
    update.annotations =
        WithRunwayAnnotations({}, "converged", "", revision, DescribeTraffic(wanted));
    decision.update = update;
    decision.message = absl::StrCat("Creating the service with revision ", revision, ", traffic ",
                                    DescribeTraffic(wanted), ".");
    return decision;
  }

  if (live->reconciling) {
    decision.step = Step::kWaitCloudRun;
    decision.message = "Cloud Run is still reconciling the last write.";
    return decision;
  }

  // 1. The desired template is not deployed: deploy it dark, traffic as it serves now.
  if (live->template_revision != revision) {
    if (desired.suspend) {
      decision.step = Step::kSuspended;
      decision.message =
          absl::StrCat("Revision ", revision, " is not deployed: spec.suspend is true.");
      return decision;
    }
    std::vector<LiveTrafficTarget> serving;
    std::vector<std::string> stable_names;
    for (const LiveTrafficTarget& t : live->traffic_statuses) {
      if (t.percent == 0 && t.tag.empty()) continue;
      LiveTrafficTarget pinned;
      // LATEST as served: the status names the revision; if it does not, the latest ready one.
      pinned.revision = t.revision.empty() && t.latest ? live->latest_ready_revision : t.revision;
      pinned.percent = t.percent;
      pinned.tag = t.tag == kCandidateTag ? "" : t.tag;  // the tag moves to the new candidate
      if (pinned.revision.empty()) continue;
      if (pinned.percent == 0 && pinned.tag.empty()) continue;
      if (pinned.percent > 0) stable_names.push_back(pinned.revision);
      serving.push_back(pinned);
    }
    ServiceUpdate update = BaseUpdate(desired, live);
    update.revision_template = desired.revision_template;
    update.image = desired.image;
    update.revision_name = revision;
    if (stable_names.empty()) {
      // Nothing serves (a new service whose first revision failed): no one to keep dark from.
      decision.step = Step::kCreate;
      update.traffic = wanted;
      update.annotations = WithRunwayAnnotations(live->annotations, "converged", "", revision,
                                                 DescribeTraffic(wanted));
      decision.message = absl::StrCat("Nothing serves yet: deploying ", revision, " with traffic ",
                                      DescribeTraffic(wanted), ".");
    } else {
      decision.step = Step::kDeployDark;
      LiveTrafficTarget candidate;
      candidate.revision = revision;
      candidate.tag = kCandidateTag;
      serving.push_back(candidate);
      update.traffic = serving;
      // The recorded split stays the one last applied: the dark write is not a traffic change.
      auto applied = live->annotations.find(kTrafficAnnotation);
      update.annotations = WithRunwayAnnotations(
          live->annotations, "deploying", revision, absl::StrJoin(stable_names, ","),
          applied == live->annotations.end() ? DescribeTraffic(serving) : applied->second);
      decision.message =
          absl::StrCat("Deploying revision ", revision, " dark (tag candidate); traffic stays ",
                       DescribeTraffic(serving), ".");
    }
    decision.update = update;
    return decision;
  }

  // 2. The template is deployed. Is its revision Ready?
  if (live->latest_ready_revision != revision) {
    if (live->latest_created_revision == revision && live->terminal_state == "CONDITION_FAILED") {
      decision.step = Step::kCandidateFailed;
      decision.message = absl::StrCat("Revision ", revision,
                                      " failed and serves no traffic: ", live->terminal_message);
      return decision;
    }
    decision.step = Step::kWaitCandidate;
    decision.message = absl::StrCat("Waiting for revision ", revision, " to become Ready.");
    return decision;
  }

  // 3. Traffic.
  bool serves_as_desired = SameTraffic(live->traffic_statuses, wanted);
  if (serves_as_desired && live->observed_generation == live->generation && Succeeded(*live)) {
    decision.step = Step::kConverged;
    decision.message = absl::StrCat("Serving ", DescribeTraffic(wanted), ".");
    return decision;
  }
  if (!Succeeded(*live) && live->terminal_state != "CONDITION_FAILED") {
    // Neither succeeded nor failed (an odd or eventually consistent read): look again.
    decision.step = Step::kWaitCloudRun;
    decision.message = "Cloud Run reports no terminal state yet.";
    return decision;
  }
  if (SameTraffic(live->traffic, wanted) && !Succeeded(*live)) {
    // Already asked for; Cloud Run refuses it. Writing it again would only repeat the failure.
    decision.step = Step::kCloudRunFailed;
    decision.message = absl::StrCat("Cloud Run did not apply traffic ", DescribeTraffic(wanted),
                                    ": ", live->terminal_message);
    return decision;
  }
  auto phase = live->annotations.find(kPhaseAnnotation);
  auto candidate = live->annotations.find(kCandidateAnnotation);
  bool in_rollout = phase != live->annotations.end() && phase->second == "deploying" &&
                    candidate != live->annotations.end() && candidate->second == revision;
  ServiceUpdate update = BaseUpdate(desired, live);
  update.traffic = wanted;
  update.annotations =
      WithRunwayAnnotations(live->annotations, "converged", "", revision, DescribeTraffic(wanted));
  auto applied = live->annotations.find(kTrafficAnnotation);
  bool manifest_changed =
      applied == live->annotations.end() || applied->second != DescribeTraffic(wanted);
  if (!in_rollout && manifest_changed && !desired.suspend) {
    decision.step = Step::kApplyTraffic;
    decision.update = update;
    decision.message =
        absl::StrCat("Applying the manifest's traffic: ", DescribeTraffic(live->traffic_statuses),
                     " -> ", DescribeTraffic(wanted), ".");
    return decision;
  }
  if (in_rollout && desired.rollout.strategy != RolloutStrategy::kDirect) {
    // Step-wise (canary) and manual promotion are not automated by this version: the candidate
    // stays dark, Ready, reachable on its tag, and the live split is untouched.
    decision.step = Step::kAwaitingPromotion;
    decision.message =
        absl::StrCat("Revision ", revision, " is Ready and dark (tag candidate); strategy ",
                     desired.rollout.strategy == RolloutStrategy::kCanary ? "canary" : "manual",
                     " promotes it, which this version does not automate: traffic stays ",
                     DescribeTraffic(live->traffic_statuses), ".");
    return decision;
  }
  if (in_rollout) {
    if (desired.suspend) {
      decision.step = Step::kSuspended;
      decision.message =
          absl::StrCat("Suspended: revision ", revision, " is Ready but not promoted.");
      return decision;
    }
    decision.step = Step::kPromote;
    decision.update = update;
    decision.message = absl::StrCat("Promoting: traffic ", DescribeTraffic(live->traffic_statuses),
                                    " -> ", DescribeTraffic(wanted), ".");
    return decision;
  }
  std::string drift = absl::StrCat("Live traffic ", DescribeTraffic(live->traffic_statuses),
                                   " differs from the desired ", DescribeTraffic(wanted));
  if (desired.drift_policy == DriftPolicy::kIgnore) {
    decision.step = Step::kConverged;
    decision.message = absl::StrCat(drift, "; driftPolicy ignore.");
    return decision;
  }
  if (desired.drift_policy == DriftPolicy::kWarn || desired.suspend) {
    decision.step = Step::kReportDrift;
    decision.message = absl::StrCat(drift, desired.suspend ? "; suspended, not corrected."
                                                           : "; driftPolicy warn, "
                                                             "not corrected.");
    return decision;
  }
  decision.step = Step::kCorrectDrift;
  decision.update = update;
  decision.message = absl::StrCat(drift, "; restoring it (driftPolicy enforce).");
  return decision;
}

}  // namespace runway
