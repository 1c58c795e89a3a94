// The reconcile decision, phase by phase, on hand-built live states.

#include "controller/core/reconcile_decision.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

constexpr char kImageA[] =
    "gcr.io/p/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kImageB[] =
    "gcr.io/p/app@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

DesiredService Desired(const std::string& image) {
  DesiredService d;
  d.key = {"default", "api"};
  d.target = {"p", "us-central1", "api"};
  d.image = image;
  d.traffic = {{kNewRevision, 100, ""}};
  return d;
}

LiveTrafficTarget Target(const std::string& revision, int percent, const std::string& tag = "") {
  LiveTrafficTarget t;
  t.revision = revision;
  t.percent = percent;
  t.tag = tag;
  return t;
}

// A converged live service serving `revision` 100%.
LiveService Serving(const std::string& revision) {
  LiveService live;
  live.name = {"p", "us-central1", "api"};
  live.etag = "\"e1\"";
  live.generation = live.observed_generation = 3;
  live.terminal_state = "CONDITION_SUCCEEDED";
  live.latest_ready_revision = live.latest_created_revision = revision;
  live.template_revision = revision;
  live.traffic = {Target(revision, 100)};
  live.traffic_statuses = {Target(revision, 100)};
  live.annotations = {{"other/keep", "yes"}, {kPhaseAnnotation, "converged"}};
  return live;
}

TEST(RevisionNameTest, StableDistinctAndWithinLimits) {
  DesiredService a = Desired(kImageA);
  EXPECT_EQ(RevisionNameFor(a), RevisionNameFor(a));
  EXPECT_THAT(RevisionNameFor(a), testing::MatchesRegex("api-r[0-9a-f]{10}"));
  DesiredService b = Desired(kImageB);
  EXPECT_NE(RevisionNameFor(a), RevisionNameFor(b));
  DesiredService env = a;
  env.revision_template.env.push_back({"MODE", std::string("x"), std::nullopt});
  EXPECT_NE(RevisionNameFor(a), RevisionNameFor(env));
  DesiredService traffic_only = a;
  traffic_only.traffic = {{kNewRevision, 50, ""}, {"api-old", 50, ""}};
  EXPECT_EQ(RevisionNameFor(a), RevisionNameFor(traffic_only)) << "traffic is not the template";
  DesiredService longest = a;
  longest.target.service = std::string(49, 's');
  EXPECT_LE(RevisionNameFor(longest).size(), 63u);
}

TEST(DecideTest, MissingServiceIsCreatedWithTheDesiredSplit) {
  Decision d = Decide(Desired(kImageA), std::nullopt);
  EXPECT_EQ(d.step, Step::kCreate);
  ASSERT_TRUE(d.update.has_value());
  EXPECT_EQ(d.update->revision_name, d.revision);
  EXPECT_EQ(d.update->image, kImageA);
  ASSERT_EQ(d.update->traffic->size(), 1u);
  EXPECT_EQ((*d.update->traffic)[0].revision, d.revision);
  EXPECT_EQ((*d.update->traffic)[0].percent, 100);
  EXPECT_TRUE(d.update->etag.empty());
}

TEST(DecideTest, NewTemplateIsDeployedDarkWithTrafficPinnedAndCandidateTagged) {
  LiveService live = Serving("api-old");
  live.traffic_statuses = {Target("api-old", 90), Target("api-older", 10, "blue")};
  Decision d = Decide(Desired(kImageB), live);
  ASSERT_EQ(d.step, Step::kDeployDark);
  ASSERT_TRUE(d.update.has_value());
  EXPECT_EQ(d.update->etag, "\"e1\"");
  EXPECT_EQ(d.update->image, kImageB);
  EXPECT_TRUE(
      SameTraffic(*d.update->traffic, {Target("api-old", 90), Target("api-older", 10, "blue"),
                                       Target(d.revision, 0, "candidate")}));
  EXPECT_EQ(d.update->annotations.at(kPhaseAnnotation), "deploying");
  EXPECT_EQ(d.update->annotations.at(kCandidateAnnotation), d.revision);
  EXPECT_EQ(d.update->annotations.at(kStableAnnotation), "api-old,api-older");
  EXPECT_EQ(d.update->annotations.at("other/keep"), "yes") << "foreign annotations are kept";
}

TEST(DecideTest, WaitsWhileCloudRunReconcilesOrTheCandidateStarts) {
  DesiredService desired = Desired(kImageB);
  std::string candidate = RevisionNameFor(desired);
  LiveService live = Serving("api-old");
  live.reconciling = true;
  EXPECT_EQ(Decide(desired, live).step, Step::kWaitCloudRun);
  live.reconciling = false;
  live.template_revision = live.latest_created_revision = candidate;
  live.terminal_state = "CONDITION_RECONCILING";
  Decision d = Decide(desired, live);
  EXPECT_EQ(d.step, Step::kWaitCandidate);
  EXPECT_FALSE(d.update.has_value());
}

