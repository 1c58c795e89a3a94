#include "controller/core/controller.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace runway {

namespace {

NoMetrics* NoMetricsInstance() {
  static auto* none = new NoMetrics();
  return none;
}

Reconciler::Options WithMetrics(Reconciler::Options options, Metrics* metrics) {
  if (options.metrics == nullptr) options.metrics = metrics;
  return options;
}

WorkQueueOptions WithLatencyMetric(WorkQueueOptions options, Metrics* metrics) {
  options.on_queue_latency = [metrics](absl::Duration waited) {
    metrics->QueueWaited(absl::ToDoubleSeconds(waited));
  };
  return options;
}

}  // namespace

Controller::Controller(Options options, ManifestSource* source, CloudRunClient* cloud_run,
                       StatusReporter* status, const Clock* clock, ImageBuilds* builds,
                       Metrics* metrics)
    : options_(options),
      source_(source),
      cloud_run_(cloud_run),
      clock_(clock),
      builds_(builds),
      metrics_(metrics != nullptr ? metrics : NoMetricsInstance()),
      reconciler_(cloud_run, status, clock, WithMetrics(options.reconciler, metrics_), builds),
      queue_(clock, WithLatencyMetric(options.queue, metrics_)),
      last_resync_round_(clock->Now()) {}

Controller::~Controller() {
  if (!Stop(absl::Seconds(30))) {
    // Detached threads would outlive the members they use: never return into that.
    SPDLOG_CRITICAL("controller threads did not stop; aborting");
    std::abort();
  }
}

std::string Controller::Fingerprint(const DesiredService& desired) {
  std::string revision = RevisionNameFor(desired);
  return absl::StrCat(desired.target.ResourceName(), "|", revision, "|",
                      DescribeTraffic(ResolveTraffic(desired.traffic, revision)), "|",
                      desired.suspend, "|", static_cast<int>(desired.drift_policy), "|",
                      static_cast<int>(desired.rollout.strategy), "|", desired.generation, "|",
                      desired.build ? BuildSourceTag(*desired.build) : "", "|",
                      desired.build ? static_cast<int>(desired.build->builder) : -1);
}

absl::Status Controller::Refresh() {
  absl::MutexLock refreshing(&refresh_mutex_);
  absl::StatusOr<ManifestSnapshot> snapshot = source_->Snapshot();
  if (!snapshot.ok()) {
    SPDLOG_WARN("manifests unreadable, keeping the previous desired state: {}",
                std::string(snapshot.status().message()));
    return snapshot.status();
  }
  std::vector<std::string> enqueue;
  {
    absl::MutexLock lock(&mutex_);
    loaded_ = true;
    // Same bytes as last time: nothing to add, change, report or forget.
    if (!snapshot->version.empty() && snapshot->version == applied_version_) {
      return absl::OkStatus();
    }
    applied_version_ = snapshot->version;
    std::map<std::string, Managed> next;
    for (DesiredService& desired : snapshot->services) {
      std::string key = desired.key.ToString();
      std::string fingerprint = Fingerprint(desired);
      auto previous = managed_.find(key);
      if (previous == managed_.end() || previous->second.fingerprint != fingerprint) {
        enqueue.push_back(key);
        stalled_.erase(key);
        if (previous == managed_.end()) {
          SPDLOG_INFO("{}: managing {}", key, desired.target.ResourceName());
        }
      }
      next[key] = Managed{std::move(desired), std::move(fingerprint)};
    }
    for (const InvalidManifest& invalid : snapshot->invalid) {
      if (!invalid.key) continue;
      std::string key = invalid.key->ToString();
      std::vector<std::string> errors;
      for (const FieldError& error : invalid.errors) {
        errors.push_back(absl::StrCat(error.path, ": ", error.message));
      }
      std::string message = absl::StrCat(invalid.origin, ": ", absl::StrJoin(errors, "; "));
      if (next.erase(key) || managed_.count(key)) {
        SPDLOG_WARN("{}: invalid manifest, no writes until it is fixed: {}", key, message);
      }
      reconciler_.ReportInvalid(*invalid.key, 0, message);
    }
    for (const auto& [key, managed] : managed_) {
      if (!next.count(key)) {
        SPDLOG_INFO("{}: manifest removed or invalid; no longer managing {} (left as it is)", key,
                    managed.desired.target.ResourceName());
        cached_.erase(key);
        states_.erase(key);
        if (builds_ != nullptr) builds_->Forget(managed.desired.key);
      }
    }
    managed_ = std::move(next);
  }
  for (const std::string& key : enqueue) {
    queue_.Forget(key);
    queue_.Add(key);
  }
  return absl::OkStatus();
}

