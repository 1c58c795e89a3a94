#include "controller/core/image_builds.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/core/engine_candidates.h"
#include "controller/core/stable_hash.h"
#include "spdlog/spdlog.h"

namespace runway {
namespace {

using Kind = ImageResolution::Kind;

const char* RuntimeName(EngineRuntime runtime) {
  switch (runtime) {
    case EngineRuntime::kDocker:
      return "docker";
    case EngineRuntime::kPodman:
      return "podman";
    case EngineRuntime::kAuto:
      break;
  }
  return "auto";
}

ImageResolution Resolution(Kind kind, const std::string& builder, const std::string& reason,
                           const std::string& message) {
  ImageResolution out;
  out.kind = kind;
  out.builder = builder;
  out.reason = reason;
  out.message = message;
  return out;
}

// Transient failures of Cloud Build's API are retried with backoff; anything else (permission,
// invalid request) waits for a change.
ImageResolution FromApiError(const absl::Status& status, const std::string& what) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kNotFound:         // a build that vanished: list by tag again
    case absl::StatusCode::kUnauthenticated:  // a token that failed to refresh
      return Resolution(Kind::kRetry, kBuilderCloudBuild, "CloudBuildUnavailable",
                        absl::StrCat(what, ": ", status.message(), "; will retry"));
    default:
      return Resolution(Kind::kFailed, kBuilderCloudBuild, "CloudBuildRejected",
                        absl::StrCat(what, ": ", status.message()));
  }
}

bool Unfinished(const BuildState& build) {
  return build.status == "PENDING" || build.status == "QUEUED" || build.status == "WORKING" ||
         build.status == "STATUS_UNKNOWN" || build.status.empty();
}

// Google's side failed: building the same spec again may well work.
bool Rebuildable(const std::string& status) {
  return status == "INTERNAL_ERROR" || status == "EXPIRED";
}

std::string FailureReason(const BuildState& build) {
  if (build.status == "TIMEOUT") return "Timeout";
  if (build.status == "INTERNAL_ERROR") return "InternalError";
  if (build.status == "CANCELLED") return "Cancelled";
  if (build.status == "EXPIRED") return "Expired";
  if (build.failure_type.rfind("PUSH_", 0) == 0) return "PushFailed";
  if (build.failure_type == "FETCH_SOURCE_FAILED") return "SourceFetchFailed";
  return "BuildFailed";
}

std::string DescribeBuild(const BuildState& build) {
  std::string text = absl::StrCat("Cloud Build ", build.id, " ended ", build.status);
  if (!build.failure_type.empty() || !build.failure_detail.empty()) {
    absl::StrAppend(&text, " (", build.failure_type,
                    build.failure_type.empty() || build.failure_detail.empty() ? "" : ": ",
                    build.failure_detail, ")");
  }
  if (!build.log_url.empty()) absl::StrAppend(&text, "; logs: ", build.log_url);
  return text;
}

}  // namespace

std::string BuildSourceTag(const BuildSpec& spec) {
  std::string canonical;
  if (spec.git) {
    AppendHashField(canonical, "git", spec.git->url);
    AppendHashField(canonical, "revision", spec.git->revision);
    AppendHashField(canonical, "dir", spec.git->directory);
  }
  if (spec.storage) {
    AppendHashField(canonical, "bucket", spec.storage->bucket);
    AppendHashField(canonical, "object", spec.storage->object);
    AppendHashField(canonical, "generation",
                    spec.storage->generation ? absl::StrCat(*spec.storage->generation) : "");
  }
  AppendHashField(canonical, "repository", spec.repository);
  AppendHashField(canonical, "dockerfile", spec.dockerfile);
  AppendHashField(canonical, "timeout", absl::StrCat(absl::ToInt64Seconds(spec.timeout)));
  char hash[20];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(StableHash(canonical)));
  return absl::StrCat("src-", hash);
}

ImageBuilds::ImageBuilds(CloudBuildClient* cloud_build, LocalImageBuilder* local,
                         ContainerEngineProbe* probe, Metrics* metrics, const Clock* clock,
                         Options options)
    : cloud_build_(cloud_build),
      local_(local),
      probe_(probe),
      metrics_(metrics),
      clock_(clock),
      options_(std::move(options)) {}

void ImageBuilds::Forget(const ObjectKey& key) {
  absl::MutexLock lock(&mutex_);
  tracked_.erase(key.ToString());
}

