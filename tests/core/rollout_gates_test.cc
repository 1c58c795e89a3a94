// The Reconciler running rollout gates over fakes: verify attempts spread over passes, a failed
// rollback write retried instead of stalled, analysis asked at most once per interval.

#include <deque>

#include "controller/core/reconciler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_builds.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_cloud_run.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

class ScriptedHttp : public HttpTransport {
 public:
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    urls.push_back(request.url);
    HttpResponse response;
    response.status = statuses.empty() ? 200 : statuses.front();
    if (!statuses.empty()) statuses.pop_front();
    return response;
  }
  std::deque<int> statuses;
  std::vector<std::string> urls;
};

class ScriptedQuery : public MetricsQuery {
 public:
  absl::StatusOr<std::optional<double>> Query(const std::string&, const std::string&) override {
    ++queries;
    return std::optional<double>(value);
  }
  double value = 0;
  int queries = 0;
};

DesiredService Desired() {
  DesiredService d;
  d.key = {"team", "api"};
  d.target = {"p", "us-central1", "api"};
  d.image = "gcr.io/p/app@sha256:" + std::string(64, 'b');
  d.traffic = {{kNewRevision, 100, ""}};
  return d;
}

// The candidate deployed dark and Ready, next to api-old serving 100%.
LiveService DarkCandidate(const std::string& candidate, absl::Time at) {
  LiveService live;
  live.name = {"p", "us-central1", "api"};
  live.etag = "\"1\"";
  live.generation = live.observed_generation = 2;
  live.terminal_state = "CONDITION_SUCCEEDED";
  live.template_revision = live.latest_created_revision = live.latest_ready_revision = candidate;
  LiveTrafficTarget old_rev, dark;
  old_rev.revision = "api-old";
  old_rev.percent = 100;
  dark.revision = candidate;
  dark.tag = kCandidateTag;
  dark.uri = "http://127.0.0.1:1/_tag/candidate";
  live.traffic = live.traffic_statuses = {old_rev, dark};
  live.annotations = {{kPhaseAnnotation, "deploying"},
                      {kCandidateAnnotation, candidate},
                      {kStableTrafficAnnotation, "api-old:100:"},
                      {kProgressAnnotation, absl::StrCat(absl::ToUnixSeconds(at))}};
  return live;
}

class RolloutGatesTest : public ::testing::Test {
 protected:
  Reconciler Make() {
    Reconciler::Options options;
    options.verify_http = &http_;
    options.analysis = &query_;
    options.metrics = &metrics_;
    return Reconciler(&cloud_run_, nullptr, &clock_, options);
  }
  FakeClock clock_;
  FakeCloudRun cloud_run_;
  ScriptedHttp http_;
  ScriptedQuery query_;
  RecordingMetrics metrics_;
};

TEST_F(RolloutGatesTest, VerifyRetriesArePassesApartNotBackToBack) {
  DesiredService desired = Desired();
  desired.rollout.verify = VerifySpec{"/healthz", 200, absl::Seconds(5), 1};
  const std::string candidate = RevisionNameFor(desired);
  cloud_run_.services[desired.target] = DarkCandidate(candidate, clock_.Now());
  Reconciler reconciler = Make();
  http_.statuses = {503, 200};
  ReconcileOutcome first = reconciler.Reconcile(desired);
  EXPECT_EQ(first.step, Step::kWaitCandidate);
  EXPECT_THAT(first.message, HasSubstr("attempt 1 of 2"));
  EXPECT_EQ(http_.urls.size(), 1u) << "one GET per pass";
  EXPECT_EQ(http_.urls[0], "http://127.0.0.1:1/_tag/candidate/healthz");
  ReconcileOutcome second = reconciler.Reconcile(desired);
  EXPECT_EQ(second.step, Step::kPromote) << "the retry on the next pass passed";
  EXPECT_EQ(cloud_run_.writes, 1);
}

TEST_F(RolloutGatesTest, AFailedRollbackWriteIsRetriedNotStalled) {
  DesiredService desired = Desired();
  desired.rollout.verify = VerifySpec{"/", 200, absl::Seconds(5), 0};
  const std::string candidate = RevisionNameFor(desired);
  cloud_run_.services[desired.target] = DarkCandidate(candidate, clock_.Now());
  Reconciler reconciler = Make();
  http_.statuses = {500, 500};
  cloud_run_.FailNext(absl::OkStatus());  // the GET
  cloud_run_.FailNext(absl::PermissionDeniedError("run.services.update denied"));
  ReconcileOutcome failed = reconciler.Reconcile(desired);
  EXPECT_EQ(failed.kind, ReconcileOutcome::Kind::kTransientError);
  EXPECT_EQ(failed.reason, "RollbackFailed");
  EXPECT_TRUE(failed.rollback_reason.empty()) << "not rolled back yet";
  ReconcileOutcome rolled = reconciler.Reconcile(desired);
  EXPECT_EQ(rolled.step, Step::kRollback);
  EXPECT_EQ(rolled.writes, 1);
  EXPECT_EQ(rolled.rollback_reason, "VerifyFailed");
  EXPECT_EQ(reconciler.Reconcile(desired).step, Step::kRolledBack);
}

TEST_F(RolloutGatesTest, AnalysisIsAskedAtMostOncePerInterval) {
  DesiredService desired = Desired();
  desired.rollout.strategy = RolloutStrategy::kCanary;
  desired.rollout.steps = {{10, absl::Seconds(10)}};
  AnalysisSpec analysis;
  analysis.query = "max(err{revision=\"$REVISION\"})";
  analysis.max_value = 0.05;
  analysis.interval = absl::Seconds(60);
  analysis.failure_limit = 1;
  desired.rollout.analysis = analysis;
  const std::string candidate = RevisionNameFor(desired);
  cloud_run_.services[desired.target] = DarkCandidate(candidate, clock_.Now());
  Reconciler reconciler = Make();
  ASSERT_EQ(reconciler.Reconcile(desired).step, Step::kAdvance);
  clock_.Advance(absl::Seconds(11));
  query_.value = 0.5;  // over the bound: failure 1 of a limit of 1 holds
  ReconcileOutcome held = reconciler.Reconcile(desired);
  EXPECT_EQ(held.step, Step::kAnalysisHold);
  EXPECT_EQ(query_.queries, 1);
  EXPECT_EQ(reconciler.Reconcile(desired).step, Step::kAnalysisHold);
  EXPECT_EQ(query_.queries, 1) << "an extra pass inside the interval does not query";
  clock_.Advance(absl::Seconds(61));
  ReconcileOutcome rolled = reconciler.Reconcile(desired);
  EXPECT_EQ(rolled.step, Step::kRollback);
  EXPECT_THAT(rolled.message, HasSubstr("0.5"));
  EXPECT_EQ(query_.queries, 2);
}

}  // namespace
}  // namespace runway
