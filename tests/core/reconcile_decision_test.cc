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

// A candidate deployed dark next to api-old, Ready, at rollout phase `phase`.
struct Rollout {
  DesiredService desired;
  LiveService live;
  std::string candidate;
};

Rollout InRollout(RolloutStrategy strategy, const std::string& phase) {
  Rollout r;
  r.desired = Desired(kImageB);
  r.desired.rollout.strategy = strategy;
  r.candidate = RevisionNameFor(r.desired);
  r.live = Serving("api-old");
  r.live.template_revision = r.live.latest_created_revision = r.live.latest_ready_revision =
      r.candidate;
  r.live.traffic_statuses = {Target("api-old", 100), Target(r.candidate, 0, "candidate")};
  r.live.traffic_statuses[1].uri = "http://candidate---api.run.app";
  r.live.annotations[kPhaseAnnotation] = phase;
  r.live.annotations[kCandidateAnnotation] = r.candidate;
  r.live.annotations[kStableTrafficAnnotation] = "api-old:100:";
  r.live.annotations[kProgressAnnotation] = "1000";
  return r;
}

RolloutInputs At(int64_t unix_seconds) {
  RolloutInputs inputs;
  inputs.now = absl::FromUnixSeconds(unix_seconds);
  return inputs;
}

TEST(CanarySplitTest, ScalesTheStableSplitAndSumsTo100) {
  std::vector<LiveTrafficTarget> split =
      CanarySplit({Target("a", 70), Target("b", 30, "blue")}, "c", 10);
  int sum = 0;
  for (const LiveTrafficTarget& t : split) sum += t.percent;
  EXPECT_EQ(sum, 100);
  EXPECT_EQ(split[0].percent, 63);
  EXPECT_EQ(split[1].percent, 27);
  EXPECT_EQ(split[1].tag, "blue");
  EXPECT_EQ(split[2].revision, "c");
  EXPECT_EQ(split[2].percent, 10);
  EXPECT_EQ(split[2].tag, kCandidateTag);
  EXPECT_EQ(CanarySplit({Target("a", 50), Target("b", 50)}, "c", 33)[0].percent +
                CanarySplit({Target("a", 50), Target("b", 50)}, "c", 33)[1].percent,
            67);
  EXPECT_EQ(DecodeSplit(EncodeSplit(split)).size(), 3u);
  EXPECT_EQ(DecodeSplit("garbage").size(), 0u) << "unreadable: callers use the live split";
}

TEST(RolloutTest, DarkDeployRecordsTheStableSplitAndTheTime) {
  DesiredService desired = Desired(kImageB);
  Decision d = Decide(desired, Serving("api-old"), At(5000));
  ASSERT_EQ(d.step, Step::kDeployDark);
  EXPECT_EQ(d.update->annotations.at(kStableTrafficAnnotation), "api-old:100:");
  EXPECT_EQ(d.update->annotations.at(kProgressAnnotation), "5000");
}

TEST(RolloutTest, VerifyGatesTheFirstTrafficAndAFailureRollsBack) {
  Rollout r = InRollout(RolloutStrategy::kDirect, "deploying");
  r.desired.rollout.verify = VerifySpec{};
  EXPECT_EQ(Decide(r.desired, r.live, At(1001)).step, Step::kVerify);
  RolloutInputs failed = At(1001);
  failed.verify = GateResult{GateResult::Verdict::kFail, "GET / answered 500"};
  Decision d = Decide(r.desired, r.live, failed);
  ASSERT_EQ(d.step, Step::kRollback);
  EXPECT_EQ(d.rollback_reason, "VerifyFailed");
  EXPECT_TRUE(SameTraffic(*d.update->traffic, {Target("api-old", 100)}));
  EXPECT_EQ(d.update->annotations.at(kBlockedAnnotation), r.candidate);
  EXPECT_THAT(d.update->annotations.at(kRollbackReasonAnnotation), HasSubstr("500"));
  EXPECT_FALSE(d.update->revision_template.has_value()) << "one traffic write, no new revision";
  RolloutInputs early = At(1001);
  early.verify = GateResult{GateResult::Verdict::kHold, "no tag URL yet"};
  EXPECT_EQ(Decide(r.desired, r.live, early).step, Step::kWaitCandidate)
      << "a verify that could not run yet is no pass";
  RolloutInputs passed = At(1001);
  passed.verify = GateResult{GateResult::Verdict::kPass, "200"};
  EXPECT_EQ(Decide(r.desired, r.live, passed).step, Step::kPromote);
}

