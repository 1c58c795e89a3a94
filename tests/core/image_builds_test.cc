// ImageBuilds over fakes: builder choice, one build per spec across restarts, polling, final and
// retried failures, metrics, and the Reconciler deploying the built digest dark.

#include "controller/core/image_builds.h"

#include "controller/core/reconciler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_builds.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_cloud_run.h"

namespace runway {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using Kind = ImageResolution::Kind;

constexpr char kRepository[] = "us-docker.pkg.dev/proj/apps/api";

DesiredService Built(Builder builder = Builder::kCloudBuild) {
  DesiredService d;
  d.key = {"team", "api"};
  d.target = {"proj", "us-central1", "api"};
  BuildSpec build;
  build.git = GitSource{"https://github.com/org/api", std::string(40, 'a'), ""};
  build.repository = kRepository;
  build.dockerfile = "Dockerfile";
  build.builder = builder;
  d.build = build;
  d.traffic = {{kNewRevision, 100, ""}};
  return d;
}

EngineProbeResult Engine(const std::string& engine, EngineProbeOutcome outcome) {
  EngineProbeResult result;
  result.engine = engine;
  result.endpoint = "unix:///run/" + engine + "/" + engine + ".sock";
  result.outcome = outcome;
  result.explanation = outcome == EngineProbeOutcome::kOk
                           ? "ok"
                           : engine + " is installed but its service is not running: run `" +
                                 engine + " machine start`";
  return result;
}

class ImageBuildsTest : public ::testing::Test {
 protected:
  std::unique_ptr<ImageBuilds> Make(ImageBuilds::Options options = {}) {
    return std::make_unique<ImageBuilds>(&cloud_build_, &local_, &probe_, &metrics_, &clock_,
                                         options);
  }

  FakeClock clock_;
  FakeCloudBuild cloud_build_;
  FakeLocalBuilder local_;
  FakeEngineProbe probe_;
  RecordingMetrics metrics_;
};

TEST(BuildSourceTagTest, NamesTheSpecStably) {
  DesiredService d = Built();
  const std::string tag = BuildSourceTag(*d.build);
  EXPECT_THAT(tag, ::testing::MatchesRegex("src-[0-9a-f]{16}"));
  BuildSpec other = *d.build;
  other.builder = Builder::kLocal;  // where it is built does not change what is built
  EXPECT_EQ(BuildSourceTag(other), tag);
  other.git->revision = std::string(40, 'b');
  EXPECT_NE(BuildSourceTag(other), tag);
  other = *d.build;
  other.timeout = absl::Minutes(40);  // a longer timeout after a TIMEOUT is a new attempt
  EXPECT_NE(BuildSourceTag(other), tag);
}

TEST_F(ImageBuildsTest, CloudBuildIsStartedPolledAndItsDigestDeployed) {
  auto builds = Make();
  ImageResolution first = builds->Resolve(Built());
  EXPECT_EQ(first.kind, Kind::kBuilding);
  EXPECT_EQ(first.builder, kBuilderCloudBuild);
  ASSERT_EQ(cloud_build_.Created(), 1u);
  const BuildRequest& request = cloud_build_.builds[0].request;
  const std::string tag = BuildSourceTag(*Built().build);
  EXPECT_THAT(request.tags, Contains(tag));
  EXPECT_THAT(request.tags, Contains("svc-api"));
  EXPECT_THAT(request.tags, Contains("runway"));
  EXPECT_EQ(request.image, std::string(kRepository) + ":" + tag);
  EXPECT_EQ(probe_.probes, 0) << "builder cloudBuild never probes";

  EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kBuilding) << "still QUEUED";
  cloud_build_.Finish(0, "SUCCESS");
  ImageResolution done = builds->Resolve(Built());
  ASSERT_EQ(done.kind, Kind::kReady);
  EXPECT_EQ(done.image, std::string(kRepository) + "@sha256:" + std::string(63, 'c') + "1");
  EXPECT_EQ(done.build_id, "build-1");
  EXPECT_EQ(metrics_.Count("build cloudBuild success"), 1);
  const int gets = cloud_build_.gets;
  EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kReady);
  EXPECT_EQ(cloud_build_.gets, gets) << "a finished build is remembered, not read again";
  EXPECT_EQ(cloud_build_.Created(), 1u);
}

