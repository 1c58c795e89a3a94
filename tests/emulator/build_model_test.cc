#include "tests/emulator/build_model.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "tests/emulator/emulator_common.h"
#include "tests/fakes/fake_clock.h"

namespace runway::emulator {
namespace {

constexpr char kProject[] = "proj";
constexpr char kRegion[] = "us-central1";

// A docker build of one image, unexpanded as gcloud sends it.
Json DockerBuild(const std::string& image = "gcr.io/proj/app") {
  return {{"steps", Json::array({{{"name", "gcr.io/cloud-builders/docker"},
                                  {"args", Json::array({"build", "-t", image, "."})}}})},
          {"images", Json::array({image})}};
}

Json Tagged(Json build, const std::string& tag) {
  build["tags"] = Json::array({tag});
  return build;
}

Json WithStorageSource(Json build, const std::string& bucket, const std::string& object) {
  build["source"] = {{"storageSource", {{"bucket", bucket}, {"object", object}}}};
  return build;
}

BuildRule Rule(const std::string& source, const std::string& outcome,
               absl::Duration queue_for = absl::Milliseconds(200),
               absl::Duration work_for = absl::Milliseconds(500)) {
  BuildRule rule;
  rule.source = source;
  rule.outcome = outcome;
  rule.queue_for = queue_for;
  rule.work_for = work_for;
  return rule;
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> out;
  for (const FieldViolation& v : FieldViolationsOf(status)) out.push_back(v.field);
  return out;
}

bool HasField(const absl::Status& status, const std::string& field) {
  for (const std::string& f : Fields(status)) {
    if (f == field) return true;
  }
  return false;
}

class BuildModelTest : public ::testing::Test {
 protected:
  // Creates a build and returns metadata.build of its operation; fails the test on error.
  Json Create(const Json& build, const std::string& location = "global",
              const std::string& project = kProject) {
    absl::StatusOr<Json> op = store_.Create(project, location, build);
    if (!op.ok()) {
      ADD_FAILURE() << "create failed: " << op.status();
      return Json::object();
    }
    last_operation_ = (*op)["name"].get<std::string>();
    return (*op)["metadata"]["build"];
  }

  Json Get(const std::string& id, const std::string& location = "global") {
    absl::StatusOr<Json> build = store_.Get(kProject, location, id);
    if (!build.ok()) {
      ADD_FAILURE() << "get failed: " << build.status();
      return Json::object();
    }
    return *build;
  }

  std::string StatusOf(const std::string& id, const std::string& location = "global") {
    return Get(id, location).value("status", "");
  }

  // The InvalidArgument status of a create that must fail.
  absl::Status CreateError(const Json& build) {
    absl::StatusOr<Json> op = store_.Create(kProject, "global", build);
    EXPECT_FALSE(op.ok()) << "create unexpectedly succeeded: " << op->dump();
    return op.status();
  }

  std::string Time(absl::Duration since_start) { return FormatRfc3339(t0_ + since_start); }

