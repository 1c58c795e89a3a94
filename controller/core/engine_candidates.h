#pragma once

// Where a Docker or Podman engine may be listening, and what a failed probe means for the person
// reading the status. Pure: the environment comes in as values, the probe's raw observations
// (command on PATH? socket file present? connect errno? HTTP answer?) come in as a struct.

#include <map>
#include <string>
#include <vector>

#include "controller/interfaces/container_engine_probe.h"

namespace runway {

struct EngineCandidate {
  std::string engine;    // docker | podman
  std::string endpoint;  // unix:///path or tcp://host:port
  std::string origin;    // why it is a candidate: "DOCKER_HOST", "rootful default", ...
};

// What the process sees: environment variables (DOCKER_HOST, CONTAINER_HOST, XDG_RUNTIME_DIR,
// HOME) and its uid.
struct EngineEnvironment {
  std::map<std::string, std::string> env;
  unsigned uid = 0;
};

// Candidates for `runtime` (auto | docker | podman), most specific first: DOCKER_HOST /
// CONTAINER_HOST, then the rootless socket, then the rootful one, then a Podman machine's socket.
// Duplicates are dropped. Unknown runtimes give no candidate.
std::vector<EngineCandidate> EngineCandidates(const std::string& runtime,
                                              const EngineEnvironment& environment);

// What probing one candidate observed.
struct EngineObservation {
  bool command_installed = false;  // `docker` / `podman` found on PATH
  bool socket_exists = true;       // unix sockets only
  int connect_errno = 0;           // 0 when connected
  bool timed_out = false;
  int ping_status = 0;           // HTTP status of GET /_ping, 0 when there was no answer
  std::string api_version;       // from GET /version ("ApiVersion")
  std::string min_api_version;   // what Runway needs, e.g. "1.24"
  std::string response_problem;  // set when /version was not the JSON an engine sends
};

// Classifies one observation and explains it with the fix, e.g. "podman is installed but its
// service is not running (connection refused on unix:///run/podman/podman.sock): run `podman
// machine start`, or `systemctl --user start podman.socket`, or use builder: cloudBuild".
EngineProbeResult ClassifyEngineProbe(const EngineCandidate& candidate,
                                      const EngineObservation& observation);

// "1.41" >= "1.24"? Dotted numeric comparison; malformed versions compare as too old.
bool ApiVersionAtLeast(const std::string& version, const std::string& minimum);

const char* EngineOutcomeName(EngineProbeOutcome outcome);

}  // namespace runway
