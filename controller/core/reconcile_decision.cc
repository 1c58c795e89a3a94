#include "controller/core/reconcile_decision.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

std::map<std::string, std::string> WithoutRollout(std::map<std::string, std::string> annotations) {
  for (const char* key : {kStepAnnotation, kProgressAnnotation, kStableTrafficAnnotation,
                          kDecisionAnnotation, kBlockedAnnotation, kRollbackReasonAnnotation}) {
    annotations.erase(key);
  }
  return annotations;
}

std::string Annotation(const LiveService& live, const char* key) {
  auto it = live.annotations.find(key);
  return it == live.annotations.end() ? "" : it->second;
}

std::optional<absl::Time> ProgressAt(const LiveService& live) {
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(Annotation(live, kProgressAnnotation), &seconds)) return std::nullopt;
  return absl::FromUnixSeconds(seconds);
}

std::string UnixSeconds(absl::Time time) { return absl::StrCat(absl::ToUnixSeconds(time)); }

ServiceUpdate BaseUpdate(const DesiredService& desired, const std::optional<LiveService>& live) {
  ServiceUpdate update;
  update.name = desired.target;
  if (live) update.etag = live->etag;
  return update;
}

}  // namespace

std::vector<LiveTrafficTarget> CanarySplit(const std::vector<LiveTrafficTarget>& stable,
                                           const std::string& candidate, int percent) {
  std::vector<LiveTrafficTarget> out;
  int total = 0;
  for (const LiveTrafficTarget& t : stable) total += t.percent;
  const int rest = 100 - percent;
  int given = 0;
  std::vector<std::pair<int, size_t>> remainders;  // (remainder, index) for largest remainder
  for (const LiveTrafficTarget& t : stable) {
    LiveTrafficTarget scaled = t;
    scaled.latest = false;
    scaled.percent = total > 0 ? t.percent * rest / total : 0;
    given += scaled.percent;
    if (total > 0) remainders.push_back({(t.percent * rest) % total, out.size()});
    out.push_back(scaled);
  }
  std::sort(remainders.begin(), remainders.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; given < rest && i < remainders.size(); ++i, ++given) {
    ++out[remainders[i].second].percent;
  }
  LiveTrafficTarget next;
  next.revision = candidate;
  next.percent = percent + (rest - given);  // all of it when nothing else serves
  next.tag = kCandidateTag;
  out.push_back(next);
  return out;
}

std::string EncodeSplit(const std::vector<LiveTrafficTarget>& split) {
  std::vector<std::string> parts;
  for (const LiveTrafficTarget& t : split) {
    parts.push_back(absl::StrCat(t.revision, ":", t.percent, ":", t.tag));
  }
  return absl::StrJoin(parts, ",");
}

std::vector<LiveTrafficTarget> DecodeSplit(const std::string& text) {
  std::vector<LiveTrafficTarget> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(part, ':');
    LiveTrafficTarget t;
    if (fields.size() != 3 || fields[0].empty() || !absl::SimpleAtoi(fields[1], &t.percent)) {
      return {};  // unreadable: callers fall back to the live split
    }
    t.revision = fields[0];
    t.tag = fields[2];
    out.push_back(t);
  }
  return out;
}

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
    case Step::kVerify:
      return "Verify";
    case Step::kAnalyze:
      return "Analyze";
    case Step::kAwaitManual:
      return "AwaitManual";
    case Step::kAdvance:
      return "Advance";
    case Step::kPause:
      return "Pause";
    case Step::kAnalysisHold:
      return "AnalysisHold";
    case Step::kRollback:
      return "Rollback";
    case Step::kRolledBack:
      return "RolledBack";
    case Step::kBuildImage:
      return "BuildImage";
    case Step::kBuilding:
      return "Building";
    case Step::kBuildFailed:
      return "BuildFailed";
  }
  return "Unknown";
}

