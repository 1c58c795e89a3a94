#pragma once

// CurlEngineProbe: the ContainerEngineProbe that really talks to the engine (design.md §6): for
// each candidate endpoint, is the command installed, does the socket exist, does a connection
// succeed (unix sockets and tcp through libcurl), does GET /_ping answer 200 and GET /version give
// an API version Runway can use. Each with a short timeout. Classification and explanations are in
// core/engine_candidates.h.

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "controller/core/engine_candidates.h"
#include "controller/interfaces/container_engine_probe.h"

namespace runway {

class CurlEngineProbe : public ContainerEngineProbe {
 public:
  struct Options {
    absl::Duration connect_timeout = absl::Seconds(1);
    absl::Duration request_timeout = absl::Seconds(2);
    std::string min_api_version = "1.24";
    EngineEnvironment environment;
    std::string path;  // PATH, to tell "not installed" from "installed but not running"
  };

  // Options from this process: its environment, uid and PATH.
  static Options FromProcess();

  explicit CurlEngineProbe(Options options);

  // ContainerEngineProbe
  std::vector<EngineProbeResult> Probe(const std::string& runtime) override;

  EngineProbeResult ProbeOne(const EngineCandidate& candidate);

 private:
  bool CommandInstalled(const std::string& command) const;

  Options options_;
};

}  // namespace runway
