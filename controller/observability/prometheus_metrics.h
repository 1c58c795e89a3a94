#pragma once

// PrometheusMetrics: the Metrics interface as prometheus-cpp series (docs/metrics.md lists them
// all), the Google API call counters the API clients report through their observer, and gauges
// read from the controller at scrape time. Thread-safe: prometheus-cpp's families and metrics
// are, and the gauge source is called under a lock.

#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "controller/adapters/google_api_caller.h"
#include "controller/core/controller.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace runway {

class PrometheusMetrics : public Metrics {
 public:
  // `clock` (borrowed) turns the last sync time into runway_seconds_since_last_sync.
  PrometheusMetrics(const std::string& version, const Clock* clock);

  // Metrics
  void BuildFinished(const std::string& builder, const std::string& result,
                     double seconds) override;
  void BuildFailed(const std::string& builder, const std::string& reason) override;
  void ConnectFailed(const std::string& target, const std::string& reason) override;
  void ReconcileFinished(const std::string& result, double seconds) override;
  void QueueWaited(double seconds) override;
  void Retried() override;
  void DriftDetected() override;
  void DriftCorrected() override;
  void RolledBack(const std::string& reason) override;

  // One attempt of a Google API call; `api` is kTargetCloudRun or kTargetCloudBuild. A failed
  // connection is also a connect failure.
  void ApiCallMade(const std::string& api, const ApiCall& call);

  // Where the scrape-time gauges come from (the controller, once it exists). May be reset to
  // an empty function before the source goes away.
  void SetGaugeSource(std::function<Controller::Gauges()> source);

  // The text exposition format (0.0.4) of every series.
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  const Clock* clock_;
  prometheus::Family<prometheus::Counter>& builds_;
  prometheus::Family<prometheus::Counter>& build_failures_;
  prometheus::Family<prometheus::Histogram>& build_duration_;
  prometheus::Family<prometheus::Counter>& connect_failures_;
  prometheus::Family<prometheus::Counter>& api_requests_;
  prometheus::Family<prometheus::Histogram>& api_duration_;
  prometheus::Family<prometheus::Counter>& reconciles_;
  prometheus::Histogram& reconcile_duration_;
  prometheus::Histogram& queue_duration_;
  prometheus::Counter& retries_;
  prometheus::Counter& drift_detected_;
  prometheus::Counter& drift_corrected_;
  prometheus::Family<prometheus::Counter>& rollbacks_;

  mutable absl::Mutex source_mutex_;
  std::function<Controller::Gauges()> source_ ABSL_GUARDED_BY(source_mutex_);
};

}  // namespace runway
