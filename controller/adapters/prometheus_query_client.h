#pragma once

// PrometheusQueryClient: MetricsQuery over the Prometheus HTTP API (`GET /api/v1/query`), through
// an HttpTransport. A refused or timed-out connection is counted as
// runway_connect_failures_total{target="prometheus"}. Thread-safe.

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "controller/interfaces/http_transport.h"
#include "controller/interfaces/metrics.h"
#include "controller/interfaces/metrics_query.h"

namespace runway {

class PrometheusQueryClient : public MetricsQuery {
 public:
  // `metrics` may be null.
  PrometheusQueryClient(HttpTransport* transport, Metrics* metrics,
                        absl::Duration timeout = absl::Seconds(10));

  absl::StatusOr<std::optional<double>> Query(const std::string& address,
                                              const std::string& promql) override;

 private:
  HttpTransport* transport_;
  Metrics* metrics_;
  absl::Duration timeout_;
};

}  // namespace runway
