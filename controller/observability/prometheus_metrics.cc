#include "controller/observability/prometheus_metrics.h"

#include <cstdlib>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace runway {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Builds take minutes; passes and API calls milliseconds to seconds.
const prometheus::Histogram::BucketBoundaries& BuildBuckets() {
  static const auto* buckets =
      new prometheus::Histogram::BucketBoundaries{5, 15, 30, 60, 120, 300, 600, 1200, 3600};
  return *buckets;
}
const prometheus::Histogram::BucketBoundaries& FastBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

prometheus::Family<prometheus::Counter>& Counter(prometheus::Registry& registry,
                                                 const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Histogram>& Histogram(prometheus::Registry& registry,
                                                     const std::string& name,
                                                     const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

MetricFamily GaugeFamily(const std::string& name, const std::string& help) {
  MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = MetricType::Gauge;
  return family;
}

void AddGauge(MetricFamily& family, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

// The families with labels: they have no series until something happens.
struct Declared {
  const char* name;
  const char* type;
  const char* help;
};
constexpr Declared kLabelledFamilies[] = {
    {"runway_builds_total", "counter",
     "Image builds that finished, by builder (cloudBuild, local) and result"},
    {"runway_build_failures_total", "counter", "Image builds that failed, by builder and reason"},
    {"runway_build_duration_seconds", "histogram",
     "Time from a build's start to its end, by builder"},
    {"runway_connect_failures_total", "counter",
     "Failed connections, by target (docker, podman, cloudrun, cloudbuild, registry, kubernetes, "
     "prometheus, git) and reason"},
    {"runway_api_requests_total", "counter",
     "Google API request attempts, by api, method and code"},
    {"runway_api_request_duration_seconds", "histogram",
     "Google API request attempt latency, by api and method"},
    {"runway_reconcile_total", "counter",
     "Reconcile passes, by result (converged, progressing, error, stalled)"},
    {"runway_rollbacks_total", "counter", "Automatic rollbacks, by reason"},
};

const Declared& Find(const std::string& name) {
  for (const Declared& declared : kLabelledFamilies) {
    if (name == declared.name) return declared;
  }
  std::abort();  // a programming error: every labelled family is in the table
}

prometheus::Family<prometheus::Counter>& Counter(prometheus::Registry& registry,
                                                 const std::string& name) {
  return Counter(registry, name, Find(name).help);
}

prometheus::Family<prometheus::Histogram>& Histogram(prometheus::Registry& registry,
                                                     const std::string& name) {
  return Histogram(registry, name, Find(name).help);
}

}  // namespace

PrometheusMetrics::PrometheusMetrics(const std::string& version, const Clock* clock)
    : registry_(std::make_shared<prometheus::Registry>()),
      clock_(clock),
      builds_(Counter(*registry_, "runway_builds_total")),
      build_failures_(Counter(*registry_, "runway_build_failures_total")),
      build_duration_(Histogram(*registry_, "runway_build_duration_seconds")),
      connect_failures_(Counter(*registry_, "runway_connect_failures_total")),
      api_requests_(Counter(*registry_, "runway_api_requests_total")),
      api_duration_(Histogram(*registry_, "runway_api_request_duration_seconds")),
      reconciles_(Counter(*registry_, "runway_reconcile_total")),
      reconcile_duration_(
          Histogram(*registry_, "runway_reconcile_duration_seconds", "Time of one reconcile pass")
              .Add({}, FastBuckets())),
      queue_duration_(Histogram(*registry_, "runway_workqueue_queue_duration_seconds",
                                "Time a ready key waited in the work queue for a worker")
                          .Add({}, FastBuckets())),
      retries_(Counter(*registry_, "runway_workqueue_retries_total",
                       "Keys put back in the work queue with backoff after an error")
                   .Add({})),
      drift_detected_(Counter(*registry_, "runway_drift_detected_total",
                              "Live traffic found changed out of band, once per change")
                          .Add({})),
      drift_corrected_(Counter(*registry_, "runway_drift_corrected_total",
                               "Out-of-band traffic changes restored (driftPolicy enforce)")
                           .Add({})),
      rollbacks_(Counter(*registry_, "runway_rollbacks_total")) {
  prometheus::BuildGauge()
      .Name("runway_build_info")
      .Help("Always 1; the version of Runway running")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
}

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

void PrometheusMetrics::ReconcileFinished(const std::string& result, double seconds) {
  reconciles_.Add({{"result", result}}).Increment();
  reconcile_duration_.Observe(seconds);
}

void PrometheusMetrics::QueueWaited(double seconds) { queue_duration_.Observe(seconds); }
void PrometheusMetrics::Retried() { retries_.Increment(); }
void PrometheusMetrics::DriftDetected() { drift_detected_.Increment(); }
void PrometheusMetrics::DriftCorrected() { drift_corrected_.Increment(); }

void PrometheusMetrics::RolledBack(const std::string& reason) {
  rollbacks_.Add({{"reason", reason}}).Increment();
}

void PrometheusMetrics::ApiCallMade(const std::string& api, const ApiCall& call) {
  const std::string code =
      call.http_status != 0 ? absl::StrCat(call.http_status) : absl::StatusCodeToString(call.code);
  api_requests_.Add({{"api", api}, {"method", call.method}, {"code", code}}).Increment();
  api_duration_.Add({{"api", api}, {"method", call.method}}, FastBuckets())
      .Observe(absl::ToDoubleSeconds(call.duration));
  if (!call.connect_failure.empty()) ConnectFailed(api, call.connect_failure);
}

void PrometheusMetrics::SetGaugeSource(std::function<Controller::Gauges()> source) {
  absl::MutexLock lock(&source_mutex_);
  source_ = std::move(source);
}

std::string PrometheusMetrics::Serialize() const {
  std::vector<MetricFamily> families = registry_->Collect();
  Controller::Gauges gauges;
  {
    absl::MutexLock lock(&source_mutex_);
    if (source_) gauges = source_();
  }
  MetricFamily depth = GaugeFamily("runway_workqueue_depth", "Keys in the work queue, by state");
  AddGauge(depth, {{"state", "ready"}}, static_cast<double>(gauges.queue.ready));
  AddGauge(depth, {{"state", "delayed"}}, static_cast<double>(gauges.queue.delayed));
  AddGauge(depth, {{"state", "processing"}}, static_cast<double>(gauges.queue.processing));
  MetricFamily managed = GaugeFamily("runway_managed_services", "Services Runway manages");
  AddGauge(managed, {}, static_cast<double>(gauges.managed));
  MetricFamily services =
      GaugeFamily("runway_services", "Managed services whose condition is True, by condition");
  for (const char* condition : {"Ready", "Reconciling", "Stalled"}) {
    auto it = gauges.services_by_condition.find(condition);
    AddGauge(services, {{"condition", condition}},
             it == gauges.services_by_condition.end() ? 0.0 : static_cast<double>(it->second));
  }
  MetricFamily traffic = GaugeFamily(
      "runway_service_traffic_percent",
      "Percent of a service's traffic on its stable revisions and on its candidate, by service");
  for (const auto& [service, split] : gauges.traffic) {
    AddGauge(traffic, {{"role", "candidate"}, {"service", service}}, split.candidate);
    AddGauge(traffic, {{"role", "stable"}, {"service", service}}, split.stable);
  }
  MetricFamily last = GaugeFamily(
      "runway_last_sync_timestamp_seconds",
      "Unix time of the last resync that listed every region without error (0: none yet)");
  MetricFamily since = GaugeFamily("runway_seconds_since_last_sync",
                                   "Seconds since the last clean resync (-1: none yet)");
  if (gauges.last_sync) {
    AddGauge(last, {}, static_cast<double>(absl::ToUnixMillis(*gauges.last_sync)) / 1000.0);
    AddGauge(since, {}, absl::ToDoubleSeconds(clock_->Now() - *gauges.last_sync));
  } else {
    AddGauge(last, {}, 0);
    AddGauge(since, {}, -1);
  }
  for (MetricFamily* family : {&depth, &managed, &services, &traffic, &last, &since}) {
    families.push_back(std::move(*family));
  }
  // prometheus-cpp leaves out a family with no series yet (no build has failed, say). Its
  // HELP and TYPE are still written, so every documented name is visible from the first scrape.
  std::set<std::string> present;
  for (const MetricFamily& family : families) present.insert(family.name);
  std::string empty;
  for (const Declared& declared : kLabelledFamilies) {
    if (present.count(declared.name)) continue;
    absl::StrAppend(&empty, "# HELP ", declared.name, " ", declared.help, "\n# TYPE ",
                    declared.name, " ", declared.type, "\n");
  }
  return prometheus::TextSerializer().Serialize(families) + empty;
}

}  // namespace runway
