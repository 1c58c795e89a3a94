#include "controller/core/desired_service_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/field_error_printer.h"

namespace runway {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kDigest[] =
    "sha256:a17703e9b1c44a0d8c6f0e3a5b2d9f1e7c4a6b8d0e2f4a6c8e0b2d4f6a8c0e2f";

DesiredService ValidService() {
  DesiredService service;
  service.key = {"staging", "backend"};
  service.target = {"netra-staging", "us-central1", "backend"};
  service.image = std::string("gcr.io/p/backend@") + kDigest;
  service.traffic = {{kNewRevision, 90, "current"}, {"backend-00001-abc", 10, "previous"}};
  return service;
}

auto ErrorAt(const std::string& path, const std::string& message_part) {
  return AllOf(Field(&FieldError::path, path),
               Field(&FieldError::message, HasSubstr(message_part)));
}

TEST(DesiredServiceRulesTest, ValidServiceHasNoErrors) {
  EXPECT_THAT(ValidateDesiredService(ValidService()), IsEmpty());
}

TEST(DesiredServiceRulesTest, PercentsMustSumToExactly100) {
  DesiredService service = ValidService();
  service.traffic[1].percent = 20;
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.traffic", "percents sum to 110, want exactly 100")));
}

TEST(DesiredServiceRulesTest, AtMostOneNewRevision) {
  DesiredService service = ValidService();
  service.traffic[1] = {kNewRevision, 10, "again"};
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.traffic[1].revision",
                                  "'@new' is already the target at spec.traffic[0]")));
}

TEST(DesiredServiceRulesTest, TagsMustBeUnique) {
  DesiredService service = ValidService();
  service.traffic[1].tag = "current";
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.traffic[1].tag",
                                  "tag \"current\" is already used by spec.traffic[0]")));
}

TEST(DesiredServiceRulesTest, NamedRevisionMustCarryTheServicePrefix) {
  DesiredService service = ValidService();
  service.traffic[1].revision = "frontend-00001-abc";
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.traffic[1].revision", "start with \"backend-\"")));
  service.traffic[1].revision = "backend-";
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.traffic[1].revision", "does not belong")));
}

TEST(DesiredServiceRulesTest, ImageMustBePinnedByDigest) {
  DesiredService service = ValidService();
  service.image = "gcr.io/p/backend:latest";
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.image", "is not pinned by digest")));
  EXPECT_FALSE(IsDigestPinnedImage("gcr.io/p/backend@sha256:ABC"));
  EXPECT_FALSE(IsDigestPinnedImage(std::string("@") + kDigest));
  EXPECT_TRUE(IsDigestPinnedImage(std::string("gcr.io/p/b@") + kDigest));
}

TEST(DesiredServiceRulesTest, ExactlyOneOfImageAndBuild) {
  DesiredService service = ValidService();
  service.build = BuildSpec{};
  service.build->git = GitSource{"https://example.com/r", std::string(40, 'a'), "."};
  EXPECT_THAT(ValidateDesiredService(service), ElementsAre(ErrorAt("spec.build", "both set")));
  service.image.reset();
  service.build.reset();
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec", "neither spec.image nor spec.build")));
}

TEST(DesiredServiceRulesTest, BuildNeedsExactlyOneSource) {
  DesiredService service = ValidService();
  service.image.reset();
  service.build = BuildSpec{};
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.build.source", "no source is set")));
}

TEST(DesiredServiceRulesTest, CanaryStepsStrictlyIncreaseAndStayBelowTheFinalShare) {
  DesiredService service = ValidService();
  service.rollout.strategy = RolloutStrategy::kCanary;
  service.rollout.steps = {{10, absl::Minutes(1)}, {10, absl::Minutes(1)}, {95, absl::Minutes(1)}};
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.rollout.steps[1].percent", "is not above the previous"),
                          ErrorAt("spec.rollout.steps[2].percent",
                                  "is not below the final share of '@new' (90%")));
}

TEST(DesiredServiceRulesTest, CanaryNeedsStepsAndTrafficForNew) {
  DesiredService service = ValidService();
  service.rollout.strategy = RolloutStrategy::kCanary;
  service.traffic = {{kNewRevision, 0, ""}, {"backend-00001-abc", 100, ""}};
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.rollout.steps", "needs at least one step"),
                          ErrorAt("spec.traffic", "gives it no traffic")));
}

