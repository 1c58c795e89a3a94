#pragma once

// The Cloud Run state model shared by the v2 and v1 (Knative) surfaces: services, revisions and
// long-running operations per project and region, following gcp-api.md §1.
//
// Time is never polled by a background thread: every object records when its next transition
// happens (a revision becomes Ready or fails, a service finishes reconciling) and Settle() applies
// the transitions that are due whenever the object is read. A FakeClock thus drives the whole model
// deterministically, and 10,000 idle services cost nothing.
//
// Not thread-safe: the Emulator serialises access with one mutex.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/interfaces/clock.h"
#include "tests/emulator/emulator_common.h"

namespace runway::emulator {

// How revisions whose image matches `image` (a glob over the whole image reference, e.g.
// "*@sha256:bad*" or "gcr.io/p/app:*") behave. The first matching rule wins.
struct ReadinessRule {
  enum class Outcome { kReady, kNever, kFail };
  std::string image = "*";
  Outcome outcome = Outcome::kReady;
  // For kFail: a Condition `reason` (CONTAINER_MISSING, ...) or `revisionReason`
  // (HEALTH_CHECK_CONTAINER_ERROR, ...); which one is decided by the value.
  std::string reason = "CONTAINER_MISSING";
  std::string message;
  absl::Duration delay = absl::ZeroDuration();  // until Ready or the failure
  int serve_status = 200;                       // what the revision's URLs answer
};

struct RunConfig {
  // Time a write spends `reconciling` before its terminal state (at least).
  absl::Duration reconcile_delay = absl::Milliseconds(100);
  // Base of the service and tag URLs, e.g. "http://127.0.0.1:8080"; the emulator serves them.
  std::string base_url = "http://127.0.0.1";
};

struct RevisionRecord {
  std::string name;  // short name, "<service>-00001-abc"
  std::string uid;
  std::string etag;
  std::string creator;            // the actor of the write that created it
  int64_t config_generation = 0;  // the service generation that created it
  Json template_spec;             // canonical RevisionTemplate without `revision`
  absl::Time create_time;
  absl::Time settle_time;  // InfiniteFuture when it never becomes Ready
  bool fails = false;
  std::string fail_reason;
  std::string fail_message;
  int serve_status = 200;
  std::string image;  // the first container's image
};

struct ServiceRecord {
  std::string project, location, id;
  std::string uid;
  int64_t create_seq = 0;
  absl::Time create_time, update_time;
  std::string creator, last_modifier;
  int64_t generation = 0;
  // Writable v2 fields, canonical (template defaulted, traffic explicit, never empty).
  Json spec = Json::object();
  std::string etag;
  int64_t resource_version = 0;
  Json iam_policy = Json::object();

  // Reconciliation of the latest write.
  bool reconciling = false;
  absl::Time write_time;
  // Last terminal result.
  int64_t observed_generation = 0;  // last *successful* generation (v2 semantics)
  int64_t terminal_generation = 0;  // last generation that reached any terminal state
  bool failed = false;              // the last terminal state was a failure
  std::string failure_reason, failure_revision_reason, failure_message;
  absl::Time last_transition;
  std::string latest_ready, latest_created;  // short revision names
  Json traffic_statuses = Json::array();     // v2 TrafficTargetStatus[], revision resolved
  std::vector<std::string> revision_order;   // creation order
  std::map<std::string, RevisionRecord> revisions;
  std::vector<std::string> pending_operations;

  std::string ResourceName() const;
  std::string RevisionResourceName(const std::string& revision) const;
};

struct OperationRecord {
  std::string name;  // projects/{p}/locations/{l}/operations/{uuid}
  std::string project, location, service;
  int64_t seq = 0;
  absl::Time create_time;
  Json metadata;  // includes "@type"
  bool done = false;
  Json response;  // includes "@type", when done and successful
  std::optional<absl::Status> error;
};

// Everything that decides the JSON views and is not stored on the records.
struct ServiceView {
  const ServiceRecord* record = nullptr;
  const RunConfig* config = nullptr;
};

// What a write asks for, after the surface (v2 or v1) has parsed its body.
struct ServiceWrite {
  std::string project, location, id;
  Json fields;                   // v2-shaped writable fields
  std::set<std::string> mask;    // top-level fields to replace; empty = all present in `fields`
  bool replace_all = false;      // v1 PUT and create: missing fields are cleared
  std::string etag;              // v2: must match when non-empty
  std::string resource_version;  // v1: must match when non-empty
  bool allow_create = false;
  bool must_create = false;
  bool validate_only = false;
  bool strict_v2_keys = true;  // refuse run.googleapis.com/... labels and annotations
  bool seed = false;           // converged at once: no operation, no delay, rules ignored
  std::string actor = "emulator@runway.dev";
};

struct WriteResult {
  const ServiceRecord* service = nullptr;  // persisted service (nullptr when validate_only)
  const OperationRecord* operation = nullptr;
  Json preview;  // validate_only: the v2 Service that would result
};

class CloudRunStore {
 public:
  CloudRunStore(const Clock* clock, uint64_t seed);

