// The engine probe over real sockets: small unix-socket servers that answer like an engine, answer
// wrongly, hang, or are gone (a stale socket file), and the real Podman API service from Debian,
// started and then killed the way the incident's Podman machine was.

#include "controller/adapters/engine_probe.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

// Listens on a unix socket. kAnswer answers /_ping and /version like an engine with `version`;
// kWrong answers 500; kSilent accepts and never answers.
class FakeEngine {
 public:
  enum class Mode { kAnswer, kWrong, kSilent };
  FakeEngine(const std::string& path, Mode mode, std::string version = "1.41")
      : path_(path), mode_(mode), version_(std::move(version)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeEngine() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int client : clients_) close(client);
    unlink(path_.c_str());
  }

 private:
  void Serve() {
    while (!stop_) {
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      if (mode_ == Mode::kSilent) {
        clients_.push_back(client);
        continue;
      }
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(client, buffer, sizeof(buffer));
        if (n <= 0) break;
        request.append(buffer, static_cast<size_t>(n));
      }
      std::string body = request.find("GET /version") == 0
                             ? "{\"ApiVersion\":\"" + version_ + "\",\"Version\":\"fake\"}"
                             : "OK";
      std::string status = mode_ == Mode::kWrong ? "500 Internal Server Error" : "200 OK";
      std::string response = "HTTP/1.1 " + status +
                             "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n" + body;
      (void)!write(client, response.data(), response.size());
      close(client);
    }
  }

  std::string path_;
  Mode mode_;
  std::string version_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> clients_;
};

class EngineProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("engine-probe-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "bin");
    // A `podman` command on PATH, so a dead socket reads as "installed but not running".
    std::ofstream(dir_ / "bin" / "podman") << "#!/bin/sh\n";
    std::filesystem::permissions(dir_ / "bin" / "podman", std::filesystem::perms::owner_all);
    options_.path = (dir_ / "bin").string();
    options_.request_timeout = absl::Milliseconds(500);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  EngineProbeResult Probe(const std::string& socket) {
    CurlEngineProbe probe(options_);
    return probe.ProbeOne({"podman", "unix://" + socket, "test"});
  }
  std::string Socket(const std::string& name) { return (dir_ / name).string(); }

  std::filesystem::path dir_;
  CurlEngineProbe::Options options_;
};

TEST_F(EngineProbeTest, AnEngineThatAnswersIsOk) {
  FakeEngine engine(Socket("ok.sock"), FakeEngine::Mode::kAnswer);
  EngineProbeResult result = Probe(Socket("ok.sock"));
  EXPECT_EQ(result.outcome, EngineProbeOutcome::kOk) << result.explanation;
  EXPECT_EQ(result.api_version, "1.41");
}

TEST_F(EngineProbeTest, AStaleSocketFileIsConnectionRefused) {
  { FakeEngine gone(Socket("stale.sock"), FakeEngine::Mode::kAnswer); }
  // Leave a socket file nobody listens on, as a killed service does.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", Socket("stale.sock").c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  close(fd);
  EngineProbeResult result = Probe(Socket("stale.sock"));
  EXPECT_EQ(result.outcome, EngineProbeOutcome::kRefused) << result.explanation;
  EXPECT_THAT(result.explanation, HasSubstr("podman is installed but its service is not running"));
}

TEST_F(EngineProbeTest, MissingSocketAndMissingCommand) {
  EXPECT_EQ(Probe(Socket("nothing.sock")).outcome, EngineProbeOutcome::kSocketMissing);
  options_.path = "/nonexistent";
  EXPECT_EQ(Probe(Socket("nothing.sock")).outcome, EngineProbeOutcome::kNotInstalled);
}

TEST_F(EngineProbeTest, WrongAnswersHangsAndOldApis) {
  {
    FakeEngine wrong(Socket("wrong.sock"), FakeEngine::Mode::kWrong);
    EXPECT_EQ(Probe(Socket("wrong.sock")).outcome, EngineProbeOutcome::kBadResponse);
  }
  {
    FakeEngine silent(Socket("silent.sock"), FakeEngine::Mode::kSilent);
    EngineProbeResult hung = Probe(Socket("silent.sock"));
    EXPECT_EQ(hung.outcome, EngineProbeOutcome::kTimeout) << hung.explanation;
  }
  {
    FakeEngine old(Socket("old.sock"), FakeEngine::Mode::kAnswer, "1.12");
    EXPECT_EQ(Probe(Socket("old.sock")).outcome, EngineProbeOutcome::kApiTooOld);
  }
}

TEST_F(EngineProbeTest, ProbeListsTheAnsweringCandidateFirst) {
  FakeEngine engine(Socket("env.sock"), FakeEngine::Mode::kAnswer);
  options_.environment.env = {{"CONTAINER_HOST", "unix://" + Socket("nothing.sock")},
                              {"DOCKER_HOST", "unix://" + Socket("env.sock")}};
  CurlEngineProbe probe(options_);
  std::vector<EngineProbeResult> results = probe.Probe("auto");
  ASSERT_GE(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, EngineProbeOutcome::kOk);
  EXPECT_EQ(results[0].endpoint, "unix://" + Socket("env.sock"));
}

// The incident: podman is installed, its service was running, then it stopped.
TEST_F(EngineProbeTest, RealPodmanServiceThenStopped) {
  if (std::system("command -v podman >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "podman is not installed (scripts/install-deps.sh installs it)";
  }
  std::string socket = Socket("podman.sock");
  pid_t pid = fork();
  if (pid == 0) {
    execlp("podman", "podman", "system", "service", "--time=0", ("unix://" + socket).c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  options_.path = std::getenv("PATH") ? std::getenv("PATH") : "";
  options_.request_timeout = absl::Seconds(5);
  EngineProbeResult result;
  for (int i = 0; i < 300; ++i) {  // generous: a cold podman can take seconds to listen
    result = Probe(socket);
    if (result.outcome == EngineProbeOutcome::kOk) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(result.outcome, EngineProbeOutcome::kOk) << result.explanation;
  EXPECT_FALSE(result.api_version.empty());
  kill(pid, SIGKILL);  // leaves the socket file behind, like a stopped Podman machine
  waitpid(pid, nullptr, 0);
  EngineProbeResult stopped = Probe(socket);
  EXPECT_EQ(stopped.outcome, EngineProbeOutcome::kRefused) << stopped.explanation;
  EXPECT_THAT(stopped.explanation, HasSubstr("podman machine start"));
}

}  // namespace
}  // namespace runway
