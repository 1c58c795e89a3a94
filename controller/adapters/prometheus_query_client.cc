#include "controller/adapters/prometheus_query_client.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace runway {
namespace {

using Json = nlohmann::json;

std::string QueryEscape(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// A sample value: ["<unix time>", "<value>"]; "NaN" and "+Inf" parse too.
std::optional<double> SampleValue(const Json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string()) return std::nullopt;
  double value = 0;
  if (!absl::SimpleAtod(pair[1].get<std::string>(), &value)) return std::nullopt;
  return value;
}

}  // namespace

PrometheusQueryClient::PrometheusQueryClient(HttpTransport* transport, Metrics* metrics,
                                             absl::Duration timeout)
    : transport_(transport), metrics_(metrics), timeout_(timeout) {}

absl::StatusOr<std::optional<double>> PrometheusQueryClient::Query(const std::string& address,
                                                                   const std::string& promql) {
  HttpRequest request;
  request.method = "GET";
  request.url =
      absl::StrCat(absl::StripSuffix(address, "/"), "/api/v1/query?query=", QueryEscape(promql));
  request.timeout = timeout_;
  absl::StatusOr<HttpResponse> response = transport_->Send(request);
  if (!response.ok()) {
    if (metrics_ != nullptr) {
      const std::string message(response.status().message());
      metrics_->ConnectFailed(kTargetPrometheus,
                              response.status().code() == absl::StatusCode::kDeadlineExceeded
                                  ? "timeout"
                                  : (absl::StrContains(message, "refused") ? "refused" : "other"));
    }
    return response.status();
  }
  Json body = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return absl::UnavailableError(absl::StrCat(address, " answered ", response->status,
                                               " with something that is not the Prometheus API"));
  }
  if (body.value("status", "") != "success") {
    return absl::InvalidArgumentError(
        absl::StrCat("Prometheus refused the query (", response->status,
                     "): ", body.value("errorType", ""), " ", body.value("error", "")));
  }
  const Json& data = body["data"];
  const std::string type = data.is_object() ? data.value("resultType", "") : "";
  if (type == "scalar") return SampleValue(data["result"]);
  if (type == "vector") {
    const Json& result = data["result"];
    if (!result.is_array() || result.empty()) return std::optional<double>();
    std::optional<double> value = SampleValue(result[0].value("value", Json()));
    if (!value || std::isnan(*value)) return std::optional<double>();  // NaN: no data
    return value;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the query returned a ", type.empty() ? "malformed" : type,
      " result; analysis needs an instant vector or a scalar (wrap it in an aggregation)"));
}

}  // namespace runway