TEST(RolloutTest, CanaryWalksItsStepsWithPausesAndAnalysis) {
  Rollout r = InRollout(RolloutStrategy::kCanary, "deploying");
  r.desired.rollout.steps = {{10, absl::Seconds(60)}, {50, absl::Seconds(60)}};
  r.desired.rollout.analysis = AnalysisSpec{};
  Decision first = Decide(r.desired, r.live, At(1001));
  ASSERT_EQ(first.step, Step::kAdvance);
  EXPECT_TRUE(SameTraffic(*first.update->traffic,
                          {Target("api-old", 90), Target(r.candidate, 10, kCandidateTag)}));
  EXPECT_EQ(first.update->annotations.at(kStepAnnotation), "0");
  // Cloud Run serves step 1 (written at t=1001).
  r.live.annotations = first.update->annotations;
  r.live.traffic_statuses = *first.update->traffic;
  Decision paused = Decide(r.desired, r.live, At(1030));
  EXPECT_EQ(paused.step, Step::kPause);
  EXPECT_EQ(paused.requeue_after, absl::Seconds(31));
  EXPECT_EQ(Decide(r.desired, r.live, At(1062)).step, Step::kAnalyze);
  RolloutInputs hold = At(1062);
  hold.analysis = GateResult{GateResult::Verdict::kHold, "no data"};
  EXPECT_EQ(Decide(r.desired, r.live, hold).step, Step::kAnalysisHold);
  RolloutInputs pass = At(1062);
  pass.analysis = GateResult{GateResult::Verdict::kPass, "0.001 <= 0.01"};
  Decision second = Decide(r.desired, r.live, pass);
  ASSERT_EQ(second.step, Step::kAdvance);
  EXPECT_EQ(second.update->annotations.at(kStepAnnotation), "1");
  r.live.annotations = second.update->annotations;
  r.live.traffic_statuses = *second.update->traffic;
  RolloutInputs last = At(1200);
  last.analysis = pass.analysis;
  Decision promoted = Decide(r.desired, r.live, last);
  ASSERT_EQ(promoted.step, Step::kPromote);
  EXPECT_TRUE(SameTraffic(*promoted.update->traffic, {Target(r.candidate, 100)}));
  EXPECT_EQ(promoted.update->annotations.count(kStepAnnotation), 0u);
  RolloutInputs bad = At(1200);
  bad.analysis = GateResult{GateResult::Verdict::kFail, "0.3 > 0.01"};
  Decision rolled = Decide(r.desired, r.live, bad);
  EXPECT_EQ(rolled.step, Step::kRollback);
  EXPECT_EQ(rolled.rollback_reason, "AnalysisFailed");
  EXPECT_TRUE(SameTraffic(*rolled.update->traffic, {Target("api-old", 100)}));
}

TEST(RolloutTest, ProgressDeadlineRollsBackARevisionThatNeverBecomesReady) {
  Rollout r = InRollout(RolloutStrategy::kDirect, "deploying");
  r.desired.rollout.progress_deadline = absl::Minutes(10);
  r.live.latest_ready_revision = "api-old";
  EXPECT_EQ(Decide(r.desired, r.live, At(1000 + 599)).step, Step::kWaitCandidate);
  Decision d = Decide(r.desired, r.live, At(1000 + 601));
  EXPECT_EQ(d.step, Step::kRollback);
  EXPECT_EQ(d.rollback_reason, "ProgressDeadlineExceeded");
  r.live.reconciling = true;
  EXPECT_EQ(Decide(r.desired, r.live, At(1000 + 601)).step, Step::kRollback)
      << "also while Cloud Run keeps reconciling it";
  r.live.reconciling = false;
  r.live.terminal_state = "CONDITION_FAILED";
  EXPECT_EQ(Decide(r.desired, r.live, At(1001)).rollback_reason, "RevisionFailed");
}

TEST(RolloutTest, ABlockedRevisionIsNeverPromotedAgainButANewOneIs) {
  Rollout r = InRollout(RolloutStrategy::kDirect, "deploying");
  RolloutInputs failed = At(1001);
  r.desired.rollout.verify = VerifySpec{};
  failed.verify = GateResult{GateResult::Verdict::kFail, "500"};
  Decision rollback = Decide(r.desired, r.live, failed);
  r.live.annotations = rollback.update->annotations;
  r.live.traffic_statuses = *rollback.update->traffic;
  Decision blocked = Decide(r.desired, r.live, At(99999));
  EXPECT_EQ(blocked.step, Step::kRolledBack);
  EXPECT_EQ(blocked.rollback_reason, "VerifyFailed");
  EXPECT_FALSE(blocked.update.has_value());
  r.live.reconciling = true;  // Cloud Run still busy with the abandoned revision
  DesiredService next = Desired("gcr.io/p/app@sha256:" + std::string(64, 'c'));
  Decision fresh = Decide(next, r.live, At(99999));
  ASSERT_EQ(fresh.step, Step::kDeployDark);
  EXPECT_EQ(fresh.update->annotations.count(kBlockedAnnotation), 0u);
  EXPECT_EQ(fresh.update->annotations.at(kStableTrafficAnnotation), "api-old:100:");
}

