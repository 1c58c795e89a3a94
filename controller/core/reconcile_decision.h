#pragma once

// The reconcile decision for one service: given the desired state and the live Cloud Run service,
// what (if anything) to write next. Pure: no I/O, no clock. The loop around it (Reconciler) reads,
// decides, writes at most one PATCH, and asks to be called again; it never waits on Cloud Run.
//
// The rollout is a small state machine whose state lives on the Cloud Run service itself, so a
// restarted controller resumes exactly where it stopped:
//   - template.revision: the revision name of the last template written. Runway names revisions
//     by a hash of the template (RevisionNameFor), so "is the desired template deployed?" is a
//     string comparison and a retried write cannot create a twin;
//   - annotation runway.dev/phase: "deploying" while a candidate is dark, "converged" after;
//   - annotation runway.dev/candidate: the revision being rolled out;
//   - annotation runway.dev/stable: the revisions that served before the rollout began.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "controller/core/desired_service.h"
#include "controller/interfaces/cloud_run_client.h"

namespace runway {

inline constexpr char kPhaseAnnotation[] = "runway.dev/phase";
inline constexpr char kCandidateAnnotation[] = "runway.dev/candidate";
inline constexpr char kStableAnnotation[] = "runway.dev/stable";
inline constexpr char kManagedByAnnotation[] = "runway.dev/managed-by";
// The desired split Runway last wrote: live traffic that differs from it was changed out of band
// (drift); a desired split that differs from it is a change of the manifest.
inline constexpr char kTrafficAnnotation[] = "runway.dev/traffic";
inline constexpr char kCandidateTag[] = "candidate";
// Progressive rollout state (docs/rollouts.md). All cleared when a rollout ends.
inline constexpr char kStepAnnotation[] = "runway.dev/step";  // canary step index being served
// Unix seconds of the last rollout progress (dark deploy, step applied): pauses and
// progressDeadline count from here.
inline constexpr char kProgressAnnotation[] = "runway.dev/progress-at";
// The split that served before the rollout began ("rev:percent:tag,..."): what a rollback
// restores.
inline constexpr char kStableTrafficAnnotation[] = "runway.dev/stable-traffic";
inline constexpr char kDecisionAnnotation[] = "runway.dev/decision";  // promote | abort
// After a rollback: the revision that must not be promoted again (it names the image and the
// template, so a changed manifest makes a new one), and why it was rolled back.
inline constexpr char kBlockedAnnotation[] = "runway.dev/blocked";
inline constexpr char kRollbackReasonAnnotation[] = "runway.dev/rollback-reason";

// `<service>-r<10 hex>`: a stable hash of the image and every template field. At most 61
// characters for a 49-character service id, inside Cloud Run's 63.
std::string RevisionNameFor(const DesiredService& desired);

// The desired split with `@new` resolved to `revision`.
std::vector<LiveTrafficTarget> ResolveTraffic(const std::vector<TrafficTarget>& traffic,
                                              const std::string& revision);

// Traffic as a comparable value: LATEST resolved through `revision` when set, zero-percent
// untagged targets dropped, sorted. Two splits serve the same way when these are equal.
std::vector<LiveTrafficTarget> NormalizeTraffic(const std::vector<LiveTrafficTarget>& traffic);
bool SameTraffic(const std::vector<LiveTrafficTarget>& a, const std::vector<LiveTrafficTarget>& b);
// "rev-a 30%, rev-b 70% (tag blue)" for plans, logs and status messages.
std::string DescribeTraffic(const std::vector<LiveTrafficTarget>& traffic);

enum class Step {
  kCreate,             // write: the service does not exist yet
  kDeployDark,         // write: new template, traffic unchanged, candidate tagged
  kWaitCloudRun,       // no write: Cloud Run is reconciling a previous write
  kWaitCandidate,      // no write: the candidate revision is not Ready yet
  kPromote,            // write: the desired split, candidate annotations cleared
  kApplyTraffic,       // write: the manifest's split changed (no new template)
  kCorrectDrift,       // write: traffic changed out of band, driftPolicy enforce
  kReportDrift,        // no write: driftPolicy warn
  kConverged,          // no write
  kSuspended,          // no write: spec.suspend
  kCandidateFailed,    // no write: the candidate revision failed; stalled until the spec changes
  kCloudRunFailed,     // no write: Cloud Run reports a failure for the desired state itself
  kAwaitingPromotion,  // no write: manual strategy, waiting for `runway promote` or `abort`
  kVerify,             // no write yet: the candidate's tag URL must be checked (a gate)
  kAnalyze,            // no write yet: the step's analysis query must run (a gate)
  kAwaitManual,        // write: verified; record that the candidate waits for a person
  kAdvance,            // write: the next canary step's split
  kPause,              // no write: the step's pause has not passed
  kAnalysisHold,       // no write: analysis inconclusive or erroring; asked again later
  kRollback,           // write: the stable split restored, the candidate blocked
  kRolledBack,         // no write: the desired revision was rolled back and is blocked
  kBuildImage,         // no write: spec.build; the image must be built first (plan shows this)
  kBuilding,           // no write: a build of spec.build is running (Reconciler, not Decide)
  kBuildFailed,        // no write: the build failed; stalled until spec.build changes
};

const char* StepName(Step step);

// What the gates found, for Decide: the Reconciler runs them when Decide asks (kVerify,
// kAnalyze) and decides again with the result.
struct GateResult {
  enum class Verdict {
    kPass,
    kFail,  // roll back
    kHold,  // inconclusive, or an error below the limit: stay, ask again after the interval
  };
  Verdict verdict = Verdict::kPass;
  std::string detail;  // what was checked and seen, e.g. "GET .../healthz answered 500"
};

struct RolloutInputs {
  absl::Time now = absl::UnixEpoch();  // pauses and deadlines; the epoch makes them never pass
  std::optional<GateResult> verify;
  std::optional<GateResult> analysis;
};

// The split a canary step serves: the candidate at `percent`, the stable split scaled into the
// rest (largest remainder, so it sums to 100).
std::vector<LiveTrafficTarget> CanarySplit(const std::vector<LiveTrafficTarget>& stable,
                                           const std::string& candidate, int percent);
std::string EncodeSplit(const std::vector<LiveTrafficTarget>& split);
std::vector<LiveTrafficTarget> DecodeSplit(const std::string& text);

struct Decision {
  Step step = Step::kConverged;
  std::optional<ServiceUpdate> update;             // set for the write steps
  std::string revision;                            // the desired revision name
  std::vector<LiveTrafficTarget> live_traffic;     // as served now (normalized)
  std::vector<LiveTrafficTarget> desired_traffic;  // where this service is going (normalized)
  std::string message;                             // one sentence for status and logs
  std::string rollback_reason;  // kRollback, kRolledBack: CamelCase (VerifyFailed, ...)
  absl::Duration requeue_after = absl::ZeroDuration();  // kPause, kAnalysisHold: look again then
};

Decision Decide(const DesiredService& desired, const std::optional<LiveService>& live,
                const RolloutInputs& inputs = {});

}  // namespace runway
