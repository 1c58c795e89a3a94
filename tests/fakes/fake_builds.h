#pragma once

// In-memory Cloud Build, local builder, engine probe and metrics for core tests. Builds move only
// when the test says so (Finish), so a test sees every state a pass can meet. Thread-safe.

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "controller/interfaces/cloud_build_client.h"
#include "controller/interfaces/container_engine_probe.h"
#include "controller/interfaces/local_image_builder.h"
#include "controller/interfaces/metrics.h"

namespace runway {

class FakeCloudBuild : public CloudBuildClient {
 public:
  absl::StatusOr<BuildState> CreateBuild(const BuildRequest& request) override {
    absl::MutexLock lock(&mutex_);
    if (absl::Status error = NextError(); !error.ok()) return error;
    BuildState build;
    build.id = absl::StrCat("build-", builds.size() + 1);
    build.status = "QUEUED";
    build.log_url = "https://console.cloud.google.com/cloud-build/builds/" + build.id;
    builds.push_back({build, request});
    return build;
  }
  absl::StatusOr<BuildState> GetBuild(const std::string&, const std::string& id) override {
    absl::MutexLock lock(&mutex_);
    ++gets;
    if (absl::Status error = NextError(); !error.ok()) return error;
    for (const Stored& stored : builds) {
      if (stored.state.id == id) return stored.state;
    }
    return absl::NotFoundError("no build " + id);
  }
  absl::StatusOr<std::vector<BuildState>> ListBuildsByTag(const std::string&,
                                                          const std::string& tag) override {
    absl::MutexLock lock(&mutex_);
    ++lists;
    if (absl::Status error = NextError(); !error.ok()) return error;
    std::vector<BuildState> out;
    for (auto it = builds.rbegin(); it != builds.rend(); ++it) {  // newest first
      for (const std::string& t : it->request.tags) {
        if (t == tag) out.push_back(it->state);
      }
    }
    return out;
  }

  // Moves build `index` (0-based) to `status`; SUCCESS gets a digest.
  void Finish(size_t index, const std::string& status, const std::string& failure_type = "",
              const std::string& detail = "") {
    absl::MutexLock lock(&mutex_);
    BuildState& state = builds.at(index).state;
    state.status = status;
    state.failure_type = failure_type;
    state.failure_detail = detail;
    if (status == "SUCCESS") state.image_digest = "sha256:" + std::string(63, 'c') + "1";
  }
  void FailNext(absl::Status error) {
    absl::MutexLock lock(&mutex_);
    errors_.push_back(std::move(error));
  }
  size_t Created() {
    absl::MutexLock lock(&mutex_);
    return builds.size();
  }

  struct Stored {
    BuildState state;
    BuildRequest request;
  };
  std::vector<Stored> builds;
  int gets = 0, lists = 0;

 private:
  absl::Status NextError() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (errors_.empty()) return absl::OkStatus();
    absl::Status error = errors_.front();
    errors_.pop_front();
    return error;
  }
  absl::Mutex mutex_;
  std::deque<absl::Status> errors_;
};

class FakeEngineProbe : public ContainerEngineProbe {
 public:
  std::vector<EngineProbeResult> Probe(const std::string& runtime) override {
    absl::MutexLock lock(&mutex_);
    ++probes;
    last_runtime = runtime;
    return results;
  }
  std::vector<EngineProbeResult> results;
  int probes = 0;
  std::string last_runtime;

 private:
  absl::Mutex mutex_;
};

class FakeLocalBuilder : public LocalImageBuilder {
 public:
  absl::StatusOr<std::string> Start(const LocalBuildRequest& request) override {
    absl::MutexLock lock(&mutex_);
    requests.push_back(request);
    return absl::StrCat("job-", requests.size());
  }
  absl::StatusOr<LocalBuildState> Poll(const std::string& id) override {
    absl::MutexLock lock(&mutex_);
    auto it = states.find(id);
    if (it == states.end()) return LocalBuildState{};  // running
    return it->second;
  }
  absl::StatusOr<std::string> FindPushed(const std::string& image) override {
    absl::MutexLock lock(&mutex_);
    auto it = pushed.find(image);
    if (it == pushed.end()) return absl::NotFoundError("no tag " + image);
    return it->second;
  }
  std::vector<LocalBuildRequest> requests;
  std::map<std::string, LocalBuildState> states;  // by job id
  std::map<std::string, std::string> pushed;      // image -> digest

 private:
  absl::Mutex mutex_;
};

class RecordingMetrics : public Metrics {
 public:
  void BuildFinished(const std::string& builder, const std::string& result, double) override {
    absl::MutexLock lock(&mutex_);
    ++counts[absl::StrCat("build ", builder, " ", result)];
  }
  void BuildFailed(const std::string& builder, const std::string& reason) override {
    absl::MutexLock lock(&mutex_);
    ++counts[absl::StrCat("failure ", builder, " ", reason)];
  }
  void ConnectFailed(const std::string& target, const std::string& reason) override {
    absl::MutexLock lock(&mutex_);
    ++counts[absl::StrCat("connect ", target, " ", reason)];
  }
  void ReconcileFinished(const std::string& result, double) override { Add("reconcile " + result); }
  void QueueWaited(double) override { Add("queue waited"); }
  void Retried() override { Add("retried"); }
  void DriftDetected() override { Add("drift detected"); }
  void DriftCorrected() override { Add("drift corrected"); }
  void RolledBack(const std::string& reason) override { Add("rollback " + reason); }
  void Add(const std::string& key) {
    absl::MutexLock lock(&mutex_);
    ++counts[key];
  }
  int Count(const std::string& key) {
    absl::MutexLock lock(&mutex_);
    auto it = counts.find(key);
    return it == counts.end() ? 0 : it->second;
  }
  std::map<std::string, int> counts;

 private:
  absl::Mutex mutex_;
};

}  // namespace runway