TEST(RolloutTest, ManualWaitsForPromoteOrAbort) {
  Rollout r = InRollout(RolloutStrategy::kManual, "deploying");
  Decision waiting = Decide(r.desired, r.live, At(1001));
  ASSERT_EQ(waiting.step, Step::kAwaitManual);
  r.live.annotations = waiting.update->annotations;
  EXPECT_EQ(Decide(r.desired, r.live, At(5000)).step, Step::kAwaitingPromotion)
      << "no deadline while a person decides";
  r.live.annotations[kDecisionAnnotation] = "promote";
  Decision promoted = Decide(r.desired, r.live, At(5000));
  EXPECT_EQ(promoted.step, Step::kPromote);
  EXPECT_EQ(promoted.update->annotations.count(kDecisionAnnotation), 0u);
  r.live.annotations[kDecisionAnnotation] = "abort";
  Decision aborted = Decide(r.desired, r.live, At(5000));
  EXPECT_EQ(aborted.step, Step::kRollback);
  EXPECT_EQ(aborted.rollback_reason, "Aborted");
}

TEST(RolloutTest, ANewRolloutOverAnUnfinishedOneKeepsTheSplitFromBeforeIt) {
  Rollout r = InRollout(RolloutStrategy::kCanary, "canary");
  r.live.traffic_statuses = {Target("api-old", 90), Target(r.candidate, 10, "candidate")};
  r.live.annotations[kStepAnnotation] = "0";
  DesiredService fix = Desired("gcr.io/p/app@sha256:" + std::string(64, 'f'));
  Decision d = Decide(fix, r.live, At(2000));
  ASSERT_EQ(d.step, Step::kDeployDark);
  EXPECT_EQ(d.update->annotations.at(kStableTrafficAnnotation), "api-old:100:")
      << "the abandoned candidate never becomes stable";
}

TEST(RolloutTest, EditedStepsOrStrategyNeverSkipAGate) {
  Rollout r = InRollout(RolloutStrategy::kCanary, "canary");
  r.desired.rollout.steps = {{10, absl::Seconds(60)}};
  r.live.traffic_statuses = {Target("api-old", 50), Target(r.candidate, 50, "candidate")};
  r.live.annotations[kStepAnnotation] = "3";  // the steps were cut while at step 4
  Decision restart = Decide(r.desired, r.live, At(2000));
  ASSERT_EQ(restart.step, Step::kAdvance);
  EXPECT_EQ(restart.update->annotations.at(kStepAnnotation), "0");
  r.desired.rollout.strategy = RolloutStrategy::kManual;
  Decision hold = Decide(r.desired, r.live, At(2000));
  ASSERT_EQ(hold.step, Step::kAwaitManual) << "switching to manual halts, it does not promote";
  EXPECT_FALSE(hold.update->traffic.has_value());
}

TEST(RolloutTest, TheDeadlineDoesNotCutAPauseShortWhileCloudRunReconciles) {
  Rollout r = InRollout(RolloutStrategy::kCanary, "canary");
  r.desired.rollout.steps = {{10, absl::Minutes(30)}};
  r.desired.rollout.progress_deadline = absl::Minutes(10);
  r.live.annotations[kStepAnnotation] = "0";
  r.live.reconciling = true;  // an unrelated write during a long pause
  EXPECT_EQ(Decide(r.desired, r.live, At(1000 + 20 * 60)).step, Step::kWaitCloudRun);
}

TEST(RolloutTest, WithoutARecordTheRollbackSplitIsTheRestScaledTo100) {
  Rollout r = InRollout(RolloutStrategy::kDirect, "deploying");
  r.desired.rollout.verify = VerifySpec{};
  r.live.annotations.erase(kStableTrafficAnnotation);
  LiveTrafficTarget latest;
  latest.latest = true;
  latest.percent = 60;
  r.live.latest_ready_revision = r.candidate;
  r.live.traffic_statuses = {Target("api-old", 30), latest, Target(r.candidate, 10, "candidate")};
  r.live.traffic_statuses[1].revision = "api-mid";
  RolloutInputs failed = At(1001);
  failed.verify = GateResult{GateResult::Verdict::kFail, "500"};
  Decision d = Decide(r.desired, r.live, failed);
  ASSERT_EQ(d.step, Step::kRollback);
  EXPECT_TRUE(SameTraffic(*d.update->traffic, {Target("api-old", 33), Target("api-mid", 67)}))
      << DescribeTraffic(*d.update->traffic);
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