absl::Status Controller::Resync() {
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> regions;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [key, managed] : managed_) {
      regions[{managed.desired.target.project, managed.desired.target.region}].push_back(key);
    }
  }
  absl::Status result = absl::OkStatus();
  std::map<CloudRunServiceName, LiveService> live;
  for (const auto& [region, keys] : regions) {
    std::string token;
    int pages = 0;
    do {
      if (++pages > kMaxListPages) {
        result = absl::DataLossError(absl::StrCat("listing ", region.first, "/", region.second,
                                                  ": more than ", kMaxListPages, " pages"));
        SPDLOG_WARN("resync: {}", std::string(result.message()));
        break;
      }
      absl::StatusOr<LiveServicePage> page =
          cloud_run_->ListServices(region.first, region.second, token);
      if (!page.ok()) {
        SPDLOG_WARN("resync: listing {}/{}: {}", region.first, region.second,
                    std::string(page.status().message()));
        result = page.status();
        break;
      }
      for (LiveService& service : page->services) {
        CloudRunServiceName name = service.name;
        live[name] = std::move(service);
      }
      if (!page->next_page_token.empty() && page->next_page_token == token) {
        result = absl::DataLossError(absl::StrCat("listing ", region.first, "/", region.second,
                                                  ": the same page token came back"));
        SPDLOG_WARN("resync: {}", std::string(result.message()));
        break;
      }
      token = page->next_page_token;
    } while (!token.empty());
  }
  std::vector<std::string> enqueue;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [key, managed] : managed_) {
      auto stalled = stalled_.find(key);
      if (stalled != stalled_.end() && stalled->second == managed.fingerprint) continue;
      auto found = live.find(managed.desired.target);
      if (found != live.end()) cached_[key] = found->second;
      enqueue.push_back(key);
    }
  }
  for (const std::string& key : enqueue) queue_.Add(key);
  if (result.ok()) {
    absl::MutexLock lock(&mutex_);
    last_sync_ = clock_->Now();
  }
  return result;
}

