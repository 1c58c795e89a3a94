#pragma once

// PrometheusMetrics: the Metrics interface as prometheus-cpp series (docs/metrics.md lists them),
// plus the Google API call counters the API clients report through their observer. Thread-safe:
// prometheus-cpp's families and metrics are.

#include <memory>
#include <string>

#include "controller/adapters/google_api_caller.h"
#include "controller/interfaces/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace runway {

class PrometheusMetrics : public Metrics {
 public:
  PrometheusMetrics();

  // Metrics
  void BuildFinished(const std::string& builder, const std::string& result,
                     double seconds) override;
  void BuildFailed(const std::string& builder, const std::string& reason) override;
  void ConnectFailed(const std::string& target, const std::string& reason) override;

  // One attempt of a Google API call; `target` is kTargetCloudRun or kTargetCloudBuild. A failed
  // connection is also a connect failure.
  void ApiCallMade(const std::string& target, const ApiCall& call);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The text exposition format of everything registered (for tests and `runway doctor`).
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& builds_;
  prometheus::Family<prometheus::Counter>& build_failures_;
  prometheus::Family<prometheus::Histogram>& build_duration_;
  prometheus::Family<prometheus::Counter>& connect_failures_;
  prometheus::Family<prometheus::Counter>& api_requests_;
  prometheus::Family<prometheus::Histogram>& api_duration_;
};

}  // namespace runway
