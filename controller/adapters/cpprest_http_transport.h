#pragma once

// CpprestHttpTransport: HttpTransport over cpprestsdk's http_client (Boost.Asio + OpenSSL).
//
// Keeps one http_client per scheme://host:port (and timeout), so connections are kept alive
// between calls; a client is dropped after a connection-level failure so the next call starts
// from a fresh pool (cpprestsdk#660: a client can stay broken after "Failed to read HTTP status
// line"). cpprestsdk's own timeout is an inactivity timeout per read (toolchain.md §2), so the
// whole-exchange deadline of HttpRequest::timeout is enforced here by cancelling the request.
//
// Never throws: library exceptions become kUnavailable (connect, reset, TLS), kDeadlineExceeded
// (timeout) or kInvalidArgument (malformed URL). Error messages name the host, never the headers
// or the body. Thread-safe; cpprest headers stay in the .cc (style.md rule 7).

#include <memory>

#include "controller/interfaces/http_transport.h"

namespace runway {

class CpprestHttpTransport : public HttpTransport {
 public:
  CpprestHttpTransport();
  ~CpprestHttpTransport() override;
  CpprestHttpTransport(const CpprestHttpTransport&) = delete;
  CpprestHttpTransport& operator=(const CpprestHttpTransport&) = delete;

  // HttpTransport
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;

 private:
  struct Clients;  // the http_client pool; defined in the .cc to keep cpprest out of this header
  std::unique_ptr<Clients> clients_;
};

}  // namespace runway