ImageResolution ImageBuilds::Resolve(const DesiredService& desired) {
  const BuildSpec& spec = *desired.build;
  const std::string tag = BuildSourceTag(spec);
  Tracked tracked;
  {
    absl::MutexLock lock(&mutex_);
    auto it = tracked_.find(desired.key.ToString());
    if (it != tracked_.end() && it->second.tag == tag) {
      if (it->second.final) return *it->second.final;
      tracked = it->second;
    }
  }
  tracked.tag = tag;
  std::optional<ImageResolution> out;
  if (tracked.builder.empty()) out = ChooseBuilder(desired, tracked);
  if (!out) {
    out = tracked.builder == kBuilderLocal ? ResolveLocal(desired, tracked)
                                           : ResolveCloud(desired, tracked);
  }
  absl::MutexLock lock(&mutex_);
  tracked_[desired.key.ToString()] = std::move(tracked);
  return *out;
}

std::vector<EngineProbeResult> ImageBuilds::ProbeEngines(const std::string& runtime) {
  absl::MutexLock lock(&probe_mutex_);
  const absl::Time now = clock_->Now();
  auto it = probes_.find(runtime);
  if (it != probes_.end() && now - it->second.at < options_.probe_ttl) return it->second.results;
  std::vector<EngineProbeResult> results = probe_->Probe(runtime);
  for (const EngineProbeResult& result : results) {
    if (result.outcome == EngineProbeOutcome::kOk ||
        result.outcome == EngineProbeOutcome::kNotInstalled) {
      continue;  // an engine that is not installed is no failed connection
    }
    if (metrics_) metrics_->ConnectFailed(result.engine, EngineOutcomeName(result.outcome));
  }
  probes_[runtime] = ProbeCache{now, results};
  return results;
}

std::optional<ImageResolution> ImageBuilds::ChooseBuilder(const DesiredService& desired,
                                                          Tracked& tracked) {
  const BuildSpec& spec = *desired.build;
  if (spec.builder == Builder::kCloudBuild) {
    tracked.builder = kBuilderCloudBuild;
    return std::nullopt;
  }
  const bool insist = spec.builder == Builder::kLocal;
  std::string why_not;
  if (!spec.git) {
    why_not = "a local build needs spec.build.source.git (storage sources build in Cloud Build)";
  } else if (local_ == nullptr || probe_ == nullptr) {
    why_not = "local builds are not enabled in this Runway";
  } else {
    const std::string runtime =
        options_.runtime_override.empty() ? RuntimeName(spec.runtime) : options_.runtime_override;
    std::vector<EngineProbeResult> results = ProbeEngines(runtime);
    for (const EngineProbeResult& result : results) {
      if (result.outcome == EngineProbeOutcome::kOk) {
        tracked.builder = kBuilderLocal;
        tracked.engine = result.engine;
        tracked.endpoint = result.endpoint;
        return std::nullopt;
      }
    }
    std::vector<std::string> explanations;
    for (const EngineProbeResult& result : results) {
      if (result.outcome != EngineProbeOutcome::kNotInstalled || explanations.empty()) {
        explanations.push_back(result.explanation);
      }
    }
    why_not = explanations.empty() ? absl::StrCat("no ", runtime, " engine is configured")
                                   : absl::StrCat("no local container engine answers: ",
                                                  absl::StrJoin(explanations, "; "));
  }
  if (insist) {
    return Resolution(Kind::kFailed, kBuilderLocal, "EngineUnavailable",
                      absl::StrCat("spec.build.builder is local but ", why_not,
                                   ". Fix the engine or set builder: cloudBuild (or auto)"));
  }
  SPDLOG_WARN("{}: building with Cloud Build: {}", desired.key.ToString(), why_not);
  tracked.builder = kBuilderCloudBuild;
  return std::nullopt;
}

ImageResolution ImageBuilds::Ready(const DesiredService& desired, Tracked& tracked,
                                   const std::string& digest, const std::string& log_url) {
  ImageResolution out =
      Resolution(Kind::kReady, tracked.builder, "Built",
                 absl::StrCat("built ", desired.build->repository, "@", digest, " (",
                              tracked.builder, tracked.id.empty() ? "" : " ", tracked.id, ")"));
  out.image = absl::StrCat(desired.build->repository, "@", digest);
  out.digest = digest;
  out.build_id = tracked.id;
  out.log_url = log_url;
  tracked.final = out;
  return out;
}

