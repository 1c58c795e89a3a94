#include "controller/core/reconciler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace runway {
namespace {

Condition MakeCondition(const std::string& type, const std::string& status,
                        const std::string& reason, const std::string& message, int64_t generation,
                        absl::Time now) {
  Condition condition;
  condition.type = type;
  condition.status = status;
  condition.reason = reason;
  condition.message = message;
  condition.observed_generation = generation;
  condition.last_transition_time = now;
  return condition;
}

std::string PermanentReason(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kPermissionDenied:
      return "PermissionDenied";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return "CloudRunRejected";
    default:
      return "CloudRunError";
  }
}

}  // namespace

const char* OutcomeName(ReconcileOutcome::Kind kind) {
  switch (kind) {
    case ReconcileOutcome::Kind::kConverged:
      return "converged";
    case ReconcileOutcome::Kind::kProgressing:
      return "progressing";
    case ReconcileOutcome::Kind::kTransientError:
      return "error";
    case ReconcileOutcome::Kind::kStalled:
      return "stalled";
  }
  return "unknown";
}

bool IsPermanent(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return true;
    default:
      return false;
  }
}

Reconciler::Reconciler(CloudRunClient* cloud_run, StatusReporter* status, const Clock* clock,
                       Options options, ImageBuilds* builds)
    : cloud_run_(cloud_run), status_(status), builds_(builds), clock_(clock), options_(options) {}

ReconcileOutcome Reconciler::EnsureImage(const DesiredService& desired, DesiredService& built) {
  ReconcileOutcome outcome;
  outcome.build = builds_->Resolve(desired);
  const ImageResolution& build = *outcome.build;
  outcome.message = build.message;
  switch (build.kind) {
    case ImageResolution::Kind::kReady:
      built = desired;
      built.image = build.image;
      break;
    case ImageResolution::Kind::kBuilding:
      outcome.kind = ReconcileOutcome::Kind::kProgressing;
      outcome.step = Step::kBuilding;
      outcome.requeue_after = options_.poll_interval;
      break;
    case ImageResolution::Kind::kRetry:
      outcome.kind = ReconcileOutcome::Kind::kTransientError;
      outcome.step = Step::kBuilding;
      outcome.reason = build.reason;
      break;
    case ImageResolution::Kind::kFailed:
      outcome.kind = ReconcileOutcome::Kind::kStalled;
      outcome.step = Step::kBuildFailed;
      outcome.reason = build.reason;
      break;
  }
  return outcome;
}

