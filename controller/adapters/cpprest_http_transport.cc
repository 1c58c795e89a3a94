#include "controller/adapters/cpprest_http_transport.h"

#include <cpprest/http_client.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <exception>
#include <future>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace runway {
namespace {

using web::http::client::http_client;
using web::http::client::http_client_config;

// Where a request goes, split out of its URL. `origin` is scheme://host:port, the pool key.
struct Target {
  std::string origin;
  std::string host_port;  // for error messages: no path, query or credentials
  std::string resource;   // path?query, still percent-encoded
};

absl::StatusOr<Target> ParseTarget(const std::string& url) {
  if (!web::uri::validate(url)) {
    return absl::InvalidArgumentError("malformed URL (not an absolute http or https URL)");
  }
  try {
    web::uri uri(url);
    const std::string scheme = absl::AsciiStrToLower(uri.scheme());
    if ((scheme != "http" && scheme != "https") || uri.host().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed URL: want http(s)://host/..., got scheme '", scheme, "'"));
    }
    int port = uri.port();
    if (port <= 0) port = scheme == "https" ? 443 : 80;
    Target target;
    target.host_port = absl::StrCat(uri.host(), ":", port);
    target.origin = absl::StrCat(scheme, "://", target.host_port);
    target.resource = uri.resource().to_string();
    if (target.resource.empty()) target.resource = "/";
    return target;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed URL: ", e.what()));
  }
}

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

// Turns what cpprestsdk threw into a status naming the host. cpprest's texts name no headers.
absl::Status StatusFromException(const std::exception& e, const std::string& host_port,
                                 absl::Duration timeout) {
  int code = 0;
  if (const auto* http = dynamic_cast<const web::http::http_exception*>(&e)) {
    code = http->error_code().value();
  }
  const std::string what = e.what();
  if (code == ETIMEDOUT || absl::StrContains(absl::AsciiStrToLower(what), "timed out")) {
    return absl::DeadlineExceededError(
        absl::StrCat("no answer from ", host_port, " within ", Seconds(timeout), " (", what, ")"));
  }
  if (code == ECONNREFUSED || code == EHOSTUNREACH ||
      absl::StrContains(what, "Failed to connect")) {
    return absl::UnavailableError(
        absl::StrCat("connection refused to ", host_port, " (", what, ")"));
  }
  if (code == ECONNRESET || code == EPIPE) {
    return absl::UnavailableError(absl::StrCat("connection reset by ", host_port, " (", what, ")"));
  }
  if (absl::StrContains(what, "SSL") || absl::StrContains(what, "handshake")) {
    return absl::UnavailableError(
        absl::StrCat("TLS with ", host_port, " failed (", what,
                     "); check the CA bundle (SSL_CERT_FILE) and the host name"));
  }
  if (dynamic_cast<const web::uri_exception*>(&e) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("malformed URL for ", host_port, ": ", what));
  }
  return absl::UnavailableError(absl::StrCat("exchange with ", host_port, " failed (", what, ")"));
}

web::http::http_request BuildMessage(const HttpRequest& request, const Target& target) {
  web::http::http_request message{web::http::method(request.method)};
  message.set_request_uri(target.resource);
  std::string content_type = "application/json";
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "content-type")) {
      content_type = value;
    } else {
      message.headers().add(name, value);
    }
  }
  if (!request.body.empty()) message.set_body(request.body, content_type);
  return message;
}

// Runs on a cpprest thread: reads the whole body and copies the response into our type.
pplx::task<HttpResponse> ReadResponse(web::http::http_response response) {
  return response.extract_vector().then([response](std::vector<unsigned char> body) {
    HttpResponse out;
    out.status = response.status_code();
    for (const auto& [name, value] : response.headers()) {
      out.headers[absl::AsciiStrToLower(name)] = value;
    }
    out.body.assign(body.begin(), body.end());
    return out;
  });
}

}  // namespace

struct CpprestHttpTransport::Clients {
  absl::Mutex mutex;
  // origin + " " + timeout in ms -> client. cpprest fixes the timeout per client, so callers with
  // different timeouts get different pools.
  std::map<std::string, std::shared_ptr<http_client>> by_key ABSL_GUARDED_BY(mutex);

  std::shared_ptr<http_client> Get(const std::string& key, const std::string& origin,
                                   absl::Duration timeout) {
    absl::MutexLock lock(&mutex);
    std::shared_ptr<http_client>& client = by_key[key];
    if (client == nullptr) {
      http_client_config config;
      // cpprest's timeout is per read; the whole-exchange deadline is enforced in Send.
      config.set_timeout(
          std::chrono::milliseconds(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout))));
      client = std::make_shared<http_client>(origin, config);
    }
    return client;
  }

  // Forgets `client` after a connection-level failure so the next call builds a fresh one.
  void Drop(const std::string& key, const std::shared_ptr<http_client>& client) {
    absl::MutexLock lock(&mutex);
    auto it = by_key.find(key);
    if (it != by_key.end() && it->second == client) by_key.erase(it);
  }
};

CpprestHttpTransport::CpprestHttpTransport() : clients_(std::make_unique<Clients>()) {}

CpprestHttpTransport::~CpprestHttpTransport() = default;

absl::StatusOr<HttpResponse> CpprestHttpTransport::Send(const HttpRequest& request) {
  absl::StatusOr<Target> target = ParseTarget(request.url);
  if (!target.ok()) return target.status();
  const absl::Duration timeout = std::max(request.timeout, absl::Milliseconds(1));
  const std::string key = absl::StrCat(target->origin, " ", absl::ToInt64Milliseconds(timeout));
  // The continuation may outlive this call (after a deadline), so it owns what it touches.
  auto result = std::make_shared<std::promise<absl::StatusOr<HttpResponse>>>();
  std::future<absl::StatusOr<HttpResponse>> future = result->get_future();
  pplx::cancellation_token_source cancel;
  std::shared_ptr<http_client> client;
  try {
    client = clients_->Get(key, target->origin, timeout);
    web::http::http_request message = BuildMessage(request, *target);
    client->request(message, cancel.get_token())
        .then(ReadResponse)
        // `client` is captured so the pool outlives a request abandoned at its deadline.
        .then([result, client, host_port = target->host_port,
               timeout](pplx::task<HttpResponse> done) {
          try {
            result->set_value(done.get());
          } catch (const std::exception& e) {
            result->set_value(StatusFromException(e, host_port, timeout));
          } catch (...) {
            result->set_value(absl::UnavailableError(
                absl::StrCat("exchange with ", host_port, " failed (unknown error)")));
          }
        });
  } catch (const std::exception& e) {
    return StatusFromException(e, target->host_port, timeout);
  }
  if (future.wait_for(absl::ToChronoMilliseconds(timeout)) != std::future_status::ready) {
    cancel.cancel();
    return absl::DeadlineExceededError(
        absl::StrCat("no complete answer from ", target->host_port, " within ", Seconds(timeout)));
  }
  absl::StatusOr<HttpResponse> response = future.get();
  if (absl::IsUnavailable(response.status())) clients_->Drop(key, client);
  return response;
}

}  // namespace runway
