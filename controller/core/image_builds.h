#pragma once

// ImageBuilds: turns a manifest's spec.build into an image digest to deploy (design.md §5 "Ensure
// image", §6). Never waits on a build: each call looks at the build once and says ready,
// building (call again later), failed (stalled until the spec changes) or retry (the outside
// world failed; back off). No I/O of its own: Cloud Build, the local engine, the probe, metrics
// and the clock are interfaces.
//
// Builder choice (spec.build.builder): cloudBuild never probes; local insists on an engine that
// answers (else Failed/EngineUnavailable with the probe's explanation and fix); auto takes a local
// engine that answers, else Cloud Build, with one WARN line saying why. Probe results are kept for
// `probe_ttl`, so 10,000 services do not probe 10,000 times; every failed candidate of a probe
// that ran is counted in runway_connect_failures_total{target=docker|podman}.
//
// Idempotency: every build carries the tag `src-<hash of spec.build>` (source, repository,
// Dockerfile, timeout). Before creating a Cloud Build, builds.list by that tag adopts a queued,
// working or successful build of the same spec; a local build first asks the registry for
// `<repository>:src-<hash>`. So a restart never builds the same spec twice.
//
// Failures: FAILURE, TIMEOUT and CANCELLED are final for that spec (a spec change makes a new
// tag and a new build). INTERNAL_ERROR and EXPIRED are Google's side: built again, at most
// `max_rebuilds` times per spec (counted from the listed builds, so across restarts too).
//
// Thread-safe; passes for different services may run at once. Two services whose build specs
// are equal share nothing but the tag: each may start a build of it.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/core/desired_service.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/cloud_build_client.h"
#include "controller/interfaces/container_engine_probe.h"
#include "controller/interfaces/local_image_builder.h"
#include "controller/interfaces/metrics.h"

namespace runway {

inline constexpr char kBuilderCloudBuild[] = "cloudBuild";
inline constexpr char kBuilderLocal[] = "local";

// "src-" + 16 hex digits of a stable hash of the build spec (everything but builder/runtime).
std::string BuildSourceTag(const BuildSpec& spec);

struct ImageResolution {
  enum class Kind { kReady, kBuilding, kFailed, kRetry };
  Kind kind = Kind::kBuilding;
  std::string image;     // "<repository>@sha256:...", on kReady
  std::string digest;    // "sha256:...", on kReady
  std::string builder;   // kBuilderCloudBuild or kBuilderLocal, once chosen
  std::string build_id;  // Cloud Build id or local job id
  std::string log_url;
  std::string reason;  // CamelCase, on kFailed and kRetry
  std::string message;
};

class ImageBuilds {
 public:
  struct Options {
    absl::Duration probe_ttl = absl::Seconds(30);
    // Overrides spec.build.runtime when set (the --runtime flag): auto, docker or podman.
    std::string runtime_override;
    int max_rebuilds = 2;  // INTERNAL_ERROR / EXPIRED builds built again per spec
  };

  // `local` and `probe` may be null: then only Cloud Build is available (auto uses it, local
  // fails with the reason). `metrics` may be null.
  ImageBuilds(CloudBuildClient* cloud_build, LocalImageBuilder* local, ContainerEngineProbe* probe,
              Metrics* metrics, const Clock* clock, Options options);

  ImageResolution Resolve(const DesiredService& desired);

  // Drops what is kept for a service that is no longer managed.
  void Forget(const ObjectKey& key);

 private:
  struct Tracked {
    std::string tag;      // the spec this entry is about
    std::string builder;  // chosen builder, empty until chosen
    std::string engine;   // local: docker | podman
    std::string endpoint;
    std::string id;                // build or job id once adopted or started
    bool seen_unfinished = false;  // this process saw the build before its end: count its end
    int rebuilds = 0;
    absl::Time started;
    std::optional<ImageResolution> final;  // kReady, or a kFailed that waits for a spec change
  };
  struct ProbeCache {
    absl::Time at;
    std::vector<EngineProbeResult> results;
  };

  // Picks the builder for `tracked` (sets builder/engine/endpoint) or returns a failure.
  std::optional<ImageResolution> ChooseBuilder(const DesiredService& desired, Tracked& tracked);
  std::vector<EngineProbeResult> ProbeEngines(const std::string& runtime);
  ImageResolution ResolveCloud(const DesiredService& desired, Tracked& tracked);
  ImageResolution FromCloudBuild(const DesiredService& desired, Tracked& tracked,
                                 const BuildState& build);
  ImageResolution StartCloudBuild(const DesiredService& desired, Tracked& tracked);
  ImageResolution ResolveLocal(const DesiredService& desired, Tracked& tracked);
  ImageResolution Ready(const DesiredService& desired, Tracked& tracked, const std::string& digest,
                        const std::string& log_url);
  void CountEnd(Tracked& tracked, const std::string& result, const std::string& reason,
                absl::Duration took);

  CloudBuildClient* const cloud_build_;
  LocalImageBuilder* const local_;
  ContainerEngineProbe* const probe_;
  Metrics* const metrics_;
  const Clock* const clock_;
  const Options options_;

  // Per service; a pass for one service never runs twice at once (work queue), so an entry is
  // copied out, worked on without the lock, and stored back.
  absl::Mutex mutex_;
  std::map<std::string, Tracked> tracked_ ABSL_GUARDED_BY(mutex_);
  absl::Mutex probe_mutex_;  // one probe at a time; the others wait for its result
  std::map<std::string, ProbeCache> probes_ ABSL_GUARDED_BY(probe_mutex_);
};

}  // namespace runway
