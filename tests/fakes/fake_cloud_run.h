#pragma once

// An in-memory CloudRunClient for core tests: keeps LiveServices, applies updates the way Cloud
// Run does in the simple case (a new template becomes Ready at once, traffic is served as
// written), counts calls, and fails the next calls with scripted errors.

#include <deque>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "controller/core/reconcile_decision.h"
#include "controller/interfaces/cloud_run_client.h"

namespace runway {

class FakeCloudRun : public CloudRunClient {
 public:
  absl::StatusOr<LiveServicePage> ListServices(const std::string& project,
                                               const std::string& region,
                                               const std::string&) override {
    absl::MutexLock lock(&mutex_);
    ++lists;
    if (absl::Status error = NextError(); !error.ok()) return error;
    LiveServicePage page;
    for (const auto& [name, service] : services) {
      if (name.project == project && name.region == region) page.services.push_back(service);
    }
    return page;
  }

  absl::StatusOr<LiveService> GetService(const CloudRunServiceName& name) override {
    absl::MutexLock lock(&mutex_);
    ++gets;
    if (absl::Status error = NextError(); !error.ok()) return error;
    auto it = services.find(name);
    if (it == services.end()) return absl::NotFoundError("no such service");
    return it->second;
  }

  absl::StatusOr<OperationState> UpdateService(const ServiceUpdate& update) override {
    absl::MutexLock lock(&mutex_);
    if (absl::Status error = NextError(); !error.ok()) return error;
    LiveService& live = services[update.name];
    if (!update.etag.empty() && update.etag != live.etag) return absl::AbortedError("stale etag");
    ++writes;
    live.name = update.name;
    live.etag = "\"" + std::to_string(++version_) + "\"";
    ++live.generation;
    live.observed_generation = live.generation;
    live.terminal_state = "CONDITION_SUCCEEDED";
    if (update.revision_name) {
      live.template_revision = live.latest_created_revision = live.latest_ready_revision =
          *update.revision_name;
      if (update.image) live.image = *update.image;
    }
    if (update.traffic) live.traffic = live.traffic_statuses = *update.traffic;
    if (!update.annotations.empty()) live.annotations = update.annotations;
    return OperationState{"operations/" + std::to_string(version_), true, absl::OkStatus()};
  }

  absl::StatusOr<OperationState> GetOperation(const std::string& name) override {
    return OperationState{name, true, absl::OkStatus()};
  }

  void FailNext(absl::Status error) {
    absl::MutexLock lock(&mutex_);
    errors_.push_back(std::move(error));
  }

  std::map<CloudRunServiceName, LiveService> services;
  int lists = 0, gets = 0, writes = 0;

 private:
  absl::Status NextError() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (errors_.empty()) return absl::OkStatus();
    absl::Status error = errors_.front();
    errors_.pop_front();
    return error;
  }

  absl::Mutex mutex_;
  std::deque<absl::Status> errors_;
  int version_ = 0;
};

}  // namespace runway
