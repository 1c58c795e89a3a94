#include "controller/app/controller_commands.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "controller/adapters/cloud_build_rest_client.h"
#include "controller/adapters/cloud_run_rest_client.h"
#include "controller/adapters/cpprest_http_transport.h"
#include "controller/adapters/directory_watcher.h"
#include "controller/adapters/engine_image_builder.h"
#include "controller/adapters/engine_probe.h"
#include "controller/adapters/file_manifest_source.h"
#include "controller/adapters/file_status_store.h"
#include "controller/adapters/http_endpoint.h"
#include "controller/adapters/manifest_schema.h"
#include "controller/adapters/prometheus_query_client.h"
#include "controller/adapters/system_clock.h"
#include "controller/adapters/token_source.h"
#include "controller/app/validate_command.h"
#include "controller/core/controller.h"
#include "controller/core/image_builds.h"
#include "controller/core/reconcile_decision.h"
#include "controller/observability/prometheus_metrics.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace runway {
namespace {

using Json = nlohmann::json;

absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& text) {
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) || duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": '", text, "' is not a duration; use e.g. 30s, 5m, 200ms"));
  }
  return duration;
}

bool IsLoopbackEndpoint(const std::string& endpoint) {
  for (const char* host : {"://127.", "://localhost", "://[::1]"}) {
    if (absl::StrContains(endpoint, host)) return true;
  }
  return false;
}

// Everything a command needs to reach Cloud Run and Cloud Build, owned together.
struct CloudRunAccess {
  SystemClock clock;
  SystemSleeper sleeper;
  std::unique_ptr<CpprestHttpTransport> transport;
  std::unique_ptr<TokenSource> tokens;
  std::unique_ptr<CloudRunRestClient> client;
  std::unique_ptr<CloudBuildRestClient> cloud_build;
};

// `metrics` (may be null) counts every API attempt and failed connection.
absl::StatusOr<std::unique_ptr<CloudRunAccess>> ConnectCloudRun(
    const CloudRunFlags& flags, PrometheusMetrics* metrics = nullptr) {
  auto access = std::make_unique<CloudRunAccess>();
  access->transport = std::make_unique<CpprestHttpTransport>();
  std::string kind = flags.token_source;
  if (kind == "auto") kind = IsLoopbackEndpoint(flags.endpoint) ? "none" : "gcloud";
  absl::StatusOr<std::unique_ptr<TokenSource>> tokens =
      MakeTokenSource(kind, flags.token_file, access->transport.get(), &access->clock);
  if (!tokens.ok()) return tokens.status();
  access->tokens = *std::move(tokens);
  absl::StatusOr<absl::Duration> timeout = ParseFlagDuration("timeout", flags.timeout);
  if (!timeout.ok()) return timeout.status();
  CloudRunRestClientOptions options;
  options.endpoint = flags.endpoint;
  options.call_timeout = *timeout;
  options.write_limit.per_minute = flags.writes_per_minute;
  options.read_limit.per_minute = flags.reads_per_minute;
  if (metrics != nullptr) {
    options.observer = [metrics](const ApiCall& call) {
      metrics->ApiCallMade(kTargetCloudRun, call);
    };
  }
  access->client = std::make_unique<CloudRunRestClient>(
      access->transport.get(), access->tokens.get(), &access->clock, &access->sleeper, options);
  CloudBuildRestClientOptions build_options;
  build_options.endpoint = flags.cloudbuild_endpoint;
  build_options.call_timeout = *timeout;
  if (metrics != nullptr) {
    build_options.observer = [metrics](const ApiCall& call) {
      metrics->ApiCallMade(kTargetCloudBuild, call);
    };
  }
  access->cloud_build =
      std::make_unique<CloudBuildRestClient>(access->transport.get(), access->tokens.get(),
                                             &access->clock, &access->sleeper, build_options);
  return access;
}

// `runway status -o json` and /api/v1/services: every stored status.
Json StatusesJson(const std::vector<std::pair<ObjectKey, ServiceStatus>>& statuses) {
  Json services = Json::array();
  for (const auto& [key, status] : statuses) {
    Json conditions = Json::array();
    for (const Condition& c : status.conditions) {
      conditions.push_back({{"type", c.type},
                            {"status", c.status},
                            {"reason", c.reason},
                            {"message", c.message},
                            {"lastTransitionTime", absl::FormatTime(c.last_transition_time)}});
    }
    Json traffic = Json::array();
    for (const TrafficTarget& t : status.traffic) {
      traffic.push_back({{"revision", t.revision}, {"percent", t.percent}, {"tag", t.tag}});
    }
    Json service = {{"key", key.ToString()},
                    {"observedGeneration", status.observed_generation},
                    {"revision", status.revision},
                    {"traffic", traffic},
                    {"conditions", conditions}};
    if (status.image) {
      service["image"] = {{"digest", status.image->digest},
                          {"build",
                           {{"id", status.image->build_id},
                            {"logUrl", status.image->log_url},
                            {"builder", status.image->builder}}}};
    }
    services.push_back(std::move(service));
  }
  return Json({{"services", services}});
}