Decision Decide(const DesiredService& desired, const std::optional<LiveService>& live,
                const RolloutInputs& inputs) {
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

  // 0. This very revision was rolled back: never promoted again until the manifest changes.
  if (Annotation(*live, kBlockedAnnotation) == revision) {
    decision.step = Step::kRolledBack;
    std::string why = Annotation(*live, kRollbackReasonAnnotation);
    decision.rollback_reason = why.substr(0, why.find(':'));
    decision.message = absl::StrCat("Revision ", revision, " was rolled back (", why,
                                    "); it is not promoted again until the image or the "
                                    "template in the manifest changes. Serving ",
                                    DescribeTraffic(live->traffic_statuses), ".");
    return decision;
  }

  const std::string phase = Annotation(*live, kPhaseAnnotation);
  const bool in_rollout = Annotation(*live, kCandidateAnnotation) == revision &&
                          (phase == "deploying" || phase == "canary" || phase == "awaiting");
  const RolloutSpec& rollout = desired.rollout;
  const std::optional<absl::Time> progress_at = ProgressAt(*live);
  const bool deadline_passed = progress_at && inputs.now - *progress_at > rollout.progress_deadline;
  // The split to restore: recorded when the rollout began, else what serves minus the candidate.
  std::vector<LiveTrafficTarget> stable = DecodeSplit(Annotation(*live, kStableTrafficAnnotation));
  if (stable.empty()) {
    // No record: what serves besides the candidate (LATEST pinned), scaled back to 100.
    std::vector<LiveTrafficTarget> others;
    for (const LiveTrafficTarget& t : live->traffic_statuses) {
      LiveTrafficTarget pinned = t;
      if (pinned.revision.empty() && pinned.latest) pinned.revision = live->latest_ready_revision;
      pinned.latest = false;
      if (pinned.revision.empty() || pinned.revision == revision || pinned.percent <= 0) continue;
      others.push_back(pinned);
    }
    if (!others.empty()) {
      stable = CanarySplit(others, "", 0);
      stable.pop_back();  // the empty candidate CanarySplit adds
    }
  }
  auto rollback = [&](const std::string& reason, const std::string& why) {
    decision.step = Step::kRollback;
    decision.rollback_reason = reason;
    ServiceUpdate update = BaseUpdate(desired, live);
    update.traffic = stable;
    update.annotations = WithRunwayAnnotations(WithoutRollout(live->annotations), "rolled-back", "",
                                               "", DescribeTraffic(stable));
    update.annotations[kBlockedAnnotation] = revision;
    update.annotations[kRollbackReasonAnnotation] = absl::StrCat(reason, ": ", why);
    decision.update = update;
    decision.desired_traffic = NormalizeTraffic(stable);
    decision.message = absl::StrCat("Rolling back revision ", revision, " (", reason, ": ", why,
                                    "): traffic -> ", DescribeTraffic(stable), ".");
    return decision;
  };
  if (in_rollout && !stable.empty() && Annotation(*live, kDecisionAnnotation) == "abort") {
    return rollback("Aborted", "runway abort");
  }

  // After a rollback Cloud Run may go on reconciling the abandoned revision (one that never
  // becomes Ready): that must not hold up the next manifest.
  const bool reconciling_abandoned =
      phase == "rolled-back" && Annotation(*live, kBlockedAnnotation) == live->template_revision;
  if (live->reconciling && !reconciling_abandoned) {
    // The deadline guards the candidate becoming Ready; later phases wait for a pause, analysis
    // or a person, and an unrelated write may make Cloud Run reconcile meanwhile.
    if (in_rollout && phase == "deploying" && !stable.empty() && deadline_passed) {
      return rollback("ProgressDeadlineExceeded",
                      absl::StrCat("Cloud Run was still reconciling the candidate after "
                                   "progressDeadline ",
                                   absl::FormatDuration(rollout.progress_deadline)));
    }
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
      std::vector<LiveTrafficTarget> stable_split(serving.begin(), serving.end() - 1);
      // A rollout that replaces an unfinished one keeps the split from before that one: the
      // abandoned candidate, never verified, must not become "stable".
      const std::string old_phase = Annotation(*live, kPhaseAnnotation);
      if (old_phase == "deploying" || old_phase == "canary" || old_phase == "awaiting") {
        std::vector<LiveTrafficTarget> before =
            DecodeSplit(Annotation(*live, kStableTrafficAnnotation));
        if (!before.empty()) stable_split = before;
      }
      update.annotations = WithRunwayAnnotations(
          WithoutRollout(live->annotations), "deploying", revision,
          absl::StrJoin(stable_names, ","),
          applied == live->annotations.end() ? DescribeTraffic(stable_split) : applied->second);
      update.annotations[kStableTrafficAnnotation] = EncodeSplit(stable_split);
      update.annotations[kProgressAnnotation] = UnixSeconds(inputs.now);
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
      std::string why = absl::StrCat("the revision failed: ", live->terminal_message);
      if (in_rollout && !stable.empty()) return rollback("RevisionFailed", why);
      decision.step = Step::kCandidateFailed;
      decision.message = absl::StrCat("Revision ", revision,
                                      " failed and serves no traffic: ", live->terminal_message);
      return decision;
    }
    if (in_rollout && !stable.empty() && deadline_passed) {
      return rollback("ProgressDeadlineExceeded",
                      absl::StrCat("the revision was not Ready within progressDeadline ",
                                   absl::FormatDuration(rollout.progress_deadline)));
    }
    decision.step = Step::kWaitCandidate;
    decision.message = absl::StrCat("Waiting for revision ", revision, " to become Ready.");
    return decision;
  }

  // 3. Traffic.
  ServiceUpdate promote = BaseUpdate(desired, live);
  promote.traffic = wanted;
  promote.annotations = WithRunwayAnnotations(WithoutRollout(live->annotations), "converged", "",
                                              revision, DescribeTraffic(wanted));
  if (in_rollout) {
    if (desired.suspend) {
      decision.step = Step::kSuspended;
      decision.message =
          absl::StrCat("Suspended: revision ", revision, " is Ready but not promoted.");
      return decision;
    }
    auto promote_now = [&](const std::string& why) {
      decision.step = Step::kPromote;
      decision.update = promote;
      decision.message =
          absl::StrCat("Promoting (", why, "): traffic ", DescribeTraffic(live->traffic_statuses),
                       " -> ", DescribeTraffic(wanted), ".");
      return decision;
    };
    auto advance_to = [&](size_t index, const std::string& why) {
      std::vector<LiveTrafficTarget> split =
          CanarySplit(stable, revision, rollout.steps[index].percent);
      decision.step = Step::kAdvance;
      ServiceUpdate update = BaseUpdate(desired, live);
      update.traffic = split;
      update.annotations = live->annotations;
      update.annotations.erase(kDecisionAnnotation);
      update.annotations[kPhaseAnnotation] = "canary";
      update.annotations[kStepAnnotation] = absl::StrCat(index);
      update.annotations[kProgressAnnotation] = UnixSeconds(inputs.now);
      decision.update = update;
      decision.desired_traffic = NormalizeTraffic(split);
      decision.message = absl::StrCat("Canary step ", index + 1, " of ", rollout.steps.size(), " (",
                                      why, "): traffic -> ", DescribeTraffic(split), ".");
      return decision;
    };
    const std::string person = Annotation(*live, kDecisionAnnotation);
    if (phase == "deploying") {
      if (rollout.verify) {
        if (!inputs.verify) {
          decision.step = Step::kVerify;
          decision.message = absl::StrCat("Verifying revision ", revision, " on its tag URL.");
          return decision;
        }
        if (inputs.verify->verdict == GateResult::Verdict::kFail) {
          return rollback("VerifyFailed", inputs.verify->detail);
        }
        if (inputs.verify->verdict == GateResult::Verdict::kHold) {
          if (deadline_passed) {
            return rollback("ProgressDeadlineExceeded",
                            absl::StrCat("not verified within progressDeadline ",
                                         absl::FormatDuration(rollout.progress_deadline), ": ",
                                         inputs.verify->detail));
          }
          decision.step = Step::kWaitCandidate;
          decision.message = absl::StrCat("Verify waits: ", inputs.verify->detail, ".");
          return decision;
        }
      }
      if (rollout.strategy == RolloutStrategy::kDirect || person == "promote") {
        return promote_now(rollout.verify ? "verified" : "Ready");
      }
      if (rollout.strategy == RolloutStrategy::kCanary && !rollout.steps.empty()) {
        return advance_to(0, rollout.verify ? "verified" : "Ready");
      }
      if (rollout.strategy == RolloutStrategy::kCanary) return promote_now("no canary steps");
      decision.step = Step::kAwaitManual;
      ServiceUpdate update = BaseUpdate(desired, live);
      update.annotations = live->annotations;
      update.annotations[kPhaseAnnotation] = "awaiting";
      update.annotations[kProgressAnnotation] = UnixSeconds(inputs.now);
      decision.update = update;
      decision.message =
          absl::StrCat("Revision ", revision, rollout.verify ? " verified" : " Ready",
                       " and dark; waiting for `runway promote` (or `abort`).");
      return decision;
    }
    if (phase == "awaiting") {
      if (person == "promote") return promote_now("runway promote");
      decision.step = Step::kAwaitingPromotion;
      decision.message = absl::StrCat("Revision ", revision,
                                      " is Ready and dark (tag candidate); `runway promote` moves "
                                      "traffic, `runway abort` rolls back. Serving ",
                                      DescribeTraffic(live->traffic_statuses), ".");
      return decision;
    }
    // phase == "canary"
    if (person == "promote") return promote_now("runway promote");
    size_t index = 0;
    if (rollout.strategy == RolloutStrategy::kDirect) {
      return promote_now("the manifest's strategy is now direct");
    }
    if (rollout.strategy == RolloutStrategy::kManual) {
      decision.step = Step::kAwaitManual;
      ServiceUpdate update = BaseUpdate(desired, live);
      update.annotations = live->annotations;
      update.annotations[kPhaseAnnotation] = "awaiting";
      update.annotations.erase(kStepAnnotation);
      update.annotations[kProgressAnnotation] = UnixSeconds(inputs.now);
      decision.update = update;
      decision.message = absl::StrCat("The manifest's strategy is now manual: revision ", revision,
                                      " holds its traffic and waits for `runway promote`.");
      return decision;
    }
    if (!absl::SimpleAtoi(Annotation(*live, kStepAnnotation), &index) ||
        index >= rollout.steps.size() || !progress_at) {
      // The recorded step does not fit the manifest's steps (they were edited) or has no start
      // time: start the steps again from the first, never skip analysis.
      return advance_to(0, "the recorded step does not match the manifest's steps");
    }
    std::vector<LiveTrafficTarget> step_split =
        CanarySplit(stable, revision, rollout.steps[index].percent);
    if (!SameTraffic(live->traffic_statuses, step_split) || !Succeeded(*live)) {
      if (deadline_passed) {
        return rollback("ProgressDeadlineExceeded",
                        absl::StrCat("step ", index + 1, " was not served within progressDeadline ",
                                     absl::FormatDuration(rollout.progress_deadline)));
      }
      decision.step = Step::kWaitCloudRun;
      decision.message =
          absl::StrCat("Waiting for Cloud Run to serve canary step ", index + 1, ".");
      return decision;
    }
    const absl::Time pause_ends = progress_at.value_or(inputs.now) + rollout.steps[index].pause;
    if (inputs.now < pause_ends) {
      decision.step = Step::kPause;
      decision.requeue_after = pause_ends - inputs.now;
      decision.message = absl::StrCat("Canary step ", index + 1, " of ", rollout.steps.size(), ": ",
                                      DescribeTraffic(live->traffic_statuses), "; pausing until ",
                                      absl::FormatTime(pause_ends), ".");
      return decision;
    }
    std::string why = "pause over";
    if (rollout.analysis) {
      if (!inputs.analysis) {
        decision.step = Step::kAnalyze;
        decision.message = absl::StrCat("Analysing canary step ", index + 1, ".");
        return decision;
      }
      switch (inputs.analysis->verdict) {
        case GateResult::Verdict::kFail:
          return rollback("AnalysisFailed", inputs.analysis->detail);
        case GateResult::Verdict::kHold:
          decision.step = Step::kAnalysisHold;
          decision.requeue_after = rollout.analysis->interval;
          decision.message = absl::StrCat("Canary step ", index + 1,
                                          " held: ", inputs.analysis->detail, "; asking again in ",
                                          absl::FormatDuration(rollout.analysis->interval), ".");
          return decision;
        case GateResult::Verdict::kPass:
          why = absl::StrCat("analysis passed: ", inputs.analysis->detail);
          break;
      }
    }
    if (index + 1 < rollout.steps.size()) return advance_to(index + 1, why);
    return promote_now(why);
  }

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
  auto applied = live->annotations.find(kTrafficAnnotation);
  bool manifest_changed =
      applied == live->annotations.end() || applied->second != DescribeTraffic(wanted);
  if (manifest_changed && !desired.suspend) {
    decision.step = Step::kApplyTraffic;
    decision.update = promote;
    decision.message =
        absl::StrCat("Applying the manifest's traffic: ", DescribeTraffic(live->traffic_statuses),
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
  decision.update = promote;
  decision.message = absl::StrCat(drift, "; restoring it (driftPolicy enforce).");
  return decision;
}

}  // namespace runway