bool Controller::ProcessNext() {
  std::optional<std::string> key = queue_.Get();
  if (!key) return false;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) {  // Stop() is waiting: start no new pass
      queue_.Done(*key);
      return false;
    }
  }
  std::optional<DesiredService> desired;
  std::optional<LiveService> cached;
  {
    absl::MutexLock lock(&mutex_);
    auto managed = managed_.find(*key);
    if (managed != managed_.end()) {
      auto stalled = stalled_.find(*key);
      if (stalled == stalled_.end() || stalled->second != managed->second.fingerprint) {
        desired = managed->second.desired;
      }
    }
    auto read = cached_.find(*key);
    if (read != cached_.end()) {
      cached = std::move(read->second);
      cached_.erase(read);
    }
    if (desired) in_flight_.insert(*key);
  }
  if (!desired) {
    queue_.Forget(*key);
    queue_.Done(*key);
    return true;
  }
  absl::Time start = clock_->Now();
  ReconcileOutcome outcome = reconciler_.Reconcile(*desired, std::move(cached));
  absl::Duration took = clock_->Now() - start;
  auto log_level = outcome.kind == ReconcileOutcome::Kind::kTransientError ||
                           outcome.kind == ReconcileOutcome::Kind::kStalled
                       ? spdlog::level::warn
                       : (outcome.writes > 0 ? spdlog::level::info : spdlog::level::debug);
  spdlog::log(log_level, "reconcile {} generation={} step={} result={} writes={} took={}ms: {}",
              *key, desired->generation, StepName(outcome.step), OutcomeName(outcome.kind),
              outcome.writes, absl::ToInt64Milliseconds(took), outcome.message);
  metrics_->ReconcileFinished(OutcomeName(outcome.kind), absl::ToDoubleSeconds(took));
  if (outcome.kind == ReconcileOutcome::Kind::kTransientError) metrics_->Retried();
  {
    absl::MutexLock lock(&mutex_);
    in_flight_.erase(*key);
    auto managed = managed_.find(*key);
    if (managed != managed_.end()) {
      ServiceState& state = states_[*key];
      // Drift counts once per change: a warn-mode service reports it on every pass.
      if (outcome.step == Step::kCorrectDrift && outcome.writes > 0) {
        metrics_->DriftDetected();
        metrics_->DriftCorrected();
      } else if (outcome.step == Step::kReportDrift && state.outcome.step != Step::kReportDrift) {
        metrics_->DriftDetected();
      }
      // Each rollback counts once per revision: one this process wrote, or one another process
      // wrote (`runway abort`) when first seen. A restart starts with the revisions it finds
      // rolled back already counted.
      const bool wrote_rollback = outcome.step == Step::kRollback && outcome.writes > 0;
      if (wrote_rollback || outcome.step == Step::kRolledBack) {
        const bool counted = state.rolled_back_revision == outcome.revision;
        if (!counted && (wrote_rollback || state.passes > 0)) {
          metrics_->RolledBack(outcome.rollback_reason);
        }
        state.rolled_back_revision = outcome.revision;
      }
      state.outcome = outcome;
      ++state.passes;
      state.writes += outcome.writes;
      if (outcome.kind == ReconcileOutcome::Kind::kStalled) {
        stalled_[*key] = managed->second.fingerprint;
      }
    }
  }
  switch (outcome.kind) {
    case ReconcileOutcome::Kind::kConverged:
    case ReconcileOutcome::Kind::kStalled:
      queue_.Forget(*key);
      // A candidate waiting for `runway promote` is looked at again (not only at resync).
      if (outcome.requeue_after > absl::ZeroDuration()) {
        queue_.AddAfter(*key, outcome.requeue_after);
      }
      break;
    case ReconcileOutcome::Kind::kProgressing:
      queue_.Forget(*key);
      queue_.AddAfter(*key, outcome.requeue_after);
      break;
    case ReconcileOutcome::Kind::kTransientError:
      queue_.AddRateLimited(*key);
      break;
  }
  queue_.Done(*key);
  return true;
}

void Controller::OpenGate() {
  absl::MutexLock lock(&gate_mutex_);
  gate_open_ = true;
}

void Controller::WorkerLoop() {
  {
    absl::MutexLock lock(&gate_mutex_);
    gate_mutex_.Await(absl::Condition(&gate_open_));
  }
  while (ProcessNext()) {
  }
}

void Controller::ResyncLoop() {
  uint64_t round = 0;
  bool first = options_.initial_resync;
  while (true) {
    absl::Duration wait = first ? absl::ZeroDuration() : Jitter(options_.resync, 0.1, ++round);
    first = false;
    {
      absl::MutexLock lock(&stop_mutex_);
      absl::Time until = absl::Now() + wait;
      while (!stop_requested_) {
        if (stop_signal_.WaitWithDeadline(&stop_mutex_, until)) break;
      }
      if (stop_requested_) return;
    }
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) return;
      resyncing_ = true;
    }
    (void)Refresh();
    (void)Resync();
    OpenGate();
    absl::MutexLock lock(&mutex_);
    resyncing_ = false;
    last_resync_round_ = clock_->Now();
  }
}