void ImageBuilds::CountEnd(Tracked& tracked, const std::string& result, const std::string& reason,
                           absl::Duration took) {
  if (!tracked.seen_unfinished || metrics_ == nullptr) return;  // a build found finished
  tracked.seen_unfinished = false;
  metrics_->BuildFinished(tracked.builder, result, absl::ToDoubleSeconds(took));
  if (!reason.empty()) metrics_->BuildFailed(tracked.builder, reason);
}

// ---- Cloud Build ---------------------------------------------------------------------------

ImageResolution ImageBuilds::ResolveCloud(const DesiredService& desired, Tracked& tracked) {
  const std::string& project = desired.target.project;
  if (!tracked.id.empty()) {
    absl::StatusOr<BuildState> build = cloud_build_->GetBuild(project, tracked.id);
    if (build.ok()) return FromCloudBuild(desired, tracked, *build);
    ImageResolution out =
        FromApiError(build.status(), absl::StrCat("reading Cloud Build ", tracked.id));
    if (build.status().code() == absl::StatusCode::kNotFound) tracked.id.clear();  // list again
    return out;
  }
  absl::StatusOr<std::vector<BuildState>> builds =
      cloud_build_->ListBuildsByTag(project, tracked.tag);
  if (!builds.ok()) {
    return FromApiError(builds.status(), absl::StrCat("looking for builds tagged ", tracked.tag));
  }
  int rebuilt = 0;
  for (const BuildState& build : *builds) {  // newest first
    if (Unfinished(build) || build.status == "SUCCESS") {
      tracked.id = build.id;
      tracked.seen_unfinished = Unfinished(build);
      tracked.started = build.create_time.value_or(clock_->Now());
      return FromCloudBuild(desired, tracked, build);
    }
    if (Rebuildable(build.status)) {
      ++rebuilt;
      continue;
    }
    tracked.id = build.id;  // a final failure of this very spec: never built again
    return FromCloudBuild(desired, tracked, build);
  }
  tracked.rebuilds = rebuilt;
  if (rebuilt > options_.max_rebuilds) {
    tracked.id = builds->front().id;
    return FromCloudBuild(desired, tracked, builds->front());
  }
  return StartCloudBuild(desired, tracked);
}

ImageResolution ImageBuilds::StartCloudBuild(const DesiredService& desired, Tracked& tracked) {
  const BuildSpec& spec = *desired.build;
  BuildRequest request;
  request.project = desired.target.project;
  request.git = spec.git;
  request.storage = spec.storage;
  request.dockerfile = spec.dockerfile.empty() ? "Dockerfile" : spec.dockerfile;
  request.image = absl::StrCat(spec.repository, ":", tracked.tag);
  request.tags = {"runway", absl::StrCat("svc-", desired.target.service), tracked.tag};
  request.timeout = spec.timeout;
  absl::StatusOr<BuildState> build = cloud_build_->CreateBuild(request);
  if (!build.ok()) {
    // The next pass lists by tag first, so a create whose answer was lost is found, not repeated.
    return FromApiError(build.status(), absl::StrCat("starting a Cloud Build of ", tracked.tag));
  }
  SPDLOG_INFO("{}: started Cloud Build {} for {}", desired.key.ToString(), build->id,
              request.image);
  tracked.id = build->id;
  tracked.seen_unfinished = true;
  tracked.started = clock_->Now();
  return FromCloudBuild(desired, tracked, *build);
}

ImageResolution ImageBuilds::FromCloudBuild(const DesiredService& desired, Tracked& tracked,
                                            const BuildState& build) {
  if (!build.Terminal()) {
    ImageResolution out =
        Resolution(Kind::kBuilding, kBuilderCloudBuild, "Building",
                   absl::StrCat("Cloud Build ", build.id, " is ",
                                build.status.empty() ? "QUEUED" : build.status,
                                build.log_url.empty() ? "" : "; logs: ", build.log_url));
    out.build_id = build.id;
    out.log_url = build.log_url;
    return out;
  }
  const absl::Duration took = build.create_time && build.finish_time
                                  ? *build.finish_time - *build.create_time
                                  : clock_->Now() - tracked.started;
  if (build.status == "SUCCESS") {
    if (build.image_digest.empty()) {
      CountEnd(tracked, "failure", "NoDigest", took);
      ImageResolution out = Resolution(Kind::kFailed, kBuilderCloudBuild, "NoDigest",
                                       absl::StrCat("Cloud Build ", build.id,
                                                    " succeeded but reported no image digest in "
                                                    "results.images; check that the build pushes ",
                                                    desired.build->repository));
      tracked.final = out;
      return out;
    }
    CountEnd(tracked, "success", "", took);
    return Ready(desired, tracked, build.image_digest, build.log_url);
  }
  const std::string reason = FailureReason(build);
  CountEnd(tracked, "failure", reason, took);
  if (Rebuildable(build.status) && tracked.rebuilds < options_.max_rebuilds) {
    ++tracked.rebuilds;
    tracked.id.clear();
    ImageResolution out =
        Resolution(Kind::kRetry, kBuilderCloudBuild, reason,
                   absl::StrCat(DescribeBuild(build), "; building again (", tracked.rebuilds,
                                " of ", options_.max_rebuilds, ")"));
    out.log_url = build.log_url;
    return out;
  }
  ImageResolution out =
      Resolution(Kind::kFailed, kBuilderCloudBuild, reason,
                 absl::StrCat(DescribeBuild(build), ". Not built again until spec.build changes"));
  out.build_id = build.id;
  out.log_url = build.log_url;
  tracked.final = out;
  return out;
}