TEST(DesiredServiceRulesTest, DirectRejectsStepsAndAnalysis) {
  DesiredService service = ValidService();
  service.rollout.steps = {{10, absl::Minutes(1)}};
  service.rollout.analysis = AnalysisSpec{};
  service.rollout.analysis->max_value = 0.01;
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.rollout.steps", "only used by strategy canary"),
                          ErrorAt("spec.rollout.analysis", "runs after canary steps")));
}

TEST(DesiredServiceRulesTest, AnalysisNeedsABound) {
  DesiredService service = ValidService();
  service.rollout.strategy = RolloutStrategy::kCanary;
  service.rollout.steps = {{10, absl::Minutes(1)}};
  service.rollout.analysis = AnalysisSpec{};
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.rollout.analysis.prometheus", "neither maxValue")));
  service.rollout.analysis->max_value = 1;
  service.rollout.analysis->min_value = 2;
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.rollout.analysis.prometheus.minValue", "is above")));
}

TEST(DesiredServiceRulesTest, DurationsMustBeInRange) {
  DesiredService service = ValidService();
  service.rollout.progress_deadline = absl::Hours(48);
  service.revision_template.request_timeout = absl::Minutes(61);
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.template.timeout", "out of range"),
                          ErrorAt("spec.rollout.progressDeadline", "from 1s to 24h")));
}

TEST(DesiredServiceRulesTest, TemplateRules) {
  DesiredService service = ValidService();
  service.revision_template.min_instances = 5;
  service.revision_template.max_instances = 3;
  service.revision_template.env = {
      {"A", "1", std::nullopt}, {"A", "2", std::nullopt}, {"B", std::nullopt, std::nullopt}};
  service.revision_template.labels = {
      {"run.googleapis.com/x", "y"}, {"Team", "a"}, {"ok", "Bad Value"}};
  EXPECT_THAT(ValidateDesiredService(service),
              ElementsAre(ErrorAt("spec.template.scaling.min", "min (5) is above max (3)"),
                          ErrorAt("spec.template.env[1].name", "already set at"),
                          ErrorAt("spec.template.env[2]", "neither value nor secret"),
                          ErrorAt("spec.template.labels[\"Team\"]", "label keys start"),
                          ErrorAt("spec.template.labels[\"ok\"]", "not a valid Cloud Run label"),
                          ErrorAt("spec.template.labels[\"run.googleapis.com/x\"]", "reserved")));
}

TEST(DesiredServiceRulesTest, OwnershipConflictsNameBothManifests) {
  const CloudRunServiceName target{"p-123456", "us-central1", "api"};
  std::vector<ServiceClaim> claims = {
      {{"a", "api"}, target, "one.yaml:1"},
      {{"b", "api"}, {"p-123456", "us-east1", "api"}, "two.yaml:1"},
      {{"c", "api2"}, target, "three.yaml:2"},
  };
  const std::vector<OwnershipConflict> conflicts = FindOwnershipConflicts(claims);
  ASSERT_EQ(conflicts.size(), 2u);
  EXPECT_EQ(conflicts[0].claim_index, 2u);
  EXPECT_THAT(conflicts[0].error.message, HasSubstr("also managed by one.yaml:1"));
  EXPECT_EQ(conflicts[1].claim_index, 0u);
  EXPECT_THAT(conflicts[1].error.message, HasSubstr("also managed by three.yaml:2"));
}

TEST(DesiredServiceRulesTest, DuplicateObjectKeysAreReported) {
  std::vector<ServiceClaim> claims = {
      {{"a", "api"}, {"p-123456", "us-central1", "api"}, "one.yaml:1"},
      {{"a", "api"}, {"p-123456", "us-central1", "api-b"}, "two.yaml:1"},
  };
  const std::vector<OwnershipConflict> conflicts = FindOwnershipConflicts(claims);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].claim_index, 1u);
  EXPECT_EQ(conflicts[0].error.path, "metadata.name");
  EXPECT_THAT(conflicts[0].error.message, HasSubstr("already defined in one.yaml:1"));
}

}  // namespace
}  // namespace runway
