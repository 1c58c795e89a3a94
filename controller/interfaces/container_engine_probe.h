#pragma once

// ContainerEngineProbe: finds out whether a local Docker or Podman engine really answers, instead
// of trusting that its command is on PATH (the incident behind Runway). Talks to the engine's API
// socket: GET /_ping, then /version, each with a short timeout. Thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace runway {

enum class EngineProbeOutcome {
  kOk,
  kNotInstalled,
  kSocketMissing,
  kRefused,
  kPermissionDenied,
  kTimeout,
  kBadResponse,
  kApiTooOld,
};

struct EngineProbeResult {
  std::string engine;    // docker or podman
  std::string endpoint;  // unix:///run/podman/podman.sock, tcp://127.0.0.1:PORT, ...
  EngineProbeOutcome outcome = EngineProbeOutcome::kOk;
  std::string api_version;  // on kOk
  std::string explanation;  // what is wrong and how to fix it, e.g. "run `podman machine start`"
};

class ContainerEngineProbe {
 public:
  virtual ~ContainerEngineProbe() = default;
  // Probes every candidate endpoint of `runtime` ("auto", "docker" or "podman") and returns one
  // result per candidate, the first answering one first. Never fails as a whole: an engine that
  // cannot be reached is a result, not an error.
  virtual std::vector<EngineProbeResult> Probe(const std::string& runtime) = 0;
};

}  // namespace runway
