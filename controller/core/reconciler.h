#pragma once

// One reconcile pass for one service: read live state (or take a fresh cached read), decide
// (reconcile_decision.h), write at most one PATCH, publish status, and say when to come back.
// Never waits on Cloud Run: a write or a revision still starting means "call me again later".
// A 409 (stale etag: someone wrote in between) means re-read and decide again, a few times.

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/core/image_builds.h"
#include "controller/core/reconcile_decision.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/cloud_run_client.h"
#include "controller/interfaces/http_transport.h"
#include "controller/interfaces/metrics.h"
#include "controller/interfaces/metrics_query.h"
#include "controller/interfaces/status_reporter.h"

namespace runway {

struct ReconcileOutcome {
  enum class Kind {
    kConverged,       // nothing to do until the spec or Cloud Run changes (resync)
    kProgressing,     // come back after `requeue_after`
    kTransientError,  // back off and retry (5xx, 429, timeouts, refused connections)
    kStalled,         // do not retry until the manifest changes (invalid, permission, failed)
  };
  Kind kind = Kind::kConverged;
  Step step = Step::kConverged;
  absl::Duration requeue_after = absl::ZeroDuration();
  std::string message;
  int writes = 0;
  std::string revision;  // the desired revision name
  std::string reason;    // CamelCase reason of a stalled outcome (PermissionDenied, ...)
  std::optional<ImageResolution> build;  // for spec.build: how far the image is
  // Percent of live traffic on the candidate revision (runway.dev/candidate) and on the others;
  // -1 when there was no live read.
  int stable_percent = -1;
  int candidate_percent = -1;
  std::string rollback_reason;  // set when this pass rolled back, or found the revision blocked
};

const char* OutcomeName(ReconcileOutcome::Kind kind);

class Reconciler {
 public:
  struct Options {
    // How soon to look again after a write or while Cloud Run or a revision is still working.
    absl::Duration poll_interval = absl::Seconds(2);
    int max_conflict_retries = 3;
    // How soon a candidate waiting for `runway promote` is looked at again.
    absl::Duration manual_poll_interval = absl::Seconds(10);
    // Rollout gates (borrowed, may be null): verify GETs the candidate's tag URL through
    // `verify_http`; analysis queries Prometheus through `analysis`. Without them a configured
    // gate fails closed (the rollout is rolled back with the reason).
    HttpTransport* verify_http = nullptr;
    MetricsQuery* analysis = nullptr;
    Metrics* metrics = nullptr;  // rollbacks are counted here
  };

  // `status` may be null (plan mode). `builds` may be null: spec.build then stops at BuildImage.
  Reconciler(CloudRunClient* cloud_run, StatusReporter* status, const Clock* clock, Options options,
             ImageBuilds* builds = nullptr);

  // `cached` is a read from a recent services.list; it is used for the first decision only.
  ReconcileOutcome Reconcile(const DesiredService& desired,
                             std::optional<LiveService> cached = std::nullopt);

  // Publishes Stalled/InvalidSpec for a manifest that failed validation.
  void ReportInvalid(const ObjectKey& key, int64_t generation, const std::string& message);

 private:
  // Publishes the status and fills the outcome's traffic percents from `live`.
  void Report(const DesiredService& desired, ReconcileOutcome& outcome,
              const std::optional<LiveService>& live);

  GateResult Verify(const DesiredService& desired, const LiveService& live,
                    const std::string& revision);
  GateResult Analyze(const DesiredService& desired, const LiveService& live,
                     const std::string& revision);

  // Analysis failures and consecutive errors per service and step, in memory: a restart starts
  // counting again (docs/rollouts.md).
  struct AnalysisCounts {
    std::string step;  // "<revision>#<step>"
    int failures = 0;
    int errors = 0;
    std::optional<absl::Time> last_query;
  };
  absl::Mutex gate_mutex_;
  std::map<std::string, AnalysisCounts> analysis_counts_ ABSL_GUARDED_BY(gate_mutex_);
  // Failed verify attempts per "<key>#<revision>", spread over passes.
  std::map<std::string, int> verify_failures_ ABSL_GUARDED_BY(gate_mutex_);

  // Resolves spec.build: `built` is `desired` with the image once the build is ready; the
  // outcome (build set) says what to report while it is not.
  ReconcileOutcome EnsureImage(const DesiredService& desired, DesiredService& built);

  CloudRunClient* cloud_run_;
  StatusReporter* status_;
  ImageBuilds* builds_;
  // What was last published per service, so an unchanged resync pass publishes nothing (a
  // status write or even a read per service per resync adds up at 10,000 services).
  absl::Mutex published_mutex_;
  std::map<std::string, std::string> published_ ABSL_GUARDED_BY(published_mutex_);
  const Clock* clock_;
  Options options_;
};

// Errors that retrying cannot fix: the manifest (or the permissions) must change first.
bool IsPermanent(const absl::Status& status);

}  // namespace runway
