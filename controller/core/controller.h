#pragma once

// The controller loop (design.md §5): a manifest source, a work queue of service keys, workers
// that run one Reconciler pass per key, and a resync that lists each project and region once and
// hands every worker a fresh read, so a steady state costs one list call per region and page and
// no write. Level-based: every pass decides from desired and live state, never from events.
//
// Threads: Start() runs `workers` worker threads; Refresh() and Resync() may be called from any
// thread (the directory watcher, the resync timer). Stop() drains in-flight work within a
// deadline.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/core/reconciler.h"
#include "controller/core/work_queue.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/cloud_run_client.h"
#include "controller/interfaces/manifest_source.h"
#include "controller/interfaces/metrics.h"
#include "controller/interfaces/status_reporter.h"

namespace runway {

class Controller {
 public:
  struct Options {
    int workers = 4;
    absl::Duration resync = absl::Minutes(5);
    // Start() lists Cloud Run at once on the resync thread (so the caller stays free to handle
    // signals), instead of waiting a first resync period.
    bool initial_resync = false;
    Reconciler::Options reconciler;
    WorkQueueOptions queue;
  };

  // What the last pass of one service ended with, for `apply` and tests.
  struct ServiceState {
    ReconcileOutcome outcome;
    int64_t passes = 0;
    int64_t writes = 0;
    std::string rolled_back_revision;  // the last rollback counted in runway_rollbacks_total
  };

  // Point-in-time values for gauges (runway_workqueue_depth, runway_services, ...), read at
  // scrape time.
  struct Gauges {
    WorkQueueDepth queue;
    int64_t managed = 0;
    std::map<std::string, int64_t> services_by_condition;  // Ready, Reconciling, Stalled: True
    struct Traffic {
      int stable = 0;
      int candidate = 0;
    };
    std::map<std::string, Traffic> traffic;  // by service key, for services with a live read
    std::optional<absl::Time> last_sync;     // the last resync that listed every region cleanly
  };

  // `builds` may be null: services with spec.build then stall at BuildImage. `metrics` may be
  // null.
  Controller(Options options, ManifestSource* source, CloudRunClient* cloud_run,
             StatusReporter* status, const Clock* clock, ImageBuilds* builds = nullptr,
             Metrics* metrics = nullptr);
  ~Controller();

  // Reads the manifest source; enqueues services that are new or changed; stops managing services
  // whose manifest is gone (their Cloud Run service is left as it is); reports invalid manifests
  // as Stalled. kUnavailable when the source cannot be read (the previous desired state stays).
  absl::Status Refresh();
  // Lists every project and region that desired services live in (all pages), keeps each read for
  // its worker, and enqueues every managed service.
  absl::Status Resync();

  // Starts the worker threads and the resync timer (a jittered `resync`).
  void Start();
  // Stops taking work, lets in-flight passes finish until `deadline`, joins the threads. Returns
  // false when the deadline passed with work still running (the threads are then detached).
  bool Stop(absl::Duration deadline);

  // Runs one queued pass on the calling thread; false once the queue is shut down.
  bool ProcessNext();

  // True when every managed service's last pass ended converged or stalled (nothing in flight).
  bool Settled() const;
  std::map<std::string, ServiceState> States() const;
  size_t ManagedCount() const;
  Gauges Observe() const;

  // /readyz: the manifests were read and the first resync finished. Empty when ready, else why
  // not.
  std::string NotReadyReason() const;
  // /healthz: empty while the loop is alive, else why not (stopping, or the resync loop has not
  // come round for three periods).
  std::string NotHealthyReason() const;

 private:
  struct Managed {
    DesiredService desired;
    std::string fingerprint;
  };

  bool NoneInFlight() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return in_flight_.empty() && !resyncing_;
  }
  static constexpr int kMaxListPages = 1000;  // 500 services a page: far above Cloud Run's quota
  void WorkerLoop();
  void ResyncLoop();
  static std::string Fingerprint(const DesiredService& desired);

  Options options_;
  ManifestSource* source_;
  CloudRunClient* cloud_run_;
  const Clock* clock_;
  ImageBuilds* builds_;
  Metrics* metrics_;
  Reconciler reconciler_;
  WorkQueue queue_;

  // Serialises whole refreshes (snapshot included): two refreshes racing (the resync thread and a
  // directory watcher) could otherwise apply an older snapshot after a newer one.
  absl::Mutex refresh_mutex_;
  mutable absl::Mutex mutex_;
  std::map<std::string, Managed> managed_ ABSL_GUARDED_BY(mutex_);
  std::string applied_version_ ABSL_GUARDED_BY(mutex_);  // ManifestSnapshot::version last applied
  // Reads from the last resync, each used once by the next pass of its service.
  std::map<std::string, LiveService> cached_ ABSL_GUARDED_BY(mutex_);
  // Fingerprint a stalled service stalled at: not retried until the manifest changes.
  std::map<std::string, std::string> stalled_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, ServiceState> states_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mutex_);
  bool resyncing_ ABSL_GUARDED_BY(mutex_) = false;  // the resync thread is listing Cloud Run
  bool loaded_ ABSL_GUARDED_BY(mutex_) = false;     // a Refresh() read the manifests
  std::optional<absl::Time> last_sync_ ABSL_GUARDED_BY(mutex_);
  absl::Time last_resync_round_ ABSL_GUARDED_BY(mutex_);  // the resync loop's last iteration
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;

  // Workers wait for the first resync, so a cold start reads Cloud Run with list calls rather
  // than one GET per service.
  void OpenGate();
  mutable absl::Mutex gate_mutex_;
  bool gate_open_ ABSL_GUARDED_BY(gate_mutex_) = false;
  std::vector<std::thread> threads_;
  absl::Mutex stop_mutex_;
  absl::CondVar stop_signal_;
  bool stop_requested_ ABSL_GUARDED_BY(stop_mutex_) = false;
};

}  // namespace runway