ReconcileOutcome Reconciler::Reconcile(const DesiredService& spec,
                                       std::optional<LiveService> cached) {
  ReconcileOutcome outcome;
  DesiredService built;  // `spec` with the built image, when spec.build made one
  const DesiredService* effective = &spec;
  if (spec.build && !spec.image && !spec.suspend && builds_ != nullptr) {
    ReconcileOutcome image = EnsureImage(spec, built);
    if (image.build->kind != ImageResolution::Kind::kReady) {
      Report(spec, image, cached);
      return image;
    }
    effective = &built;
    outcome.build = std::move(image.build);
  }
  const DesiredService& desired = *effective;
  std::optional<LiveService> live = std::move(cached);
  bool have_read = live.has_value();
  for (int attempt = 0; attempt <= options_.max_conflict_retries; ++attempt) {
    if (!have_read) {
      absl::StatusOr<LiveService> read = cloud_run_->GetService(desired.target);
      if (read.ok()) {
        live = *std::move(read);
      } else if (read.status().code() == absl::StatusCode::kNotFound) {
        live.reset();
      } else {
        outcome.kind = IsPermanent(read.status()) ? ReconcileOutcome::Kind::kStalled
                                                  : ReconcileOutcome::Kind::kTransientError;
        outcome.reason = PermanentReason(read.status());
        outcome.message =
            absl::StrCat("reading ", desired.target.ResourceName(), ": ", read.status().message());
        Report(desired, outcome, std::nullopt);
        return outcome;
      }
    }
    have_read = false;  // a retry after a conflict always re-reads
    RolloutInputs inputs;
    inputs.now = clock_->Now();
    Decision decision = Decide(desired, live, inputs);
    if (decision.step == Step::kVerify && live) {
      inputs.verify = Verify(desired, *live, decision.revision);
      decision = Decide(desired, live, inputs);
    } else if (decision.step == Step::kAnalyze && live) {
      inputs.analysis = Analyze(desired, *live, decision.revision);
      decision = Decide(desired, live, inputs);
    }
    outcome.rollback_reason = decision.rollback_reason;
    outcome.step = decision.step;
    outcome.revision = decision.revision;
    outcome.message = decision.message;
    if (decision.update) {
      absl::StatusOr<OperationState> written = cloud_run_->UpdateService(*decision.update);
      // An operation accepted and then failed at once is not a write that took effect.
      absl::Status result = !written.ok()   ? written.status()
                            : written->done ? written->error
                                            : absl::OkStatus();
      if (result.ok()) {
        ++outcome.writes;
        outcome.kind = ReconcileOutcome::Kind::kProgressing;
        outcome.requeue_after = options_.poll_interval;
        if (decision.step == Step::kRollback) {
          SPDLOG_WARN("{}: {}", desired.key.ToString(), decision.message);
        }
        Report(desired, outcome, live);
        return outcome;
      }
      if (result.code() == absl::StatusCode::kAborted) {
        SPDLOG_DEBUG("{}: {} (re-reading)", desired.key.ToString(), std::string(result.message()));
        continue;  // someone wrote in between: decide again on a fresh read
      }
      outcome.kind = IsPermanent(result) ? ReconcileOutcome::Kind::kStalled
                                         : ReconcileOutcome::Kind::kTransientError;
      outcome.reason = PermanentReason(result);
      outcome.message = absl::StrCat(StepName(decision.step), " failed: ", result.message());
      if (decision.step == Step::kRollback) {
        // Not rolled back yet: keep trying (with backoff) rather than stall with the candidate
        // still serving; status says the rollback is pending and why it failed.
        outcome.kind = ReconcileOutcome::Kind::kTransientError;
        outcome.reason = "RollbackFailed";
        outcome.rollback_reason.clear();
        outcome.message =
            absl::StrCat("Rollback of ", decision.revision, " (", decision.rollback_reason,
                         ") failed, retrying: ", result.message());
      }
      Report(desired, outcome, live);
      return outcome;
    }
    switch (decision.step) {
      case Step::kConverged:
      case Step::kReportDrift:
      case Step::kSuspended:
        outcome.kind = ReconcileOutcome::Kind::kConverged;
        break;
      case Step::kAwaitingPromotion:
        outcome.kind = ReconcileOutcome::Kind::kConverged;
        outcome.requeue_after = options_.manual_poll_interval;  // to see `runway promote`
        break;
      case Step::kPause:
      case Step::kAnalysisHold:
        outcome.kind = ReconcileOutcome::Kind::kProgressing;
        outcome.requeue_after = std::max(options_.poll_interval, decision.requeue_after);
        break;
      case Step::kRolledBack:
        outcome.kind = ReconcileOutcome::Kind::kStalled;
        outcome.reason = "RolledBack";
        break;
      case Step::kBuildImage:  // no ImageBuilds (or suspended, handled above)
        outcome.kind = ReconcileOutcome::Kind::kStalled;
        outcome.reason = "BuildNotConfigured";
        break;
      case Step::kCandidateFailed:
        outcome.kind = ReconcileOutcome::Kind::kStalled;
        outcome.reason = "RevisionFailed";
        break;
      case Step::kCloudRunFailed:
        outcome.kind = ReconcileOutcome::Kind::kStalled;
        outcome.reason = "CloudRunFailed";
        break;
      default:
        outcome.kind = ReconcileOutcome::Kind::kProgressing;
        outcome.requeue_after = options_.poll_interval;
        break;
    }
    Report(desired, outcome, live);
    return outcome;
  }
  outcome.kind = ReconcileOutcome::Kind::kTransientError;
  outcome.message =
      absl::StrCat("the service kept changing under Runway (", options_.max_conflict_retries + 1,
                   " conflicting writes in a row); will retry");
  Report(desired, outcome, std::nullopt);
  return outcome;
}

