// The controller loop over fakes: resync reads with list calls only, converged services cost no
// write, stalled ones wait for a manifest change, removed ones are left alone, errors back off.

#include "controller/core/controller.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_builds.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_cloud_run.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

class FakeSource : public ManifestSource {
 public:
  absl::StatusOr<ManifestSnapshot> Snapshot() override { return snapshot; }
  ManifestSnapshot snapshot;
};

class RecordingStatus : public StatusReporter {
 public:
  absl::Status Report(const ObjectKey& key, const ServiceStatus& status) override {
    last[key.ToString()] = status;
    return absl::OkStatus();
  }
  std::string Ready(const std::string& key) {
    for (const Condition& c : last[key].conditions) {
      if (c.type == "Ready") return c.status + "/" + c.reason;
    }
    return "";
  }
  std::map<std::string, ServiceStatus> last;
};

DesiredService Service(const std::string& name, char digit) {
  DesiredService d;
  d.key = {"team", name};
  d.target = {"proj-one", "us-central1", name};
  d.image = "gcr.io/p/" + name + "@sha256:" + std::string(64, digit);
  d.traffic = {{kNewRevision, 100, ""}};
  return d;
}

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest() {
    options_.workers = 1;
    options_.reconciler.poll_interval = absl::ZeroDuration();
    options_.queue.base_backoff = absl::Milliseconds(1);
  }

  std::unique_ptr<Controller> Make() {
    return std::make_unique<Controller>(options_, &source_, &cloud_run_, &status_, &clock_);
  }

  // Runs queued passes on this thread until nothing is ready.
  void Drain(Controller& controller, int max_passes = 100) {
    for (int i = 0; i < max_passes && !controller.Settled(); ++i) {
      ASSERT_TRUE(controller.ProcessNext());
    }
  }

  Controller::Options options_;
  FakeClock clock_;
  FakeSource source_;
  FakeCloudRun cloud_run_;
  RecordingStatus status_;
};

TEST_F(ControllerTest, CreatesThenASteadyResyncReadsByListAndWritesNothing) {
  source_.snapshot.services = {Service("a", '1'), Service("b", '2')};
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  Drain(*controller);
  EXPECT_EQ(cloud_run_.writes, 2) << "one create per service";
  EXPECT_EQ(status_.Ready("team/a"), "True/Converged");
  int gets = cloud_run_.gets;
  ASSERT_TRUE(controller->Resync().ok());
  Drain(*controller);
  EXPECT_EQ(cloud_run_.lists, 1) << "one list call for the one project and region";
  EXPECT_EQ(cloud_run_.gets, gets) << "passes use the listed state";
  EXPECT_EQ(cloud_run_.writes, 2);
}

TEST_F(ControllerTest, ANewDigestIsDeployedDarkThenPromoted) {
  source_.snapshot.services = {Service("a", '1')};
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  Drain(*controller);
  source_.snapshot.services = {Service("a", '9')};
  ASSERT_TRUE(controller->Refresh().ok());
  ASSERT_TRUE(controller->ProcessNext());
  const LiveService& live = cloud_run_.services.begin()->second;
  EXPECT_EQ(live.annotations.at(kPhaseAnnotation), "deploying");
  ASSERT_EQ(live.traffic.size(), 2u) << "old revision 100% + candidate tagged";
  Drain(*controller);
  EXPECT_EQ(cloud_run_.writes, 3);
  EXPECT_EQ(live.traffic.size(), 1u);
  EXPECT_EQ(live.traffic[0].revision, RevisionNameFor(Service("a", '9')));
}

TEST_F(ControllerTest, PermanentErrorsStallUntilTheManifestChanges) {
  source_.snapshot.services = {Service("a", '1')};
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  cloud_run_.FailNext(absl::OkStatus());  // the GET
  cloud_run_.FailNext(absl::PermissionDeniedError("run.services.update denied"));
  Drain(*controller);
  EXPECT_EQ(status_.Ready("team/a"), "False/PermissionDenied");
  EXPECT_EQ(controller->States()["team/a"].outcome.kind, ReconcileOutcome::Kind::kStalled);
  int calls = cloud_run_.gets + cloud_run_.writes;
  ASSERT_TRUE(controller->Resync().ok());
  Drain(*controller);
  EXPECT_EQ(cloud_run_.gets + cloud_run_.writes, calls) << "a stalled service is not retried";
  source_.snapshot.services = {Service("a", '2')};
  ASSERT_TRUE(controller->Refresh().ok());
  Drain(*controller);
  EXPECT_EQ(status_.Ready("team/a"), "True/Converged") << "a changed manifest is tried again";
}

TEST_F(ControllerTest, TransientErrorsAreRetriedWithBackoff) {
  source_.snapshot.services = {Service("a", '1')};
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  cloud_run_.FailNext(absl::UnavailableError("503"));
  ASSERT_TRUE(controller->ProcessNext());
  EXPECT_EQ(status_.Ready("team/a"), "Unknown/Retrying");
  EXPECT_EQ(controller->States()["team/a"].outcome.kind, ReconcileOutcome::Kind::kTransientError);
  clock_.Advance(absl::Seconds(1));  // past the key's backoff
  Drain(*controller);
  EXPECT_EQ(status_.Ready("team/a"), "True/Converged");
  EXPECT_EQ(cloud_run_.writes, 1);
}

