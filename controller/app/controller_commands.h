#pragma once

// The commands that talk to Cloud Run: `plan`, `apply`, `run` (the controller) and `status`.
// Each builds the adapters (HTTP transport, token source, Cloud Run client, manifest source,
// status store) from its flags and hands them to the core.

#include <ostream>
#include <string>
#include <vector>

namespace runway {

// Flags shared by every command that reaches Cloud Run.
struct CloudRunFlags {
  std::string endpoint = "https://run.googleapis.com/";
  std::string token_source = "auto";  // auto | none | file | metadata | gcloud
  std::string token_file;
  std::string timeout = "30s";
  double writes_per_minute = 60;
  double reads_per_minute = 600;
  std::string cloudbuild_endpoint = "https://cloudbuild.googleapis.com/";
};

struct ControllerFlags {
  std::vector<std::string> paths;
  CloudRunFlags cloud_run;
  int workers = 4;
  std::string resync = "5m";
  std::string poll_interval = "2s";
  std::string state_dir = ".runway/status";
  std::string output = "text";           // text | json
  std::string timeout = "15m";           // apply: give up after this long
  std::string shutdown_timeout = "30s";  // run: in-flight work gets this long after SIGTERM
  std::string runtime = "auto";          // doctor: auto | docker | podman; run/apply: override
  std::string http_address;              // run/apply: /metrics here when set
  bool http_address_is_default = false;  // not given: a busy port is a warning, not an error
  std::string http_port_file;            // the bound port is written here (for port 0)
  bool insecure_registry = false;        // local builds push over plain HTTP
  std::string target;                    // promote/abort: NAMESPACE/NAME, NAME or service id
};

// Exit codes of plan: 0 nothing would change, 2 something would, 1 error (terraform's
// -detailed-exitcode).
inline constexpr char kDefaultHttpAddress[] = "127.0.0.1:9464";

inline constexpr int kPlanNoChanges = 0;
inline constexpr int kPlanError = 1;
inline constexpr int kPlanChanges = 2;

int RunPlan(const ControllerFlags& flags, std::ostream& out, std::ostream& err);
int RunApply(const ControllerFlags& flags, std::ostream& out, std::ostream& err);
int RunController(const ControllerFlags& flags, std::ostream& err);
int RunStatus(const ControllerFlags& flags, std::ostream& out, std::ostream& err);
// A checklist: manifests, container engines, credentials, Cloud Run reachability. Exit 1 when a
// check the configuration depends on fails.
// `runway promote` / `runway abort` (`decision`): records the decision on the Cloud Run service of
// `flags.target` for the controller to act on.
int RunDecision(const ControllerFlags& flags, const std::string& decision, std::ostream& out,
                std::ostream& err);
int RunDoctor(const ControllerFlags& flags, std::ostream& out, std::ostream& err);

}  // namespace runway