TEST_F(ImageBuildsTest, ARestartMidBuildAdoptsTheRunningBuild) {
  Make()->Resolve(Built());
  ASSERT_EQ(cloud_build_.Created(), 1u);
  auto restarted = Make();  // a new process: nothing in memory
  EXPECT_EQ(restarted->Resolve(Built()).kind, Kind::kBuilding);
  EXPECT_EQ(cloud_build_.Created(), 1u) << "found by its src- tag, not built twice";
  cloud_build_.Finish(0, "SUCCESS");
  EXPECT_EQ(restarted->Resolve(Built()).kind, Kind::kReady);
  EXPECT_EQ(metrics_.Count("build cloudBuild success"), 1);
  auto again = Make();
  EXPECT_EQ(again->Resolve(Built()).kind, Kind::kReady);
  EXPECT_EQ(cloud_build_.Created(), 1u);
  EXPECT_EQ(metrics_.Count("build cloudBuild success"), 1) << "an old build is not a new one";
}

TEST_F(ImageBuildsTest, AFailedBuildIsFinalForItsSpecEvenAfterARestart) {
  auto builds = Make();
  builds->Resolve(Built());
  cloud_build_.Finish(0, "FAILURE", "USER_BUILD_STEP", "step 0 exited 1");
  ImageResolution failed = builds->Resolve(Built());
  ASSERT_EQ(failed.kind, Kind::kFailed);
  EXPECT_EQ(failed.reason, "BuildFailed");
  EXPECT_THAT(failed.message, HasSubstr("USER_BUILD_STEP: step 0 exited 1"));
  EXPECT_THAT(failed.message, HasSubstr("logs: https://console.cloud.google.com/"));
  EXPECT_EQ(metrics_.Count("failure cloudBuild BuildFailed"), 1);
  EXPECT_EQ(metrics_.Count("build cloudBuild failure"), 1);
  EXPECT_EQ(Make()->Resolve(Built()).kind, Kind::kFailed);
  EXPECT_EQ(cloud_build_.Created(), 1u) << "the same spec is not rebuilt";
  DesiredService fixed = Built();
  fixed.build->git->revision = std::string(40, 'f');
  EXPECT_EQ(builds->Resolve(fixed).kind, Kind::kBuilding);
  EXPECT_EQ(cloud_build_.Created(), 2u) << "a new spec builds";
}

TEST_F(ImageBuildsTest, TimeoutIsFinalAndNamed) {
  auto builds = Make();
  builds->Resolve(Built());
  cloud_build_.Finish(0, "TIMEOUT");
  ImageResolution failed = builds->Resolve(Built());
  EXPECT_EQ(failed.kind, Kind::kFailed);
  EXPECT_EQ(failed.reason, "Timeout");
  EXPECT_EQ(metrics_.Count("failure cloudBuild Timeout"), 1);
}

TEST_F(ImageBuildsTest, InternalErrorsAreBuiltAgainAFewTimes) {
  ImageBuilds::Options options;
  options.max_rebuilds = 2;
  auto builds = Make(options);
  builds->Resolve(Built());
  for (size_t i = 0; i < 2; ++i) {
    cloud_build_.Finish(i, "INTERNAL_ERROR");
    ImageResolution retry = builds->Resolve(Built());
    EXPECT_EQ(retry.kind, Kind::kRetry);
    EXPECT_THAT(retry.message, HasSubstr("building again"));
    EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kBuilding);
    EXPECT_EQ(cloud_build_.Created(), i + 2);
  }
  cloud_build_.Finish(2, "INTERNAL_ERROR");
  EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kFailed);
  EXPECT_EQ(Make(options)->Resolve(Built()).kind, Kind::kFailed) << "counted from the list too";
  EXPECT_EQ(cloud_build_.Created(), 3u);
}

