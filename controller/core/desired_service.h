#pragma once

// The desired state of one Cloud Run service, as a CloudRunService manifest states it after
// schema validation and defaulting. Plain values: no I/O, no JSON, no YAML. The CRD in
// crd/cloudrunservices.runway.dev.yaml is the schema's source of truth; keep this in step with it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace runway {

// The traffic target name for "the revision made from this spec".
inline constexpr char kNewRevision[] = "@new";

enum class Builder { kAuto, kCloudBuild, kLocal };
enum class EngineRuntime { kAuto, kDocker, kPodman };
enum class RolloutStrategy { kDirect, kCanary, kManual };
enum class DriftPolicy { kEnforce, kWarn, kIgnore };
enum class InconclusivePolicy { kPause, kFail };

// namespace/name of one CloudRunService: the work-queue item of later issues.
struct ObjectKey {
  std::string name_space;
  std::string name;

  std::string ToString() const { return name_space + "/" + name; }
  friend bool operator==(const ObjectKey&, const ObjectKey&) = default;
  friend auto operator<=>(const ObjectKey&, const ObjectKey&) = default;
};

// Where a service lives in Cloud Run. Two manifests must never name the same one.
struct CloudRunServiceName {
  std::string project;
  std::string region;
  std::string service;

  // projects/{project}/locations/{region}/services/{service}, as the v2 API names it.
  std::string ResourceName() const {
    return "projects/" + project + "/locations/" + region + "/services/" + service;
  }
  friend bool operator==(const CloudRunServiceName&, const CloudRunServiceName&) = default;
  friend auto operator<=>(const CloudRunServiceName&, const CloudRunServiceName&) = default;
};

struct GitSource {
  std::string url;
  std::string revision;  // full commit SHA
  std::string directory;
};

struct StorageSource {
  std::string bucket;
  std::string object;
  std::optional<int64_t> generation;
};

struct BuildSpec {
  std::optional<GitSource> git;
  std::optional<StorageSource> storage;
  std::string repository;
  std::string dockerfile;
  Builder builder = Builder::kAuto;
  EngineRuntime runtime = EngineRuntime::kAuto;
  absl::Duration timeout = absl::Minutes(20);
};

struct SecretRef {
  std::string name;
  std::string version;
};

struct EnvVar {
  std::string name;
  std::optional<std::string> value;
  std::optional<SecretRef> secret;
};

struct RevisionTemplate {
  int container_port = 8080;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  int min_instances = 0;
  int max_instances = 100;
  std::optional<std::string> cpu;
  std::optional<std::string> memory;
  std::optional<int> concurrency;
  std::optional<absl::Duration> request_timeout;
  std::optional<std::string> service_account;
  std::map<std::string, std::string> labels;
};

struct TrafficTarget {
  std::string revision;  // kNewRevision or an existing revision name
  int percent = 0;
  std::string tag;  // empty when untagged

  bool IsNew() const { return revision == kNewRevision; }
};

struct CanaryStep {
  int percent = 0;
  absl::Duration pause = absl::Minutes(1);
};

struct VerifySpec {
  std::string path = "/";
  int expect_status = 200;
  absl::Duration timeout = absl::Seconds(5);
  int retries = 2;
};

struct AnalysisSpec {
  std::string prometheus_address;
  std::string query;
  std::optional<double> max_value;
  std::optional<double> min_value;
  absl::Duration interval = absl::Minutes(1);
  int failure_limit = 0;
  int consecutive_error_limit = 4;
  InconclusivePolicy inconclusive = InconclusivePolicy::kPause;
  bool dry_run = false;
};

struct RolloutSpec {
  RolloutStrategy strategy = RolloutStrategy::kDirect;
  std::vector<CanaryStep> steps;
  std::optional<VerifySpec> verify;
  std::optional<AnalysisSpec> analysis;
  absl::Duration progress_deadline = absl::Minutes(10);
};

struct DesiredService {
  ObjectKey key;
  int64_t generation = 0;  // metadata.generation for custom resources; 0 in file mode
  CloudRunServiceName target;
  std::optional<std::string> image;  // pinned by digest; exactly one of image and build
  std::optional<BuildSpec> build;
  RevisionTemplate revision_template;
  std::vector<TrafficTarget> traffic;
  RolloutSpec rollout;
  DriftPolicy drift_policy = DriftPolicy::kEnforce;
  bool suspend = false;
};

}  // namespace runway