// Metrics and, with --http-address, the HTTP endpoint: /metrics, /healthz, /readyz and
// /api/v1/services (docs/observability.md).
class Observability {
 private:
  SystemClock clock_;  // before `metrics`, which keeps a pointer to it

 public:
  explicit Observability(const std::string& state_dir)
      : metrics(RUNWAY_VERSION, &clock_), state_dir_(state_dir) {}
  ~Observability() {
    if (http_) http_->Stop();
  }

  absl::Status Serve(const ControllerFlags& flags) {
    if (flags.http_address.empty()) return absl::OkStatus();
    http_ =
        std::make_unique<HttpEndpoint>([this](const std::string& path) { return Handle(path); });
    if (absl::Status started = http_->Start(flags.http_address); !started.ok()) {
      http_.reset();
      if (flags.http_address_is_default) {
        SPDLOG_WARN("not serving /metrics: {}; pass --http-address to choose another address",
                    std::string(started.message()));
        return absl::OkStatus();
      }
      return absl::Status(started.code(), absl::StrCat("--http-address: ", started.message()));
    }
    SPDLOG_INFO("serving /metrics, /healthz, /readyz and /api/v1/services on {} (port {})",
                flags.http_address, http_->port());
    if (!flags.http_port_file.empty()) {
      std::ofstream(flags.http_port_file) << http_->port() << "\n";
    }
    return absl::OkStatus();
  }

  // Binds the controller for health, readiness and gauges; Unbind() before it is destroyed.
  void Bind(Controller* controller) {
    {
      absl::MutexLock lock(&mutex_);
      controller_ = controller;
    }
    metrics.SetGaugeSource([controller] { return controller->Observe(); });
  }
  void Unbind() {
    metrics.SetGaugeSource(nullptr);
    absl::MutexLock lock(&mutex_);
    controller_ = nullptr;
  }

  PrometheusMetrics metrics;

 private:
  HttpEndpointResponse Handle(const std::string& path) {
    HttpEndpointResponse response;
    if (path == "/metrics") {
      response.content_type = "text/plain; version=0.0.4; charset=utf-8";
      response.body = metrics.Serialize();
      return response;
    }
    if (path == "/healthz" || path == "/readyz") {
      std::string problem;
      {
        absl::MutexLock lock(&mutex_);
        problem = controller_ == nullptr ? "starting"
                  : path == "/healthz"   ? controller_->NotHealthyReason()
                                         : controller_->NotReadyReason();
      }
      response.status = problem.empty() ? 200 : 503;
      response.body = problem.empty() ? "ok\n" : problem + "\n";
      return response;
    }
    if (path == "/api/v1/services") {
      FileStatusStore store(state_dir_, &clock_);
      absl::StatusOr<StoredStatuses> stored = store.LoadAll();
      response.content_type = "application/json";
      if (!stored.ok()) {
        response.status = 503;
        response.body = Json({{"error", std::string(stored.status().message())}}).dump();
        return response;
      }
      response.body = StatusesJson(stored->statuses).dump(2);
      return response;
    }
    response.status = 404;
    response.body = "not found; try /metrics, /healthz, /readyz or /api/v1/services\n";
    return response;
  }

  const std::string state_dir_;
  std::unique_ptr<HttpEndpoint> http_;
  absl::Mutex mutex_;
  Controller* controller_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

// Unbinds the controller from Observability when it goes out of scope (declare it after the
// controller, so it is destroyed first).
class ObservabilityBinding {
 public:
  ObservabilityBinding(Observability& observability, Controller& controller)
      : observability_(observability) {
    observability_.Bind(&controller);
  }
  ~ObservabilityBinding() { observability_.Unbind(); }

 private:
  Observability& observability_;
};

// What turns spec.build into an image: the engine probe, the local builder and ImageBuilds.
struct Builders {
  std::unique_ptr<CurlEngineProbe> probe;
  std::unique_ptr<EngineImageBuilder> local;
  std::unique_ptr<ImageBuilds> builds;
};

absl::StatusOr<std::unique_ptr<Builders>> MakeBuilders(const ControllerFlags& flags,
                                                       CloudRunAccess& access, Metrics* metrics) {
  if (flags.runtime != "auto" && flags.runtime != "docker" && flags.runtime != "podman") {
    return absl::InvalidArgumentError(
        absl::StrCat("--runtime: '", flags.runtime, "' is not auto, docker or podman"));
  }
  auto builders = std::make_unique<Builders>();
  builders->probe = std::make_unique<CurlEngineProbe>(CurlEngineProbe::FromProcess());
  EngineImageBuilder::Options local;
  local.metrics = metrics;
  local.insecure_registry = flags.insecure_registry;
  builders->local = std::make_unique<EngineImageBuilder>(local);
  ImageBuilds::Options options;
  if (flags.runtime != "auto") options.runtime_override = flags.runtime;
  builders->builds =
      std::make_unique<ImageBuilds>(access.cloud_build.get(), builders->local.get(),
                                    builders->probe.get(), metrics, &access.clock, options);
  return builders;
}

// What `apply` and `run` share: metrics and the HTTP endpoint, the Google API clients, the
// builders and the rollout gates' clients. Members are destroyed in reverse order, so the
// observer the clients report to outlives them.
struct ControllerRuntime {
  explicit ControllerRuntime(const std::string& state_dir) : observability(state_dir) {}

