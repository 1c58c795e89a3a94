// cloudrun-emulator: Cloud Run Admin API (v2 and v1/Knative) and Cloud Build v1 on loopback, for
// Runway's tests, benchmarks and demo. See docs/emulator.md.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "controller/adapters/system_clock.h"
#include "tests/emulator/emulator.h"
#include "tests/emulator/http_server.h"

namespace {

using runway::emulator::Emulator;
using runway::emulator::HttpServer;

bool WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    if (!out) return false;
    out << content;
    if (!out.flush()) return false;
  }
  return std::rename(temporary.c_str(), path.c_str()) == 0;
}

int Run(int argc, char** argv) {
  CLI::App app{"Cloud Run and Cloud Build emulator (loopback only; see docs/emulator.md)"};
  std::string listen = "127.0.0.1:0";
  std::string port_file, seed_file, dump_file;
  std::string reconcile_delay = "100ms";
  std::string default_region = "us-central1";
  int threads = 2;
  size_t max_body_bytes = 8 << 20;
  uint64_t random_seed = 0;
  app.add_option("--listen", listen, "HOST:PORT to serve on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "Write the chosen port to this file once serving");
  app.add_option("--seed", seed_file, "YAML or JSON state to load at start (docs/emulator.md)");
  app.add_option("--state-dump", dump_file, "Write the state as JSON here on SIGTERM/SIGINT");
  app.add_option("--reconcile-delay", reconcile_delay,
                 "How long a write stays reconciling, e.g. 100ms, 0s")
      ->capture_default_str();
  app.add_option("--threads", threads, "Serving threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--max-body-bytes", max_body_bytes, "Largest request body accepted")
      ->capture_default_str();
  app.add_option("--random-seed", random_seed, "Seed for ids and revision suffixes (0: random)");
  CLI11_PARSE(app, argc, argv);

  size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    std::cerr << "cloudrun-emulator: --listen must be HOST:PORT, e.g. 127.0.0.1:0\n";
    return 2;
  }
  std::string host = listen.substr(0, colon);
  absl::Duration delay;
  if (!absl::ParseDuration(reconcile_delay, &delay) || delay < absl::ZeroDuration()) {
    std::cerr << "cloudrun-emulator: --reconcile-delay must be a duration such as 100ms\n";
    return 2;
  }
  if (random_seed == 0) random_seed = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));

  runway::SystemClock clock;
  Emulator emulator(&clock, random_seed);
  emulator.SetMaxBodyBytes(max_body_bytes);
  {
    std::string config = absl::StrCat(R"({"config":{"reconcileDelay":")",
                                      runway::emulator::FormatProtoDuration(delay), R"("}})");
    (void)emulator.SeedFromText(config);
  }
  if (!seed_file.empty()) {
    std::ifstream in(seed_file, std::ios::binary);
    if (!in) {
      std::cerr << "cloudrun-emulator: --seed: cannot read " << seed_file << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    if (absl::Status s = emulator.SeedFromText(text.str()); !s.ok()) {
      std::cerr << "cloudrun-emulator: --seed " << seed_file << ": " << s.message() << "\n";
      return 2;
    }
  }

  // Block the signals before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  HttpServer server([&emulator](const auto& request) { return emulator.Handle(request); },
                    max_body_bytes);
  if (absl::Status s = server.Start(host, port, threads); !s.ok()) {
    std::cerr << "cloudrun-emulator: " << s.message() << "\n";
    return 1;
  }
  std::string base_url = absl::StrCat("http://", host, ":", server.port());
  emulator.SetBaseUrl(base_url);
  if (!port_file.empty() && !WriteFileAtomically(port_file, absl::StrCat(server.port(), "\n"))) {
    std::cerr << "cloudrun-emulator: cannot write --port-file " << port_file << "\n";
    server.Stop();
    return 1;
  }
  std::cerr << "cloudrun-emulator: serving on " << base_url << "\n";

  int received = 0;
  sigwait(&signals, &received);
  server.Stop();
  if (!dump_file.empty()) {
    if (!WriteFileAtomically(dump_file, emulator.DumpState().dump(2) + "\n")) {
      std::cerr << "cloudrun-emulator: cannot write --state-dump " << dump_file << "\n";
      return 1;
    }
  }
  std::cerr << "cloudrun-emulator: stopped (signal " << received << ")\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