  FakeClock clock_;
  absl::Time t0_ = clock_.Now();
  CloudBuildStore store_{&clock_, 42};
  std::string last_operation_;
};

// ---- lifecycle ----------------------------------------------------------------------------------

TEST_F(BuildModelTest, LifecycleQueuedWorkingSuccessWithExactTimes) {
  Json created = Create(DockerBuild());
  std::string id = created["id"];
  EXPECT_EQ(created["status"], "QUEUED");
  EXPECT_EQ(created["projectId"], kProject);
  EXPECT_EQ(created["createTime"], Time(absl::ZeroDuration()));
  EXPECT_FALSE(created.contains("startTime"));

  clock_.Advance(absl::Milliseconds(199));
  EXPECT_EQ(StatusOf(id), "QUEUED");
  clock_.Advance(absl::Milliseconds(1));
  Json working = Get(id);
  EXPECT_EQ(working["status"], "WORKING");
  EXPECT_EQ(working["startTime"], Time(absl::Milliseconds(200)));
  EXPECT_FALSE(working.contains("finishTime"));
  EXPECT_FALSE(working.contains("results"));

  clock_.Advance(absl::Milliseconds(499));
  EXPECT_EQ(StatusOf(id), "WORKING");
  clock_.Advance(absl::Milliseconds(1));
  Json done = Get(id);
  EXPECT_EQ(done["status"], "SUCCESS");
  EXPECT_EQ(done["startTime"], Time(absl::Milliseconds(200)));
  EXPECT_EQ(done["finishTime"], Time(absl::Milliseconds(700)));
  EXPECT_EQ(done["createTime"], Time(absl::ZeroDuration()));
  ASSERT_EQ(done["results"]["images"].size(), 1u);
  EXPECT_EQ(done["results"]["images"][0]["name"], "gcr.io/proj/app");
  EXPECT_EQ(done["results"]["buildStepImages"].size(), 1u);
  EXPECT_FALSE(done.contains("failureInfo"));

  // Terminal is terminal.
  clock_.Advance(absl::Hours(5));
  EXPECT_EQ(Get(id)["finishTime"], Time(absl::Milliseconds(700)));
}

TEST_F(BuildModelTest, ServerFieldsNameLogUrlTimeout) {
  Json build = Create(DockerBuild(), kRegion);
  std::string id = build["id"];
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(build["name"], "projects/proj/locations/us-central1/builds/" + id);
  EXPECT_EQ(build["logUrl"],
            "https://console.cloud.google.com/cloud-build/builds;region=" + std::string(kRegion) +
                "/" + id + "?project=" + CloudBuildStore::ProjectNumber(kProject));
  EXPECT_EQ(build["timeout"], "3600s");
}

TEST_F(BuildModelTest, ConfigScheduleAppliesWhenNoRuleMatches) {
  store_.config().queue_for = absl::Seconds(3);
  store_.config().work_for = absl::Seconds(10);
  store_.rules().push_back(Rule("no-such-source", "FAILURE"));
  std::string id = Create(DockerBuild())["id"];
  clock_.Advance(absl::Seconds(12));
  EXPECT_EQ(StatusOf(id), "WORKING");
  clock_.Advance(absl::Seconds(1));
  Json done = Get(id);
  EXPECT_EQ(done["status"], "SUCCESS");
  EXPECT_EQ(done["startTime"], Time(absl::Seconds(3)));
  EXPECT_EQ(done["finishTime"], Time(absl::Seconds(13)));
}

TEST_F(BuildModelTest, ZeroDurationsFinishImmediately) {
  store_.config().queue_for = absl::ZeroDuration();
  store_.config().work_for = absl::ZeroDuration();
  absl::StatusOr<Json> op = store_.Create(kProject, "global", DockerBuild());
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_EQ((*op)["metadata"]["build"]["status"], "SUCCESS");
  EXPECT_EQ((*op)["done"], true);
}

TEST_F(BuildModelTest, SameSeedGivesSameIds) {
  FakeClock other_clock;
  CloudBuildStore other(&other_clock, 42);
  absl::StatusOr<Json> a = store_.Create(kProject, "global", DockerBuild());
  absl::StatusOr<Json> b = other.Create(kProject, "global", DockerBuild());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["metadata"]["build"]["id"], (*b)["metadata"]["build"]["id"]);
  absl::StatusOr<Json> c = store_.Create(kProject, "global", DockerBuild());
  ASSERT_TRUE(c.ok());
  EXPECT_NE((*a)["metadata"]["build"]["id"], (*c)["metadata"]["build"]["id"]);
}

// ---- scripted outcomes --------------------------------------------------------------------------

TEST_F(BuildModelTest, FailureBySourceGlobWithDefaultDetail) {
  store_.rules().push_back(Rule("gs://*/bad-*.tgz", "FAILURE"));
  std::string bad = Create(WithStorageSource(DockerBuild(), "bkt", "bad-1.tgz"))["id"];
  std::string good = Create(WithStorageSource(DockerBuild(), "bkt", "good-1.tgz"))["id"];
  clock_.Advance(absl::Seconds(1));

  Json failed = Get(bad);
  EXPECT_EQ(failed["status"], "FAILURE");
  EXPECT_EQ(failed["failureInfo"]["type"], "USER_BUILD_STEP");
  std::string detail = failed["failureInfo"]["detail"];
  EXPECT_TRUE(absl::StrContains(detail, "gcr.io/cloud-builders/docker")) << detail;
  EXPECT_EQ(failed["statusDetail"], detail);
  EXPECT_FALSE(failed.contains("results"));
  EXPECT_EQ(StatusOf(good), "SUCCESS");
}

TEST_F(BuildModelTest, FailureWithScriptedTypeAndDetail) {
  BuildRule rule = Rule("gs://bkt/*", "FAILURE");
  rule.failure_type = "PUSH_FAILED";
  rule.failure_detail = "denied: push to gcr.io/proj/app";
  store_.rules().push_back(rule);
  std::string id = Create(WithStorageSource(DockerBuild(), "bkt", "src.tgz"))["id"];
  clock_.Advance(absl::Seconds(1));
  Json failed = Get(id);
  EXPECT_EQ(failed["failureInfo"]["type"], "PUSH_FAILED");
  EXPECT_EQ(failed["failureInfo"]["detail"], "denied: push to gcr.io/proj/app");
  EXPECT_EQ(failed["statusDetail"], "denied: push to gcr.io/proj/app");
}

TEST_F(BuildModelTest, InternalErrorByTagUsesRuleSchedule) {
  store_.rules().push_back(Rule("svc-flaky", "INTERNAL_ERROR", absl::Seconds(1), absl::Seconds(2)));
  std::string flaky = Create(Tagged(DockerBuild(), "svc-flaky"))["id"];
  std::string other = Create(Tagged(DockerBuild(), "svc-other"))["id"];
  clock_.Advance(absl::Milliseconds(2999));
  EXPECT_EQ(StatusOf(flaky), "WORKING");
  EXPECT_EQ(StatusOf(other), "SUCCESS");
  clock_.Advance(absl::Milliseconds(1));
  Json failed = Get(flaky);
  EXPECT_EQ(failed["status"], "INTERNAL_ERROR");
  EXPECT_EQ(failed["finishTime"], Time(absl::Seconds(3)));
  EXPECT_FALSE(failed.contains("failureInfo"));
}

TEST_F(BuildModelTest, TagRuleMatchesExpandedTagsByGlob) {
  store_.rules().push_back(Rule("gen-*", "FAILURE"));
  Json build = Tagged(DockerBuild(), "gen-$_GEN");
  build["substitutions"] = {{"_GEN", "7"}};
  std::string id = Create(build)["id"];
  EXPECT_EQ(Get(id)["tags"], Json::array({"gen-7"}));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(StatusOf(id), "FAILURE");
}

TEST_F(BuildModelTest, GitAndRepoSourceKeys) {
  store_.rules().push_back(Rule("https://github.com/o/r#main", "FAILURE"));
  store_.rules().push_back(Rule("repo@v1.*", "INTERNAL_ERROR"));
  Json git = DockerBuild();
  git["source"] = {{"gitSource", {{"url", "https://github.com/o/r"}, {"revision", "main"}}}};
  Json git_other = DockerBuild();
  git_other["source"] = {{"gitSource", {{"url", "https://github.com/o/r"}, {"revision", "dev"}}}};
  Json repo = DockerBuild();
  repo["source"] = {{"repoSource", {{"repoName", "repo"}, {"tagName", "v1.2"}}}};
  std::string a = Create(git)["id"];
  std::string b = Create(git_other)["id"];
  std::string c = Create(repo)["id"];
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(StatusOf(a), "FAILURE");
  EXPECT_EQ(StatusOf(b), "SUCCESS");
  EXPECT_EQ(StatusOf(c), "INTERNAL_ERROR");
}

TEST_F(BuildModelTest, FirstMatchingRuleWinsAndRulesBindAtCreate) {
  store_.rules().push_back(Rule("svc-*", "FAILURE"));
  store_.rules().push_back(Rule("svc-api", "INTERNAL_ERROR"));
  std::string id = Create(Tagged(DockerBuild(), "svc-api"))["id"];
  store_.rules().clear();  // an existing build keeps its script
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(StatusOf(id), "FAILURE");
}

TEST_F(BuildModelTest, TimeoutOutcomeEndsAtStartPlusBuildTimeout) {
  store_.rules().push_back(Rule("slow", "TIMEOUT"));
  Json build = Tagged(DockerBuild(), "slow");
  build["timeout"] = "30s";
  std::string id = Create(build)["id"];
  clock_.Advance(absl::Milliseconds(200) + absl::Seconds(30) - absl::Milliseconds(1));
  EXPECT_EQ(StatusOf(id), "WORKING");
  clock_.Advance(absl::Milliseconds(1));
  Json done = Get(id);
  EXPECT_EQ(done["status"], "TIMEOUT");
  EXPECT_EQ(done["finishTime"], Time(absl::Milliseconds(30200)));
  EXPECT_FALSE(done.contains("results"));
}

TEST_F(BuildModelTest, BuildTimeoutShorterThanWorkEndsInTimeout) {
  store_.rules().push_back(Rule("*", "SUCCESS", absl::Milliseconds(200), absl::Minutes(10)));
  Json build = DockerBuild();
  build["timeout"] = "60s";
  std::string id = Create(build)["id"];
  clock_.Advance(absl::Milliseconds(200) + absl::Seconds(59));
  EXPECT_EQ(StatusOf(id), "WORKING");
  clock_.Advance(absl::Seconds(1));
  Json done = Get(id);
  EXPECT_EQ(done["status"], "TIMEOUT");
  EXPECT_EQ(done["startTime"], Time(absl::Milliseconds(200)));
  EXPECT_EQ(done["finishTime"], Time(absl::Milliseconds(60200)));

  // A timeout longer than the work does not matter.
  build["timeout"] = "601s";
  std::string ok = Create(build)["id"];
  clock_.Advance(absl::Minutes(11));
  EXPECT_EQ(StatusOf(ok), "SUCCESS");
}

TEST_F(BuildModelTest, BadRuleOutcomeIsFailedPrecondition) {
  store_.rules().push_back(Rule("*", "EXPLODE"));
  absl::StatusOr<Json> op = store_.Create(kProject, "global", DockerBuild());
  EXPECT_EQ(op.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(op.status().message(), "EXPLODE"));
}

// ---- cancel -------------------------------------------------------------------------------------

TEST_F(BuildModelTest, CancelQueuedBuild) {
  std::string id = Create(DockerBuild())["id"];
  clock_.Advance(absl::Milliseconds(100));
  absl::StatusOr<Json> cancelled = store_.Cancel(kProject, "global", id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ((*cancelled)["status"], "CANCELLED");
  EXPECT_EQ((*cancelled)["finishTime"], Time(absl::Milliseconds(100)));
  EXPECT_FALSE(cancelled->contains("startTime"));
  // Later reads keep the cancellation; the schedule never resumes.
  clock_.Advance(absl::Seconds(10));
  Json later = Get(id);
  EXPECT_EQ(later["status"], "CANCELLED");
  EXPECT_FALSE(later.contains("startTime"));
  EXPECT_EQ(later["finishTime"], Time(absl::Milliseconds(100)));
}

TEST_F(BuildModelTest, CancelWorkingBuildKeepsStartTime) {
  std::string id = Create(DockerBuild(), kRegion)["id"];
  clock_.Advance(absl::Milliseconds(300));
  absl::StatusOr<Json> cancelled = store_.Cancel(kProject, kRegion, id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ((*cancelled)["status"], "CANCELLED");
  EXPECT_EQ((*cancelled)["startTime"], Time(absl::Milliseconds(200)));
  EXPECT_EQ((*cancelled)["finishTime"], Time(absl::Milliseconds(300)));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(StatusOf(id, kRegion), "CANCELLED");
}

TEST_F(BuildModelTest, CancelTerminalBuildIsFailedPrecondition) {
  std::string id = Create(DockerBuild())["id"];
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<Json> cancelled = store_.Cancel(kProject, "global", id);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(cancelled.status().message(), "SUCCESS")) << cancelled.status();
  EXPECT_EQ(StatusOf(id), "SUCCESS");

  // A cancelled build is terminal too.
  std::string other = Create(DockerBuild())["id"];
  ASSERT_TRUE(store_.Cancel(kProject, "global", other).ok());
  EXPECT_EQ(store_.Cancel(kProject, "global", other).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// ---- substitutions ------------------------------------------------------------------------------

TEST_F(BuildModelTest, BuiltInSubstitutions) {
  Json build = {{"steps", Json::array({{{"name", "gcr.io/$PROJECT_ID/builder"},
                                        {"args", Json::array({"$PROJECT_ID", "${BUILD_ID}",
                                                              "$LOCATION", "$PROJECT_NUMBER"})},
                                        {"env", Json::array({"LOC=$LOCATION"})},
                                        {"dir", "src/$PROJECT_ID"}}})},
                {"images", Json::array({"gcr.io/$PROJECT_ID/app"})},
                {"tags", Json::array({"p-$PROJECT_ID"})}};
  Json created = Create(build, kRegion);
  std::string id = created["id"];
  const Json& step = created["steps"][0];
  EXPECT_EQ(step["name"], "gcr.io/proj/builder");
  EXPECT_EQ(step["args"][0], kProject);
  EXPECT_EQ(step["args"][1], id);
  EXPECT_EQ(step["args"][2], kRegion);
  std::string number = step["args"][3];
  EXPECT_EQ(number, CloudBuildStore::ProjectNumber(kProject));
  EXPECT_EQ(number.size(), 12u);
  EXPECT_NE(number, CloudBuildStore::ProjectNumber("other-proj"));
  EXPECT_EQ(step["env"][0], "LOC=us-central1");
  EXPECT_EQ(step["dir"], "src/proj");
  EXPECT_EQ(created["images"][0], "gcr.io/proj/app");
  EXPECT_EQ(created["tags"][0], "p-proj");

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Get(id, kRegion)["results"]["images"][0]["name"], "gcr.io/proj/app");
}

TEST_F(BuildModelTest, UserSubstitutionsBracesAndDollarEscape) {
  Json build = {
      {"steps", Json::array({{{"name", "bash"},
                              {"args", Json::array({"$_TAG", "${_TAG}-suffix", "pre${_TAG}post",
                                                    "$$_TAG", "$${HOME}", "cost: $5", "end$"})}}})},
      {"images", Json::array({"gcr.io/$PROJECT_ID/app:$_TAG"})},
      {"substitutions", {{"_TAG", "v2"}}}};
  Json created = Create(build);
  EXPECT_EQ(created["steps"][0]["args"],
            Json::array({"v2", "v2-suffix", "prev2post", "$_TAG", "${HOME}", "cost: $5", "end$"}));
  EXPECT_EQ(created["images"][0], "gcr.io/proj/app:v2");
  EXPECT_EQ(created["substitutions"]["_TAG"], "v2");  // echoed as given
}

TEST_F(BuildModelTest, UndefinedUserSubstitutionIsInvalidArgument) {
  Json build = DockerBuild("gcr.io/proj/app:$_MISSING");
  absl::Status status = CreateError(build);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "_MISSING")) << status;
  EXPECT_TRUE(HasField(status, "build.substitutions"));
}

TEST_F(BuildModelTest, UnknownBuiltInAndMalformedBracesAreInvalidArgument) {
  Json build = DockerBuild();
  build["steps"][0]["args"] = Json::array({"echo $HOME"});
  absl::Status status = CreateError(build);
  EXPECT_TRUE(absl::StrContains(status.message(), "\"HOME\"")) << status;
  EXPECT_TRUE(HasField(status, "build.substitutions"));

  build["steps"][0]["args"] = Json::array({"${_UNTERMINATED"});
  EXPECT_EQ(CreateError(build).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BuildModelTest, UnusedUserSubstitutionIsInvalidArgumentUnderMustMatch) {
  Json build = DockerBuild();
  build["substitutions"] = {{"_UNUSED", "x"}};
  absl::Status status = CreateError(build);
  EXPECT_TRUE(absl::StrContains(status.message(), "_UNUSED")) << status;
  EXPECT_TRUE(HasField(status, "build.substitutions"));
}

TEST_F(BuildModelTest, AllowLooseExpandsUndefinedToEmptyAndIgnoresUnused) {
  Json build = DockerBuild("gcr.io/proj/app:x$_MISSING");
  build["steps"][0]["args"] = Json::array({"$HOME", "${_ALSO_MISSING}!"});
  build["substitutions"] = {{"_UNUSED", "x"}};
  build["options"] = {{"substitutionOption", "ALLOW_LOOSE"}};
  Json created = Create(build);
  EXPECT_EQ(created["images"][0], "gcr.io/proj/app:x");
  EXPECT_EQ(created["steps"][0]["args"], Json::array({"", "!"}));
}

TEST_F(BuildModelTest, RepoSourceBuiltIns) {
  Json build = DockerBuild("gcr.io/proj/app:$SHORT_SHA");
  build["source"] = {{"repoSource", {{"repoName", "repo"}, {"commitSha", "0123456789abcdef"}}}};
  build["steps"][0]["args"] = Json::array({"$REPO_NAME", "$COMMIT_SHA", "[$BRANCH_NAME]"});
  Json created = Create(build);
  EXPECT_EQ(created["images"][0], "gcr.io/proj/app:0123456");
  EXPECT_EQ(created["steps"][0]["args"], Json::array({"repo", "0123456789abcdef", "[]"}));
}

// ---- digests ------------------------------------------------------------------------------------

TEST_F(BuildModelTest, DigestIsDeterministicPerInputs) {
  std::string a = Create(DockerBuild("gcr.io/proj/app"))["id"];
  std::string b = Create(DockerBuild("gcr.io/proj/app"))["id"];
  Json other_image = DockerBuild("gcr.io/proj/app");
  other_image["images"] = Json::array({"gcr.io/proj/other"});
  std::string c = Create(other_image)["id"];
  std::string d = Create(DockerBuild("gcr.io/proj/app"), "global", "other-proj")["id"];
  clock_.Advance(absl::Seconds(1));

  std::string digest_a = Get(a)["results"]["images"][0]["digest"];
  std::string digest_b = Get(b)["results"]["images"][0]["digest"];
  std::string digest_c = Get(c)["results"]["images"][0]["digest"];
  absl::StatusOr<Json> build_d = store_.Get("other-proj", "global", d);
  ASSERT_TRUE(build_d.ok());
  std::string digest_d = (*build_d)["results"]["images"][0]["digest"];

  ASSERT_EQ(digest_a.size(), 7u + 64u);
  EXPECT_TRUE(absl::StartsWith(digest_a, "sha256:"));
  EXPECT_EQ(digest_a.find_first_not_of("0123456789abcdef", 7), std::string::npos);
  EXPECT_NE(a, b);
  EXPECT_EQ(digest_a, digest_b);
  EXPECT_NE(digest_a, digest_c);
  EXPECT_NE(digest_a, digest_d);
  EXPECT_EQ(Get(a)["results"]["images"][0]["digest"], digest_a);  // stable across reads
}

// ---- validation ---------------------------------------------------------------------------------

TEST_F(BuildModelTest, BuildMustBeAnObject) {
  absl::Status status = CreateError(Json::array());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(status), std::vector<std::string>{"build"});
}

TEST_F(BuildModelTest, StepsRequiredAndNonEmpty) {
  absl::Status missing = CreateError({{"images", Json::array({"gcr.io/p/a"})}});
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(missing), std::vector<std::string>{"build.steps"});
  absl::Status empty = CreateError({{"steps", Json::array()}});
  EXPECT_EQ(Fields(empty), std::vector<std::string>{"build.steps"});
}