  // A controller wired to all of it (clients, builders, verify and analysis, metrics).
  std::unique_ptr<Controller> MakeController(Controller::Options options, ManifestSource* source,
                                             StatusReporter* status) {
    options.reconciler.verify_http = access->transport.get();
    options.reconciler.analysis = analysis.get();
    return std::make_unique<Controller>(options, source, access->client.get(), status,
                                        &access->clock, builders->builds.get(),
                                        &observability.metrics);
  }

  Observability observability;
  std::unique_ptr<CloudRunAccess> access;
  std::unique_ptr<Builders> builders;
  std::unique_ptr<PrometheusQueryClient> analysis;
};

// Sets up a ControllerRuntime and serves its endpoint; on a bad flag or an unusable address
// prints "<command>: <why>" to `err` and returns null (exit kExitUsage).
std::unique_ptr<ControllerRuntime> StartRuntime(const ControllerFlags& flags,
                                                const std::string& command, std::ostream& err) {
  auto runtime = std::make_unique<ControllerRuntime>(flags.state_dir);
  PrometheusMetrics* metrics = &runtime->observability.metrics;
  absl::Status problem;
  if (absl::StatusOr<std::unique_ptr<CloudRunAccess>> access =
          ConnectCloudRun(flags.cloud_run, metrics);
      access.ok()) {
    runtime->access = *std::move(access);
  } else {
    problem = access.status();
  }
  if (problem.ok()) {
    absl::StatusOr<std::unique_ptr<Builders>> builders =
        MakeBuilders(flags, *runtime->access, metrics);
    if (builders.ok()) {
      runtime->builders = *std::move(builders);
    } else {
      problem = builders.status();
    }
  }
  if (problem.ok()) problem = runtime->observability.Serve(flags);
  if (!problem.ok()) {
    err << command << ": " << problem.message() << "\n";
    return nullptr;
  }
  runtime->analysis =
      std::make_unique<PrometheusQueryClient>(runtime->access->transport.get(), metrics);
  return runtime;
}

// The CRD's schema, compiled in; loaded once.
const ManifestSchema* EmbeddedSchema() {
  static const auto* schema =
      new absl::StatusOr<std::unique_ptr<ManifestSchema>>(ManifestSchema::Embedded());
  return schema->ok() ? schema->value().get() : nullptr;
}

// Reads `source` and prints every problem of the invalid manifests to `err`.
absl::StatusOr<ManifestSnapshot> LoadManifests(ManifestSource& source, std::ostream& err,
                                               bool* any_invalid) {
  absl::StatusOr<ManifestSnapshot> snapshot = source.Snapshot();
  if (!snapshot.ok()) return snapshot.status();
  *any_invalid = !snapshot->invalid.empty();
  for (const InvalidManifest& invalid : snapshot->invalid) {
    for (const FieldError& error : invalid.errors) {
      err << invalid.origin << ": " << error.path << ": " << error.message << "\n";
    }
  }
  return snapshot;
}

Json TrafficJson(const std::vector<LiveTrafficTarget>& traffic) {
  Json out = Json::array();
  for (const LiveTrafficTarget& t : NormalizeTraffic(traffic)) {
    Json item = {{"revision", t.revision}, {"percent", t.percent}};
    if (!t.tag.empty()) item["tag"] = t.tag;
    out.push_back(item);
  }
  return out;
}

}  // namespace

