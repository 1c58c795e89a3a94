// The Cloud Run state model over a FakeClock: revisions, reconciliation, traffic rules,
// failures, deletion rules (gcp-api.md §1).

#include "tests/emulator/run_model.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace runway::emulator {
namespace {

using ::testing::HasSubstr;

constexpr char kDigestA[] = "us-docker.pkg.dev/p/r/app@sha256:aaaa";
constexpr char kDigestB[] = "us-docker.pkg.dev/p/r/app@sha256:bbbb";

ReadinessRule Rule(const std::string& image, ReadinessRule::Outcome outcome,
                   absl::Duration delay = absl::ZeroDuration(),
                   const std::string& reason = "CONTAINER_MISSING",
                   const std::string& message = "") {
  ReadinessRule rule;
  rule.image = image;
  rule.outcome = outcome;
  rule.delay = delay;
  rule.reason = reason;
  rule.message = message;
  return rule;
}

class RunModelTest : public ::testing::Test {
 protected:
  RunModelTest() : store_(&clock_, 42) { store_.config().reconcile_delay = absl::Seconds(1); }

  ServiceWrite Write(const std::string& image, Json traffic = Json()) {
    ServiceWrite write;
    write.project = "p";
    write.location = "us-central1";
    write.id = "hello";
    write.allow_create = true;
    write.fields = {{"template", {{"containers", {{{"image", image}}}}}}};
    if (!traffic.is_null()) write.fields["traffic"] = traffic;
    return write;
  }

  const ServiceRecord& Create(const std::string& image) {
    absl::StatusOr<WriteResult> result = store_.WriteService(Write(image));
    EXPECT_TRUE(result.ok()) << result.status();
    clock_.Advance(absl::Seconds(2));
    return **store_.GetService("p", "us-central1", "hello");
  }