TEST_F(BuildModelTest, StepNameRequiredAndTypesChecked) {
  Json build = DockerBuild();
  build["steps"].push_back({{"args", Json::array({"x"})}});
  build["steps"].push_back({{"name", "ok"}, {"args", Json::array({1})}});
  build["images"] = Json::array({"gcr.io/p/a", 7});
  build["timeout"] = "ten minutes";
  absl::Status status = CreateError(build);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields = Fields(status);
  EXPECT_EQ(std::set<std::string>(fields.begin(), fields.end()),
            (std::set<std::string>{"build.steps[1].name", "build.steps[2].args[0]",
                                   "build.images[1]", "build.timeout"}))
      << status;
}

TEST_F(BuildModelTest, NonPositiveTimeoutRejected) {
  Json build = DockerBuild();
  build["timeout"] = "0s";
  EXPECT_EQ(Fields(CreateError(build)), std::vector<std::string>{"build.timeout"});
}

TEST_F(BuildModelTest, UnknownTopLevelFieldRejectedWithParserWording) {
  Json build = DockerBuild();
  build["x"] = 1;
  absl::Status status = CreateError(build);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "Invalid JSON payload received. Unknown name \"x\" at 'build': Cannot find field.");
  EXPECT_EQ(Fields(status), std::vector<std::string>{"build"});
}

