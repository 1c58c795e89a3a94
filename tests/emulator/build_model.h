#pragma once

// The Cloud Build v1 state model of the emulator (docs gcp-api.md §2): builds per project and
// location, the scripted lifecycle that moves them through QUEUED, WORKING and a terminal status,
// and the long-running operations that builds.create returns. The HTTP surface parses requests
// and calls CloudBuildStore; everything here speaks Build JSON in its v1 wire form.
//
// Time is lazy: no thread runs builds. Create records the build's createTime and its scripted
// schedule (startTime, finishTime, outcome), and every read computes the status at clock->Now().
// A FakeClock therefore drives the model deterministically, and idle builds cost nothing.
//
// Not thread-safe: the emulator serialises access with one mutex, as for CloudRunStore.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/interfaces/clock.h"
#include "tests/emulator/emulator_common.h"

namespace runway::emulator {

// A scripted outcome for builds. CloudBuildStore::rules() holds them in order; the first rule that
// matches a build at creation decides its schedule, so later edits to the rules never change a
// build that already exists.
//
// A rule matches when `source` (a GlobMatch pattern) matches the build's source key:
//   gitSource      "<url>#<revision>"
//   storageSource  "gs://<bucket>/<object>"
//   repoSource     "<repoName>@<branchName|tagName|commitSha>"  (the first one set)
//   no source      ""
// or when it matches any of the build's tags (after substitution), so tests can script builds by
// tag. Only one source kind is consulted, in the order above.
struct BuildRule {
  std::string source = "*";
  // SUCCESS | FAILURE | INTERNAL_ERROR | TIMEOUT. Create fails with FailedPrecondition when the
  // matching rule names anything else (a broken test setup, not a bad request).
  std::string outcome = "SUCCESS";
  absl::Duration queue_for = absl::Milliseconds(200);  // QUEUED this long after createTime
  // Then WORKING this long. The build's own `timeout` (default 3600s, counted from startTime)
  // wins when shorter: the build ends TIMEOUT at startTime + timeout. Outcome TIMEOUT ignores
  // work_for and always ends there, so scripted timeouts want a short `timeout` in the build.
  absl::Duration work_for = absl::Milliseconds(500);
  std::string failure_type = "USER_BUILD_STEP";  // failureInfo.type on FAILURE
  // failureInfo.detail and statusDetail on FAILURE. When empty: the step-failure text Cloud Build
  // shows for USER_BUILD_STEP, naming step 0, or "Build failed: <failure_type>" for other types.
  std::string failure_detail;
};

// The schedule of builds that no rule matches (outcome SUCCESS).
struct BuildConfig {
  absl::Duration queue_for = absl::Milliseconds(200);
  absl::Duration work_for = absl::Milliseconds(500);
  // google.longrunning.Operation carries its result in the oneof {error, response}, so by default
  // a build that ends in anything but SUCCESS yields `error` only (metadata.build still has the
  // whole final build). Strict protobuf JSON parsers reject an operation with both. Set this to
  // also send `response` next to `error` for clients that want the Build there.
  bool failed_operation_has_response = false;
};

class CloudBuildStore {
 public:
  // `seed` makes build and operation ids deterministic.
  CloudBuildStore(const Clock* clock, uint64_t seed);

  BuildConfig& config() { return config_; }
  std::vector<BuildRule>& rules() { return rules_; }

  // builds.create. `location` is "global" for the legacy v1/projects/{p}/builds form; the returned
  // Operation is named "operations/build/{project}/{Base64(id)}" then, and
  // "projects/{p}/locations/{l}/operations/{uuid}" for a regional location.
  //
  // Validation errors are InvalidArgument with BadRequest field violations ("build.steps",
  // "build.steps[1].name", "build.images[0]", "build.timeout", "build.substitutions", ...).
  // Output-only fields (id, status, results, createTime, ...) are accepted and ignored, since
  // clients echo builds they read. Substitutions are expanded in steps[].name, .entrypoint, .args,
  // .env, .dir, .script, images and tags:
  //   built-ins  $PROJECT_ID $BUILD_ID $LOCATION $PROJECT_NUMBER, and $REPO_NAME $BRANCH_NAME
  //              $TAG_NAME $COMMIT_SHA $SHORT_SHA $REVISION_ID (from repoSource, else empty)
  //   user       $_FOO or ${_FOO} from `substitutions` (keys must match _[A-Z0-9_]+)
  //   $$         a literal '$'; a '$' followed by anything else is kept as is.
  // Under the default options.substitutionOption MUST_MATCH an undefined substitution and a
  // user substitution that the build never uses are errors; under ALLOW_LOOSE undefined ones
  // expand to "" and unused ones are ignored.
  absl::StatusOr<Json> Create(const std::string& project, const std::string& location,
                              const Json& build);