void Reconciler::Report(const DesiredService& desired, ReconcileOutcome& outcome,
                        const std::optional<LiveService>& live) {
  if (live) {
    auto candidate = live->annotations.find(kCandidateAnnotation);
    outcome.stable_percent = outcome.candidate_percent = 0;
    for (const LiveTrafficTarget& t : live->traffic_statuses) {
      bool is_candidate = candidate != live->annotations.end() && !t.revision.empty() &&
                          t.revision == candidate->second;
      (is_candidate ? outcome.candidate_percent : outcome.stable_percent) += t.percent;
    }
  }
  if (!status_) return;
  absl::Time now = clock_->Now();
  int64_t generation = desired.generation;
  ServiceStatus status;
  status.observed_generation = generation;
  if (live) {
    status.revision = live->latest_ready_revision;
    for (const LiveTrafficTarget& t : live->traffic_statuses) {
      status.traffic.push_back({t.revision, t.percent, t.tag});
    }
  }
  std::string step = StepName(outcome.step);
  switch (outcome.kind) {
    case ReconcileOutcome::Kind::kConverged: {
      bool drift = outcome.step == Step::kReportDrift;
      bool waiting = outcome.step == Step::kSuspended || outcome.step == Step::kAwaitingPromotion;
      status.conditions.push_back(MakeCondition("Ready",
                                                drift ? "False" : (waiting ? "Unknown" : "True"),
                                                step, outcome.message, generation, now));
      status.conditions.push_back(
          MakeCondition("Reconciling", "False", step, outcome.message, generation, now));
      status.conditions.push_back(MakeCondition("Stalled", "False", step, "", generation, now));
      break;
    }
    case ReconcileOutcome::Kind::kProgressing:
      status.conditions.push_back(
          MakeCondition("Ready", "False", step, outcome.message, generation, now));
      status.conditions.push_back(
          MakeCondition("Reconciling", "True", step, outcome.message, generation, now));
      status.conditions.push_back(MakeCondition("Stalled", "False", step, "", generation, now));
      break;
    case ReconcileOutcome::Kind::kTransientError:
      status.conditions.push_back(
          MakeCondition("Ready", "Unknown", "Retrying", outcome.message, generation, now));
      status.conditions.push_back(
          MakeCondition("Reconciling", "True", "Retrying", outcome.message, generation, now));
      status.conditions.push_back(
          MakeCondition("Stalled", "False", "Retrying", "", generation, now));
      break;
    case ReconcileOutcome::Kind::kStalled: {
      const std::string& reason = outcome.reason.empty() ? "CloudRunError" : outcome.reason;
      status.conditions.push_back(
          MakeCondition("Ready", "False", reason, outcome.message, generation, now));
      status.conditions.push_back(
          MakeCondition("Reconciling", "False", reason, outcome.message, generation, now));
      status.conditions.push_back(
          MakeCondition("Stalled", "True", reason, outcome.message, generation, now));
      break;
    }
  }
  if (!outcome.rollback_reason.empty()) {
    status.conditions.push_back(MakeCondition("RolledBack", "True", outcome.rollback_reason,
                                              outcome.message, generation, now));
  }
  if (outcome.build) {
    const ImageResolution& build = *outcome.build;
    BuiltImage image;
    image.digest = build.digest;
    image.build_id = build.build_id;
    image.log_url = build.log_url;
    image.builder = build.builder;
    status.image = image;
    const char* built = build.kind == ImageResolution::Kind::kReady    ? "True"
                        : build.kind == ImageResolution::Kind::kFailed ? "False"
                                                                       : "Unknown";
    status.conditions.push_back(
        MakeCondition("BuildSucceeded", built, build.reason, build.message, generation, now));
  }
  std::string signature =
      absl::StrCat(OutcomeName(outcome.kind), "|", StepName(outcome.step), "|", outcome.reason, "|",
                   outcome.message, "|", status.revision, "|", generation);
  if (status.image) {
    absl::StrAppend(&signature, "|", status.image->digest, "|", status.image->build_id, "|",
                    outcome.build->message);
  }
  for (const TrafficTarget& t : status.traffic) {
    absl::StrAppend(&signature, "|", t.revision, ":", t.percent, ":", t.tag);
  }
  {
    absl::MutexLock lock(&published_mutex_);
    auto previous = published_.find(desired.key.ToString());
    if (previous != published_.end() && previous->second == signature) return;
  }
  if (absl::Status reported = status_->Report(desired.key, status); !reported.ok()) {
    SPDLOG_WARN("{}: status not published: {}", desired.key.ToString(),
                std::string(reported.message()));
    return;
  }
  absl::MutexLock lock(&published_mutex_);
  published_[desired.key.ToString()] = std::move(signature);
}