  RunConfig& config() { return config_; }
  std::vector<ReadinessRule>& readiness_rules() { return readiness_rules_; }

  absl::StatusOr<WriteResult> WriteService(const ServiceWrite& write);
  // Seeds a service directly in its converged state: no operation, no delay.
  absl::StatusOr<const ServiceRecord*> SeedService(const ServiceWrite& write);
  absl::StatusOr<const ServiceRecord*> GetService(const std::string& project,
                                                  const std::string& location,
                                                  const std::string& id);
  // Newest first. `location` "-" lists every region of the project.
  std::vector<const ServiceRecord*> ListServices(const std::string& project,
                                                 const std::string& location);
  absl::StatusOr<const OperationRecord*> DeleteService(const std::string& project,
                                                       const std::string& location,
                                                       const std::string& id,
                                                       const std::string& etag, bool validate_only,
                                                       Json* deleted_view);

  // Revision lookups by short name; `service` may be empty (search the region).
  absl::StatusOr<std::pair<const ServiceRecord*, const RevisionRecord*>> GetRevision(
      const std::string& project, const std::string& location, const std::string& service,
      const std::string& revision);
  absl::StatusOr<const OperationRecord*> DeleteRevision(const std::string& project,
                                                        const std::string& location,
                                                        const std::string& service,
                                                        const std::string& revision,
                                                        bool validate_only, Json* deleted_view);
  absl::StatusOr<const OperationRecord*> GetOperation(const std::string& name);
  std::vector<const OperationRecord*> ListOperations(const std::string& project,
                                                     const std::string& location);
  absl::Status DeleteOperation(const std::string& name);
  // When the operation will be done if nothing else is written (InfiniteFuture: never).
  absl::Time OperationDueTime(const std::string& name);

  absl::Status SetIamPolicy(const std::string& project, const std::string& location,
                            const std::string& id, const Json& policy);

  // Finished operations beyond this many are forgotten, oldest first.
  static constexpr size_t kMaxOperations = 10000;

  // Every region's services, for the state dump and the metrics page.
  std::vector<const ServiceRecord*> AllServices();
  void Reset();

  // The v2 JSON of a service or revision as of now.
  Json ServiceV2(const ServiceRecord& service) const;
  Json RevisionV2(const ServiceRecord& service, const RevisionRecord& revision) const;
  // Revision condition at now: 0 pending, 1 ready, -1 failed.
  int RevisionState(const RevisionRecord& revision) const;
  bool RevisionServes(const ServiceRecord& service, const std::string& revision) const;

  std::string ServiceUri(const ServiceRecord& service) const;
  std::string TagUri(const ServiceRecord& service, const std::string& tag) const;

  absl::Time Now() const { return clock_->Now(); }

 private:
  struct Region {
    std::map<std::string, std::unique_ptr<ServiceRecord>> services;
    std::map<std::string, std::string> revision_owner;  // revision -> service
  };

  Region& RegionOf(const std::string& project, const std::string& location);
  ServiceRecord* FindService(const std::string& project, const std::string& location,
                             const std::string& id);
  void Settle(ServiceRecord& service);
  // When the current write will settle, and whether it fails (first failing dependency).
  absl::Time DueTime(const ServiceRecord& service, const RevisionRecord** failing) const;
  void CompleteOperations(ServiceRecord& service);
  std::string NewEtag();
  const ReadinessRule* RuleFor(const std::string& image) const;
  OperationRecord* NewOperation(const ServiceRecord& service, Json metadata);

  absl::StatusOr<Json> BuildSpec(const ServiceWrite& write, const ServiceRecord* existing) const;

  const Clock* clock_;
  IdSource ids_;
  RunConfig config_;
  std::vector<ReadinessRule> readiness_rules_;
  std::map<std::string, Region> regions_;  // "project/location"
  std::map<std::string, std::unique_ptr<OperationRecord>> operations_;
  // Creation order, to forget the oldest finished operations once there are too many: a
  // benchmark making thousands of writes per second must not grow without bound.
  std::deque<std::string> operation_order_;
  int64_t sequence_ = 0;
};

// Defaults and validation of a v2 RevisionTemplate (the emulator's canonical form), exposed for
// the v1 surface, which converts Knative templates to it.
absl::StatusOr<Json> CanonicalTemplate(const Json& template_spec, const std::string& service_id,
                                       const std::string& path, bool strict_v2_keys);
// Validates and normalises v2 traffic: explicit types, percent present, sum 100.
absl::StatusOr<Json> CanonicalTraffic(const Json& traffic, const std::string& path);

}  // namespace runway::emulator
