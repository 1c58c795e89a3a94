#pragma once

// HttpEndpoint: Runway's own small HTTP server for /metrics, /healthz, /readyz and
// /api/v1/services. GET and HEAD only, one request per connection (Connection: close), handled
// one at a time on one thread: the clients are a Prometheus scraper, probes and people, not
// traffic. A client that sends nothing within `read_timeout` is dropped, so one stuck client
// cannot hold the endpoint for long. Plain POSIX sockets; no HTTP library.

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace runway {

struct HttpEndpointResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpEndpoint {
 public:
  // Called with the request path (query string removed) for GET and HEAD.
  using Handler = std::function<HttpEndpointResponse(const std::string& path)>;

  explicit HttpEndpoint(Handler handler, absl::Duration read_timeout = absl::Seconds(5));
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Listens on "host:port" (port 0: any free port; host an IPv4 address or "localhost") and
  // starts serving. kInvalidArgument for a malformed address, kUnavailable when it cannot bind.
  absl::Status Start(const std::string& address);
  int port() const { return port_; }
  // Stops serving and joins the thread. Idempotent.
  void Stop();

 private:
  void Serve();
  void HandleConnection(int fd);

  Handler handler_;
  absl::Duration read_timeout_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe that wakes poll() for Stop()
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace runway
