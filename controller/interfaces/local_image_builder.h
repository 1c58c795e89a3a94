#pragma once

// LocalImageBuilder: builds an image with a local Docker or Podman engine (through its API socket,
// the one ContainerEngineProbe found answering), pushes it to a registry, and reports the pushed
// digest. Builds run in the background: Start() returns at once and Poll() tells how far the build
// is, so a reconcile pass never waits on a build (design.md §5). Thread-safe.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/core/desired_service.h"

namespace runway {

struct LocalBuildRequest {
  std::string engine;                     // "docker" or "podman", as ContainerEngineProbe named it
  std::string engine_endpoint;            // unix:///path/to.sock or tcp://host:port
  GitSource git;                          // cloned with the git CLI and checked out at git.revision
  std::string dockerfile = "Dockerfile";  // relative to the context (git.directory)
  // Pushed here: "<repository>:<tag>", e.g. "127.0.0.1:5000/demo/api:src-0123abcd".
  std::string image;
  absl::Duration timeout = absl::Minutes(20);  // checkout + build + push
};

struct LocalBuildState {
  enum class Phase { kRunning, kSucceeded, kFailed };
  Phase phase = Phase::kRunning;
  std::string digest;  // "sha256:...", the registry's manifest digest, on kSucceeded
  // On kFailed: a reason (CheckoutFailed, BuildFailed, PushFailed, EngineUnavailable, Timeout)
  // and one or two sentences saying what went wrong, quoting the engine's last error line.
  std::string reason;
  std::string detail;
};

class LocalImageBuilder {
 public:
  virtual ~LocalImageBuilder() = default;
  // Starts a build and returns its job id. Starting the same `image` again while a build of it is
  // running returns that build's id (no second build). kInvalidArgument for a malformed request.
  virtual absl::StatusOr<std::string> Start(const LocalBuildRequest& request) = 0;
  // The state of a started build; kNotFound for an unknown job id.
  virtual absl::StatusOr<LocalBuildState> Poll(const std::string& job_id) = 0;
  // The digest the registry serves for `image` ("<repository>:<tag>"), so a restarted controller
  // finds a pushed build again instead of building twice. kNotFound when the registry has no such
  // tag; kUnavailable when the registry cannot be reached.
  virtual absl::StatusOr<std::string> FindPushed(const std::string& image) = 0;
};

}  // namespace runway