TEST_F(ImageBuildsTest, ApiOutagesAreRetriedAndPermissionErrorsAreNot) {
  auto builds = Make();
  cloud_build_.FailNext(absl::UnavailableError("503"));  // the list
  ImageResolution retry = builds->Resolve(Built());
  EXPECT_EQ(retry.kind, Kind::kRetry);
  EXPECT_EQ(retry.reason, "CloudBuildUnavailable");
  EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kBuilding);
  cloud_build_.FailNext(absl::UnavailableError("503 while polling"));
  EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kRetry);
  cloud_build_.Finish(0, "SUCCESS");
  EXPECT_EQ(builds->Resolve(Built()).kind, Kind::kReady);
  EXPECT_EQ(cloud_build_.Created(), 1u) << "polling errors keep the build";

  DesiredService other = Built();
  other.build->git->revision = std::string(40, 'd');
  cloud_build_.FailNext(absl::PermissionDeniedError("cloudbuild.builds.list denied"));
  ImageResolution denied = builds->Resolve(other);
  EXPECT_EQ(denied.kind, Kind::kFailed);
  EXPECT_EQ(denied.reason, "CloudBuildRejected");
}

TEST_F(ImageBuildsTest, AutoFallsBackToCloudBuildWhenNoEngineAnswersAndCountsIt) {
  probe_.results = {Engine("podman", EngineProbeOutcome::kRefused),
                    Engine("docker", EngineProbeOutcome::kNotInstalled)};
  auto builds = Make();
  ImageResolution first = builds->Resolve(Built(Builder::kAuto));
  EXPECT_EQ(first.builder, kBuilderCloudBuild);
  EXPECT_EQ(first.kind, Kind::kBuilding);
  EXPECT_EQ(metrics_.Count("connect podman refused"), 1);
  EXPECT_EQ(metrics_.Count("connect docker not-installed"), 0) << "not installed is no failure";
  DesiredService other = Built(Builder::kAuto);
  other.key.name = "other";
  other.build->git->revision = std::string(40, 'e');
  builds->Resolve(other);
  EXPECT_EQ(probe_.probes, 1) << "the probe result is kept for probe_ttl";
  clock_.Advance(absl::Minutes(1));
  other.key.name = "third";
  other.build->git->revision = std::string(40, '3');
  builds->Resolve(other);
  EXPECT_EQ(probe_.probes, 2);
  EXPECT_EQ(metrics_.Count("connect podman refused"), 2);
}

TEST_F(ImageBuildsTest, LocalInsistsOnAnEngineAndExplainsTheFix) {
  probe_.results = {Engine("podman", EngineProbeOutcome::kRefused)};
  ImageResolution failed = Make()->Resolve(Built(Builder::kLocal));
  EXPECT_EQ(failed.kind, Kind::kFailed);
  EXPECT_EQ(failed.reason, "EngineUnavailable");
  EXPECT_THAT(failed.message, HasSubstr("podman machine start"));
  EXPECT_THAT(failed.message, HasSubstr("builder: cloudBuild"));
  EXPECT_EQ(cloud_build_.Created(), 0u);
}