  FakeClock clock_;
  CloudRunStore store_;
};

TEST_F(RunModelTest, CreateReconcilesThenSucceedsWithMatchingPairs) {
  absl::StatusOr<WriteResult> result = store_.WriteService(Write(kDigestA));
  ASSERT_TRUE(result.ok()) << result.status();
  Json during = store_.ServiceV2(*result->service);
  EXPECT_EQ(during["reconciling"], true);
  EXPECT_EQ(during["generation"], "1");
  EXPECT_FALSE(during.contains("observedGeneration"));
  EXPECT_EQ(during["terminalCondition"]["state"], "CONDITION_RECONCILING");
  EXPECT_FALSE(result->operation->done);

  clock_.Advance(absl::Seconds(1));
  const ServiceRecord& service = **store_.GetService("p", "us-central1", "hello");
  Json after = store_.ServiceV2(service);
  EXPECT_FALSE(after.contains("reconciling"));
  EXPECT_EQ(after["observedGeneration"], after["generation"]);
  EXPECT_EQ(after["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
  EXPECT_FALSE(after["terminalCondition"].contains("reason"));
  EXPECT_EQ(after["latestReadyRevision"], after["latestCreatedRevision"]);
  EXPECT_THAT(after["latestCreatedRevision"].get<std::string>(),
              testing::MatchesRegex("projects/p/locations/us-central1/services/hello/revisions/"
                                    "hello-00001-[a-z][a-z][a-z]"));
  ASSERT_EQ(after["trafficStatuses"].size(), 1u);
  EXPECT_EQ(after["trafficStatuses"][0]["type"], "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST");
  EXPECT_EQ(after["trafficStatuses"][0]["percent"], 100);
  EXPECT_EQ(after["traffic"][0]["percent"], 100);
  absl::StatusOr<const OperationRecord*> operation = store_.GetOperation(result->operation->name);
  ASSERT_TRUE(operation.ok());
  EXPECT_TRUE((*operation)->done);
  EXPECT_EQ((*operation)->response["@type"], "type.googleapis.com/google.cloud.run.v2.Service");
  EXPECT_EQ((*operation)->response["observedGeneration"], "1");
}

TEST_F(RunModelTest, EveryWriteChangesEtagAndStaleEtagIsAborted) {
  const ServiceRecord& service = Create(kDigestA);
  std::string first_etag = service.etag;
  ServiceWrite traffic_only = Write(kDigestA);
  traffic_only.etag = first_etag;
  ASSERT_TRUE(store_.WriteService(traffic_only).ok());
  EXPECT_NE(service.etag, first_etag);
  ServiceWrite stale = Write(kDigestB);
  stale.etag = first_etag;
  absl::StatusOr<WriteResult> refused = store_.WriteService(stale);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(service.revisions.size(), 1u) << "a refused write must not create a revision";
}

TEST_F(RunModelTest, SameTemplateMakesNoRevisionAndNoNewGeneration) {
  const ServiceRecord& service = Create(kDigestA);
  ASSERT_TRUE(store_.WriteService(Write(kDigestA)).ok());
  EXPECT_EQ(service.revisions.size(), 1u);
  EXPECT_EQ(service.generation, 1);
  ASSERT_TRUE(store_.WriteService(Write(kDigestB)).ok());
  EXPECT_EQ(service.revisions.size(), 2u);
  EXPECT_EQ(service.generation, 2);
  EXPECT_THAT(service.latest_created, testing::StartsWith("hello-00002-"));
}

TEST_F(RunModelTest, DarkDeployKeepsTrafficOnStableAndTagsCandidate) {
  const ServiceRecord& service = Create(kDigestA);
  std::string stable = service.latest_ready;
  ServiceWrite dark = Write(kDigestB, Json::array({{{"revision", stable}, {"percent", 100}},
                                                   {{"revision", "hello-cand"}, {"tag", "cand"}}}));
  dark.fields["template"]["revision"] = "hello-cand";
  ASSERT_TRUE(store_.WriteService(dark).ok());
  clock_.Advance(absl::Seconds(1));
  Json view = store_.ServiceV2(**store_.GetService("p", "us-central1", "hello"));
  EXPECT_EQ(view["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
  ASSERT_EQ(view["trafficStatuses"].size(), 2u);
  EXPECT_EQ(view["trafficStatuses"][0]["revision"], stable);
  EXPECT_EQ(view["trafficStatuses"][0]["percent"], 100);
  EXPECT_EQ(view["trafficStatuses"][1]["revision"], "hello-cand");
  EXPECT_FALSE(view["trafficStatuses"][1].contains("percent")) << "proto3 JSON omits zero";
  EXPECT_EQ(view["trafficStatuses"][1]["uri"], "http://127.0.0.1/_tag/p/us-central1/hello/cand");
  EXPECT_EQ(service.latest_created, "hello-cand");
}

TEST_F(RunModelTest, ExplicitRevisionNameRulesMatchCloudRun) {
  Create(kDigestA);
  ServiceWrite unprefixed = Write(kDigestB);
  unprefixed.fields["template"]["revision"] = "other-v2";
  absl::StatusOr<WriteResult> refused = store_.WriteService(unprefixed);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("must be prefixed by the name"));
  EXPECT_EQ(FieldViolationsOf(refused.status())[0].field, "service.template.revision");

  ServiceWrite named = Write(kDigestB);
  named.fields["template"]["revision"] = "hello-v2";
  ASSERT_TRUE(store_.WriteService(named).ok());
  // The same name and the same template: no new revision (a retried write is harmless).
  ASSERT_TRUE(store_.WriteService(named).ok());
  // The same name with another template: 409.
  ServiceWrite conflicting = Write("us-docker.pkg.dev/p/r/app@sha256:cccc");
  conflicting.fields["template"]["revision"] = "hello-v2";
  absl::StatusOr<WriteResult> conflict = store_.WriteService(conflicting);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(conflict.status().message(), HasSubstr("with different configuration"));
  EXPECT_EQ((*store_.GetService("p", "us-central1", "hello"))->revisions.size(), 2u);
}

TEST_F(RunModelTest, TrafficIsValidatedAsTheServerDoes) {
  const ServiceRecord& service = Create(kDigestA);
  std::string stable = service.latest_ready;
  struct Case {
    Json traffic;
    std::string field;
    std::string message;
  };
  std::vector<Case> cases = {
      {Json::array({{{"revision", stable}, {"percent", 60}}}), "service.traffic",
       "Traffic targets sum to 60, want 100"},
      {Json::array({{{"revision", stable}, {"percent", 101}}}), "service.traffic[0].percent",
       "between 0 and 100"},
      {Json::array({{{"revision", "hello-nope"}, {"percent", 100}}}), "service.traffic[0].revision",
       "referenced in traffic not found"},
      {Json::array({{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"},
                     {"revision", stable},
                     {"percent", 100}}}),
       "service.traffic[0].revision", "must be empty"},
      {Json::array({{{"revision", stable}, {"percent", 100}, {"tag", "a"}},
                    {{"revision", stable}, {"tag", "a"}}}),
       "service.traffic[1].tag", "used more than once"},
      {Json::array({{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"}, {"percent", 100}}}),
       "service.traffic[0].revision", "revision is required"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<WriteResult> result = store_.WriteService(Write(kDigestA, c.traffic));
    ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.traffic;
    std::vector<FieldViolation> violations = FieldViolationsOf(result.status());
    ASSERT_FALSE(violations.empty());
    EXPECT_EQ(violations[0].field, c.field) << c.traffic;
    EXPECT_THAT(violations[0].description, HasSubstr(c.message)) << c.traffic;
  }
  EXPECT_EQ(service.generation, 1) << "refused writes change nothing";
}

TEST_F(RunModelTest, RevisionOfAnotherServiceIsRefusedInTraffic) {
  const ServiceRecord& hello = Create(kDigestA);
  ServiceWrite other = Write(kDigestA);
  other.id = "other";
  ASSERT_TRUE(store_.WriteService(other).ok());
  ServiceWrite steal = other;
  steal.fields["traffic"] = Json::array({{{"revision", hello.latest_created}, {"percent", 100}}});
  absl::StatusOr<WriteResult> result = store_.WriteService(steal);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("belongs to service 'hello'"));
}

TEST_F(RunModelTest, FailingRevisionKeepsLastServingStateAndFailsOperation) {
  const ServiceRecord& service = Create(kDigestA);
  std::string stable = service.latest_ready;
  store_.readiness_rules().push_back(Rule("*sha256:bbbb", ReadinessRule::Outcome::kFail,
                                          absl::Seconds(3), "HEALTH_CHECK_CONTAINER_ERROR",
                                          "probe failed"));
  absl::StatusOr<WriteResult> result = store_.WriteService(Write(kDigestB));
  ASSERT_TRUE(result.ok());
  clock_.Advance(absl::Seconds(2));  // past the reconcile delay, revision still starting
  Json starting = store_.ServiceV2(**store_.GetService("p", "us-central1", "hello"));
  EXPECT_EQ(starting["reconciling"], true);
  EXPECT_EQ(starting["conditions"][1]["state"], "CONDITION_RECONCILING");
  clock_.Advance(absl::Seconds(1));
  Json failed = store_.ServiceV2(**store_.GetService("p", "us-central1", "hello"));
  EXPECT_FALSE(failed.contains("reconciling"));
  EXPECT_EQ(failed["terminalCondition"]["state"], "CONDITION_FAILED");
  EXPECT_EQ(failed["terminalCondition"]["revisionReason"], "HEALTH_CHECK_CONTAINER_ERROR");
  EXPECT_THAT(failed["terminalCondition"]["message"].get<std::string>(), HasSubstr("probe failed"));
  EXPECT_EQ(failed["observedGeneration"], "1") << "observedGeneration keeps the serving state";
  EXPECT_EQ(failed["generation"], "2");
  EXPECT_EQ(failed["latestReadyRevision"], service.RevisionResourceName(stable));
  EXPECT_NE(failed["latestCreatedRevision"], failed["latestReadyRevision"]);
  EXPECT_EQ(failed["trafficStatuses"][0]["revision"], stable);
  const OperationRecord* operation = *store_.GetOperation(result->operation->name);
  ASSERT_TRUE(operation->done);
  ASSERT_TRUE(operation->error.has_value());
  EXPECT_EQ(operation->error->code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RunModelTest, RollbackToTheStableRevisionNameClearsTheFailure) {
  const ServiceRecord& service = Create(kDigestA);
  std::string stable = service.latest_ready;
  store_.readiness_rules().push_back(Rule("*sha256:bbbb", ReadinessRule::Outcome::kFail));
  ASSERT_TRUE(store_.WriteService(Write(kDigestB)).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE((*store_.GetService("p", "us-central1", "hello"))->failed);
  ServiceWrite rollback = Write(kDigestA, Json::array({{{"revision", stable}, {"percent", 100}}}));
  rollback.fields["template"]["revision"] = stable;
  ASSERT_TRUE(store_.WriteService(rollback).ok());
  clock_.Advance(absl::Seconds(1));
  Json view = store_.ServiceV2(**store_.GetService("p", "us-central1", "hello"));
  EXPECT_EQ(view["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
  EXPECT_EQ(view["latestCreatedRevision"], service.RevisionResourceName(stable));
  EXPECT_EQ(service.revisions.size(), 2u);
}

TEST_F(RunModelTest, NeverReadyRevisionStaysReconcilingAndDelayedOneWaits) {
  store_.readiness_rules().push_back(
      Rule("*:slow", ReadinessRule::Outcome::kReady, absl::Seconds(10)));
  store_.readiness_rules().push_back(Rule("*:never", ReadinessRule::Outcome::kNever));
  Create(kDigestA);
  ASSERT_TRUE(store_.WriteService(Write("gcr.io/p/app:slow")).ok());
  clock_.Advance(absl::Seconds(9));
  EXPECT_TRUE((*store_.GetService("p", "us-central1", "hello"))->reconciling);
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE((*store_.GetService("p", "us-central1", "hello"))->reconciling);
  absl::StatusOr<WriteResult> never = store_.WriteService(Write("gcr.io/p/app:never"));
  ASSERT_TRUE(never.ok());
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE((*store_.GetService("p", "us-central1", "hello"))->reconciling);
  EXPECT_EQ(store_.OperationDueTime(never->operation->name), absl::InfiniteFuture());
}

TEST_F(RunModelTest, RevisionDeletionIsRefusedForServingOnlyAndLatest) {
  const ServiceRecord& service = Create(kDigestA);
  std::string first = service.latest_created;
  absl::StatusOr<const OperationRecord*> only =
      store_.DeleteRevision("p", "us-central1", "hello", first, false, nullptr);
  EXPECT_EQ(only.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_.WriteService(Write(kDigestB)).ok());
  clock_.Advance(absl::Seconds(1));
  std::string second = service.latest_created;
  // first is no longer serving (LATEST moved to second), second is latest and serving.
  absl::StatusOr<const OperationRecord*> latest =
      store_.DeleteRevision("p", "us-central1", "hello", second, false, nullptr);
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kFailedPrecondition);
  ServiceWrite pin = Write(kDigestB, Json::array({{{"revision", first}, {"percent", 50}},
                                                  {{"revision", second}, {"percent", 50}}}));
  ASSERT_TRUE(store_.WriteService(pin).ok());
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<const OperationRecord*> serving =
      store_.DeleteRevision("p", "us-central1", "hello", first, false, nullptr);
  EXPECT_EQ(serving.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(serving.status().message(), HasSubstr("can receive traffic"));
  ASSERT_TRUE(store_.WriteService(Write(kDigestB, Json::array({{{"percent", 100}}}))).ok());
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<const OperationRecord*> deleted =
      store_.DeleteRevision("p", "us-central1", "hello", first, false, nullptr);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ((*deleted)->response["@type"], "type.googleapis.com/google.cloud.run.v2.Revision");
  EXPECT_EQ(service.revisions.size(), 1u);
}

TEST_F(RunModelTest, ListIsNewestFirstAcrossRegionsWithDash) {
  for (const char* id : {"a", "b", "c"}) {
    ServiceWrite write = Write(kDigestA);
    write.id = id;
    write.location = std::string(id) == "b" ? "europe-west1" : "us-central1";
    ASSERT_TRUE(store_.WriteService(write).ok());
  }
  std::vector<const ServiceRecord*> all = store_.ListServices("p", "-");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]->id, "c");
  EXPECT_EQ(all[2]->id, "a");
  EXPECT_EQ(store_.ListServices("p", "us-central1").size(), 2u);
  EXPECT_TRUE(store_.ListServices("q", "-").empty());
}

TEST_F(RunModelTest, ReservedKeysAreRefusedInV2AndAcceptedFromV1) {
  ServiceWrite write = Write(kDigestA);
  write.fields["labels"] = {{"run.googleapis.com/x", "y"}};
  absl::StatusOr<WriteResult> refused = store_.WriteService(write);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(FieldViolationsOf(refused.status())[0].field, "service.labels[run.googleapis.com/x]");
  write.strict_v2_keys = false;
  ASSERT_TRUE(store_.WriteService(write).ok());
  Json view = store_.ServiceV2(**store_.GetService("p", "us-central1", "hello"));
  EXPECT_FALSE(view.contains("labels")) << "v2 views hide reserved keys";
}

TEST_F(RunModelTest, ValidateOnlyPersistsNothing) {
  ServiceWrite write = Write(kDigestA);
  write.validate_only = true;
  absl::StatusOr<WriteResult> result = store_.WriteService(write);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->preview["template"]["containers"][0]["image"], kDigestA);
  EXPECT_EQ(result->service, nullptr);
  EXPECT_EQ(store_.GetService("p", "us-central1", "hello").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RunModelTest, UpdateMaskReplacesOnlyNamedFields) {
  const ServiceRecord& service = Create(kDigestA);
  ServiceWrite write = Write(kDigestB);
  write.fields["labels"] = {{"team", "a"}};
  write.mask = {"labels"};
  ASSERT_TRUE(store_.WriteService(write).ok());
  EXPECT_EQ(service.spec["labels"]["team"], "a");
  EXPECT_EQ(service.spec["template"]["containers"][0]["image"], kDigestA)
      << "template is outside the mask";
  write.mask = {"nonsense"};
  absl::StatusOr<WriteResult> refused = store_.WriteService(write);
  EXPECT_EQ(FieldViolationsOf(refused.status())[0].field, "update_mask");
}

TEST_F(RunModelTest, SeededServicesAreConvergedAtOnce) {
  store_.readiness_rules().push_back(Rule("*", ReadinessRule::Outcome::kNever));
  absl::StatusOr<const ServiceRecord*> seeded = store_.SeedService(Write(kDigestA));
  ASSERT_TRUE(seeded.ok());
  EXPECT_FALSE((*seeded)->reconciling);
  EXPECT_EQ((*seeded)->observed_generation, 1);
  EXPECT_TRUE(store_.ListOperations("p", "us-central1").empty());
}

TEST_F(RunModelTest, FinishedOperationsAreCappedButPendingOnesKept) {
  store_.config().reconcile_delay = absl::ZeroDuration();
  store_.readiness_rules().push_back(Rule("*:never", ReadinessRule::Outcome::kNever));
  ServiceWrite stuck = Write("gcr.io/p/app:never");
  stuck.id = "stuck";
  absl::StatusOr<WriteResult> pending = store_.WriteService(stuck);
  ASSERT_TRUE(pending.ok());
  std::string pending_name = pending->operation->name;
  for (size_t i = 0; i < CloudRunStore::kMaxOperations + 50; ++i) {
    ServiceWrite write = Write(kDigestA);
    write.fields["labels"] = {{"n", std::to_string(i)}};
    ASSERT_TRUE(store_.WriteService(write).ok());
  }
  EXPECT_EQ(store_.ListOperations("p", "us-central1").size(), CloudRunStore::kMaxOperations);
  EXPECT_TRUE(store_.GetOperation(pending_name).ok()) << "a pending operation is never dropped";
}

}  // namespace
}  // namespace runway::emulator
