// PrometheusMetrics and HttpEndpoint: every documented series is exported with the documented type
// (and nothing undocumented), values move as the core reports, and the endpoint serves them over
// a real loopback socket.

#include "controller/observability/prometheus_metrics.h"

#include <curl/curl.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "controller/adapters/http_endpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

// name -> type from the table in docs/metrics.md.
std::map<std::string, std::string> DocumentedMetrics() {
  std::ifstream doc(std::string(RUNWAY_SOURCE_DIR) + "/docs/metrics.md");
  std::map<std::string, std::string> out;
  std::regex row(R"(^\| `(runway_[a-z_]+)` \| (counter|gauge|histogram) \|)");
  std::string line;
  while (std::getline(doc, line)) {
    std::smatch match;
    if (std::regex_search(line, match, row)) out[match[1]] = match[2];
  }
  return out;
}

// name -> type from "# TYPE" lines.
std::map<std::string, std::string> ExportedMetrics(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::istringstream words(line.substr(7));
    std::string name, type;
    words >> name >> type;
    out[name] = type;
  }
  return out;
}

double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -12345;
}

TEST(PrometheusMetricsTest, ExportsExactlyTheDocumentedSeries) {
  FakeClock clock;
  PrometheusMetrics metrics("1.2.3", &clock);
  std::map<std::string, std::string> documented = DocumentedMetrics();
  ASSERT_GE(documented.size(), 20u) << "docs/metrics.md's table did not parse";
  EXPECT_EQ(ExportedMetrics(metrics.Serialize()), documented)
      << "docs/metrics.md and the exporter disagree (names or types)";
}

TEST(PrometheusMetricsTest, CountsWhatTheCoreReports) {
  FakeClock clock;
  PrometheusMetrics metrics("1.2.3", &clock);
  metrics.BuildFinished("cloudBuild", "failure", 42);
  metrics.BuildFailed("cloudBuild", "Timeout");
  metrics.ConnectFailed("podman", "refused");
  metrics.ConnectFailed("podman", "refused");
  metrics.ReconcileFinished("converged", 0.01);
  metrics.ReconcileFinished("error", 0.02);
  metrics.Retried();
  metrics.DriftDetected();
  metrics.DriftCorrected();
  metrics.RolledBack("VerifyFailed");
  ApiCall refused;
  refused.method = "services.list";
  refused.code = absl::StatusCode::kUnavailable;
  refused.connect_failure = "refused";
  metrics.ApiCallMade("cloudrun", refused);
  Controller::Gauges gauges;
  gauges.managed = 3;
  gauges.services_by_condition["Stalled"] = 1;
  gauges.traffic["team/api"] = {90, 10};
  gauges.queue.ready = 2;
  gauges.last_sync = clock.Now();
  metrics.SetGaugeSource([gauges] { return gauges; });
  clock.Advance(absl::Seconds(30));
  const std::string text = metrics.Serialize();
  EXPECT_EQ(Sample(text, R"(runway_build_info{version="1.2.3"})"), 1);
  EXPECT_EQ(Sample(text, R"(runway_builds_total{builder="cloudBuild",result="failure"})"), 1);
  EXPECT_EQ(Sample(text, R"(runway_build_failures_total{builder="cloudBuild",reason="Timeout"})"),
            1);
  EXPECT_EQ(Sample(text, R"(runway_connect_failures_total{reason="refused",target="podman"})"), 2);
  EXPECT_EQ(Sample(text, R"(runway_connect_failures_total{reason="refused",target="cloudrun"})"), 1)
      << "a refused API call is a connect failure too";
  EXPECT_EQ(
      Sample(
          text,
          R"(runway_api_requests_total{api="cloudrun",code="UNAVAILABLE",method="services.list"})"),
      1);
  EXPECT_EQ(Sample(text, R"(runway_reconcile_total{result="error"})"), 1);
  EXPECT_EQ(Sample(text, "runway_workqueue_retries_total"), 1);
  EXPECT_EQ(Sample(text, "runway_drift_detected_total"), 1);
  EXPECT_EQ(Sample(text, "runway_drift_corrected_total"), 1);
  EXPECT_EQ(Sample(text, R"(runway_rollbacks_total{reason="VerifyFailed"})"), 1);
  EXPECT_EQ(Sample(text, "runway_managed_services"), 3);
  EXPECT_EQ(Sample(text, R"(runway_services{condition="Stalled"})"), 1);
  EXPECT_EQ(Sample(text, R"(runway_services{condition="Ready"})"), 0);
  EXPECT_EQ(Sample(text, R"(runway_service_traffic_percent{role="candidate",service="team/api"})"),
            10);
  EXPECT_EQ(Sample(text, R"(runway_workqueue_depth{state="ready"})"), 2);
  EXPECT_EQ(Sample(text, "runway_seconds_since_last_sync"), 30);
  metrics.SetGaugeSource(nullptr);
  EXPECT_EQ(Sample(metrics.Serialize(), "runway_seconds_since_last_sync"), -1);
}

size_t Collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// GET http://127.0.0.1:port/path; returns "<status> <body>".
std::string Get(int port, const std::string& path) {
  CURL* curl = curl_easy_init();
  std::string body;
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK) return std::string("error ") + curl_easy_strerror(code);
  return std::to_string(status) + " " + body;
}

TEST(HttpEndpointTest, ServesPathsOnAnyFreePortAndStops) {
  HttpEndpoint endpoint([](const std::string& path) {
    HttpEndpointResponse response;
    if (path == "/metrics") {
      response.body = "runway_up 1\n";
    } else {
      response.status = 404;
      response.body = "not found";
    }
    return response;
  });
  ASSERT_TRUE(endpoint.Start("127.0.0.1:0").ok());
  ASSERT_GT(endpoint.port(), 0);
  EXPECT_EQ(Get(endpoint.port(), "/metrics?x=1"), "200 runway_up 1\n");
  EXPECT_EQ(Get(endpoint.port(), "/other"), "404 not found");
  const int port = endpoint.port();
  endpoint.Stop();
  EXPECT_THAT(Get(port, "/metrics"), HasSubstr("error")) << "nothing listens after Stop()";
}

TEST(HttpEndpointTest, RefusesBadAddressesAndBusyPortsWithTheReason) {
  HttpEndpoint first([](const std::string&) { return HttpEndpointResponse{}; });
  ASSERT_TRUE(first.Start("127.0.0.1:0").ok());
  HttpEndpoint second([](const std::string&) { return HttpEndpointResponse{}; });
  absl::Status busy = second.Start("127.0.0.1:" + std::to_string(first.port()));
  EXPECT_EQ(busy.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(busy.message()), HasSubstr("in use"));
  HttpEndpoint third([](const std::string&) { return HttpEndpointResponse{}; });
  absl::Status bad = third.Start("metrics-host");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("HOST:PORT"));
}

}  // namespace
}  // namespace runway
