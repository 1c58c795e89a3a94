// runway: a reconciling controller for Google Cloud Run. This file only parses the command line
// and dispatches; each command lives in its own file under app/.

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "controller/app/validate_command.h"
#include "controller/observability/logging.h"

#ifndef RUNWAY_VERSION
#define RUNWAY_VERSION "0.0.0-dev"
#endif

int main(int argc, char** argv) {
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
  if (version_cmd->parsed()) {
    std::cout << "runway " << RUNWAY_VERSION << "\n";
    return runway::kExitOk;
  }
  return runway::kExitUsage;
}