TEST_F(ControllerTest, RemovedManifestsAreNoLongerManaged) {
  source_.snapshot.services = {Service("a", '1'), Service("b", '2')};
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  Drain(*controller);
  source_.snapshot.services = {Service("b", '2')};
  ASSERT_TRUE(controller->Refresh().ok());
  EXPECT_EQ(controller->ManagedCount(), 1u);
  // Someone changes service a by hand; Runway leaves it alone.
  cloud_run_.services[Service("a", '1').target].traffic_statuses.clear();
  ASSERT_TRUE(controller->Resync().ok());
  Drain(*controller);
  EXPECT_EQ(cloud_run_.writes, 2);
}

TEST_F(ControllerTest, AnUnchangedSnapshotVersionIsNotAppliedAgain) {
  source_.snapshot.services = {Service("a", '1')};
  source_.snapshot.version = "v1";
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  EXPECT_EQ(controller->ManagedCount(), 1u);
  source_.snapshot.services.clear();  // same version: treated as the same content
  ASSERT_TRUE(controller->Refresh().ok());
  EXPECT_EQ(controller->ManagedCount(), 1u);
  source_.snapshot.version = "v2";
  ASSERT_TRUE(controller->Refresh().ok());
  EXPECT_EQ(controller->ManagedCount(), 0u);
}

TEST_F(ControllerTest, InvalidManifestsAreReportedStalled) {
  InvalidManifest invalid;
  invalid.origin = "team/bad.yaml:1";
  invalid.key = ObjectKey{"team", "bad"};
  invalid.errors = {{"spec.traffic", "percents sum to 90"}};
  source_.snapshot.invalid = {invalid};
  auto controller = Make();
  ASSERT_TRUE(controller->Refresh().ok());
  EXPECT_EQ(status_.Ready("team/bad"), "False/InvalidSpec");
  EXPECT_THAT(status_.last["team/bad"].conditions[0].message,
              testing::HasSubstr("percents sum to 90"));
  EXPECT_EQ(cloud_run_.writes, 0);
}

TEST_F(ControllerTest, ReportsMetricsGaugesHealthAndReadiness) {
  RecordingMetrics metrics;
  source_.snapshot.services = {Service("a", '1')};
  auto controller = std::make_unique<Controller>(options_, &source_, &cloud_run_, &status_, &clock_,
                                                 nullptr, &metrics);
  EXPECT_THAT(controller->NotReadyReason(), HasSubstr("manifests"));
  ASSERT_TRUE(controller->Refresh().ok());
  EXPECT_THAT(controller->NotReadyReason(), HasSubstr("first resync"));
  cloud_run_.FailNext(absl::UnavailableError("503"));
  ASSERT_TRUE(controller->ProcessNext());
  EXPECT_EQ(metrics.Count("reconcile error"), 1);
  EXPECT_EQ(metrics.Count("retried"), 1);
  EXPECT_EQ(controller->Observe().services_by_condition["Reconciling"], 1);
  clock_.Advance(absl::Seconds(1));
  Drain(*controller);
  EXPECT_GE(metrics.Count("reconcile converged"), 1);
  EXPECT_GE(metrics.Count("queue waited"), 2);
  ASSERT_TRUE(controller->Resync().ok());
  Drain(*controller);
  Controller::Gauges gauges = controller->Observe();
  EXPECT_EQ(gauges.managed, 1);
  EXPECT_EQ(gauges.services_by_condition["Ready"], 1);
  EXPECT_EQ(gauges.services_by_condition["Stalled"], 0);
  ASSERT_TRUE(gauges.last_sync.has_value());
  EXPECT_EQ(*gauges.last_sync, clock_.Now());
  ASSERT_EQ(gauges.traffic.count("team/a"), 1u);
  EXPECT_EQ(gauges.traffic["team/a"].stable, 100);
  EXPECT_EQ(gauges.traffic["team/a"].candidate, 0);

  // Traffic moved out of band: detected and corrected once.
  LiveService& live = cloud_run_.services.begin()->second;
  LiveTrafficTarget old_half, new_half;
  old_half.revision = "a-00001-old";
  old_half.percent = 50;
  new_half.revision = RevisionNameFor(Service("a", '1'));
  new_half.percent = 50;
  live.traffic_statuses = {old_half, new_half};
  ASSERT_TRUE(controller->Resync().ok());
  Drain(*controller);
  EXPECT_EQ(metrics.Count("drift detected"), 1);
  EXPECT_EQ(metrics.Count("drift corrected"), 1);
  EXPECT_EQ(controller->NotHealthyReason(), "");
  controller->Stop(absl::Seconds(5));
  EXPECT_EQ(controller->NotHealthyReason(), "shutting down");
}

}  // namespace
}  // namespace runway
