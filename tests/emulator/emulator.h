#pragma once

// The emulator behind one HTTP port: routes a request to the Cloud Run v2 surface, the Cloud Run
// v1 (Knative) surface, Cloud Build v1, the admin API under /_emulator/, the revision URLs
// (/_run/, /_tag/) and /metrics. Applies injected faults and records every request.
// Thread-safe: one mutex serialises all state.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "controller/interfaces/clock.h"
#include "tests/emulator/build_model.h"
#include "tests/emulator/emulator_common.h"
#include "tests/emulator/run_model.h"

namespace runway::emulator {

// Fails, delays or drops requests matching `method` and `path` (globs; "*" matches all).
struct FaultRule {
  enum class Action { kError, kLatency, kStall, kClose, kRefuse };
  std::string method = "*";
  std::string path = "*";
  int remaining = 1;  // requests still to affect; -1 = until removed
  Action action = Action::kError;
  int http_status = 503;
  std::string message;
  int retry_after_seconds = -1;                   // Retry-After header when >= 0
  absl::Duration latency = absl::ZeroDuration();  // kLatency: added before answering normally
  absl::Duration duration = absl::Seconds(30);    // kStall: hold time; kRefuse: closed time
};

struct RequestLogEntry {
  int64_t seq = 0;
  absl::Time time;
  std::string method, path, query, route;
  int status = 0;
  std::string fault;  // the injected action, if any
};

class Emulator {
 public:
  Emulator(const Clock* clock, uint64_t seed);

  // The URL revision and tag URIs point at, e.g. "http://127.0.0.1:8080".
  void SetBaseUrl(const std::string& base_url);
  void SetMaxBodyBytes(size_t bytes) { max_body_bytes_ = bytes; }
  size_t max_body_bytes() const { return max_body_bytes_; }

  HandlerResult Handle(const EmuRequest& request);

  // YAML or JSON seed document (see docs/emulator.md). Used by --seed and POST /_emulator/seed.
  absl::Status SeedFromText(const std::string& text);
  // The state in the seed format, so a dump can seed another emulator.
  Json DumpState();

 private:
  struct Route;
  struct Counters {
    std::map<std::string, int64_t> by_route;  // "GET v2.services.get"
    std::map<std::string, int64_t> by_path;   // "GET /v2/projects/p/..."
    int64_t reads = 0, writes = 0;
  };

  HandlerResult Dispatch(const EmuRequest& request, std::string& route);
  std::optional<HandlerResult> ApplyFault(const EmuRequest& request, std::string& fault);
  void Record(const EmuRequest& request, const std::string& route, int status,
              const std::string& fault);

  HandlerResult HandleCloudRunV2(const EmuRequest& request, const std::vector<std::string>& parts,
                                 std::string& route);
  HandlerResult HandleKnative(const EmuRequest& request, const std::vector<std::string>& parts,
                              std::string& route);
  HandlerResult HandleRunV1Platform(const EmuRequest& request,
                                    const std::vector<std::string>& parts, std::string& route);
  HandlerResult HandleCloudBuild(const EmuRequest& request, const std::vector<std::string>& parts,
                                 std::string& route);
  HandlerResult HandleAdmin(const EmuRequest& request, const std::vector<std::string>& parts,
                            std::string& route);
  HandlerResult HandleServing(const EmuRequest& request, const std::vector<std::string>& parts,
                              bool by_tag, std::string& route);
  EmuResponse Metrics();
  HandlerResult WaitOperation(const std::string& name, absl::Duration timeout);
  Json OperationJson(const OperationRecord& operation);
  absl::Status SeedLocked(const Json& seed);

  const Clock* clock_;
  mutable absl::Mutex mutex_;
  CloudRunStore run_ ABSL_GUARDED_BY(mutex_);
  CloudBuildStore build_ ABSL_GUARDED_BY(mutex_);
  std::vector<FaultRule> faults_ ABSL_GUARDED_BY(mutex_);
  std::deque<RequestLogEntry> log_ ABSL_GUARDED_BY(mutex_);
  int64_t log_seq_ ABSL_GUARDED_BY(mutex_) = 0;
  Counters counters_ ABSL_GUARDED_BY(mutex_);
  // name{labels} -> value: synthetic per-revision gauges set through the admin API.
  std::map<std::string, double> gauges_ ABSL_GUARDED_BY(mutex_);
  // service/revision/code -> requests served on revision URLs.
  std::map<std::string, int64_t> served_ ABSL_GUARDED_BY(mutex_);
  std::string default_region_ = "us-central1";
  size_t max_body_bytes_ = 8 << 20;
  static constexpr size_t kMaxLogEntries = 200000;
};

}  // namespace runway::emulator