TEST_F(BuildModelTest, UnknownStepFieldRejected) {
  Json build = DockerBuild();
  build["steps"][0]["cmd"] = "ls";
  absl::Status status = CreateError(build);
  EXPECT_TRUE(absl::StrContains(status.message(), "Unknown name \"cmd\" at 'build.steps[0]'"))
      << status;
  EXPECT_EQ(Fields(status), std::vector<std::string>{"build.steps[0]"});
}

TEST_F(BuildModelTest, BadSubstitutionKeyAndOptionRejected) {
  Json build = DockerBuild();
  build["substitutions"] = {{"FOO", "x"}};
  build["options"] = {{"substitutionOption", "SOMETIMES"}};
  absl::Status status = CreateError(build);
  EXPECT_TRUE(HasField(status, "build.substitutions")) << status;
  EXPECT_TRUE(HasField(status, "build.options.substitutionOption")) << status;
}

TEST_F(BuildModelTest, InvalidTagRejectedAfterExpansion) {
  Json build = Tagged(DockerBuild(), "svc/$_NAME");
  build["substitutions"] = {{"_NAME", "api"}};
  EXPECT_EQ(Fields(CreateError(build)), std::vector<std::string>{"build.tags[0]"});
}

TEST_F(BuildModelTest, EchoedOutputOnlyFieldsAreAcceptedAndReplaced) {
  std::string first = Create(DockerBuild())["id"];
  clock_.Advance(absl::Seconds(1));
  Json echoed = Get(first);  // status SUCCESS, results, createTime, ...
  echoed["steps"][0]["status"] = "SUCCESS";
  Json created = Create(echoed);
  EXPECT_NE(created["id"], first);
  EXPECT_EQ(created["status"], "QUEUED");
  EXPECT_EQ(created["createTime"], Time(absl::Seconds(1)));
  EXPECT_FALSE(created.contains("results"));
  EXPECT_FALSE(created.contains("finishTime"));
  EXPECT_FALSE(created["steps"][0].contains("status"));
}

