#pragma once

// A small HTTP/1.1 server (Boost.Beast) for the emulator: keep-alive, absolute-form request
// targets (gcloud uses the emulator as its HTTP proxy, gcp-api.md §3), a body size limit, and the
// connection-level faults a handler can ask for (delay, stall, close, refuse new connections).
// Boost stays inside http_server.cc.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tests/emulator/emulator_common.h"

namespace runway::emulator {

class HttpServer {
 public:
  using Handler = std::function<HandlerResult(const EmuRequest&)>;

  HttpServer(Handler handler, size_t max_body_bytes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `host:port` (port 0 picks a free one) and serves on `threads` threads.
  absl::Status Start(const std::string& host, int port, int threads);
  int port() const;
  // Stops accepting, closes every connection and joins the threads. Idempotent.
  void Stop();

  struct Impl;  // defined in http_server.cc; public only so its connection class can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// Splits a request target into host, path and query; accepts origin form ("/v2/...?a=b") and
// absolute form ("http://us-central1-127.0.0.1:8080/apis/...").
void ParseTarget(const std::string& target, EmuRequest& request);

}  // namespace runway::emulator
