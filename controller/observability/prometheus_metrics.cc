#include "controller/observability/prometheus_metrics.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace runway {
namespace {

// Builds take minutes; API calls milliseconds to seconds.
const prometheus::Histogram::BucketBoundaries& BuildBuckets() {
  static const auto* buckets =
      new prometheus::Histogram::BucketBoundaries{5, 15, 30, 60, 120, 300, 600, 1200, 3600};
  return *buckets;
}
const prometheus::Histogram::BucketBoundaries& ApiBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

}  // namespace

PrometheusMetrics::PrometheusMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      builds_(prometheus::BuildCounter()
                  .Name("runway_builds_total")
                  .Help("Image builds that finished, by builder (cloudBuild, local) and result")
                  .Register(*registry_)),
      build_failures_(prometheus::BuildCounter()
                          .Name("runway_build_failures_total")
                          .Help("Image builds that failed, by builder and reason")
                          .Register(*registry_)),
      build_duration_(prometheus::BuildHistogram()
                          .Name("runway_build_duration_seconds")
                          .Help("Time from a build's start to its end, by builder")
                          .Register(*registry_)),
      connect_failures_(prometheus::BuildCounter()
                            .Name("runway_connect_failures_total")
                            .Help("Failed connections, by target (docker, podman, cloudrun, "
                                  "cloudbuild, registry, kubernetes, prometheus, git) and reason")
                            .Register(*registry_)),
      api_requests_(prometheus::BuildCounter()
                        .Name("runway_api_requests_total")
                        .Help("Google API request attempts, by api, method and code")
                        .Register(*registry_)),
      api_duration_(prometheus::BuildHistogram()
                        .Name("runway_api_request_duration_seconds")
                        .Help("Google API request attempt latency, by api and method")
                        .Register(*registry_)) {}

void PrometheusMetrics::BuildFinished(const std::string& builder, const std::string& result,
                                      double seconds) {
  builds_.Add({{"builder", builder}, {"result", result}}).Increment();
  build_duration_.Add({{"builder", builder}}, BuildBuckets()).Observe(seconds);
}

void PrometheusMetrics::BuildFailed(const std::string& builder, const std::string& reason) {
  build_failures_.Add({{"builder", builder}, {"reason", reason}}).Increment();
}

void PrometheusMetrics::ConnectFailed(const std::string& target, const std::string& reason) {
  connect_failures_.Add({{"target", target}, {"reason", reason}}).Increment();
}

void PrometheusMetrics::ApiCallMade(const std::string& target, const ApiCall& call) {
  const std::string code =
      call.http_status != 0 ? absl::StrCat(call.http_status) : absl::StatusCodeToString(call.code);
  api_requests_.Add({{"api", target}, {"method", call.method}, {"code", code}}).Increment();
  api_duration_.Add({{"api", target}, {"method", call.method}}, ApiBuckets())
      .Observe(absl::ToDoubleSeconds(call.duration));
  if (!call.connect_failure.empty()) ConnectFailed(target, call.connect_failure);
}

std::string PrometheusMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace runway