int RunPlan(const ControllerFlags& flags, std::ostream& out, std::ostream& err) {
  if (!EmbeddedSchema()) {
    err << "runway: the compiled-in CRD schema does not load\n";
    return kPlanError;
  }
  FileManifestSource source(*EmbeddedSchema(), flags.paths);
  bool any_invalid = false;
  absl::StatusOr<ManifestSnapshot> snapshot = LoadManifests(source, err, &any_invalid);
  if (!snapshot.ok()) {
    err << "runway plan: " << snapshot.status().message() << "\n";
    return kPlanError;
  }
  absl::StatusOr<std::unique_ptr<CloudRunAccess>> access = ConnectCloudRun(flags.cloud_run);
  if (!access.ok()) {
    err << "runway plan: " << access.status().message() << "\n";
    return kExitUsage;
  }
  CloudRunRestClient& client = *(*access)->client;
  bool changes = false, errors = any_invalid;
  Json report = Json::array();
  std::ostringstream text;  // printed unless -o json, which prints only the JSON document
  for (const DesiredService& desired : snapshot->services) {
    std::optional<LiveService> live;
    absl::StatusOr<LiveService> read = client.GetService(desired.target);
    Json item = {{"key", desired.key.ToString()}, {"service", desired.target.ResourceName()}};
    if (read.ok()) {
      live = *std::move(read);
    } else if (read.status().code() != absl::StatusCode::kNotFound) {
      errors = true;
      item["error"] = std::string(read.status().message());
      text << desired.key.ToString() << " (" << desired.target.ResourceName()
           << "): cannot read live state: " << read.status().message() << "\n";
      report.push_back(item);
      continue;
    }
    Decision decision = Decide(desired, live);
    bool write = decision.update.has_value();
    bool pending = write || decision.step == Step::kWaitCandidate ||
                   decision.step == Step::kWaitCloudRun || decision.step == Step::kBuildImage;
    changes = changes || pending;
    item["step"] = StepName(decision.step);
    // A revision's name hashes its image: not known before the build.
    const bool needs_build = decision.step == Step::kBuildImage;
    const std::string revision = needs_build ? "(named after the built digest)" : decision.revision;
    item["revision"] = needs_build ? "" : decision.revision;
    item["trafficBefore"] = TrafficJson(decision.live_traffic);
    if (needs_build) {
      decision.desired_traffic = ResolveTraffic(desired.traffic, "(built revision)");
    }
    item["trafficAfter"] = TrafficJson(decision.desired_traffic);
    item["message"] = decision.message;
    std::string symbol = !pending ? "=" : (decision.step == Step::kCreate ? "+" : "~");
    text << symbol << " " << desired.key.ToString() << " (" << desired.target.ResourceName()
         << "): " << StepName(decision.step) << "\n";
    if (live && decision.step == Step::kDeployDark) {
      text << "    image:    " << live->image << " -> " << desired.image.value_or("(build)")
           << "\n";
      text << "    revision: " << live->template_revision << " -> " << decision.revision
           << " (deployed dark, tag candidate)\n";
    } else if (!live) {
      text << "    image:    " << desired.image.value_or("(build)") << "\n";
      text << "    revision: " << revision << "\n";
    }
    text << "    traffic:  " << DescribeTraffic(decision.live_traffic) << " -> "
         << DescribeTraffic(decision.desired_traffic) << "\n";
    if (!pending) text << "    " << decision.message << "\n";
    if (decision.step == Step::kBuildImage) {
      const BuildSpec& build = *desired.build;
      std::string source =
          build.git ? absl::StrCat(build.git->url, "@", build.git->revision)
                    : absl::StrCat("gs://", build.storage->bucket, "/", build.storage->object);
      item["build"] = {{"source", source}, {"tag", BuildSourceTag(build)}};
      text << "    build:    " << source << " -> " << build.repository << ":"
           << BuildSourceTag(build) << " (then deployed dark by digest)\n";
    }
    if (write) {
      ServiceUpdate check = *decision.update;
      check.validate_only = true;
      absl::StatusOr<OperationState> validated = client.UpdateService(check);
      if (!validated.ok()) {
        errors = true;
        item["serverCheck"] = std::string(validated.status().message());
        text << "    Cloud Run would refuse it: " << validated.status().message() << "\n";
      } else {
        item["serverCheck"] = "ok";
        text << "    checked by Cloud Run (validateOnly): ok\n";
      }
    }
    report.push_back(item);
  }
  if (flags.output == "json") {
    out << Json({{"services", report}, {"changes", changes}, {"errors", errors}}).dump(2) << "\n";
  } else {
    out << text.str();
  }
  if (errors) return kPlanError;
  return changes ? kPlanChanges : kPlanNoChanges;
}

