// EngineImageBuilder against real components: Debian's `podman system service` on a unix socket
// (isolated vfs storage in a temp dir), Debian's `docker-registry` (distribution 2.8) on loopback,
// and git repositories served by `git daemon` (git://) or read through file://. Also a small fake
// engine that answers /_ping and then hangs, for the timeout and the shutdown, and a stale socket
// for the incident's "podman stopped".

#include "controller/adapters/engine_image_builder.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

extern char** environ;

namespace runway {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

using Phase = LocalBuildState::Phase;

std::string Text(Phase phase) {
  switch (phase) {
    case Phase::kRunning:
      return "running";
    case Phase::kSucceeded:
      return "succeeded";
    case Phase::kFailed:
      return "failed";
  }
  return "?";
}

std::string Describe(const LocalBuildState& state) {
  return absl::StrCat(Text(state.phase), " digest=", state.digest, " reason=", state.reason,
                      " detail=", state.detail);
}

constexpr char kInstallHint[] = "(scripts/install-deps.sh installs them)";

bool OnPath(const std::string& command) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "", ':', absl::SkipEmpty())) {
    if (::access(absl::StrCat(dir, "/", command).c_str(), X_OK) == 0) return true;
  }
  return false;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t size = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

bool TcpAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

size_t DigestHeader(char* data, size_t size, size_t count, void* out) {
  std::string line(data, size * count);
  if (absl::StartsWithIgnoreCase(line, "docker-content-digest:")) {
    *static_cast<std::string*>(out) = std::string(absl::StripAsciiWhitespace(line.substr(22)));
  }
  return size * count;
}

// HTTP status of a request (0 when it failed), with the Docker-Content-Digest header.
long HttpStatus(const std::string& url, const std::string& unix_socket = "", bool head = false,
                std::string* digest = nullptr) {
  CURL* curl = curl_easy_init();
  std::string ignored;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  if (!unix_socket.empty()) curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, unix_socket.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, DigestHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, digest ? digest : &ignored);
  curl_slist* headers =
      curl_slist_append(nullptr,
                        "Accept: application/vnd.docker.distribution.manifest.v2+json, "
                        "application/vnd.oci.image.manifest.v1+json");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (head) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return status;
}

// Runs a command to completion (test setup: git), output captured. The exit code, or -1.
int RunCommand(const std::vector<std::string>& argv, std::string* output = nullptr) {
  std::string log =
      (std::filesystem::temp_directory_path() / absl::StrCat("eib-run-", getpid(), ".log"))
          .string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  if (error == 0) waitpid(pid, &status, 0);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(log);
  if (output) *output = text;
  if (error != 0 || !WIFEXITED(status)) return -1;
  if (WEXITSTATUS(status) != 0 && !output)
    std::cerr << "command failed: " << argv[0] << ": " << text;
  return WEXITSTATUS(status);
}

