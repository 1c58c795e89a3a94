#pragma once

// Metrics: what the core and the adapters count, without knowing about Prometheus. The adapter in
// controller/observability/prometheus_metrics.h exports these as runway_* series
// (docs/metrics.md). Label values are small closed sets: never a digest, a revision name or an
// error message, so the series count stays bounded. Thread-safe.

#include <string>

namespace runway {

// Targets of runway_connect_failures_total.
inline constexpr char kTargetDocker[] = "docker";
inline constexpr char kTargetPodman[] = "podman";
inline constexpr char kTargetCloudRun[] = "cloudrun";
inline constexpr char kTargetCloudBuild[] = "cloudbuild";
inline constexpr char kTargetRegistry[] = "registry";
inline constexpr char kTargetKubernetes[] = "kubernetes";
inline constexpr char kTargetPrometheus[] = "prometheus";
inline constexpr char kTargetGit[] = "git";

class Metrics {
 public:
  virtual ~Metrics() = default;
  // A build finished; `builder` is "cloudBuild" or "local", `result` "success" or "failure".
  virtual void BuildFinished(const std::string& builder, const std::string& result,
                             double seconds) = 0;
  // A build failed; `reason` is CamelCase (BuildFailed, Timeout, InternalError, PushFailed, ...).
  virtual void BuildFailed(const std::string& builder, const std::string& reason) = 0;
  // A connection to `target` failed; `reason` is refused, timeout, socket-missing,
  // permission-denied, not-installed, bad-response, tls, dns or reset.
  virtual void ConnectFailed(const std::string& target, const std::string& reason) = 0;

  // One reconcile pass ended; `result` is converged, progressing, error or stalled.
  virtual void ReconcileFinished(const std::string& result, double seconds) = 0;
  // A ready key waited this long for a worker.
  virtual void QueueWaited(double seconds) = 0;
  // A key was put back with backoff after an error.
  virtual void Retried() = 0;
  // Live traffic was found changed out of band (once per change), or was restored.
  virtual void DriftDetected() = 0;
  virtual void DriftCorrected() = 0;
  // An automatic rollback happened; `reason` is CamelCase.
  virtual void RolledBack(const std::string& reason) = 0;
};

// Counts nothing: for plan mode and tests that do not look at metrics.
class NoMetrics : public Metrics {
 public:
  void BuildFinished(const std::string&, const std::string&, double) override {}
  void BuildFailed(const std::string&, const std::string&) override {}
  void ConnectFailed(const std::string&, const std::string&) override {}
  void ReconcileFinished(const std::string&, double) override {}
  void QueueWaited(double) override {}
  void Retried() override {}
  void DriftDetected() override {}
  void DriftCorrected() override {}
  void RolledBack(const std::string&) override {}
};

}  // namespace runway
