#pragma once

// MetricsQuery: one instant PromQL query against a Prometheus-compatible HTTP API, for rollout
// analysis. Thread-safe.

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace runway {

class MetricsQuery {
 public:
  virtual ~MetricsQuery() = default;
  // The value of `promql` at `address` now: the first sample of a vector or a scalar; nullopt
  // when the result is empty (no data). An error when Prometheus cannot be reached, refuses the
  // query (the message says why) or answers something else.
  virtual absl::StatusOr<std::optional<double>> Query(const std::string& address,
                                                      const std::string& promql) = 0;
};

}  // namespace runway