// A background process in its own process group, output to a log file. Stop(): SIGTERM to the
// group, up to 10 s, then SIGKILL; always reaped.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
        const std::string& log) {
    std::vector<std::string> env;
    for (char** entry = environ; *entry; ++entry) env.emplace_back(*entry);
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    std::vector<char*> args, envp;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    for (const std::string& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &actions, &attributes, args.data(), envp.data()) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  ~Child() { Stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool running() const { return pid_ > 0; }

  void Stop() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGTERM);
    // Wait for the leader to exit without reaping it: while it is a zombie its pid (our group id)
    // cannot be reused, so the SIGKILL below reaches only what we started.
    bool exited = false;
    for (int i = 0; i < 100 && !exited; ++i) {
      siginfo_t info{};
      exited = waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == pid_;
      if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(-pid_, SIGKILL);  // the leader if it ignored SIGTERM, and anything left in its group
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

class RecordingMetrics : public NoMetrics {
 public:
  void ConnectFailed(const std::string& target, const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    connect_failures_.emplace_back(target, reason);
  }
  std::vector<std::pair<std::string, std::string>> connect_failures() {
    std::lock_guard<std::mutex> lock(mutex_);
    return connect_failures_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> connect_failures_;
};

// Answers GET /_ping like an engine; any other request is read and never answered.
class HangingEngine {
 public:
  explicit HangingEngine(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~HangingEngine() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int client : held_) close(client);
    unlink(path_.c_str());
  }
  int held_requests() const { return held_count_.load(); }

 private:
  void Serve() {
    while (true) {
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(client, buffer, sizeof(buffer));
        if (n <= 0) break;
        request.append(buffer, static_cast<size_t>(n));
      }
      if (absl::StartsWith(request, "GET /_ping")) {
        std::string response =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK";
        (void)!write(client, response.data(), response.size());
        close(client);
      } else {
        held_.push_back(client);
        ++held_count_;
      }
    }
  }

  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::vector<int> held_;
  std::atomic<int> held_count_{0};
};

class EngineImageBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("eib-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_.metrics = &metrics_;
    options_.work_root = (dir_ / "work").string();
    options_.insecure_registry = true;
    std::filesystem::create_directories(options_.work_root);
  }

  void TearDown() override {
    // Every process this test started, newest first, also when an assertion failed.
    while (!children_.empty()) children_.pop_back();
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }

  static bool ToolsPresent() {
    return OnPath("podman") && OnPath("docker-registry") && OnPath("git");
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  void Write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
  }

  Child* Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               const std::string& log_name) {
    children_.push_back(std::make_unique<Child>(argv, env, Path(log_name)));
    return children_.back().get();
  }

  // docker-registry on 127.0.0.1:<free port>, storage in the temp dir. Returns host:port.
  std::string StartRegistry() {
    int port = FreePort();
    std::string config = Path("registry.yml");
    Write(config, absl::StrCat("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n",
                               "    rootdirectory: ", Path("registry-data"),
                               "\nhttp:\n  addr: 127.0.0.1:", port, "\n"));
    registry_ = Spawn({"docker-registry", "serve", config}, {}, "registry.log");
    std::string url = absl::StrCat("http://127.0.0.1:", port, "/v2/");
    for (int i = 0; i < 300 && HttpStatus(url) != 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(HttpStatus(url), 200) << "docker-registry did not answer; see registry.log";
    return absl::StrCat("127.0.0.1:", port);
  }

  // `podman system service` on <dir>/podman.sock with vfs storage, tmp and runroot in the temp
  // dir. `mark_insecure` lists the registry as insecure in registries.conf; without it only the
  // builder's tlsVerify=false makes a plain-http push work.
  std::string StartPodman(const std::string& registry, bool mark_insecure) {
    std::string socket = Path("podman.sock");
    Write(Path("storage.conf"),
          absl::StrCat("[storage]\ndriver = \"vfs\"\ngraphroot = \"", Path("podman-root"),
                       "\"\nrunroot = \"", Path("podman-run"), "\"\n"));
    Write(Path("registries.conf"),
          absl::StrCat("unqualified-search-registries = []\n",
                       mark_insecure ? absl::StrCat("[[registry]]\nlocation = \"", registry,
                                                    "\"\ninsecure = true\n")
                                     : ""));
    std::filesystem::create_directories(Path("podman-tmp"));
    Write(Path("containers.conf"), absl::StrCat("[engine]\ntmp_dir = \"", Path("podman-tmp"),
                                                "\"\nevents_logger = \"none\"\n"));
    Spawn({"podman", "--log-level=error", "system", "service", "--time=0",
           absl::StrCat("unix://", socket)},
          {absl::StrCat("CONTAINERS_STORAGE_CONF=", Path("storage.conf")),
           absl::StrCat("CONTAINERS_REGISTRIES_CONF=", Path("registries.conf")),
           absl::StrCat("CONTAINERS_CONF=", Path("containers.conf")),
           absl::StrCat("TMPDIR=", Path("podman-tmp"))},
          "podman.log");
    for (int i = 0; i < 600 && HttpStatus("http://d/_ping", socket) != 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(HttpStatus("http://d/_ping", socket), 200) << "podman did not answer; see podman.log";
    return absl::StrCat("unix://", socket);
  }

  // `git daemon` serving dir_ on 127.0.0.1:<free port>. Returns git://127.0.0.1:<port>.
  std::string StartGitDaemon() {
    int port = FreePort();
    Spawn({"git", "daemon", "--reuseaddr", absl::StrCat("--base-path=", dir_.string()),
           "--export-all", "--listen=127.0.0.1", absl::StrCat("--port=", port),
           "--enable=upload-pack", "--informative-errors"},
          {}, "git-daemon.log");
    for (int i = 0; i < 300 && !TcpAccepts(port); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(TcpAccepts(port)) << "git daemon did not listen; see git-daemon.log";
    return absl::StrCat("git://127.0.0.1:", port);
  }

  // Commits `files` to the repository <dir>/repo (created on first use). Returns the commit SHA.
  std::string Commit(const std::vector<std::pair<std::string, std::string>>& files) {
    std::string repo = Path("repo");
    if (!std::filesystem::exists(repo)) {
      EXPECT_EQ(RunCommand({"git", "-c", "init.defaultBranch=main", "init", "-q", repo}), 0);
    }
    for (const auto& [name, text] : files) Write(absl::StrCat(repo, "/", name), text);
    EXPECT_EQ(RunCommand({"git", "-C", repo, "add", "-A"}), 0);
    EXPECT_EQ(RunCommand({"git", "-C", repo, "-c", "user.name=Runway Test", "-c",
                          "user.email=test@runway.invalid", "commit", "-q", "--allow-empty", "-m",
                          "test"}),
              0);
    std::string sha;
    EXPECT_EQ(RunCommand({"git", "-C", repo, "rev-parse", "HEAD"}, &sha), 0);
    return std::string(absl::StripAsciiWhitespace(sha));
  }

  LocalBuildRequest Request(const std::string& endpoint, const std::string& url,
                            const std::string& revision, const std::string& image) {
    LocalBuildRequest request;
    request.engine = "podman";
    request.engine_endpoint = endpoint;
    request.git.url = url;
    request.git.revision = revision;
    request.image = image;
    request.timeout = absl::Seconds(120);
    return request;
  }

  // Polls until the job leaves kRunning; generous, for a slow and busy machine.
  static LocalBuildState WaitFor(EngineImageBuilder& builder, const std::string& id,
                                 absl::Duration limit = absl::Seconds(150)) {
    absl::Time end = absl::Now() + limit;
    LocalBuildState state;
    while (absl::Now() < end) {
      absl::StatusOr<LocalBuildState> polled = builder.Poll(id);
      EXPECT_TRUE(polled.ok()) << polled.status();
      if (!polled.ok()) return state;
      state = *polled;
      if (state.phase != Phase::kRunning) return state;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "build " << id << " still running after " << limit;
    return state;
  }

  // The registry's own digest for host/name:tag.
  static std::string RegistryDigest(const std::string& host, const std::string& name,
                                    const std::string& tag) {
    std::string digest;
    HttpStatus(absl::StrCat("http://", host, "/v2/", name, "/manifests/", tag), "", true, &digest);
    return digest;
  }

  std::filesystem::path dir_;
  RecordingMetrics metrics_;
  EngineImageBuilder::Options options_;
  std::vector<std::unique_ptr<Child>> children_;
  Child* registry_ = nullptr;
};

constexpr char kSha[] = "0123456789abcdef0123456789abcdef01234567";

TEST_F(EngineImageBuilderTest, RejectsMalformedRequestsNamingTheField) {
  EngineImageBuilder builder(options_);
  LocalBuildRequest good =
      Request("unix:///run/podman.sock", "https://example.com/repo.git", kSha, "r.io/a/b:v1");
  struct Case {
    std::string field;
    std::function<void(LocalBuildRequest&)> change;
  };
  std::vector<Case> cases = {
      {"engine", [](LocalBuildRequest& r) { r.engine = "containerd"; }},
      {"engine_endpoint", [](LocalBuildRequest& r) { r.engine_endpoint = "/run/podman.sock"; }},
      {"engine_endpoint", [](LocalBuildRequest& r) { r.engine_endpoint = "unix://relative"; }},
      {"engine_endpoint", [](LocalBuildRequest& r) { r.engine_endpoint = "tcp://host"; }},
      {"git.url", [](LocalBuildRequest& r) { r.git.url = "ext::sh -c touch% /tmp/x"; }},
      {"git.url", [](LocalBuildRequest& r) { r.git.url = "file:///srv/repo"; }},
      {"git.url", [](LocalBuildRequest& r) { r.git.url = "-uhttps://x"; }},
      {"git.revision", [](LocalBuildRequest& r) { r.git.revision = "main"; }},
      {"git.revision", [](LocalBuildRequest& r) { r.git.revision = "0123456"; }},
      {"git.directory", [](LocalBuildRequest& r) { r.git.directory = "../outside"; }},
      {"git.directory", [](LocalBuildRequest& r) { r.git.directory = "/etc"; }},
      {"dockerfile", [](LocalBuildRequest& r) { r.dockerfile = "a/../../Dockerfile"; }},
      {"dockerfile", [](LocalBuildRequest& r) { r.dockerfile = ""; }},
      {"image", [](LocalBuildRequest& r) { r.image = "demo/api:v1"; }},
      {"image", [](LocalBuildRequest& r) { r.image = "r.io/demo/api"; }},
      {"image", [](LocalBuildRequest& r) { r.image = "r.io/Demo/api:v1"; }},
      {"image", [](LocalBuildRequest& r) { r.image = "r.io/demo/api@sha256:00"; }},
      {"timeout", [](LocalBuildRequest& r) { r.timeout = absl::ZeroDuration(); }},
  };
  for (const Case& c : cases) {
    LocalBuildRequest request = good;
    c.change(request);
    EXPECT_THAT(builder.Start(request).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, c.field + ":"))
        << c.field;
  }
  EXPECT_THAT(builder.Poll("local-unknown").status(), StatusIs(absl::StatusCode::kNotFound, ""));
  EXPECT_THAT(builder.FindPushed("no-tag").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "image:"));
  EXPECT_TRUE(metrics_.connect_failures().empty());
}

// The whole path over git://: podman builds, pushes over plain http, the registry serves the
// digest; the same through the Docker-compatible API (engine "docker" on the same socket).
TEST_F(EngineImageBuilderTest, BuildsAndPushesFromGitDaemon) {
  if (!ToolsPresent()) GTEST_SKIP() << "podman, docker-registry or git missing " << kInstallHint;
  std::string registry = StartRegistry();
  std::string engine = StartPodman(registry, /*mark_insecure=*/true);
  std::string git = StartGitDaemon();
  // Long paths exercise the tar writer: a ustar prefix split, and a PAX header for a name that
  // no split fits; COPY fails if either is encoded wrongly.
  std::string split = std::string(70, 'd') + "/" + std::string(70, 'e') + "/split.txt";
  std::string pax = std::string(120, 'p') + ".txt";
  std::string sha =
      Commit({{"app/Dockerfile", absl::StrCat("FROM scratch\nCOPY hello.txt /hello.txt\nCOPY ",
                                              split, " /split.txt\nCOPY ", pax, " /pax.txt\n")},
              {"app/hello.txt", "hello from runway\n"},
              {"app/" + split, "split\n"},
              {"app/" + pax, "pax\n"},
              {"README", "not in the context\n"}});

  EngineImageBuilder builder(options_);
  LocalBuildRequest request =
      Request(engine, git + "/repo", sha, registry + "/demo/api:src-" + sha.substr(0, 8));
  request.git.directory = "app";
  absl::StatusOr<std::string> id = builder.Start(request);
  ASSERT_TRUE(id.ok()) << id.status();
  absl::StatusOr<std::string> again = builder.Start(request);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *id) << "a second Start of a running image must not build twice";

  LocalBuildState state = WaitFor(builder, *id);
  ASSERT_EQ(state.phase, Phase::kSucceeded) << Describe(state);
  EXPECT_THAT(state.digest, StartsWith("sha256:"));
  EXPECT_EQ(state.digest, RegistryDigest(registry, "demo/api", "src-" + sha.substr(0, 8)));
  absl::StatusOr<std::string> found = builder.FindPushed(request.image);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, state.digest);
  EXPECT_THAT(builder.FindPushed(registry + "/demo/api:never-pushed").status(),
              StatusIs(absl::StatusCode::kNotFound, "never-pushed"));

  // Finished: the same image starts a new job.
  absl::StatusOr<std::string> rebuilt = builder.Start(request);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_NE(*rebuilt, *id);
  EXPECT_EQ(WaitFor(builder, *rebuilt).phase, Phase::kSucceeded);

  LocalBuildRequest docker = request;
  docker.engine = "docker";
  docker.image = registry + "/demo/compat:v1";
  absl::StatusOr<std::string> docker_id = builder.Start(docker);
  ASSERT_TRUE(docker_id.ok()) << docker_id.status();
  LocalBuildState docker_state = WaitFor(builder, *docker_id);
  ASSERT_EQ(docker_state.phase, Phase::kSucceeded) << Describe(docker_state);
  EXPECT_EQ(docker_state.digest, RegistryDigest(registry, "demo/compat", "v1"));

  EXPECT_TRUE(metrics_.connect_failures().empty());
  EXPECT_TRUE(std::filesystem::is_empty(options_.work_root)) << "checkouts must be removed";
}

