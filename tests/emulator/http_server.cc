#include "tests/emulator/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace runway::emulator {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

void ParseTarget(const std::string& target, EmuRequest& request) {
  std::string rest = target;
  for (const char* scheme : {"http://", "https://"}) {
    if (rest.rfind(scheme, 0) == 0) {
      rest = rest.substr(std::string(scheme).size());
      size_t slash = rest.find('/');
      request.host = rest.substr(0, slash);
      rest = slash == std::string::npos ? "/" : rest.substr(slash);
      break;
    }
  }
  if (rest.empty() || rest[0] != '/') {  // authority form (CONNECT) or garbage
    if (request.host.empty()) request.host = rest;
    rest = "/";
  }
  size_t question = rest.find('?');
  request.path = PercentDecode(rest.substr(0, question), /*plus_is_space=*/false);
  if (question == std::string::npos) return;
  request.raw_query = rest.substr(question + 1);
  for (absl::string_view pair : absl::StrSplit(request.raw_query, '&', absl::SkipEmpty())) {
    size_t equals = pair.find('=');
    std::string key = PercentDecode(std::string(pair.substr(0, equals)), true);
    std::string value = equals == absl::string_view::npos
                            ? ""
                            : PercentDecode(std::string(pair.substr(equals + 1)), true);
    request.query[key] = value;
  }
}

namespace {

class Session;

}  // namespace

struct HttpServer::Impl {
  Handler handler;
  size_t max_body_bytes;
  net::io_context io;
  std::unique_ptr<tcp::acceptor> acceptor;
  tcp::endpoint endpoint;
  std::vector<std::thread> threads;
  std::mutex mutex;
  bool stopped = false;
  std::unique_ptr<net::steady_timer> reopen_timer;
  std::unique_ptr<net::strand<net::io_context::executor_type>> accept_strand;

  void Accept();
  void Refuse(absl::Duration duration);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(server) {}

  void Start() { Read(); }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(server_->max_body_bytes);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(120));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == net::error::eof) return Close();
    if (ec == http::error::body_limit) {
      HandlerResult result;
      result.response = GoogleErrorResponse(InvalidArgument(absl::StrCat(
          "The request body exceeds the limit of ", server_->max_body_bytes, " bytes.")));
      keep_alive_ = false;
      return Write(result.response);
    }
    if (ec) return Close();
    http::request<http::string_body> request = parser_->release();
    EmuRequest emu;
    emu.method = std::string(request.method_string());
    ParseTarget(std::string(request.target()), emu);
    for (const auto& field : request) {
      emu.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
          std::string(field.value());
    }
    if (emu.host.empty()) emu.host = emu.headers["host"];
    emu.body = std::move(request.body());
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    HandlerResult result = server_->handler(emu);
    if (result.refuse_for > absl::ZeroDuration()) server_->Refuse(result.refuse_for);
    switch (result.action) {
      case ConnectionAction::kClose:
        return Close();
      case ConnectionAction::kStall:
        stream_.expires_never();
        timer_.expires_after(absl::ToChronoMilliseconds(result.hold));
        timer_.async_wait([self = shared_from_this()](beast::error_code) { self->Close(); });
        return;
      case ConnectionAction::kRespond:
        break;
    }
    if (result.delay <= absl::ZeroDuration()) return Write(result.response);
    stream_.expires_never();
    timer_.expires_after(absl::ToChronoMilliseconds(result.delay));
    timer_.async_wait([self = shared_from_this(), result = std::move(result)](beast::error_code) {
      self->Write(result.after_delay ? result.after_delay() : result.response);
    });
  }

  void Write(const EmuResponse& emu) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(emu.status), version_);
    response->set(http::field::server, "cloudrun-emulator");
    response->set(http::field::content_type, emu.content_type);
    for (const auto& [name, value] : emu.headers) response->set(name, value);
    response->keep_alive(keep_alive_);
    response->body() = emu.body;
    response->prepare_payload();
    stream_.expires_after(std::chrono::seconds(60));
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpServer::Impl* server_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor->async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;  // closed: stopped or refusing
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(std::move(socket), this)->Start();
    Accept();
  });
}

void HttpServer::Impl::Refuse(absl::Duration duration) {
  net::post(*accept_strand, [this, duration] {
    if (!acceptor->is_open()) return;  // already refusing
    beast::error_code ignored;
    acceptor->close(ignored);
    reopen_timer->expires_after(absl::ToChronoMilliseconds(duration));
    reopen_timer->async_wait(net::bind_executor(*accept_strand, [this](beast::error_code ec) {
      if (ec) return;
      std::lock_guard<std::mutex> lock(mutex);
      if (stopped) return;
      beast::error_code error;
      acceptor->open(endpoint.protocol(), error);
      acceptor->set_option(net::socket_base::reuse_address(true), error);
      acceptor->bind(endpoint, error);
      acceptor->listen(net::socket_base::max_listen_connections, error);
      if (!error) Accept();
    }));
  });
}

HttpServer::HttpServer(Handler handler, size_t max_body_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  impl_->max_body_bytes = max_body_bytes;
}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start(const std::string& host, int port, int threads) {
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--listen: '", host, "' is not an IP"));
  impl_->accept_strand =
      std::make_unique<net::strand<net::io_context::executor_type>>(impl_->io.get_executor());
  impl_->acceptor = std::make_unique<tcp::acceptor>(*impl_->accept_strand);
  impl_->reopen_timer = std::make_unique<net::steady_timer>(*impl_->accept_strand);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl_->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor->bind(endpoint, ec);
  if (!ec) impl_->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", ec.message()));
  }
  impl_->endpoint = impl_->acceptor->local_endpoint();
  impl_->Accept();
  for (int i = 0; i < std::max(1, threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  }
  return absl::OkStatus();
}

int HttpServer::port() const { return impl_->endpoint.port(); }

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->io.stop();
  for (std::thread& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
  // Close the listening socket too, so a stopped server refuses connections instead of leaving
  // them to hang in the backlog.
  if (impl_->acceptor) {
    beast::error_code ignored;
    impl_->acceptor->close(ignored);
  }
}

}  // namespace runway::emulator
