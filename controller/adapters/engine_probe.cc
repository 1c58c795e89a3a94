#include "controller/adapters/engine_probe.h"

#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace runway {
namespace {

size_t Collect(char* data, size_t size, size_t count, void* out) {
  std::string* body = static_cast<std::string*>(out);
  if (body->size() < (1 << 20)) body->append(data, size * count);
  return size * count;
}

struct Fetched {
  CURLcode code = CURLE_OK;
  long status = 0;
  long os_errno = 0;
  std::string body;
};

Fetched Get(const EngineCandidate& candidate, const std::string& path,
            const CurlEngineProbe::Options& options) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Fetched out;
  CURL* curl = curl_easy_init();
  if (!curl) {
    out.code = CURLE_FAILED_INIT;
    return out;
  }
  std::string url;
  if (absl::StartsWith(candidate.endpoint, "unix://")) {
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, candidate.endpoint.substr(7).c_str());
    url = absl::StrCat("http://engine", path);
  } else {
    std::string host = candidate.endpoint;
    if (absl::StartsWith(host, "tcp://")) host = host.substr(6);
    url = absl::StrCat("http://", host, path);
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.request_timeout)));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  out.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &out.os_errno);
  curl_easy_cleanup(curl);
  return out;
}

}  // namespace

CurlEngineProbe::Options CurlEngineProbe::FromProcess() {
  Options options;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string text = *entry;
    size_t equals = text.find('=');
    if (equals == std::string::npos) continue;
    std::string name = text.substr(0, equals);
    if (name == "DOCKER_HOST" || name == "CONTAINER_HOST" || name == "XDG_RUNTIME_DIR" ||
        name == "HOME") {
      options.environment.env[name] = text.substr(equals + 1);
    }
  }
  options.environment.uid = static_cast<unsigned>(getuid());
  const char* path = std::getenv("PATH");
  options.path = path ? path : "";
  return options;
}

CurlEngineProbe::CurlEngineProbe(Options options) : options_(std::move(options)) {}

bool CurlEngineProbe::CommandInstalled(const std::string& command) const {
  for (absl::string_view dir : absl::StrSplit(options_.path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", command);
    if (::access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

EngineProbeResult CurlEngineProbe::ProbeOne(const EngineCandidate& candidate) {
  EngineObservation observation;
  observation.min_api_version = options_.min_api_version;
  observation.command_installed = CommandInstalled(candidate.engine);
  if (absl::StartsWith(candidate.endpoint, "unix://")) {
    struct stat info;
    if (::stat(candidate.endpoint.substr(7).c_str(), &info) != 0 && errno == ENOENT) {
      observation.socket_exists = false;
      return ClassifyEngineProbe(candidate, observation);
    }
  }
  Fetched ping = Get(candidate, "/_ping", options_);
  if (ping.code == CURLE_OPERATION_TIMEDOUT) {
    observation.timed_out = true;
    return ClassifyEngineProbe(candidate, observation);
  }
  if (ping.code == CURLE_COULDNT_CONNECT || ping.code == CURLE_COULDNT_RESOLVE_HOST) {
    observation.connect_errno = ping.os_errno != 0 ? static_cast<int>(ping.os_errno) : ECONNREFUSED;
    return ClassifyEngineProbe(candidate, observation);
  }
  if (ping.code != CURLE_OK) {
    observation.response_problem = absl::StrCat("GET /_ping: ", curl_easy_strerror(ping.code));
    observation.ping_status = static_cast<int>(ping.status);
    return ClassifyEngineProbe(candidate, observation);
  }
  observation.ping_status = static_cast<int>(ping.status);
  if (observation.ping_status == 200) {
    Fetched version = Get(candidate, "/version", options_);
    if (version.code == CURLE_OPERATION_TIMEDOUT) {
      observation.timed_out = true;
    } else if (version.code != CURLE_OK || version.status != 200) {
      observation.response_problem = absl::StrCat(
          "GET /version: ", version.code != CURLE_OK ? curl_easy_strerror(version.code)
                                                     : absl::StrCat("HTTP ", version.status));
    } else {
      nlohmann::json body = nlohmann::json::parse(version.body, nullptr, false);
      if (!body.is_object() || !body.contains("ApiVersion") || !body["ApiVersion"].is_string()) {
        observation.response_problem = "GET /version: no ApiVersion in the answer";
      } else {
        observation.api_version = body["ApiVersion"].get<std::string>();
      }
    }
  }
  return ClassifyEngineProbe(candidate, observation);
}

std::vector<EngineProbeResult> CurlEngineProbe::Probe(const std::string& runtime) {
  std::vector<EngineProbeResult> results;
  for (const EngineCandidate& candidate : EngineCandidates(runtime, options_.environment)) {
    results.push_back(ProbeOne(candidate));
  }
  std::stable_partition(results.begin(), results.end(), [](const EngineProbeResult& r) {
    return r.outcome == EngineProbeOutcome::kOk;
  });
  return results;
}

}  // namespace runway