namespace {

// The candidate's tag URL from the served traffic (Cloud Run sets `uri` per tagged target).
std::string CandidateUrl(const LiveService& live) {
  for (const LiveTrafficTarget& t : live.traffic_statuses) {
    if (t.tag == kCandidateTag && !t.uri.empty()) return t.uri;
  }
  return "";
}

std::string Substitute(std::string text, const std::string& key, const std::string& value) {
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
    text.replace(at, key.size(), value);
    at += value.size();
  }
  return text;
}

}  // namespace

GateResult Reconciler::Verify(const DesiredService& desired, const LiveService& live,
                              const std::string& revision) {
  const VerifySpec& verify = *desired.rollout.verify;
  GateResult result;
  result.verdict = GateResult::Verdict::kFail;
  const std::string base = CandidateUrl(live);
  if (base.empty()) {
    // Not served on its tag yet (the status lags the write): look again next pass.
    result.verdict = GateResult::Verdict::kHold;
    result.detail = absl::StrCat("revision ", revision, " has no tag URL yet");
    return result;
  }
  const std::string url = absl::StrCat(absl::StripSuffix(base, "/"), verify.path);
  if (options_.verify_http == nullptr) {
    result.detail = absl::StrCat("no HTTP client to verify ", url);
    return result;
  }
  // One GET per pass: a failed attempt is retried on the next pass (after --poll-interval), so
  // a blip right after Ready does not use up every attempt within milliseconds.
  const int attempts = std::max(1, verify.retries + 1);
  HttpRequest request;
  request.method = "GET";
  request.url = url;
  request.timeout = verify.timeout;
  absl::StatusOr<HttpResponse> response = options_.verify_http->Send(request);
  const std::string attempt_key = absl::StrCat(desired.key.ToString(), "#", revision);
  absl::MutexLock lock(&gate_mutex_);
  if (response.ok() && response->status == verify.expect_status) {
    verify_failures_.erase(attempt_key);
    result.verdict = GateResult::Verdict::kPass;
    result.detail = absl::StrCat("GET ", url, " answered ", response->status);
    return result;
  }
  const int failed = ++verify_failures_[attempt_key];
  const std::string seen = response.ok() ? absl::StrCat("answered ", response->status)
                                         : std::string(response.status().message());
  result.detail = absl::StrCat("GET ", url, " ", seen, " (expected ", verify.expect_status,
                               "; attempt ", failed, " of ", attempts, ")");
  if (failed >= attempts) {
    verify_failures_.erase(attempt_key);
    return result;  // kFail
  }
  result.verdict = GateResult::Verdict::kHold;
  return result;
}