TEST_F(ImageBuildsTest, LocalEngineBuildsPushesAndIsFoundAgainAfterARestart) {
  probe_.results = {Engine("podman", EngineProbeOutcome::kOk)};
  ImageBuilds::Options options;
  options.runtime_override = "podman";
  auto builds = Make(options);
  ImageResolution first = builds->Resolve(Built(Builder::kAuto));
  EXPECT_EQ(first.kind, Kind::kBuilding);
  EXPECT_EQ(first.builder, kBuilderLocal);
  EXPECT_EQ(probe_.last_runtime, "podman");
  ASSERT_EQ(local_.requests.size(), 1u);
  EXPECT_EQ(local_.requests[0].engine_endpoint, "unix:///run/podman/podman.sock");
  const std::string image = std::string(kRepository) + ":" + BuildSourceTag(*Built().build);
  EXPECT_EQ(local_.requests[0].image, image);
  EXPECT_EQ(builds->Resolve(Built(Builder::kAuto)).kind, Kind::kBuilding);
  LocalBuildState done;
  done.phase = LocalBuildState::Phase::kSucceeded;
  done.digest = "sha256:" + std::string(64, '7');
  local_.states["job-1"] = done;
  local_.pushed[image] = done.digest;
  ImageResolution ready = builds->Resolve(Built(Builder::kAuto));
  ASSERT_EQ(ready.kind, Kind::kReady);
  EXPECT_EQ(ready.image, std::string(kRepository) + "@" + done.digest);
  EXPECT_EQ(metrics_.Count("build local success"), 1);
  EXPECT_EQ(Make(options)->Resolve(Built(Builder::kAuto)).kind, Kind::kReady);
  EXPECT_EQ(local_.requests.size(), 1u) << "found in the registry, not built twice";
  EXPECT_EQ(cloud_build_.Created(), 0u);
}

TEST_F(ImageBuildsTest, ALocalBuildFailureIsFinalWithTheEnginesMessage) {
  probe_.results = {Engine("docker", EngineProbeOutcome::kOk)};
  auto builds = Make();
  builds->Resolve(Built(Builder::kLocal));
  LocalBuildState failed;
  failed.phase = LocalBuildState::Phase::kFailed;
  failed.reason = "BuildFailed";
  failed.detail = "COPY failed: file not found in build context: missing.txt";
  local_.states["job-1"] = failed;
  ImageResolution out = builds->Resolve(Built(Builder::kLocal));
  EXPECT_EQ(out.kind, Kind::kFailed);
  EXPECT_THAT(out.message, HasSubstr("missing.txt"));
  EXPECT_EQ(metrics_.Count("failure local BuildFailed"), 1);
}

// The Reconciler with ImageBuilds: building → ready → the digest deployed dark, then promoted.
TEST_F(ImageBuildsTest, TheReconcilerDeploysTheBuiltDigest) {
  FakeCloudRun cloud_run;
  auto builds = Make();
  Reconciler::Options options;
  Reconciler reconciler(&cloud_run, nullptr, &clock_, options, builds.get());
  ReconcileOutcome building = reconciler.Reconcile(Built());
  EXPECT_EQ(building.step, Step::kBuilding);
  EXPECT_EQ(building.kind, ReconcileOutcome::Kind::kProgressing);
  EXPECT_EQ(cloud_run.writes, 0);
  cloud_build_.Finish(0, "SUCCESS");
  ReconcileOutcome created = reconciler.Reconcile(Built());
  EXPECT_EQ(created.step, Step::kCreate);
  ASSERT_EQ(cloud_run.services.size(), 1u);
  EXPECT_EQ(cloud_run.services.begin()->second.image,
            std::string(kRepository) + "@sha256:" + std::string(63, 'c') + "1");
  ASSERT_TRUE(created.build.has_value());
  EXPECT_EQ(created.build->build_id, "build-1");

  cloud_build_.Finish(0, "FAILURE");  // (no effect: the result is remembered)
  DesiredService broken = Built();
  broken.build->git->revision = std::string(40, '0');
  reconciler.Reconcile(broken);
  cloud_build_.Finish(1, "FAILURE", "USER_BUILD_STEP", "exit 1");
  ReconcileOutcome failed = reconciler.Reconcile(broken);
  EXPECT_EQ(failed.kind, ReconcileOutcome::Kind::kStalled);
  EXPECT_EQ(failed.step, Step::kBuildFailed);
  EXPECT_EQ(failed.reason, "BuildFailed");
  EXPECT_EQ(cloud_run.writes, 1) << "the running revision is left alone";
}

}  // namespace
}  // namespace runway