int RunApply(const ControllerFlags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<absl::Duration> poll = ParseFlagDuration("poll-interval", flags.poll_interval);
  absl::StatusOr<absl::Duration> timeout = ParseFlagDuration("timeout", flags.timeout);
  if (!poll.ok() || !timeout.ok()) {
    err << "runway apply: " << (!poll.ok() ? poll.status() : timeout.status()).message() << "\n";
    return kExitUsage;
  }
  std::unique_ptr<ControllerRuntime> runtime = StartRuntime(flags, "runway apply", err);
  if (runtime == nullptr) return kExitUsage;
  if (!EmbeddedSchema()) {
    err << "runway: the compiled-in CRD schema does not load\n";
    return kExitInvalid;
  }
  FileManifestSource source(*EmbeddedSchema(), flags.paths);
  // Invalid manifests are printed and count as failures; the valid ones are still applied. The
  // controller reads the same source: its per-file cache makes that second read cheap.
  bool any_invalid = false;
  absl::StatusOr<ManifestSnapshot> checked = LoadManifests(source, err, &any_invalid);
  if (!checked.ok()) {
    err << "runway apply: " << checked.status().message() << "\n";
    return kExitInvalid;
  }
  FileStatusStore status(flags.state_dir, &runtime->access->clock);
  Controller::Options options;
  options.workers = flags.workers;
  options.reconciler.poll_interval = *poll;
  std::unique_ptr<Controller> owned = runtime->MakeController(options, &source, &status);
  Controller& controller = *owned;
  ObservabilityBinding bound(runtime->observability, controller);
  if (absl::Status refreshed = controller.Refresh(); !refreshed.ok()) {
    err << "runway apply: " << refreshed.message() << "\n";
    return kExitInvalid;
  }
  // One list call per region and page instead of a read per service.
  (void)controller.Resync();
  controller.Start();
  absl::Time deadline = absl::Now() + *timeout;
  std::map<std::string, std::string> shown;
  bool settled = false;
  while (absl::Now() < deadline) {
    for (const auto& [key, state] : controller.States()) {
      std::string line = absl::StrCat(StepName(state.outcome.step), ": ", state.outcome.message);
      if (shown[key] != line) {
        err << key << "  " << line << "\n";
        shown[key] = line;
      }
    }
    if (controller.Settled()) {
      settled = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (!controller.Stop(absl::Seconds(30))) {
    // A pass is stuck in a call: leave now rather than destroy the client under its thread.
    err << "runway apply: in-flight work did not stop within 30s; exiting\n";
    err.flush();
    out.flush();
    std::_Exit(kExitInvalid);
  }
  int failed = 0, converged = 0, suspended = 0;
  std::map<std::string, Controller::ServiceState> states = controller.States();
  Json summary = Json::array();
  for (const auto& [key, state] : states) {
    bool settled_pass = state.outcome.kind == ReconcileOutcome::Kind::kConverged;
    bool ok = settled_pass && state.outcome.step == Step::kConverged;
    // spec.suspend asks for no writes: reported, but not a failure of the apply.
    // So is a candidate left dark for its canary or manual promotion.
    bool is_suspended = settled_pass && (state.outcome.step == Step::kSuspended ||
                                         state.outcome.step == Step::kAwaitingPromotion);
    if (ok) {
      ++converged;
    } else if (is_suspended) {
      ++suspended;
    } else {
      ++failed;
    }
    summary.push_back({{"key", key},
                       {"result", OutcomeName(state.outcome.kind)},
                       {"step", StepName(state.outcome.step)},
                       {"revision", state.outcome.revision},
                       {"writes", state.writes},
                       {"message", state.outcome.message}});
    if (flags.output != "json") {
      out << (ok ? "ok    " : (is_suspended ? "skip  " : "FAIL  ")) << key << "  "
          << StepName(state.outcome.step) << "  " << state.outcome.message << "\n";
    }
  }
  size_t managed = controller.ManagedCount();
  if (states.size() < managed) failed += static_cast<int>(managed - states.size());
  failed += static_cast<int>(checked->invalid.size());
  if (flags.output == "json") {
    out << Json({{"services", summary},
                 {"converged", converged},
                 {"suspended", suspended},
                 {"failed", failed},
                 {"timedOut", !settled}})
               .dump(2)
        << "\n";
  } else {
    out << converged << " converged, "
        << (suspended > 0 ? absl::StrCat(suspended, " suspended or awaiting promotion, ") : "")
        << failed << " not converged"
        << (settled ? "" : absl::StrCat(" (gave up after ", flags.timeout, ")")) << "\n";
  }
  return failed == 0 && settled ? kExitOk : kExitInvalid;
}

int RunController(const ControllerFlags& flags, std::ostream& err) {
  absl::StatusOr<absl::Duration> poll = ParseFlagDuration("poll-interval", flags.poll_interval);
  absl::StatusOr<absl::Duration> resync = ParseFlagDuration("resync", flags.resync);
  absl::StatusOr<absl::Duration> shutdown =
      ParseFlagDuration("shutdown-timeout", flags.shutdown_timeout);
  for (const auto* parsed : {&poll, &resync, &shutdown}) {
    if (!parsed->ok()) {
      err << "runway run: " << parsed->status().message() << "\n";
      return kExitUsage;
    }
  }
  // Block the signals before any thread starts (the HTTP endpoint's, the transport's, the
  // workers'), so only sigwait below receives them: a thread that does not block SIGTERM would
  // take it and end the process without the graceful stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::unique_ptr<ControllerRuntime> runtime = StartRuntime(flags, "runway run", err);
  if (runtime == nullptr) return kExitUsage;

  if (!EmbeddedSchema()) {
    err << "runway: the compiled-in CRD schema does not load\n";
    return kExitInvalid;
  }
  FileManifestSource source(*EmbeddedSchema(), flags.paths);
  FileStatusStore status(flags.state_dir, &runtime->access->clock);
  Controller::Options options;
  options.workers = flags.workers;
  options.resync = *resync;
  options.initial_resync = true;
  options.reconciler.poll_interval = *poll;
  std::unique_ptr<Controller> owned = runtime->MakeController(options, &source, &status);
  Controller& controller = *owned;
  ObservabilityBinding bound(runtime->observability, controller);
  if (absl::Status refreshed = controller.Refresh(); !refreshed.ok()) {
    err << "runway run: " << refreshed.message() << "\n";
    return kExitInvalid;
  }
  // The first resync runs on the resync thread: this thread must stay free for signals.
  std::vector<std::unique_ptr<DirectoryWatcher>> watchers;
  for (const std::string& path : flags.paths) {
    auto watcher = std::make_unique<DirectoryWatcher>();
    // A short debounce: a save is one rename (git, most editors) or a few writes in a row.
    absl::Status started = watcher->Start(
        path, [&controller] { (void)controller.Refresh(); }, absl::Milliseconds(2));
    if (!started.ok()) {
      SPDLOG_WARN("not watching {} ({}); changes are seen at the next resync", path,
                  std::string(started.message()));
      continue;
    }
    watchers.push_back(std::move(watcher));
  }
  controller.Start();
  SPDLOG_INFO("runway run: managing {} services from {} (resync {}, {} workers)",
              controller.ManagedCount(), absl::StrJoin(flags.paths, ", "), flags.resync,
              flags.workers);
  int received = 0;
  sigwait(&signals, &received);
  SPDLOG_INFO("runway run: signal {}, finishing in-flight work (up to {})", received,
              flags.shutdown_timeout);
  for (auto& watcher : watchers) watcher->Stop();
  bool clean = controller.Stop(*shutdown);
  if (!clean) {
    // Threads still use the client: leave now rather than destroy it under them.
    SPDLOG_WARN("runway run: in-flight work did not finish within {}; exiting anyway",
                flags.shutdown_timeout);
    spdlog::shutdown();
    std::_Exit(kExitOk);
  }
  return kExitOk;
}

int RunStatus(const ControllerFlags& flags, std::ostream& out, std::ostream& err) {
  SystemClock clock;
  FileStatusStore store(flags.state_dir, &clock);
  absl::StatusOr<StoredStatuses> stored = store.LoadAll();
  if (!stored.ok()) {
    err << "runway status: " << stored.status().message() << "\n";
    return kExitInvalid;
  }
  for (const std::string& warning : stored->warnings)
    err << "runway status: skipped " << warning << "\n";
  const auto* loaded = &stored->statuses;
  if (flags.output == "json") {
    out << StatusesJson(*loaded).dump(2) << "\n";
    return kExitOk;
  }
  struct Row {
    std::string service, ready, reason, revision, traffic;
  };
  std::vector<Row> rows = {{"SERVICE", "READY", "REASON", "REVISION", "TRAFFIC"}};
  for (const auto& [key, status] : *loaded) {
    Row row{key.ToString(), "Unknown", "", status.revision.empty() ? "-" : status.revision, ""};
    for (const Condition& c : status.conditions) {
      if (c.type == "Ready") {
        row.ready = c.status;
        row.reason = c.reason;
      }
    }
    std::vector<std::string> traffic;
    for (const TrafficTarget& t : status.traffic) {
      if (t.percent == 0 && t.tag.empty()) continue;
      traffic.push_back(absl::StrCat(t.revision, " ", t.percent, "%",
                                     t.tag.empty() ? "" : absl::StrCat(" (", t.tag, ")")));
    }
    row.traffic = traffic.empty() ? "-" : absl::StrJoin(traffic, ", ");
    rows.push_back(row);
  }
  size_t widths[4] = {0, 0, 0, 0};
  for (const Row& row : rows) {
    widths[0] = std::max(widths[0], row.service.size());
    widths[1] = std::max(widths[1], row.ready.size());
    widths[2] = std::max(widths[2], row.reason.size());
    widths[3] = std::max(widths[3], row.revision.size());
  }
  for (const Row& row : rows) {
    out << std::left << std::setw(static_cast<int>(widths[0] + 2)) << row.service
        << std::setw(static_cast<int>(widths[1] + 2)) << row.ready
        << std::setw(static_cast<int>(widths[2] + 2)) << row.reason
        << std::setw(static_cast<int>(widths[3] + 2)) << row.revision << row.traffic << "\n";
  }
  return kExitOk;
}

}  // namespace runway

namespace runway {

int RunDoctor(const ControllerFlags& flags, std::ostream& out, std::ostream& err) {
  struct Check {
    std::string name;
    std::string state;  // ok | fail | warn | skip
    std::string detail;
  };
  std::vector<Check> checks;
  bool any_local = false, any_build = false;
  std::set<std::pair<std::string, std::string>> regions;
  std::set<std::string> build_projects;  // projects whose manifests may build in Cloud Build
  if (!EmbeddedSchema()) {
    checks.push_back({"manifests", "fail", "the compiled-in CRD schema does not load"});
  } else if (!flags.paths.empty()) {
    std::ostringstream problems;
    bool any_invalid = false;
    FileManifestSource source(*EmbeddedSchema(), flags.paths);
    absl::StatusOr<ManifestSnapshot> snapshot = LoadManifests(source, problems, &any_invalid);
    if (!snapshot.ok()) {
      checks.push_back({"manifests", "fail", std::string(snapshot.status().message())});
    } else {
      for (const DesiredService& desired : snapshot->services) {
        regions.insert({desired.target.project, desired.target.region});
        if (desired.build) {
          any_build = true;
          any_local = any_local || desired.build->builder == Builder::kLocal;
          if (desired.build->builder != Builder::kLocal) {
            build_projects.insert(desired.target.project);
          }
        }
      }
      checks.push_back(
          {"manifests", any_invalid ? "fail" : "ok",
           absl::StrCat(snapshot->services.size(), " valid, ", snapshot->invalid.size(), " invalid",
                        any_invalid ? ":\n" + problems.str() : "")});
    }
  } else {
    checks.push_back({"manifests", "skip", "no path given"});
  }

  CurlEngineProbe::Options probe_options = CurlEngineProbe::FromProcess();
  CurlEngineProbe probe(probe_options);
  std::vector<EngineProbeResult> engines = probe.Probe(flags.runtime);
  bool engine_ok = !engines.empty() && engines.front().outcome == EngineProbeOutcome::kOk;
  for (const EngineProbeResult& engine : engines) {
    checks.push_back({absl::StrCat("engine ", engine.engine, " ", engine.endpoint),
                      engine.outcome == EngineProbeOutcome::kOk ? "ok" : "info",
                      absl::StrCat(EngineOutcomeName(engine.outcome), ": ", engine.explanation)});
  }
  checks.push_back(
      {"container engine", engine_ok ? "ok" : (any_local ? "fail" : "warn"),
       engine_ok ? absl::StrCat("local builds use ", engines.front().engine, " at ",
                                engines.front().endpoint)
                 : absl::StrCat("no engine answers (runtime ", flags.runtime, ")",
                                any_local ? "; a manifest requires builder: local"
                                          : (any_build ? "; builder auto falls back to Cloud Build"
                                                       : "; no manifest builds locally"))});

  absl::StatusOr<std::unique_ptr<CloudRunAccess>> access = ConnectCloudRun(flags.cloud_run);
  if (!access.ok()) {
    checks.push_back({"credentials", "fail", std::string(access.status().message())});
  } else {
    absl::StatusOr<std::string> token = (*access)->tokens->AccessToken();
    checks.push_back({"credentials", token.ok() ? "ok" : "fail",
                      token.ok()
                          ? absl::StrCat((*access)->tokens->Name(), ": ",
                                         token->empty() ? "no token needed" : "token obtained")
                          : std::string(token.status().message())});
    if (regions.empty()) {
      checks.push_back({"cloud run", "skip", "no manifest names a project and region"});
    }
    for (const auto& [project, region] : regions) {
      absl::StatusOr<LiveServicePage> page = (*access)->client->ListServices(project, region, "");
      checks.push_back({absl::StrCat("cloud run ", project, "/", region), page.ok() ? "ok" : "fail",
                        page.ok()
                            ? absl::StrCat(flags.cloud_run.endpoint, ": services.list answers (",
                                           page->services.size(), " on the first page)")
                            : std::string(page.status().message())});
    }
    // Needed when a manifest builds with cloudBuild, or with auto and no engine answering.
    for (const std::string& project : build_projects) {
      absl::StatusOr<std::vector<BuildState>> builds =
          (*access)->cloud_build->ListBuildsByTag(project, "runway");
      checks.push_back({absl::StrCat("cloud build ", project), builds.ok() ? "ok" : "fail",
                        builds.ok() ? absl::StrCat(flags.cloud_run.cloudbuild_endpoint,
                                                   ": builds.list answers (", builds->size(),
                                                   " builds tagged runway)")
                                    : std::string(builds.status().message())});
    }
  }

  bool failed = false;
  Json report = Json::array();
  for (const Check& check : checks) {
    failed = failed || check.state == "fail";
    report.push_back({{"check", check.name}, {"state", check.state}, {"detail", check.detail}});
    if (flags.output != "json") {
      const char* mark = check.state == "ok"     ? "[ok]  "
                         : check.state == "fail" ? "[FAIL]"
                         : check.state == "warn" ? "[warn]"
                                                 : "[--]  ";
      out << mark << " " << check.name << ": " << check.detail << "\n";
    }
  }
  if (flags.output == "json") out << Json({{"checks", report}, {"ok", !failed}}).dump(2) << "\n";
  (void)err;
  return failed ? kExitInvalid : kExitOk;
}

int RunDecision(const ControllerFlags& flags, const std::string& decision, std::ostream& out,
                std::ostream& err) {
  const std::string command = absl::StrCat("runway ", decision);
  if (!EmbeddedSchema()) {
    err << "runway: the compiled-in CRD schema does not load\n";
    return kExitInvalid;
  }
  FileManifestSource source(*EmbeddedSchema(), flags.paths);
  bool any_invalid = false;
  absl::StatusOr<ManifestSnapshot> snapshot = LoadManifests(source, err, &any_invalid);
  if (!snapshot.ok()) {
    err << command << ": " << snapshot.status().message() << "\n";
    return kExitInvalid;
  }
  const DesiredService* found = nullptr;
  for (const DesiredService& desired : snapshot->services) {
    if (desired.key.ToString() == flags.target || desired.key.name == flags.target ||
        desired.target.service == flags.target) {
      if (found != nullptr) {
        err << command << ": '" << flags.target << "' names more than one service; use "
            << "NAMESPACE/NAME\n";
        return kExitUsage;
      }
      found = &desired;
    }
  }
  if (found == nullptr) {
    err << command << ": no manifest under " << absl::StrJoin(flags.paths, ", ")
        << " names the service '" << flags.target << "' (NAMESPACE/NAME, NAME or the Cloud Run "
        << "service id)\n";
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<CloudRunAccess>> access = ConnectCloudRun(flags.cloud_run);
  if (!access.ok()) {
    err << command << ": " << access.status().message() << "\n";
    return kExitUsage;
  }
  // The decision is an annotation on the Cloud Run service: the controller acts on it, and a
  // GitOps tool that owns the manifest has nothing to revert.
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<LiveService> live = (*access)->client->GetService(found->target);
    if (!live.ok()) {
      err << command << ": " << live.status().message() << "\n";
      return kExitInvalid;
    }
    auto phase = live->annotations.find(kPhaseAnnotation);
    auto candidate = live->annotations.find(kCandidateAnnotation);
    if (phase == live->annotations.end() || candidate == live->annotations.end() ||
        (phase->second != "deploying" && phase->second != "canary" &&
         phase->second != "awaiting")) {
      err << command << ": " << found->key.ToString() << " has no rollout in progress (phase "
          << (phase == live->annotations.end() ? "none" : phase->second) << "); nothing to "
          << decision << "\n";
      return kExitInvalid;
    }
    // Act at once when the rollout is where the decision applies (abort: always; promote: once
    // the candidate is Ready), in the same single write the controller would make; otherwise
    // record the decision for the controller.
    LiveService decided = *live;
    decided.annotations[kDecisionAnnotation] = decision;
    DesiredService desired = *found;
    if (!desired.image) desired.image = live->image;  // spec.build: the image that was built
    RolloutInputs inputs;
    inputs.now = absl::Now();
    Decision next = Decide(desired, decided, inputs);
    if (next.revision != candidate->second) {
      err << command << ": the rollout in progress is of revision " << candidate->second
          << ", but the manifests here describe revision " << next.revision
          << " (a different image or template): update them to what the controller runs, or "
          << "let it roll the new one out\n";
      return kExitInvalid;
    }
    const bool acts =
        next.update.has_value() &&
        (decision == "abort" ? next.step == Step::kRollback : next.step == Step::kPromote);
    ServiceUpdate update;
    if (acts) {
      update = *next.update;
    } else {
      update.name = found->target;
      update.etag = live->etag;
      update.annotations = decided.annotations;
    }
    absl::StatusOr<OperationState> written = (*access)->client->UpdateService(update);
    if (!written.ok() && written.status().code() == absl::StatusCode::kAborted) continue;
    if (!written.ok()) {
      err << command << ": " << written.status().message() << "\n";
      return kExitInvalid;
    }
    if (acts) {
      out << found->key.ToString() << ": " << next.message << "\n";
    } else {
      out << found->key.ToString() << ": " << decision << " recorded for revision "
          << candidate->second << " (" << kDecisionAnnotation << "=" << decision
          << "); the controller acts on it once the candidate is Ready\n";
    }
    return kExitOk;
  }
  err << command << ": the service kept changing; try again\n";
  return kExitInvalid;
}

}  // namespace runway