GateResult Reconciler::Analyze(const DesiredService& desired, const LiveService& live,
                               const std::string& revision) {
  const AnalysisSpec& analysis = *desired.rollout.analysis;
  const std::string query = Substitute(Substitute(analysis.query, "$REVISION", revision),
                                       "$SERVICE", desired.target.service);
  const std::string step = absl::StrCat(
      revision, "#",
      live.annotations.count(kStepAnnotation) ? live.annotations.at(kStepAnnotation) : "");
  GateResult result;
  const absl::Time now = clock_->Now();
  {
    // One query per interval: extra passes (resyncs, refreshes, conflicts) must not add to the
    // failure and error counts faster than the manifest says.
    absl::MutexLock lock(&gate_mutex_);
    AnalysisCounts& counts = analysis_counts_[desired.key.ToString()];
    if (counts.step != step) counts = AnalysisCounts{step, 0, 0, std::nullopt};
    if (counts.last_query && now - *counts.last_query < analysis.interval) {
      result.verdict = GateResult::Verdict::kHold;
      result.detail = absl::StrCat("next analysis at ",
                                   absl::FormatTime(*counts.last_query + analysis.interval));
      return result;
    }
    counts.last_query = now;
  }
  absl::StatusOr<std::optional<double>> value =
      options_.analysis == nullptr ? absl::FailedPreconditionError("no Prometheus client")
                                   : options_.analysis->Query(analysis.prometheus_address, query);
  absl::MutexLock lock(&gate_mutex_);
  AnalysisCounts& counts = analysis_counts_[desired.key.ToString()];
  std::string bounds;
  if (analysis.max_value) absl::StrAppend(&bounds, "<= ", *analysis.max_value);
  if (analysis.min_value) {
    absl::StrAppend(&bounds, bounds.empty() ? "" : " and ", ">= ", *analysis.min_value);
  }
  bool failed = false;
  if (!value.ok()) {
    ++counts.errors;
    result.detail = absl::StrCat("query `", query, "` at ", analysis.prometheus_address,
                                 " failed: ", value.status().message(), " (", counts.errors,
                                 " in a row, limit ", analysis.consecutive_error_limit, ")");
    failed = counts.errors > analysis.consecutive_error_limit;
    result.verdict = failed ? GateResult::Verdict::kFail : GateResult::Verdict::kHold;
  } else {
    counts.errors = 0;
    if (!value->has_value()) {
      result.detail = absl::StrCat("query `", query, "` returned no data (inconclusive)");
      if (analysis.inconclusive == InconclusivePolicy::kPause) {
        result.verdict = GateResult::Verdict::kHold;
      } else {
        ++counts.failures;
        failed = counts.failures > analysis.failure_limit;
        result.verdict = failed ? GateResult::Verdict::kFail : GateResult::Verdict::kHold;
      }
    } else {
      const double v = **value;
      const bool ok = (!analysis.max_value || v <= *analysis.max_value) &&
                      (!analysis.min_value || v >= *analysis.min_value);
      result.detail = absl::StrCat("query `", query, "` = ", v, ", want ", bounds);
      if (ok) {
        result.verdict = GateResult::Verdict::kPass;
      } else {
        ++counts.failures;
        failed = counts.failures > analysis.failure_limit;
        absl::StrAppend(&result.detail, " (failure ", counts.failures, ", limit ",
                        analysis.failure_limit, ")");
        result.verdict = failed ? GateResult::Verdict::kFail : GateResult::Verdict::kHold;
      }
    }
  }
  if (analysis.dry_run && result.verdict != GateResult::Verdict::kPass) {
    SPDLOG_WARN("{}: analysis (dryRun, not acted on): {}", desired.key.ToString(), result.detail);
    result.verdict = GateResult::Verdict::kPass;
    absl::StrAppend(&result.detail, " [dryRun]");
  }
  return result;
}

void Reconciler::ReportInvalid(const ObjectKey& key, int64_t generation,
                               const std::string& message) {
  if (!status_) return;
  {
    absl::MutexLock lock(&published_mutex_);
    published_.erase(key.ToString());
  }
  absl::Time now = clock_->Now();
  ServiceStatus status;
  status.observed_generation = generation;
  status.conditions.push_back(
      MakeCondition("Ready", "False", "InvalidSpec", message, generation, now));
  status.conditions.push_back(
      MakeCondition("Reconciling", "False", "InvalidSpec", message, generation, now));
  status.conditions.push_back(
      MakeCondition("Stalled", "True", "InvalidSpec", message, generation, now));
  if (absl::Status reported = status_->Report(key, status); !reported.ok()) {
    SPDLOG_WARN("{}: status not published: {}", key.ToString(), std::string(reported.message()));
  }
}

}  // namespace runway