TEST(DecideTest, FailedCandidateStallsWithoutWriting) {
  DesiredService desired = Desired(kImageB);
  LiveService live = Serving("api-old");
  live.template_revision = live.latest_created_revision = RevisionNameFor(desired);
  live.terminal_state = "CONDITION_FAILED";
  live.terminal_message = "container failed to start";
  Decision d = Decide(desired, live);
  EXPECT_EQ(d.step, Step::kCandidateFailed);
  EXPECT_FALSE(d.update.has_value());
  EXPECT_THAT(d.message, HasSubstr("container failed to start"));
}

TEST(DecideTest, ReadyCandidateInRolloutIsPromotedAndAnnotationsCleared) {
  DesiredService desired = Desired(kImageB);
  std::string candidate = RevisionNameFor(desired);
  LiveService live = Serving("api-old");
  live.template_revision = live.latest_created_revision = live.latest_ready_revision = candidate;
  live.traffic_statuses = {Target("api-old", 100), Target(candidate, 0, "candidate")};
  live.annotations[kPhaseAnnotation] = "deploying";
  live.annotations[kCandidateAnnotation] = candidate;
  Decision d = Decide(desired, live);
  ASSERT_EQ(d.step, Step::kPromote);
  EXPECT_TRUE(SameTraffic(*d.update->traffic, {Target(candidate, 100)}));
  EXPECT_FALSE(d.update->revision_template.has_value()) << "promotion writes traffic only";
  EXPECT_EQ(d.update->annotations.count(kCandidateAnnotation), 0u);
  EXPECT_EQ(d.update->annotations.at(kPhaseAnnotation), "converged");
}

TEST(DecideTest, ConvergedMeansNoWrite) {
  DesiredService desired = Desired(kImageA);
  LiveService live = Serving(RevisionNameFor(desired));
  Decision d = Decide(desired, live);
  EXPECT_EQ(d.step, Step::kConverged);
  EXPECT_FALSE(d.update.has_value());
}

TEST(DecideTest, LatestTargetsCompareByTheRevisionTheyResolveTo) {
  DesiredService desired = Desired(kImageA);
  std::string revision = RevisionNameFor(desired);
  LiveService live = Serving(revision);
  LiveTrafficTarget latest;
  latest.latest = true;
  latest.revision = revision;  // trafficStatuses resolve LATEST
  latest.percent = 100;
  live.traffic_statuses = {latest};
  EXPECT_EQ(Decide(desired, live).step, Step::kConverged);
}

TEST(DecideTest, DriftFollowsThePolicy) {
  DesiredService desired = Desired(kImageA);
  std::string revision = RevisionNameFor(desired);
  LiveService live = Serving(revision);
  live.annotations[kTrafficAnnotation] = DescribeTraffic(ResolveTraffic(desired.traffic, revision));
  live.traffic = live.traffic_statuses = {Target(revision, 50), Target("api-old", 50)};
  Decision enforce = Decide(desired, live);
  EXPECT_EQ(enforce.step, Step::kCorrectDrift);
  EXPECT_TRUE(SameTraffic(*enforce.update->traffic, {Target(revision, 100)}));
  desired.drift_policy = DriftPolicy::kWarn;
  Decision warn = Decide(desired, live);
  EXPECT_EQ(warn.step, Step::kReportDrift);
  EXPECT_FALSE(warn.update.has_value());
  EXPECT_THAT(warn.message, HasSubstr("api-old 50%"));
  desired.drift_policy = DriftPolicy::kIgnore;
  EXPECT_EQ(Decide(desired, live).step, Step::kConverged);
}

TEST(DecideTest, AChangedSplitInTheManifestIsAppliedNotCalledDrift) {
  DesiredService desired = Desired(kImageA);
  std::string revision = RevisionNameFor(desired);
  LiveService live = Serving(revision);
  live.annotations[kTrafficAnnotation] = DescribeTraffic({Target(revision, 100)});
  desired.traffic = {{kNewRevision, 80, ""}, {"api-old", 20, ""}};
  Decision d = Decide(desired, live);
  ASSERT_EQ(d.step, Step::kApplyTraffic);
  EXPECT_TRUE(SameTraffic(*d.update->traffic, {Target(revision, 80), Target("api-old", 20)}));
  EXPECT_EQ(d.update->annotations.at(kTrafficAnnotation), "api-old 20%, " + revision + " 80%");
  EXPECT_FALSE(d.update->revision_template.has_value());
}