// git daemon speaking protocol v0 refuses a shallow fetch of an unadvertised (non-tip) SHA; the
// builder clones in full instead. This podman does not list the registry as insecure: the push
// works only because the builder asks for tlsVerify=false.
TEST_F(EngineImageBuilderTest, FallsBackToAFullCloneAndPushesWithTlsVerifyOff) {
  if (!ToolsPresent()) GTEST_SKIP() << "podman, docker-registry or git missing " << kInstallHint;
  std::string registry = StartRegistry();
  std::string engine = StartPodman(registry, /*mark_insecure=*/false);
  std::string git = StartGitDaemon();
  std::string old_sha =
      Commit({{"Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"}, {"hello.txt", "old\n"}});
  Commit({{"hello.txt", "new\n"}});

  // The premise: v0 refuses this fetch.
  ASSERT_EQ(RunCommand({"git", "init", "-q", Path("probe")}), 0);
  std::string refused;
  EXPECT_NE(RunCommand({"git", "-C", Path("probe"), "-c", "protocol.version=0", "fetch", "-q",
                        "--depth=1", git + "/repo", old_sha},
                       &refused),
            0);
  EXPECT_THAT(refused, HasSubstr("unadvertised object"));

  options_.git_env = {{"GIT_CONFIG_COUNT", "1"},
                      {"GIT_CONFIG_KEY_0", "protocol.version"},
                      {"GIT_CONFIG_VALUE_0", "0"}};
  EngineImageBuilder builder(options_);
  absl::StatusOr<std::string> id =
      builder.Start(Request(engine, git + "/repo", old_sha, registry + "/demo/old:v1"));
  ASSERT_TRUE(id.ok()) << id.status();
  LocalBuildState state = WaitFor(builder, *id);
  ASSERT_EQ(state.phase, Phase::kSucceeded) << Describe(state);
  EXPECT_EQ(state.digest, RegistryDigest(registry, "demo/old", "v1"));
}

