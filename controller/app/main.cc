// runway: a reconciling controller for Google Cloud Run. This file only parses the command line
// and dispatches; each command lives in its own file under app/.

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "controller/app/controller_commands.h"
#include "controller/app/validate_command.h"
#include "controller/observability/logging.h"

#ifndef RUNWAY_VERSION
#define RUNWAY_VERSION "0.0.0-dev"
#endif

int main(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena and keeps freed memory in it; with
  // --workers threads and cpprestsdk's pool that cost 40 MB of peak RSS at 10,000 services
  // (scripts/bench-controller.sh). Two arenas keep the peak down at no measurable CPU cost.
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{"runway: keeps Google Cloud Run services in step with CloudRunService manifests"};
  app.require_subcommand(1);
  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json (one object per line)")
      ->capture_default_str();

  runway::ValidateOptions validate;
  CLI::App* validate_cmd = app.add_subcommand(
      "validate",
      "Check CloudRunService manifests (files or directories) without touching Cloud Run");
  validate_cmd->add_option("paths", validate.paths, "Manifest files or directories")->required();
  validate_cmd->add_option("-o,--output", validate.output, "text or json")->capture_default_str();
  validate_cmd
      ->add_option("--max-file-bytes", validate.max_file_bytes,
                   "Refuse manifest files larger than this")
      ->capture_default_str();

  runway::ControllerFlags flags;
  auto add_cloud_run_flags = [&flags](CLI::App* cmd) {
    cmd->add_option("--cloudrun-endpoint", flags.cloud_run.endpoint,
                    "Cloud Run Admin API base URL (the emulator: http://127.0.0.1:PORT/)")
        ->capture_default_str();
    cmd->add_option(
           "--token-source", flags.cloud_run.token_source,
           "auto (none for a loopback endpoint, else gcloud), none, file, metadata, gcloud")
        ->capture_default_str();
    cmd->add_option("--token-file", flags.cloud_run.token_file,
                    "File holding an access token (--token-source file)");
    cmd->add_option("--api-timeout", flags.cloud_run.timeout, "Timeout of one API call")
        ->capture_default_str();
    cmd->add_option("--writes-per-minute", flags.cloud_run.writes_per_minute,
                    "Client-side write budget per project and region")
        ->capture_default_str();
    cmd->add_option("--reads-per-minute", flags.cloud_run.reads_per_minute,
                    "Client-side read budget per project and region")
        ->capture_default_str();
    cmd->add_option("--cloudbuild-endpoint", flags.cloud_run.cloudbuild_endpoint,
                    "Cloud Build API base URL (the emulator serves it too)")
        ->capture_default_str();
  };
  CLI::App* plan_cmd =
      app.add_subcommand("plan",
                         "Show what would change in Cloud Run; write nothing. Exit 0 no "
                         "changes, 2 changes, 1 error");
  plan_cmd->add_option("paths", flags.paths, "Manifest files or directories")->required();
  plan_cmd->add_option("-o,--output", flags.output, "text or json")->capture_default_str();
  add_cloud_run_flags(plan_cmd);
  CLI::App* apply_cmd = app.add_subcommand(
      "apply", "Reconcile every manifest until it converges or fails, then exit");
  apply_cmd->add_option("paths", flags.paths, "Manifest files or directories")->required();
  apply_cmd->add_option("-o,--output", flags.output, "text or json")->capture_default_str();
  apply_cmd->add_option("--timeout", flags.timeout, "Give up after this long")
      ->capture_default_str();
  CLI::App* run_cmd = app.add_subcommand("run", "Run the controller until SIGTERM");
  run_cmd->add_option("paths", flags.paths, "Manifest files or directories")->required();
  run_cmd->add_option("--resync", flags.resync, "Full resync period (jittered by 10%)")
      ->capture_default_str();
  run_cmd
      ->add_option("--shutdown-timeout", flags.shutdown_timeout,
                   "How long in-flight work may take after SIGTERM")
      ->capture_default_str();
  for (CLI::App* cmd : {apply_cmd, run_cmd}) {
    add_cloud_run_flags(cmd);
    cmd->add_option("--workers", flags.workers, "Services reconciled in parallel")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    cmd->add_option("--poll-interval", flags.poll_interval,
                    "How soon to look again while Cloud Run or a revision is working")
        ->capture_default_str();
    cmd->add_option("--state-dir", flags.state_dir, "Where per-service status is kept")
        ->capture_default_str();
    cmd->add_option("--runtime", flags.runtime,
                    "Container engine for local builds: auto (spec.build.runtime), docker or "
                    "podman")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "docker", "podman"}));
    cmd->add_flag("--insecure-registry", flags.insecure_registry,
                  "Local builds push over plain HTTP (a registry on loopback)");
    cmd->add_option("--http-address", flags.http_address,
                    "Serve /metrics, /healthz, /readyz, /api/v1/services here (run: default "
                    "127.0.0.1:9464; 127.0.0.1:0: any free port)");
    cmd->add_option("--http-port-file", flags.http_port_file,
                    "Write the port --http-address bound to into this file");
  }
  CLI::App* status_cmd = app.add_subcommand("status", "Show the status Runway last recorded");
  status_cmd->add_option("--state-dir", flags.state_dir, "Where per-service status is kept")
      ->capture_default_str();
  status_cmd->add_option("-o,--output", flags.output, "text or json")->capture_default_str();

  CLI::App* doctor_cmd = app.add_subcommand(
      "doctor", "Check manifests, container engines, credentials and Cloud Run reachability");
  doctor_cmd->add_option("paths", flags.paths, "Manifest files or directories (optional)");
  doctor_cmd->add_option("--runtime", flags.runtime, "auto, docker or podman")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "docker", "podman"}));
  doctor_cmd->add_option("-o,--output", flags.output, "text or json")->capture_default_str();
  add_cloud_run_flags(doctor_cmd);

  CLI::App* promote_cmd = app.add_subcommand(
      "promote", "Promote a rollout now: the candidate gets the manifest's split");
  CLI::App* abort_cmd =
      app.add_subcommand("abort", "Abort a rollout: roll back to the split before it, at once");
  for (CLI::App* cmd : {promote_cmd, abort_cmd}) {
    cmd->add_option("service", flags.target, "NAMESPACE/NAME (or NAME, or the Cloud Run id)")
        ->required();
    cmd->add_option("paths", flags.paths, "Manifest files or directories")->required();
    add_cloud_run_flags(cmd);
  }

  CLI::App* version_cmd = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? runway::kExitOk : runway::kExitUsage;
  }
  if (absl::Status status = runway::ConfigureLogging(log_level, log_format); !status.ok()) {
    std::cerr << "runway: " << status.message() << "\n";
    return runway::kExitUsage;
  }
  if (validate_cmd->parsed()) return runway::RunValidate(validate, std::cout, std::cerr);
  if (plan_cmd->parsed()) return runway::RunPlan(flags, std::cout, std::cerr);
  if (apply_cmd->parsed()) return runway::RunApply(flags, std::cout, std::cerr);
  if (run_cmd->parsed()) {
    // The controller serves /metrics and the probes by default (file mode: loopback only).
    if (flags.http_address.empty()) {
      flags.http_address = runway::kDefaultHttpAddress;
      flags.http_address_is_default = true;
    }
    return runway::RunController(flags, std::cerr);
  }
  if (status_cmd->parsed()) return runway::RunStatus(flags, std::cout, std::cerr);
  if (promote_cmd->parsed()) return runway::RunDecision(flags, "promote", std::cout, std::cerr);
  if (abort_cmd->parsed()) return runway::RunDecision(flags, "abort", std::cout, std::cerr);
  if (doctor_cmd->parsed()) return runway::RunDoctor(flags, std::cout, std::cerr);
  if (version_cmd->parsed()) {
    std::cout << "runway " << RUNWAY_VERSION << "\n";
    return runway::kExitOk;
  }
  return runway::kExitUsage;
}