TEST(DecideTest, CanaryAndManualCandidatesStayDarkUntilPromoted) {
  DesiredService desired = Desired(kImageB);
  desired.rollout.strategy = RolloutStrategy::kManual;
  std::string candidate = RevisionNameFor(desired);
  LiveService live = Serving("api-old");
  live.template_revision = live.latest_created_revision = live.latest_ready_revision = candidate;
  live.traffic_statuses = {Target("api-old", 100), Target(candidate, 0, "candidate")};
  live.annotations[kPhaseAnnotation] = "deploying";
  live.annotations[kCandidateAnnotation] = candidate;
  Decision d = Decide(desired, live);
  EXPECT_EQ(d.step, Step::kAwaitingPromotion);
  EXPECT_FALSE(d.update.has_value());
  desired.rollout.strategy = RolloutStrategy::kCanary;
  EXPECT_EQ(Decide(desired, live).step, Step::kAwaitingPromotion);
}

TEST(DecideTest, BuildWithoutImageWritesNothing) {
  DesiredService desired = Desired(kImageA);
  desired.image.reset();
  desired.build = BuildSpec{};
  Decision d = Decide(desired, std::nullopt);
  EXPECT_EQ(d.step, Step::kBuildImage);
  EXPECT_FALSE(d.update.has_value());
  EXPECT_THAT(d.message, HasSubstr("built from spec.build"));
  desired.suspend = true;
  EXPECT_EQ(Decide(desired, std::nullopt).step, Step::kSuspended);
}

TEST(DecideTest, ALatestStatusWithoutARevisionIsPinnedToTheLatestReady) {
  LiveService live = Serving("api-old");
  LiveTrafficTarget latest;
  latest.latest = true;
  latest.percent = 100;  // no revision name in the status
  live.traffic_statuses = {latest};
  Decision d = Decide(Desired(kImageB), live);
  ASSERT_EQ(d.step, Step::kDeployDark);
  EXPECT_TRUE(SameTraffic(*d.update->traffic,
                          {Target("api-old", 100), Target(d.revision, 0, "candidate")}));
}

TEST(DecideTest, NoTerminalStateMeansWaitNotStall) {
  DesiredService desired = Desired(kImageA);
  std::string revision = RevisionNameFor(desired);
  LiveService live = Serving(revision);
  live.annotations[kTrafficAnnotation] = DescribeTraffic({Target(revision, 100)});
  live.traffic_statuses = {Target("api-old", 100)};
  live.terminal_state.clear();
  EXPECT_EQ(Decide(desired, live).step, Step::kWaitCloudRun);
}

TEST(RevisionNameTest, SubSecondTimeoutsChangeTheName) {
  DesiredService a = Desired(kImageA);
  a.revision_template.request_timeout = absl::Seconds(1);
  DesiredService b = a;
  b.revision_template.request_timeout = absl::Milliseconds(1500);
  EXPECT_NE(RevisionNameFor(a), RevisionNameFor(b));
}

TEST(DecideTest, SuspendStopsEveryWrite) {
  DesiredService desired = Desired(kImageB);
  desired.suspend = true;
  EXPECT_EQ(Decide(desired, std::nullopt).step, Step::kSuspended);
  Decision d = Decide(desired, Serving("api-old"));
  EXPECT_EQ(d.step, Step::kSuspended);
  EXPECT_FALSE(d.update.has_value());
}

TEST(DecideTest, RefusedTrafficIsNotWrittenAgain) {
  DesiredService desired = Desired(kImageA);
  desired.traffic = {{kNewRevision, 50, ""}, {"api-gone", 50, ""}};
  std::string revision = RevisionNameFor(desired);
  LiveService live = Serving(revision);
  live.traffic = ResolveTraffic(desired.traffic, revision);
  live.terminal_state = "CONDITION_FAILED";
  live.terminal_message = "Revision 'api-gone' is not ready";
  EXPECT_EQ(Decide(desired, live).step, Step::kCloudRunFailed);
}

TEST(DecideTest, NewTemplateWhileAnotherCandidateIsDarkMovesTheTag) {
  DesiredService desired = Desired(kImageB);
  LiveService live = Serving("api-old");
  live.template_revision = "api-r0000000001";
  live.traffic_statuses = {Target("api-old", 100), Target("api-r0000000001", 0, "candidate")};
  Decision d = Decide(desired, live);
  ASSERT_EQ(d.step, Step::kDeployDark);
  EXPECT_TRUE(SameTraffic(*d.update->traffic,
                          {Target("api-old", 100), Target(d.revision, 0, "candidate")}));
}

}  // namespace
}  // namespace runway