TEST_F(EngineImageBuilderTest, BuildErrorsAndBadRevisions) {
  if (!ToolsPresent()) GTEST_SKIP() << "podman, docker-registry or git missing " << kInstallHint;
  std::string registry = StartRegistry();
  std::string engine = StartPodman(registry, /*mark_insecure=*/true);
  std::string missing = Commit({{"Dockerfile", "FROM scratch\nCOPY missing.txt /m\n"}});
  std::string bogus = Commit({{"Dockerfile", "FROM scratch\nBOGUS instruction\n"}});
  std::string url = "file://" + Path("repo");

  options_.allow_file_urls = true;
  EngineImageBuilder builder(options_);
  auto start = [&](const std::string& sha, const std::string& image,
                   const std::string& directory = "") {
    LocalBuildRequest request = Request(engine, url, sha, registry + "/demo/" + image);
    request.git.directory = directory;
    absl::StatusOr<std::string> id = builder.Start(request);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  };
  // Concurrent jobs, one per image.
  std::string missing_id = start(missing, "missing:v1");
  std::string bogus_id = start(bogus, "bogus:v1");
  std::string unknown_id = start(std::string(40, 'e'), "unknown:v1");
  std::string nodir_id = start(bogus, "nodir:v1", "no/such/dir");
  // Builds, then pushes to a registry port nobody listens on.
  std::string good = Commit({{"Dockerfile", "FROM scratch\nCOPY Dockerfile /Dockerfile\n"}});
  LocalBuildRequest unreachable =
      Request(engine, url, good, absl::StrCat("127.0.0.1:", FreePort(), "/demo/lost:v1"));
  absl::StatusOr<std::string> lost_id = builder.Start(unreachable);
  ASSERT_TRUE(lost_id.ok()) << lost_id.status();

  LocalBuildState state = WaitFor(builder, missing_id);
  EXPECT_EQ(state.phase, Phase::kFailed);
  EXPECT_EQ(state.reason, "BuildFailed") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr("missing.txt"));
  state = WaitFor(builder, bogus_id);
  EXPECT_EQ(state.reason, "BuildFailed") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr("BOGUS"));
  state = WaitFor(builder, unknown_id);
  EXPECT_EQ(state.reason, "CheckoutFailed") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr(std::string(40, 'e')));
  state = WaitFor(builder, nodir_id);
  EXPECT_EQ(state.reason, "CheckoutFailed") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr("no/such/dir"));

  state = WaitFor(builder, *lost_id);
  EXPECT_EQ(state.reason, "PushFailed") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr("connection refused"));

  EXPECT_EQ(RegistryDigest(registry, "demo/missing", "v1"), "");
  EXPECT_TRUE(metrics_.connect_failures().empty());
  EXPECT_TRUE(std::filesystem::is_empty(options_.work_root)) << "checkouts must be removed";
}