  // The Build as of now. NotFound when no build `id` exists in exactly this project and location.
  absl::StatusOr<Json> Get(const std::string& project, const std::string& location,
                           const std::string& id);

  // {builds: [...], nextPageToken?}, newest first (createTime, then creation order). `filter` is
  // a BuildFilter; a bad one is InvalidArgument with the parser's message. page_size 0 means 50,
  // larger than 1000 means 1000, negative is InvalidArgument. The page token is an opaque cursor
  // bound to project, location and filter: a token that was not issued for the same request is
  // InvalidArgument. Builds created after the first page never shift later pages.
  absl::StatusOr<Json> List(const std::string& project, const std::string& location,
                            const std::string& filter, int page_size,
                            const std::string& page_token);

  // A QUEUED or WORKING build becomes CANCELLED with finishTime now (startTime stays only when it
  // had started). Cancelling a terminal build is FailedPrecondition. Returns the Build.
  absl::StatusOr<Json> Cancel(const std::string& project, const std::string& location,
                              const std::string& id);

  // The Operation by its full name (either form above). Once the build is terminal it has
  // done=true and, for SUCCESS, `response` (the Build with "@type"); otherwise `error` with the
  // google.rpc code that says what happened:
  //   FAILURE        2 UNKNOWN            the build ran and a step (or push) failed
  //   TIMEOUT        4 DEADLINE_EXCEEDED  the build's timeout expired
  //   EXPIRED        4 DEADLINE_EXCEEDED  (seeded builds only) its queueTtl expired
  //   CANCELLED      1 CANCELLED          a client cancelled it
  //   INTERNAL_ERROR 13 INTERNAL          the service failed, not the build
  absl::StatusOr<Json> GetOperation(const std::string& name);

  // When operation `name` will be done if nothing else happens (now when already done), for
  // operations.wait.
  absl::StatusOr<absl::Time> OperationDueTime(const std::string& name);

  // {"builds": [...]}: every build of every project and location as of now, oldest first.
  Json Dump();

  // Adds builds in their Build JSON form, e.g. from Dump(). All or nothing: on error nothing is
  // added. Each needs `id` and a project (`projectId`, or `name`
  // "projects/{p}/locations/{l}/builds/{id}", which also gives the location; default "global").
  // A build whose status is terminal is kept exactly as given (with id, name, projectId and
  // createTime filled in when missing). Any other build is scheduled like a new one from its
  // createTime (default now) by the current rules, keeping a WORKING build's startTime, so a
  // Dump/Reset/Seed round trip reproduces the same views. A seeded build replaces an existing one
  // with the same project, location and id. Its operation is named in the global form for
  // "global" builds and gets a fresh regional name otherwise. No substitution is applied.
  absl::Status Seed(const Json& builds);

  // Forgets every build and operation; config and rules stay.
  void Reset();

  // The made-up but stable 12-digit project number of `project` ($PROJECT_NUMBER, logUrl).
  static std::string ProjectNumber(const std::string& project);

 private:
  struct Record {
    std::string project, location, id;
    int64_t seq = 0;  // creation order, breaks createTime ties
    absl::Time create_time;
    // The stored fields: everything but status, startTime, finishTime, results, failureInfo and
    // statusDetail, which View() computes. For a frozen record, the whole Build.
    Json base;
    bool frozen = false;  // seeded in a terminal status: `base` is returned as is
    std::string outcome;  // SUCCESS | FAILURE | INTERNAL_ERROR | TIMEOUT
    absl::Time start_time, finish_time;
    absl::Duration timeout;
    std::string failure_type, failure_detail;
    std::optional<absl::Time> cancel_time;
    std::string operation_name;
  };

  static std::string Key(const std::string& project, const std::string& location,
                         const std::string& id);
  Record* Find(const std::string& project, const std::string& location, const std::string& id);
  const BuildRule* RuleFor(const Json& build) const;
  // Fills outcome, start/finish times and failure fields from the matching rule or config.
  absl::Status Schedule(Record& record, std::optional<absl::Time> started) const;
  std::string StatusAt(const Record& record, absl::Time now) const;
  Json View(const Record& record, absl::Time now) const;
  Json OperationView(const Record& record, absl::Time now) const;
  std::string NewOperationName(const std::string& project, const std::string& location,
                               const std::string& id);
  // Records ordered oldest first.
  std::vector<const Record*> Ordered() const;

  const Clock* clock_;
  IdSource ids_;
  BuildConfig config_;
  std::vector<BuildRule> rules_;
  std::map<std::string, Record> builds_;           // Key(project, location, id)
  std::map<std::string, std::string> operations_;  // operation name -> build key
  int64_t sequence_ = 0;
};

}  // namespace runway::emulator