// ---- list ---------------------------------------------------------------------------------------

TEST_F(BuildModelTest, ListNewestFirstWithFilter) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(Create(Tagged(DockerBuild(), i % 2 == 0 ? "even" : "odd"))["id"]);
    clock_.Advance(absl::Milliseconds(100));
  }
  absl::StatusOr<Json> all = store_.List(kProject, "global", "", 0, "");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ((*all)["builds"].size(), 4u);
  EXPECT_EQ((*all)["builds"][0]["id"], ids[3]);
  EXPECT_EQ((*all)["builds"][3]["id"], ids[0]);
  EXPECT_FALSE(all->contains("nextPageToken"));

  absl::StatusOr<Json> even = store_.List(kProject, "global", "tags=\"even\"", 0, "");
  ASSERT_TRUE(even.ok()) << even.status();
  ASSERT_EQ((*even)["builds"].size(), 2u);
  EXPECT_EQ((*even)["builds"][0]["id"], ids[2]);
  EXPECT_EQ((*even)["builds"][1]["id"], ids[0]);

  // Statuses are evaluated as of now: at +400ms builds 0-2 have started (build 2 just now),
  // build 3 still queues.
  absl::StatusOr<Json> ongoing =
      store_.List(kProject, "global", "status=\"WORKING\" OR status=\"QUEUED\"", 0, "");
  ASSERT_TRUE(ongoing.ok());
  EXPECT_EQ((*ongoing)["builds"].size(), 4u);
  absl::StatusOr<Json> working = store_.List(kProject, "global", "status=\"WORKING\"", 0, "");
  ASSERT_TRUE(working.ok());
  ASSERT_EQ((*working)["builds"].size(), 3u);
  EXPECT_EQ((*working)["builds"][0]["id"], ids[2]);
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<Json> succeeded = store_.List(kProject, "global", "status=\"SUCCESS\"", 0, "");
  ASSERT_TRUE(succeeded.ok());
  EXPECT_EQ((*succeeded)["builds"].size(), 4u);
}

