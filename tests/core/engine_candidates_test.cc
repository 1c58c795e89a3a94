// Engine candidates from the environment, and what each probe observation means for a person.

#include "controller/core/engine_candidates.h"

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runway {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> Endpoints(const std::vector<EngineCandidate>& candidates) {
  std::vector<std::string> out;
  for (const EngineCandidate& c : candidates) out.push_back(c.engine + " " + c.endpoint);
  return out;
}

TEST(EngineCandidatesTest, EnvironmentFirstThenRootlessRootfulAndMachine) {
  EngineEnvironment env;
  env.uid = 1000;
  env.env = {{"DOCKER_HOST", "tcp://127.0.0.1:2375"}, {"HOME", "/home/u"}};
  EXPECT_THAT(
      Endpoints(EngineCandidates("auto", env)),
      testing::ElementsAre(
          "docker tcp://127.0.0.1:2375", "podman unix:///run/user/1000/podman/podman.sock",
          "podman unix:///run/podman/podman.sock",
          "podman unix:///home/u/.local/share/containers/podman/machine/podman.sock",
          "docker unix:///run/user/1000/docker.sock", "docker unix:///var/run/docker.sock"));
  EXPECT_EQ(EngineCandidates("podman", env).size(), 3u);
  EXPECT_EQ(EngineCandidates("docker", env).front().origin, "DOCKER_HOST");
  EXPECT_TRUE(EngineCandidates("lxc", env).empty());
  env.uid = 0;
  env.env = {{"CONTAINER_HOST", "unix:///run/podman/podman.sock"}};
  EXPECT_EQ(EngineCandidates("podman", env).size(), 1u) << "duplicates are dropped";
}

TEST(EngineCandidatesTest, ApiVersionComparison) {
  EXPECT_TRUE(ApiVersionAtLeast("1.41", "1.24"));
  EXPECT_TRUE(ApiVersionAtLeast("1.24", "1.24"));
  EXPECT_FALSE(ApiVersionAtLeast("1.12", "1.24"));
  EXPECT_TRUE(ApiVersionAtLeast("2.0", "1.24"));
  EXPECT_FALSE(ApiVersionAtLeast("", "1.24"));
  EXPECT_FALSE(ApiVersionAtLeast("one.two", "1.24"));
}

TEST(ClassifyEngineProbeTest, EachOutcomeNamesTheProblemAndTheFix) {
  EngineCandidate podman{"podman", "unix:///run/podman/podman.sock", "rootful default"};
  EngineObservation seen;
  seen.min_api_version = "1.24";

  seen.socket_exists = false;
  EngineProbeResult missing = ClassifyEngineProbe(podman, seen);
  EXPECT_EQ(missing.outcome, EngineProbeOutcome::kNotInstalled);
  EXPECT_THAT(missing.explanation, HasSubstr("builder: cloudBuild"));
  seen.command_installed = true;
  EXPECT_EQ(ClassifyEngineProbe(podman, seen).outcome, EngineProbeOutcome::kSocketMissing);

  seen.socket_exists = true;
  seen.connect_errno = ECONNREFUSED;
  EngineProbeResult refused = ClassifyEngineProbe(podman, seen);
  EXPECT_EQ(refused.outcome, EngineProbeOutcome::kRefused);
  EXPECT_THAT(refused.explanation,
              HasSubstr("podman is installed but its service is not running (connection refused"));
  EXPECT_THAT(refused.explanation, HasSubstr("podman machine start"));
  EXPECT_THAT(refused.explanation, HasSubstr("systemctl --user start podman.socket"));

  seen.connect_errno = EACCES;
  EXPECT_EQ(ClassifyEngineProbe(podman, seen).outcome, EngineProbeOutcome::kPermissionDenied);
  seen.connect_errno = 0;
  seen.timed_out = true;
  EXPECT_EQ(ClassifyEngineProbe(podman, seen).outcome, EngineProbeOutcome::kTimeout);
  seen.timed_out = false;
  seen.ping_status = 404;
  EXPECT_EQ(ClassifyEngineProbe(podman, seen).outcome, EngineProbeOutcome::kBadResponse);
  seen.ping_status = 200;
  seen.api_version = "1.12";
  EngineProbeResult old = ClassifyEngineProbe(podman, seen);
  EXPECT_EQ(old.outcome, EngineProbeOutcome::kApiTooOld);
  EXPECT_THAT(old.explanation, HasSubstr("1.24 or newer"));
  seen.api_version = "1.41";
  EngineProbeResult ok = ClassifyEngineProbe(podman, seen);
  EXPECT_EQ(ok.outcome, EngineProbeOutcome::kOk);
  EXPECT_EQ(ok.api_version, "1.41");

  EngineCandidate docker{"docker", "unix:///var/run/docker.sock", "rootful default"};
  seen.api_version.clear();
  seen.ping_status = 0;
  seen.connect_errno = ECONNREFUSED;
  EXPECT_THAT(ClassifyEngineProbe(docker, seen).explanation, HasSubstr("systemctl start docker"));
  EXPECT_STREQ(EngineOutcomeName(EngineProbeOutcome::kRefused), "refused");
}

}  // namespace
}  // namespace runway