// The incident: the engine's socket is there but nobody listens (podman was stopped), or gone.
TEST_F(EngineImageBuilderTest, EngineNotRunningIsEngineUnavailable) {
  std::string stale = Path("stale.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", stale.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  close(fd);  // the socket file stays, like a killed service's

  EngineImageBuilder builder(options_);
  absl::StatusOr<std::string> id = builder.Start(
      Request("unix://" + stale, "git://127.0.0.1:9/repo", kSha, "127.0.0.1:9/demo/api:v1"));
  ASSERT_TRUE(id.ok()) << id.status();
  LocalBuildState state = WaitFor(builder, *id);
  EXPECT_EQ(state.phase, Phase::kFailed);
  EXPECT_EQ(state.reason, "EngineUnavailable") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr("unix://" + stale));
  EXPECT_THAT(state.detail, HasSubstr("podman"));

  absl::StatusOr<std::string> gone = builder.Start(Request(
      "unix://" + Path("gone.sock"), "git://127.0.0.1:9/repo", kSha, "127.0.0.1:9/demo/b:v1"));
  ASSERT_TRUE(gone.ok()) << gone.status();
  state = WaitFor(builder, *gone);
  EXPECT_EQ(state.reason, "EngineUnavailable") << Describe(state);
  EXPECT_THAT(state.detail, HasSubstr("does not exist"));

  EXPECT_THAT(metrics_.connect_failures(),
              ::testing::ElementsAre(Pair("podman", "refused"), Pair("podman", "socket-missing")));
}