// ---- local engine --------------------------------------------------------------------------

ImageResolution ImageBuilds::ResolveLocal(const DesiredService& desired, Tracked& tracked) {
  const BuildSpec& spec = *desired.build;
  const std::string image = absl::StrCat(spec.repository, ":", tracked.tag);
  if (tracked.id.empty()) {
    absl::StatusOr<std::string> pushed = local_->FindPushed(image);
    if (pushed.ok()) return Ready(desired, tracked, *pushed, "");
    if (pushed.status().code() != absl::StatusCode::kNotFound) {
      return Resolution(Kind::kRetry, kBuilderLocal, "RegistryUnavailable",
                        absl::StrCat("asking the registry for ", image, ": ",
                                     pushed.status().message(), "; will retry"));
    }
    LocalBuildRequest request;
    request.engine = tracked.engine;
    request.engine_endpoint = tracked.endpoint;
    request.git = *spec.git;
    request.dockerfile = spec.dockerfile.empty() ? "Dockerfile" : spec.dockerfile;
    request.image = image;
    request.timeout = spec.timeout;
    absl::StatusOr<std::string> job = local_->Start(request);
    if (!job.ok()) {
      ImageResolution out = Resolution(
          Kind::kFailed, kBuilderLocal, "BuildRejected",
          absl::StrCat("starting a local build of ", image, ": ", job.status().message()));
      tracked.final = out;
      return out;
    }
    SPDLOG_INFO("{}: building {} with {} at {}", desired.key.ToString(), image, tracked.engine,
                tracked.endpoint);
    tracked.id = *job;
    tracked.seen_unfinished = true;
    tracked.started = clock_->Now();
  }
  absl::StatusOr<LocalBuildState> state = local_->Poll(tracked.id);
  if (!state.ok()) {  // the job is gone (e.g. the builder was replaced): look again
    tracked.id.clear();
    return Resolution(Kind::kRetry, kBuilderLocal, "BuildLost",
                      absl::StrCat("local build of ", image, ": ", state.status().message()));
  }
  const absl::Duration took = clock_->Now() - tracked.started;
  switch (state->phase) {
    case LocalBuildState::Phase::kRunning: {
      ImageResolution out = Resolution(
          Kind::kBuilding, kBuilderLocal, "Building",
          absl::StrCat("building ", image, " with ", tracked.engine, " at ", tracked.endpoint));
      out.build_id = tracked.id;
      return out;
    }
    case LocalBuildState::Phase::kSucceeded:
      CountEnd(tracked, "success", "", took);
      return Ready(desired, tracked, state->digest, "");
    case LocalBuildState::Phase::kFailed:
      break;
  }
  CountEnd(tracked, "failure", state->reason, took);
  if (state->reason == "EngineUnavailable") {
    // The engine went away mid-build: choose again (auto may fall back to Cloud Build).
    {
      absl::MutexLock lock(&probe_mutex_);
      probes_.clear();
    }
    tracked.builder.clear();
    tracked.id.clear();
    return Resolution(Kind::kRetry, kBuilderLocal, "EngineUnavailable",
                      absl::StrCat("local build of ", image, ": ", state->detail));
  }
  ImageResolution out = Resolution(
      Kind::kFailed, kBuilderLocal, state->reason.empty() ? "BuildFailed" : state->reason,
      absl::StrCat("local build of ", image, " with ", tracked.engine, " failed: ", state->detail,
                   ". Not built again until spec.build changes"));
  out.build_id = tracked.id;
  tracked.final = out;
  return out;
}

}  // namespace runway
