#include "controller/core/engine_candidates.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace runway {
namespace {

std::string Env(const EngineEnvironment& environment, const std::string& name) {
  auto it = environment.env.find(name);
  return it == environment.env.end() ? "" : it->second;
}

std::string RuntimeDir(const EngineEnvironment& environment) {
  std::string dir = Env(environment, "XDG_RUNTIME_DIR");
  return dir.empty() ? absl::StrCat("/run/user/", environment.uid) : dir;
}

std::string HowToStart(const EngineCandidate& candidate) {
  if (candidate.engine == "podman") {
    return "run `podman machine start` (macOS/Windows), or `systemctl --user start podman.socket` "
           "(rootless) / `systemctl start podman.socket` (rootful), or set builder: cloudBuild";
  }
  return "run `systemctl start docker` (or start Docker Desktop), or set builder: cloudBuild";
}

}  // namespace

std::vector<EngineCandidate> EngineCandidates(const std::string& runtime,
                                              const EngineEnvironment& environment) {
  std::vector<EngineCandidate> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& engine, const std::string& endpoint,
                 const std::string& origin) {
    if (endpoint.empty() || !seen.insert(endpoint).second) return;
    out.push_back({engine, endpoint, origin});
  };
  bool docker = runtime == "auto" || runtime == "docker";
  bool podman = runtime == "auto" || runtime == "podman";
  std::string runtime_dir = RuntimeDir(environment);
  std::string home = Env(environment, "HOME");
  if (podman) add("podman", Env(environment, "CONTAINER_HOST"), "CONTAINER_HOST");
  if (docker) add("docker", Env(environment, "DOCKER_HOST"), "DOCKER_HOST");
  if (podman) {
    if (environment.uid != 0) {
      add("podman", absl::StrCat("unix://", runtime_dir, "/podman/podman.sock"),
          "rootless default");
    }
    add("podman", "unix:///run/podman/podman.sock", "rootful default");
    if (!home.empty()) {
      add("podman",
          absl::StrCat("unix://", home, "/.local/share/containers/podman/machine/podman.sock"),
          "Podman machine");
    }
  }
  if (docker) {
    if (environment.uid != 0) {
      add("docker", absl::StrCat("unix://", runtime_dir, "/docker.sock"), "rootless default");
    }
    add("docker", "unix:///var/run/docker.sock", "rootful default");
  }
  return out;
}

bool ApiVersionAtLeast(const std::string& version, const std::string& minimum) {
  std::vector<std::string> have = absl::StrSplit(version, '.');
  std::vector<std::string> want = absl::StrSplit(minimum, '.');
  for (size_t i = 0; i < want.size(); ++i) {
    int h = 0, w = 0;
    if (i >= have.size() || !absl::SimpleAtoi(have[i], &h)) return false;
    if (!absl::SimpleAtoi(want[i], &w)) return true;
    if (h != w) return h > w;
  }
  return true;
}

const char* EngineOutcomeName(EngineProbeOutcome outcome) {
  switch (outcome) {
    case EngineProbeOutcome::kOk:
      return "ok";
    case EngineProbeOutcome::kNotInstalled:
      return "not-installed";
    case EngineProbeOutcome::kSocketMissing:
      return "socket-missing";
    case EngineProbeOutcome::kRefused:
      return "refused";
    case EngineProbeOutcome::kPermissionDenied:
      return "permission-denied";
    case EngineProbeOutcome::kTimeout:
      return "timeout";
    case EngineProbeOutcome::kBadResponse:
      return "bad-response";
    case EngineProbeOutcome::kApiTooOld:
      return "api-too-old";
  }
  return "unknown";
}

EngineProbeResult ClassifyEngineProbe(const EngineCandidate& candidate,
                                      const EngineObservation& observation) {
  EngineProbeResult result;
  result.engine = candidate.engine;
  result.endpoint = candidate.endpoint;
  const std::string& e = candidate.engine;
  const std::string where = absl::StrCat(candidate.endpoint, " (", candidate.origin, ")");
  bool unix_socket = absl::StartsWith(candidate.endpoint, "unix://");
  if (unix_socket && !observation.socket_exists) {
    if (!observation.command_installed) {
      result.outcome = EngineProbeOutcome::kNotInstalled;
      result.explanation =
          absl::StrCat(e, " is not installed (no `", e, "` on PATH and no socket at ", where,
                       "): install it, or set builder: cloudBuild");
      return result;
    }
    result.outcome = EngineProbeOutcome::kSocketMissing;
    result.explanation = absl::StrCat(e, " is installed but its API socket does not exist at ",
                                      where, ": ", HowToStart(candidate));
    return result;
  }
  if (observation.connect_errno == ECONNREFUSED) {
    result.outcome = EngineProbeOutcome::kRefused;
    result.explanation =
        absl::StrCat(e, observation.command_installed ? " is installed but its" : "'s",
                     " service is not running (connection refused on ", where,
                     "; a socket file left by a stopped service): ", HowToStart(candidate));
    return result;
  }
  if (observation.connect_errno == ENOENT) {
    result.outcome = EngineProbeOutcome::kSocketMissing;
    result.explanation =
        absl::StrCat(e, "'s API socket does not exist at ", where, ": ", HowToStart(candidate));
    return result;
  }
  if (observation.connect_errno == EACCES || observation.connect_errno == EPERM) {
    result.outcome = EngineProbeOutcome::kPermissionDenied;
    result.explanation = absl::StrCat(
        "permission denied on ", where, ": add this user to the `", e,
        "` group (or run rootless and use the rootless socket), or set builder: cloudBuild");
    return result;
  }
  if (observation.timed_out) {
    result.outcome = EngineProbeOutcome::kTimeout;
    result.explanation = absl::StrCat(e, " did not answer GET /_ping on ", where,
                                      " in time: the engine is hung or overloaded; restart it, or "
                                      "set builder: cloudBuild");
    return result;
  }
  if (observation.connect_errno != 0) {
    result.outcome = EngineProbeOutcome::kRefused;
    result.explanation =
        absl::StrCat("cannot connect to ", e, " on ", where, " (",
                     std::strerror(observation.connect_errno), "): ", HowToStart(candidate));
    return result;
  }
  if (observation.ping_status != 200 || !observation.response_problem.empty()) {
    result.outcome = EngineProbeOutcome::kBadResponse;
    result.explanation = absl::StrCat(
        "something answers on ", where, " but not like a ", e, " engine (",
        observation.ping_status != 200 ? absl::StrCat("GET /_ping: HTTP ", observation.ping_status)
                                       : observation.response_problem,
        "): check that the endpoint is the engine's API socket");
    return result;
  }
  if (!ApiVersionAtLeast(observation.api_version, observation.min_api_version)) {
    result.outcome = EngineProbeOutcome::kApiTooOld;
    result.api_version = observation.api_version;
    result.explanation = absl::StrCat(e, " on ", where, " speaks API ", observation.api_version,
                                      "; Runway needs ", observation.min_api_version,
                                      " or newer: upgrade it, or set builder: cloudBuild");
    return result;
  }
  result.outcome = EngineProbeOutcome::kOk;
  result.api_version = observation.api_version;
  result.explanation =
      absl::StrCat(e, " answers on ", where, " (API ", observation.api_version, ")");
  return result;
}

}  // namespace runway
