// PrometheusQueryClient over a scripted transport: vectors, scalars, no data, refused queries and
// unreachable servers (counted as connect failures).

#include "controller/adapters/prometheus_query_client.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

class ScriptedTransport : public HttpTransport {
 public:
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    last_url = request.url;
    return next;
  }
  absl::StatusOr<HttpResponse> next;
  std::string last_url;
};

class CountingMetrics : public NoMetrics {
 public:
  void ConnectFailed(const std::string& target, const std::string& reason) override {
    last = target + "/" + reason;
  }
  std::string last;
};

HttpResponse Answer(int status, const std::string& body) {
  HttpResponse response;
  response.status = status;
  response.body = body;
  return response;
}

TEST(PrometheusQueryClientTest, ReadsVectorsScalarsAndNoData) {
  ScriptedTransport transport;
  PrometheusQueryClient client(&transport, nullptr);
  transport.next = Answer(200, R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{},"value":[1700000000.1,"0.25"]}]}})");
  absl::StatusOr<std::optional<double>> value =
      client.Query("http://127.0.0.1:9090/", R"(max(x{revision="a b"}))");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->value_or(-1), 0.25);
  EXPECT_EQ(transport.last_url,
            "http://127.0.0.1:9090/api/v1/query?query=max%28x%7Brevision%3D%22a%20b%22%7D%29");
  transport.next = Answer(200, R"({"status":"success","data":{"resultType":"scalar",
      "result":[1700000000,"3"]}})");
  EXPECT_EQ(client.Query("http://p", "1+2")->value_or(-1), 3);
  transport.next =
      Answer(200, R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  value = client.Query("http://p", "absent_metric");
  ASSERT_TRUE(value.ok());
  EXPECT_FALSE(value->has_value()) << "no data is inconclusive, not zero";
  transport.next = Answer(200, R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{},"value":[1,"NaN"]}]}})");
  EXPECT_FALSE(client.Query("http://p", "0/0")->has_value());
}

TEST(PrometheusQueryClientTest, ExplainsRefusedQueriesAndCountsUnreachableServers) {
  ScriptedTransport transport;
  CountingMetrics metrics;
  PrometheusQueryClient client(&transport, &metrics);
  transport.next = Answer(400, R"({"status":"error","errorType":"bad_data",
      "error":"parse error at char 4"})");
  absl::StatusOr<std::optional<double>> bad = client.Query("http://p", "sum(");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("parse error"));
  transport.next =
      Answer(200, R"({"status":"success","data":{"resultType":"matrix","result":[]}})");
  EXPECT_THAT(std::string(client.Query("http://p", "x[5m]").status().message()),
              HasSubstr("instant vector or a scalar"));
  transport.next = absl::UnavailableError("connection refused to 127.0.0.1:9");
  EXPECT_EQ(client.Query("http://127.0.0.1:9", "up").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(metrics.last, "prometheus/refused");
  transport.next = Answer(200, "<html>proxy</html>");
  EXPECT_EQ(client.Query("http://p", "up").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace runway