TEST_F(BuildModelTest, ListBadFilterIsInvalidArgumentWithParserMessage) {
  absl::StatusOr<Json> listed = store_.List(kProject, "global", "nope=\"x\"", 0, "");
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(listed.status().message(), "unknown key \"nope\""))
      << listed.status();
  EXPECT_TRUE(HasField(listed.status(), "filter"));
  listed = store_.List(kProject, "global", "status=", 0, "");
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(listed.status().message(), "filter:")) << listed.status();
}

TEST_F(BuildModelTest, ListPaginationWithCursor) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Create(DockerBuild())["id"]);  // same createTime
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<Json> page = store_.List(kProject, "global", "", 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Json& b : (*page)["builds"]) seen.push_back(b["id"]);
    token = page->value("nextPageToken", "");
    ++pages;
    if (pages == 1) Create(DockerBuild());  // a new build does not shift later pages
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{ids[4], ids[3], ids[2], ids[1], ids[0]}));
}

TEST_F(BuildModelTest, ListPageSizeDefaultsAndLimits) {
  for (int i = 0; i < 51; ++i) Create(DockerBuild());
  absl::StatusOr<Json> page = store_.List(kProject, "global", "", 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["builds"].size(), 50u);
  EXPECT_TRUE(page->contains("nextPageToken"));
  page = store_.List(kProject, "global", "", 5000, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["builds"].size(), 51u);
  EXPECT_FALSE(page->contains("nextPageToken"));
  EXPECT_EQ(store_.List(kProject, "global", "", -1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BuildModelTest, ListRejectsGarbageAndForeignPageTokens) {
  for (int i = 0; i < 3; ++i) Create(Tagged(DockerBuild(), "t"));
  for (const char* garbage : {"garbage", "!!!", "YnQxfHh8eXx6"}) {
    absl::StatusOr<Json> page = store_.List(kProject, "global", "", 1, garbage);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << garbage;
    EXPECT_TRUE(HasField(page.status(), "pageToken")) << garbage;
  }
  absl::StatusOr<Json> first = store_.List(kProject, "global", "", 1, "");
  ASSERT_TRUE(first.ok());
  std::string token = (*first)["nextPageToken"];
  EXPECT_EQ(store_.List(kProject, "global", "tags=\"t\"", 1, token).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.List("other-proj", "global", "", 1, token).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_.List(kProject, "global", "", 1, token).ok());
}

TEST_F(BuildModelTest, ListIsScopedToProjectAndLocation) {
  std::string global = Create(DockerBuild())["id"];
  std::string regional = Create(DockerBuild(), kRegion)["id"];
  Create(DockerBuild(), "global", "other-proj");
  absl::StatusOr<Json> g = store_.List(kProject, "global", "", 0, "");
  absl::StatusOr<Json> r = store_.List(kProject, kRegion, "", 0, "");
  absl::StatusOr<Json> e = store_.List(kProject, "europe-west1", "", 0, "");
  ASSERT_TRUE(g.ok() && r.ok() && e.ok());
  ASSERT_EQ((*g)["builds"].size(), 1u);
  EXPECT_EQ((*g)["builds"][0]["id"], global);
  ASSERT_EQ((*r)["builds"].size(), 1u);
  EXPECT_EQ((*r)["builds"][0]["id"], regional);
  EXPECT_TRUE((*e)["builds"].empty());
}

// ---- operations ---------------------------------------------------------------------------------

TEST_F(BuildModelTest, GlobalOperationNameAndCompletion) {
  absl::StatusOr<Json> op = store_.Create(kProject, "global", DockerBuild());
  ASSERT_TRUE(op.ok());
  std::string id = (*op)["metadata"]["build"]["id"];
  std::string name = (*op)["name"];
  EXPECT_EQ(name, "operations/build/proj/" + Base64(id));
  EXPECT_EQ((*op)["metadata"]["@type"],
            "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata");
  EXPECT_FALSE(op->contains("done"));

  clock_.Advance(absl::Milliseconds(300));
  absl::StatusOr<Json> working = store_.GetOperation(name);
  ASSERT_TRUE(working.ok());
  EXPECT_EQ((*working)["metadata"]["build"]["status"], "WORKING");
  EXPECT_FALSE(working->contains("done"));
  absl::StatusOr<absl::Time> due = store_.OperationDueTime(name);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(*due, t0_ + absl::Milliseconds(700));

  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<Json> done = store_.GetOperation(name);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)["done"], true);
  EXPECT_EQ((*done)["response"]["@type"],
            "type.googleapis.com/google.devtools.cloudbuild.v1.Build");
  EXPECT_EQ((*done)["response"]["status"], "SUCCESS");
  EXPECT_EQ((*done)["response"]["id"], id);
  EXPECT_FALSE(done->contains("error"));
}

