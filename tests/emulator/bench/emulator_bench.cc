// Load generator for cloudrun-emulator: keep-alive connections over plain POSIX sockets (so the
// client costs little next to the server on a 2-core machine), fixed duration, one request type
// per phase. Prints one JSON object with requests per second per phase and the seed time.
//
//   emulator_bench --port P [--connections 4] [--seconds 3] [--services 10000]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// One keep-alive HTTP/1.1 connection; returns the status of each exchange, -1 on error.
class Connection {
 public:
  explicit Connection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

  int Exchange(const std::string& method, const std::string& path, const std::string& body,
               std::string* response_body = nullptr) {
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty()) {
      request +=
          "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\n";
    }
    request += "\r\n" + body;
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return -1;
      sent += static_cast<size_t>(n);
    }
    // Read headers, then Content-Length bytes of body.
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return -1;
    }
    int status = std::atoi(buffer_.c_str() + 9);
    size_t length = 0;
    const char* key = "content-length:";
    for (size_t i = 0; i < header_end; ++i) {
      if (strncasecmp(buffer_.c_str() + i, key, strlen(key)) == 0) {
        length = std::strtoul(buffer_.c_str() + i + strlen(key), nullptr, 10);
        break;
      }
    }
    size_t total = header_end + 4 + length;
    while (buffer_.size() < total) {
      if (!Fill()) return -1;
    }
    if (response_body) *response_body = buffer_.substr(header_end + 4, length);
    buffer_.erase(0, total);
    return status;
  }

 private:
  bool Fill() {
    char chunk[65536];
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buffer_;
};

struct Phase {
  double per_second = 0;
  long requests = 0;
  long errors = 0;
};

// Runs `connections` threads for `seconds`, each calling make(i) for the i-th request.
template <typename Make>
Phase Run(int port, int connections, double seconds, Make make) {
  std::atomic<long> done{0}, errors{0};
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      Connection connection(port);
      if (!connection.ok()) {
        ++errors;
        return;
      }
      long i = 0;
      while (Clock::now() < deadline) {
        auto [method, path, body] = make(t, i++);
        int status = connection.Exchange(method, path, body);
        if (status != 200) ++errors;
        ++done;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return {static_cast<double>(done) / elapsed, done.load(), errors.load()};
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, connections = 4, services = 10000;
  double seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--port") port = std::atoi(argv[i + 1]);
    if (flag == "--connections") connections = std::atoi(argv[i + 1]);
    if (flag == "--seconds") seconds = std::atof(argv[i + 1]);
    if (flag == "--services") services = std::atoi(argv[i + 1]);
  }
  if (port <= 0) {
    std::fprintf(stderr,
                 "usage: emulator_bench --port P [--connections N] [--seconds S] "
                 "[--services N]\n");
    return 2;
  }
  Connection admin(port);
  if (!admin.ok()) {
    std::fprintf(stderr, "emulator_bench: cannot connect to 127.0.0.1:%d\n", port);
    return 1;
  }
  admin.Exchange("POST", "/_emulator/reset", "{}");
  admin.Exchange("POST", "/_emulator/config", R"({"reconcileDelay":"0s"})");

  // Seed: one JSON document with `services` v2 Services, timed end to end over HTTP.
  std::string seed = R"({"services":[)";
  for (int i = 0; i < services; ++i) {
    if (i) seed += ",";
    seed += R"({"name":"projects/bench/locations/us-central1/services/svc-)" + std::to_string(i) +
            R"(","labels":{"team":"t)" + std::to_string(i % 10) +
            R"("},"template":{"containers":[{"image":"us-docker.pkg.dev/bench/apps/app@sha256:)" +
            std::string(64, 'a') + R"(","env":[{"name":"MODE","value":"bench"}]}]}})";
  }
  seed += "]}";
  admin.Exchange("POST", "/_emulator/config", R"({"maxBodyBytes":268435456})");
  auto seed_start = Clock::now();
  std::string seed_answer;
  int seed_status = admin.Exchange("POST", "/_emulator/seed", seed, &seed_answer);
  double seed_seconds = std::chrono::duration<double>(Clock::now() - seed_start).count();
  if (seed_status != 200) {
    std::fprintf(stderr, "emulator_bench: seed failed (%d): %s\n", seed_status,
                 seed_answer.substr(0, 300).c_str());
    return 1;
  }

  const std::string base = "/v2/projects/bench/locations/us-central1/services/svc-";
  Phase get = Run(port, connections, seconds, [&](int t, long i) {
    return std::make_tuple(std::string("GET"), base + std::to_string((t * 7919 + i) % services),
                           std::string());
  });
  // PATCH: traffic-only and label writes alternate; every one is a real state change.
  Phase patch = Run(port, connections, seconds, [&](int t, long i) {
    std::string id = std::to_string((t * 104729 + i) % services);
    std::string body =
        R"({"labels":{"team":"t)" + std::to_string(i) + "-" + std::to_string(t) + R"("}})";
    return std::make_tuple(std::string("PATCH"), base + id + "?updateMask=labels", body);
  });
  Phase list = Run(port, connections, seconds, [&](int, long i) {
    (void)i;
    return std::make_tuple(std::string("GET"),
                           std::string("/v2/projects/bench/locations/us-central1/services?"
                                       "pageSize=100"),
                           std::string());
  });
  std::printf(
      "{\"services\":%d,\"seed_seconds\":%.3f,\"connections\":%d,"
      "\"get_per_second\":%.0f,\"get_errors\":%ld,\"patch_per_second\":%.0f,"
      "\"patch_errors\":%ld,\"list100_per_second\":%.0f,\"list_errors\":%ld}\n",
      services, seed_seconds, connections, get.per_second, get.errors, patch.per_second,
      patch.errors, list.per_second, list.errors);
  return get.errors + patch.errors + list.errors == 0 ? 0 : 1;
}