TEST_F(EngineImageBuilderTest, RegistryStoppedIsUnavailable) {
  if (!OnPath("docker-registry")) GTEST_SKIP() << "docker-registry missing " << kInstallHint;
  std::string registry = StartRegistry();
  EngineImageBuilder builder(options_);
  EXPECT_THAT(builder.FindPushed(registry + "/demo/api:v1").status(),
              StatusIs(absl::StatusCode::kNotFound, ""));
  EXPECT_TRUE(metrics_.connect_failures().empty());
  registry_->Stop();
  EXPECT_THAT(builder.FindPushed(registry + "/demo/api:v1").status(),
              StatusIs(absl::StatusCode::kUnavailable, registry));
  EXPECT_THAT(metrics_.connect_failures(), ::testing::ElementsAre(Pair("registry", "refused")));
}

// An engine that answers /_ping and then never answers the build: the job ends at its timeout,
// and a builder destroyed mid-build returns at once.
TEST_F(EngineImageBuilderTest, TimeoutAndShutdownAreBounded) {
  if (!OnPath("git")) GTEST_SKIP() << "git missing " << kInstallHint;
  HangingEngine engine(Path("hang.sock"));
  std::string sha = Commit({{"Dockerfile", "FROM scratch\n"}});
  options_.allow_file_urls = true;
  {
    EngineImageBuilder builder(options_);
    LocalBuildRequest request =
        Request("unix://" + Path("hang.sock"), "file://" + Path("repo"), sha, "127.0.0.1:9/d/t:v1");
    request.timeout = absl::Seconds(4);
    absl::StatusOr<std::string> id = builder.Start(request);
    ASSERT_TRUE(id.ok()) << id.status();
    LocalBuildState state = WaitFor(builder, *id, absl::Seconds(60));
    EXPECT_EQ(state.phase, Phase::kFailed);
    EXPECT_EQ(state.reason, "Timeout") << Describe(state);
    EXPECT_THAT(state.detail, HasSubstr("did not finish within 4s"));
  }
  auto builder = std::make_unique<EngineImageBuilder>(options_);
  LocalBuildRequest request =
      Request("unix://" + Path("hang.sock"), "file://" + Path("repo"), sha, "127.0.0.1:9/d/s:v1");
  request.timeout = absl::Minutes(10);
  int held = engine.held_requests();
  ASSERT_TRUE(builder->Start(request).ok());
  for (int i = 0; i < 1200 && engine.held_requests() == held; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(engine.held_requests(), held) << "the build never reached the engine";
  auto begin = std::chrono::steady_clock::now();
  builder.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));
  EXPECT_TRUE(metrics_.connect_failures().empty());
  EXPECT_TRUE(std::filesystem::is_empty(options_.work_root)) << "checkouts must be removed";
}

}  // namespace
}  // namespace runway
