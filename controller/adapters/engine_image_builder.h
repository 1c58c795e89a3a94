#pragma once

// EngineImageBuilder: the LocalImageBuilder that really builds (design.md §6). Each job runs on its
// own thread: ping the engine, check out git.revision with the git CLI into a fresh directory, tar
// git.directory (ustar, .git left out), POST it to the engine's Docker-compatible /build, push
// (Podman's libpod push, or Docker's compat push), and read the pushed digest from the registry's
// own /v2/<name>/manifests/<tag>. Everything HTTP goes through libcurl, to a unix socket or tcp.
//
// Bounded: the whole job by request.timeout; the destructor sets a stop flag that each step checks
// (git is killed, curl transfers abort from their progress callback), so it returns within about a
// second (a job stopped that way ends kFailed with reason Cancelled). Connection failures are
// counted with Metrics::ConnectFailed; BuildFinished and BuildFailed are left to the caller, which
// sees the outcome through Poll(). Thread-safe.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/interfaces/local_image_builder.h"
#include "controller/interfaces/metrics.h"

namespace runway {

class EngineImageBuilder : public LocalImageBuilder {
 public:
  struct Options {
    Metrics* metrics = nullptr;  // not owned; may be null
    // Checkouts go to a fresh directory under this one, removed when the job ends. Empty: the
    // system temporary directory.
    std::string work_root;
    // The registry speaks plain http (and Podman pushes with tlsVerify=false): for loopback
    // registries. Otherwise https with verification.
    bool insecure_registry = false;
    absl::Duration registry_connect_timeout = absl::Seconds(3);
    absl::Duration registry_request_timeout = absl::Seconds(15);
    absl::Duration engine_connect_timeout = absl::Seconds(3);
    // Extra environment for every git command (e.g. GIT_SSH_COMMAND, or GIT_CONFIG_COUNT with
    // GIT_CONFIG_KEY_0=http.extraHeader for credentials: never on the command line).
    std::vector<std::pair<std::string, std::string>> git_env;
    // Accept file:// git urls (tests, local mirrors). The CRD allows only https, ssh and git.
    bool allow_file_urls = false;
  };

  explicit EngineImageBuilder(Options options);
  ~EngineImageBuilder() override;
  EngineImageBuilder(const EngineImageBuilder&) = delete;
  EngineImageBuilder& operator=(const EngineImageBuilder&) = delete;

  // LocalImageBuilder
  absl::StatusOr<std::string> Start(const LocalBuildRequest& request) override;
  absl::StatusOr<LocalBuildState> Poll(const std::string& job_id) override;
  absl::StatusOr<std::string> FindPushed(const std::string& image) override;

 private:
  struct Job {
    std::string id;
    LocalBuildRequest request;
    LocalBuildState state;  // guarded by mutex_
    bool done = false;      // guarded by mutex_; set last, just before the thread returns
    uint64_t sequence = 0;
    std::thread thread;
  };

  void Run(Job* job);
  void Finish(Job* job, LocalBuildState state);
  void ReapFinishedLocked();  // requires mutex_

  Options options_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;  // by id
  uint64_t next_sequence_ = 1;
};

}  // namespace runway