void Controller::Start() {
  {
    absl::MutexLock lock(&mutex_);
    last_resync_round_ = clock_->Now();
  }
  if (!options_.initial_resync) OpenGate();
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
  threads_.emplace_back([this] { ResyncLoop(); });
}

bool Controller::Stop(absl::Duration deadline) {
  {
    absl::MutexLock lock(&stop_mutex_);
    if (stop_requested_ && threads_.empty()) return true;
    stop_requested_ = true;
    stop_signal_.SignalAll();
  }
  OpenGate();
  queue_.ShutDown(/*drain=*/false);
  absl::Time until = absl::Now() + deadline;
  bool in_time = true;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    in_time = mutex_.AwaitWithDeadline(absl::Condition(this, &Controller::NoneInFlight), until);
  }
  for (std::thread& thread : threads_) {
    if (!thread.joinable()) continue;
    if (in_time) {
      thread.join();
    } else {
      thread.detach();
    }
  }
  threads_.clear();
  return in_time;
}

bool Controller::Settled() const {
  absl::MutexLock lock(&mutex_);
  if (!in_flight_.empty()) return false;
  for (const auto& [key, managed] : managed_) {
    auto state = states_.find(key);
    if (state == states_.end()) return false;
    ReconcileOutcome::Kind kind = state->second.outcome.kind;
    if (kind != ReconcileOutcome::Kind::kConverged && kind != ReconcileOutcome::Kind::kStalled) {
      return false;
    }
  }
  return queue_.Len() == 0;
}

std::map<std::string, Controller::ServiceState> Controller::States() const {
  absl::MutexLock lock(&mutex_);
  return states_;
}

size_t Controller::ManagedCount() const {
  absl::MutexLock lock(&mutex_);
  return managed_.size();
}

Controller::Gauges Controller::Observe() const {
  Gauges gauges;
  gauges.queue = queue_.Depth();
  absl::MutexLock lock(&mutex_);
  gauges.managed = static_cast<int64_t>(managed_.size());
  gauges.last_sync = last_sync_;
  for (const char* condition : {"Ready", "Reconciling", "Stalled"}) {
    gauges.services_by_condition[condition] = 0;
  }
  for (const auto& [key, managed] : managed_) {
    auto state = states_.find(key);
    if (state == states_.end()) continue;
    const ReconcileOutcome& outcome = state->second.outcome;
    switch (outcome.kind) {
      case ReconcileOutcome::Kind::kConverged:
        if (outcome.step == Step::kConverged) ++gauges.services_by_condition["Ready"];
        break;
      case ReconcileOutcome::Kind::kProgressing:
      case ReconcileOutcome::Kind::kTransientError:
        ++gauges.services_by_condition["Reconciling"];
        break;
      case ReconcileOutcome::Kind::kStalled:
        ++gauges.services_by_condition["Stalled"];
        break;
    }
    if (outcome.stable_percent >= 0) {
      gauges.traffic[key] = {outcome.stable_percent, outcome.candidate_percent};
    }
  }
  return gauges;
}

std::string Controller::NotReadyReason() const {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return "shutting down";
    if (!loaded_) return "the manifests have not been read yet";
  }
  absl::MutexLock lock(&gate_mutex_);
  if (!gate_open_) return "the first resync with Cloud Run has not finished";
  return "";
}

std::string Controller::NotHealthyReason() const {
  absl::MutexLock lock(&mutex_);
  if (stopping_) return "shutting down";
  const absl::Duration since = clock_->Now() - last_resync_round_;
  if (!resyncing_ && since > 3 * options_.resync + absl::Minutes(1)) {
    return absl::StrCat("the resync loop has not run for ", absl::FormatDuration(since));
  }
  return "";
}

}  // namespace runway
