#include "controller/adapters/http_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace runway {
namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return status < 400 ? "OK" : (status < 500 ? "Client Error" : "Server Error");
  }
}

void WriteAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

HttpEndpoint::HttpEndpoint(Handler handler, absl::Duration read_timeout)
    : handler_(std::move(handler)), read_timeout_(read_timeout) {}

HttpEndpoint::~HttpEndpoint() { Stop(); }

absl::Status HttpEndpoint::Start(const std::string& address) {
  std::pair<std::string, std::string> parts = absl::StrSplit(address, absl::MaxSplits(':', 1));
  std::string host = parts.first == "localhost" ? "127.0.0.1" : parts.first;
  int port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (!absl::SimpleAtoi(parts.second, &port) || port < 0 || port > 65535 ||
      ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", address, "' is not HOST:PORT with an IPv4 host, e.g. 127.0.0.1:9464 or 0.0.0.0:9464"));
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
  int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    std::string error = strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", error));
  }
  socklen_t length = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &length);
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_fds_, O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return absl::UnavailableError(absl::StrCat("pipe: ", strerror(errno)));
  }
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void HttpEndpoint::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fds_[1] >= 0) {
    char byte = 0;
    (void)!::write(wake_fds_[1], &byte, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&listen_fd_, &wake_fds_[0], &wake_fds_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void HttpEndpoint::Serve() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      SPDLOG_ERROR("http endpoint: poll: {}", strerror(errno));
      return;
    }
    if (fds[1].revents != 0 || stopping_.load()) return;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    HandleConnection(client);
    ::close(client);
  }
}

void HttpEndpoint::HandleConnection(int fd) {
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(read_timeout_));
  timeout.tv_usec =
      static_cast<suseconds_t>(absl::ToInt64Microseconds(read_timeout_ % absl::Seconds(1)));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  std::string request;
  char buffer[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // closed, or silent past the timeout
    request.append(buffer, static_cast<size_t>(n));
  }
  HttpEndpointResponse response;
  std::string method, target;
  {
    std::string line = request.substr(0, request.find("\r\n"));
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (words.size() == 3) {
      method = words[0];
      target = words[1];
    }
  }
  if (method.empty() || target.empty() || target[0] != '/') {
    response.status = 400;
    response.body = "malformed request\n";
  } else if (method != "GET" && method != "HEAD") {
    response.status = 405;
    response.body = "only GET and HEAD\n";
  } else {
    response = handler_(target.substr(0, target.find('?')));
  }
  std::string head =
      absl::StrCat("HTTP/1.1 ", response.status, " ", Reason(response.status),
                   "\r\nContent-Type: ", response.content_type,
                   "\r\nContent-Length: ", response.body.size(), "\r\nConnection: close\r\n\r\n");
  WriteAll(fd, method == "HEAD" ? head : head + response.body);
}

}  // namespace runway
