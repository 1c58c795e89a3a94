#pragma once

// HttpTransport: one HTTP exchange, the seam between API clients (Cloud Run, Cloud Build,
// Prometheus, Kubernetes) and an HTTP library (cpprestsdk in adapters). An HTTP error status is
// a response, not an error: clients decide what a 404 or a 429 means. Thread-safe.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace runway {

struct HttpRequest {
  std::string method;  // GET, POST, PATCH, PUT, DELETE
  std::string url;     // absolute: scheme, host, path and query
  std::map<std::string, std::string> headers;
  std::string body;
  absl::Duration timeout = absl::Seconds(30);  // whole exchange, connect included
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Sends `request` and waits for the whole response. Errors: kUnavailable when the connection is
  // refused or reset (the message says which), kDeadlineExceeded when `timeout` passes,
  // kInvalidArgument for a malformed URL. Never throws.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
};

}  // namespace runway