TEST_F(BuildModelTest, RegionalOperationName) {
  absl::StatusOr<Json> op = store_.Create(kProject, kRegion, DockerBuild());
  ASSERT_TRUE(op.ok());
  std::string name = (*op)["name"];
  std::string prefix = "projects/proj/locations/us-central1/operations/";
  ASSERT_TRUE(absl::StartsWith(name, prefix)) << name;
  EXPECT_EQ(name.size(), prefix.size() + 36);
  absl::StatusOr<Json> got = store_.GetOperation(name);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["metadata"]["build"]["id"], (*op)["metadata"]["build"]["id"]);
  // The global form does not name a regional build.
  std::string id = (*op)["metadata"]["build"]["id"];
  EXPECT_EQ(store_.GetOperation("operations/build/proj/" + Base64(id)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BuildModelTest, FailedOperationsCarryErrorCodes) {
  store_.rules().push_back(Rule("fail", "FAILURE"));
  store_.rules().push_back(Rule("internal", "INTERNAL_ERROR"));
  store_.rules().push_back(Rule("timeout", "TIMEOUT"));
  struct Case {
    std::string tag;
    int code;
  };
  std::vector<Case> cases = {{"fail", 2}, {"internal", 13}, {"timeout", 4}, {"cancel", 1}};
  std::vector<std::string> names;
  for (const Case& c : cases) {
    Json build = Tagged(DockerBuild(), c.tag);
    build["timeout"] = "10s";
    absl::StatusOr<Json> op = store_.Create(kProject, "global", build);
    ASSERT_TRUE(op.ok()) << op.status();
    names.push_back((*op)["name"]);
    if (c.tag == "cancel") {
      ASSERT_TRUE(store_.Cancel(kProject, "global", (*op)["metadata"]["build"]["id"]).ok());
    }
  }
  clock_.Advance(absl::Seconds(11));
  for (size_t i = 0; i < cases.size(); ++i) {
    absl::StatusOr<Json> op = store_.GetOperation(names[i]);
    ASSERT_TRUE(op.ok());
    EXPECT_EQ((*op)["done"], true) << cases[i].tag;
    EXPECT_EQ((*op)["error"]["code"], cases[i].code) << cases[i].tag;
    EXPECT_FALSE((*op)["error"].value("message", "").empty()) << cases[i].tag;
    EXPECT_FALSE(op->contains("response")) << cases[i].tag;
    EXPECT_NE((*op)["metadata"]["build"]["status"], "WORKING") << cases[i].tag;
  }
  store_.config().failed_operation_has_response = true;
  absl::StatusOr<Json> op = store_.GetOperation(names[0]);
  ASSERT_TRUE(op.ok());
  EXPECT_EQ((*op)["response"]["status"], "FAILURE");
  EXPECT_EQ((*op)["error"]["code"], 2);
}

TEST_F(BuildModelTest, UnknownOperationIsNotFound) {
  EXPECT_EQ(store_.GetOperation("operations/build/proj/bm9wZQ==").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.GetOperation("projects/proj/locations/global/operations/x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.OperationDueTime("nope").status().code(), absl::StatusCode::kNotFound);
}

// ---- not found ----------------------------------------------------------------------------------

TEST_F(BuildModelTest, GetAndCancelOutsideProjectOrLocationAreNotFound) {
  std::string global = Create(DockerBuild())["id"];
  std::string regional = Create(DockerBuild(), kRegion)["id"];
  std::vector<absl::StatusOr<Json>> results = {
      store_.Get("other-proj", "global", global),   store_.Get(kProject, kRegion, global),
      store_.Get(kProject, "global", regional),     store_.Get(kProject, "europe-west1", regional),
      store_.Get(kProject, "global", "no-such-id"), store_.Cancel("other-proj", "global", global),
      store_.Cancel(kProject, "global", regional)};
  for (const absl::StatusOr<Json>& result : results) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(result.status().message(), "Requested entity was not found.");
  }
  // The failed cancel left the build alone.
  EXPECT_EQ(StatusOf(regional, kRegion), "QUEUED");
}

// ---- dump, seed, reset --------------------------------------------------------------------------

TEST_F(BuildModelTest, DumpSeedRoundTrip) {
  store_.rules().push_back(Rule("fail", "FAILURE"));
  std::string success = Create(DockerBuild())["id"];
  std::string failure = Create(Tagged(DockerBuild(), "fail"), kRegion)["id"];
  clock_.Advance(absl::Seconds(1));
  std::string cancelled = Create(DockerBuild())["id"];
  ASSERT_TRUE(store_.Cancel(kProject, "global", cancelled).ok());
  std::string working = Create(DockerBuild(), "global", "other-proj")["id"];
  clock_.Advance(absl::Milliseconds(300));
  std::string queued = Create(DockerBuild())["id"];

  Json dump = store_.Dump();
  ASSERT_EQ(dump["builds"].size(), 5u);
  EXPECT_EQ(dump["builds"][0]["id"], success);  // oldest first
  EXPECT_EQ(dump["builds"][4]["id"], queued);
  EXPECT_EQ(dump["builds"][3]["status"], "WORKING");

  store_.Reset();
  EXPECT_TRUE(store_.Dump()["builds"].empty());
  EXPECT_EQ(store_.Get(kProject, "global", success).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.rules().size(), 1u);  // rules survive Reset

  ASSERT_TRUE(store_.Seed(dump["builds"]).ok());
  EXPECT_EQ(store_.Dump(), dump);
  EXPECT_EQ(Get(failure, kRegion)["failureInfo"]["type"], "USER_BUILD_STEP");

  // Non-terminal seeded builds keep moving on the original schedule.
  clock_.Advance(absl::Milliseconds(500));
  absl::StatusOr<Json> other = store_.Get("other-proj", "global", working);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)["status"], "SUCCESS");
  EXPECT_EQ((*other)["finishTime"], Time(absl::Milliseconds(1700)));
  EXPECT_EQ(StatusOf(queued), "WORKING");
  // The global form of the operation is derived again from the id.
  absl::StatusOr<Json> op = store_.GetOperation("operations/build/proj/" + Base64(success));
  ASSERT_TRUE(op.ok());
  EXPECT_EQ((*op)["done"], true);
}

TEST_F(BuildModelTest, SeedKeepsTerminalBuildsAsGivenAndListsThem) {
  Json seeded = Json::parse(R"([
    {"id": "b-old", "name": "projects/proj/locations/europe-west1/builds/b-old",
     "status": "FAILURE", "createTime": "2025-06-01T12:00:00Z", "tags": ["legacy"],
     "statusDetail": "it broke"},
    {"id": "b-queued", "projectId": "proj", "status": "QUEUED", "tags": ["legacy"]}
  ])");
  ASSERT_TRUE(store_.Seed(seeded).ok());
  absl::StatusOr<Json> old = store_.Get(kProject, "europe-west1", "b-old");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ((*old)["status"], "FAILURE");
  EXPECT_EQ((*old)["statusDetail"], "it broke");
  EXPECT_EQ((*old)["createTime"], "2025-06-01T12:00:00Z");
  EXPECT_EQ((*old)["projectId"], kProject);
  EXPECT_EQ(store_.Cancel(kProject, "europe-west1", "b-old").status().code(),
            absl::StatusCode::kFailedPrecondition);

  // The non-terminal one is scheduled from now, as createTime was not given.
  Json queued = Get("b-queued");
  EXPECT_EQ(queued["status"], "QUEUED");
  EXPECT_EQ(queued["createTime"], Time(absl::ZeroDuration()));
  EXPECT_EQ(queued["name"], "projects/proj/locations/global/builds/b-queued");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(StatusOf("b-queued"), "SUCCESS");

  absl::StatusOr<Json> listed = store_.List(kProject, "europe-west1", "tags=\"legacy\"", 0, "");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ((*listed)["builds"].size(), 1u);
  EXPECT_EQ((*listed)["builds"][0]["id"], "b-old");
}

TEST_F(BuildModelTest, SeedErrorsAddNothing) {
  EXPECT_EQ(store_.Seed(Json::object()).code(), absl::StatusCode::kInvalidArgument);
  Json builds = Json::parse(R"([
    {"id": "fine", "projectId": "proj", "status": "SUCCESS"},
    {"projectId": "proj", "status": "SUCCESS"}
  ])");
  absl::Status status = store_.Seed(builds);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(status), std::vector<std::string>{"builds[1].id"});
  EXPECT_TRUE(store_.Dump()["builds"].empty());

  status = store_.Seed(Json::parse(R"([{"id": "x", "status": "SUCCESS"}])"));
  EXPECT_EQ(Fields(status), std::vector<std::string>{"builds[0].projectId"});
  status = store_.Seed(
      Json::parse(R"([{"id": "x", "projectId": "p", "name": "projects/q/locations/l/builds/x"}])"));
  EXPECT_EQ(Fields(status), std::vector<std::string>{"builds[0].name"});
}

}  // namespace
}  // namespace runway::emulator
