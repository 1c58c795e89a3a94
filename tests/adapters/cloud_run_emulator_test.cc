// CloudRunRestClient over CpprestHttpTransport against the project's emulator, served in process
// on a loopback port: the real wire format, real sockets, injected faults. Real time and the
// real sleeper, with tiny backoffs; no test asserts an upper bound on time.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "controller/adapters/cloud_build_rest_client.h"
#include "controller/adapters/cloud_run_rest_client.h"
#include "controller/adapters/cpprest_http_transport.h"
#include "controller/adapters/system_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator.h"
#include "tests/emulator/http_server.h"
#include "tests/status_matchers.h"

namespace runway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr char kProject[] = "demo";
constexpr char kRegion[] = "us-central1";
constexpr char kImageA[] =
    "us-docker.pkg.dev/demo/apps/api@sha256:"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kImageB[] =
    "us-docker.pkg.dev/demo/apps/api@sha256:"
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

class CloudRunEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    emulator_ = std::make_unique<emulator::Emulator>(&clock_, /*seed=*/7);
    server_ = std::make_unique<emulator::HttpServer>(
        [this](const emulator::EmuRequest& request) { return emulator_->Handle(request); },
        8 << 20);
    ASSERT_TRUE(server_->Start("127.0.0.1", 0, 2).ok());
    base_ = absl::StrCat("http://127.0.0.1:", server_->port());
    emulator_->SetBaseUrl(base_);
    Admin("POST", "/_emulator/config", R"({"reconcileDelay":"0s"})");
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
  }

  CloudRunRestClient& Client() {
    if (client_ == nullptr) {
      options_.endpoint = base_ + "/";
      options_.call_timeout = absl::Seconds(10);
      options_.initial_backoff = absl::Milliseconds(20);
      options_.max_backoff = absl::Milliseconds(200);
      options_.random_fraction = [] { return 1.0; };
      options_.observer = [this](const ApiCall& call) {
        absl::MutexLock lock(&calls_mutex_);
        calls_.push_back(call);
      };
      client_ =
          std::make_unique<CloudRunRestClient>(&transport_, &tokens_, &clock_, &sleeper_, options_);
    }
    return *client_;
  }

  // The admin API, through the same transport; fails the test unless it answers 200.
  void Admin(const std::string& method, const std::string& path, const std::string& body = "") {
    HttpRequest request;
    request.method = method;
    request.url = base_ + path;
    request.body = body;
    request.headers["Content-Type"] = "application/json";
    absl::StatusOr<HttpResponse> response = transport_.Send(request);
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_EQ(response->status, 200) << path << ": " << response->body;
  }

  static ServiceUpdate Create(const std::string& service, const std::string& image,
                              const std::string& revision = "") {
    ServiceUpdate update;
    update.name = {kProject, kRegion, service};
    update.revision_template = RevisionTemplate{};
    update.revision_template->env = {EnvVar{"MODE", std::string("test"), std::nullopt}};
    update.image = image;
    if (!revision.empty()) update.revision_name = revision;
    update.annotations = {{"runway.dev/managed-by", "default/" + service}};
    return update;
  }

  std::vector<ApiCall> Calls() {
    absl::MutexLock lock(&calls_mutex_);
    return calls_;
  }

  SystemClock clock_;
  SystemSleeper sleeper_;
  CpprestHttpTransport transport_;
  NoTokenSource tokens_;
  std::unique_ptr<emulator::Emulator> emulator_;
  std::unique_ptr<emulator::HttpServer> server_;
  std::string base_;
  CloudRunRestClientOptions options_;
  std::unique_ptr<CloudRunRestClient> client_;
  absl::Mutex calls_mutex_;
  std::vector<ApiCall> calls_ ABSL_GUARDED_BY(calls_mutex_);
};

TEST_F(CloudRunEmulatorTest, CreatesGetsAndListsAcrossPages) {
  for (const char* name : {"alpha", "beta", "gamma"}) {
    absl::StatusOr<OperationState> operation = Client().UpdateService(Create(name, kImageA));
    ASSERT_TRUE(operation.ok()) << operation.status();
    EXPECT_THAT(operation->name, HasSubstr("projects/demo/locations/us-central1/operations/"));
  }
  absl::StatusOr<LiveService> beta = Client().GetService({kProject, kRegion, "beta"});
  ASSERT_TRUE(beta.ok()) << beta.status();
  EXPECT_EQ(beta->name.service, "beta");
  EXPECT_EQ(beta->image, kImageA);
  EXPECT_FALSE(beta->etag.empty());
  EXPECT_EQ(beta->generation, 1);
  EXPECT_EQ(beta->annotations.at("runway.dev/managed-by"), "default/beta");
  EXPECT_EQ(beta->latest_created_revision.rfind("beta-", 0), 0u) << beta->latest_created_revision;

  options_.page_size = 2;
  client_.reset();
  std::set<std::string> names;
  absl::StatusOr<LiveServicePage> first = Client().ListServices(kProject, kRegion, "");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->services, SizeIs(2));
  ASSERT_FALSE(first->next_page_token.empty());
  absl::StatusOr<LiveServicePage> second =
      Client().ListServices(kProject, kRegion, first->next_page_token);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(second->services, SizeIs(1));
  EXPECT_EQ(second->next_page_token, "");
  for (const LiveServicePage* page : {&*first, &*second}) {
    for (const LiveService& service : page->services) names.insert(service.name.service);
  }
  EXPECT_THAT(names, UnorderedElementsAre("alpha", "beta", "gamma"));
}

TEST_F(CloudRunEmulatorTest, MissingServiceIsNotFound) {
  EXPECT_THAT(Client().GetService({kProject, kRegion, "nope"}).status(),
              StatusIs(absl::StatusCode::kNotFound, "services.get"));
}

TEST_F(CloudRunEmulatorTest, TrafficPatchWithEtagAndStaleEtagIsAborted) {
  ASSERT_TRUE(Client().UpdateService(Create("api", kImageA, "api-v1")).ok());
  absl::StatusOr<LiveService> v1 = Client().GetService({kProject, kRegion, "api"});
  ASSERT_TRUE(v1.ok()) << v1.status();
  ServiceUpdate roll = Create("api", kImageB, "api-v2");
  roll.etag = v1->etag;
  ASSERT_TRUE(Client().UpdateService(roll).ok());
  absl::StatusOr<LiveService> v2 = Client().GetService({kProject, kRegion, "api"});
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->template_revision, "api-v2");
  EXPECT_EQ(v2->latest_created_revision, "api-v2");

  ServiceUpdate split;
  split.name = {kProject, kRegion, "api"};
  split.etag = v2->etag;
  split.traffic = std::vector<LiveTrafficTarget>{{"api-v1", false, 90, "", ""},
                                                 {"api-v2", false, 10, "canary", ""}};
  absl::StatusOr<OperationState> operation = Client().UpdateService(split);
  ASSERT_TRUE(operation.ok()) << operation.status();
  absl::StatusOr<LiveService> after = Client().GetService({kProject, kRegion, "api"});
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_THAT(after->traffic, SizeIs(2));
  EXPECT_EQ(after->traffic[0].revision, "api-v1");
  EXPECT_EQ(after->traffic[0].percent, 90);
  EXPECT_EQ(after->traffic[1].tag, "canary");
  EXPECT_EQ(after->image, kImageB);  // traffic-only mask left the template alone
  ASSERT_THAT(after->traffic_statuses, SizeIs(2));
  EXPECT_THAT(after->traffic_statuses[1].uri, HasSubstr("/_tag/demo/us-central1/api/canary"));

  split.traffic = std::vector<LiveTrafficTarget>{{"", true, 100, "", ""}};  // etag is v2's: stale
  EXPECT_THAT(Client().UpdateService(split).status(),
              StatusIs(absl::StatusCode::kAborted,
                       "services.patch projects/demo/locations/us-central1/services/api: 409 "
                       "ABORTED"));
}

TEST_F(CloudRunEmulatorTest, BadTrafficIsInvalidArgumentNamingTheField) {
  ASSERT_TRUE(Client().UpdateService(Create("api", kImageA, "api-v1")).ok());
  ServiceUpdate bad;
  bad.name = {kProject, kRegion, "api"};
  bad.traffic = std::vector<LiveTrafficTarget>{{"api-v1", false, 100, "", ""},
                                               {"api-v1", false, 0, "Bad_Tag", ""}};
  absl::Status status = Client().UpdateService(bad).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, "400 INVALID_ARGUMENT"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("traffic[1].tag: tag 'Bad_Tag'"));
  EXPECT_THAT(Calls(), SizeIs(2));  // not retried
}

TEST_F(CloudRunEmulatorTest, InjectedUnavailableIsRetriedToSuccess) {
  ASSERT_TRUE(Client().UpdateService(Create("api", kImageA)).ok());
  Admin("POST", "/_emulator/faults", R"({"method":"GET","path":"*","count":2,"code":503})");
  absl::StatusOr<LiveService> service = Client().GetService({kProject, kRegion, "api"});
  ASSERT_TRUE(service.ok()) << service.status();
  std::vector<ApiCall> calls = Calls();
  ASSERT_THAT(calls, SizeIs(4));  // the create, then 503, 503, 200
  EXPECT_EQ(calls[1].http_status, 503);
  EXPECT_EQ(calls[2].http_status, 503);
  EXPECT_EQ(calls[3].http_status, 200);
  EXPECT_EQ(calls[3].attempt, 3);
}

TEST_F(CloudRunEmulatorTest, PersistentUnavailableGivesUpNamingTheAttempts) {
  options_.max_attempts = 3;
  Admin("POST", "/_emulator/faults", R"({"method":"GET","path":"*","count":-1,"code":503})");
  EXPECT_THAT(Client().GetService({kProject, kRegion, "api"}).status(),
              StatusIs(absl::StatusCode::kUnavailable, "503 UNAVAILABLE"));
  EXPECT_THAT(Calls(), SizeIs(3));
  Admin("DELETE", "/_emulator/faults");
}

TEST_F(CloudRunEmulatorTest, RefusedConnectionIsRetriedToSuccess) {
  ASSERT_TRUE(Client().UpdateService(Create("api", kImageA)).ok());
  Admin("POST", "/_emulator/faults", R"({"method":"GET","path":"*","action":"refuse",
                                         "duration":"0.3s"})");
  options_.max_attempts = 8;  // 20+40+80+160+200+200+200 ms of backoff outlast the refusal
  client_.reset();
  absl::StatusOr<LiveService> service = Client().GetService({kProject, kRegion, "api"});
  ASSERT_TRUE(service.ok()) << service.status();
  std::vector<ApiCall> calls = Calls();
  ASSERT_GE(calls.size(), 3u);  // the create, at least one failed GET, the GET that worked
  EXPECT_EQ(calls[1].method, "services.get");
  EXPECT_EQ(calls[1].http_status, 0);  // the connection was closed, then refused
  EXPECT_EQ(calls[1].code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls.back().http_status, 200);
}

TEST_F(CloudRunEmulatorTest, WaitOperationReturnsWhenTheServiceIsReady) {
  Admin("POST", "/_emulator/config", R"({"reconcileDelay":"0.3s"})");
  absl::StatusOr<OperationState> operation = Client().UpdateService(Create("api", kImageA));
  ASSERT_TRUE(operation.ok()) << operation.status();
  EXPECT_FALSE(operation->done);
  absl::StatusOr<OperationState> waited =
      Client().WaitOperation(operation->name, absl::Seconds(10));
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_TRUE(waited->done);
  EXPECT_TRUE(waited->error.ok()) << waited->error;
  absl::StatusOr<OperationState> got = Client().GetOperation(operation->name);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->done);
  absl::StatusOr<LiveService> service = Client().GetService({kProject, kRegion, "api"});
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_FALSE(service->reconciling);
  EXPECT_EQ(service->terminal_state, "CONDITION_SUCCEEDED");
  EXPECT_EQ(service->observed_generation, service->generation);
}

TEST_F(CloudRunEmulatorTest, ValidateOnlyChangesNothing) {
  ServiceUpdate update = Create("api", kImageA);
  update.validate_only = true;
  absl::StatusOr<OperationState> operation = Client().UpdateService(update);
  ASSERT_TRUE(operation.ok()) << operation.status();
  EXPECT_TRUE(operation->done);
  EXPECT_THAT(Client().GetService({kProject, kRegion, "api"}).status(),
              StatusIs(absl::StatusCode::kNotFound, ""));
}

// ---- the transport on its own ------------------------------------------------------------

TEST_F(CloudRunEmulatorTest, TransportLowercasesResponseHeaderNames) {
  Admin("POST", "/_emulator/faults", R"({"method":"GET","path":"*","code":429,"retryAfter":7})");
  HttpRequest request;
  request.method = "GET";
  request.url = base_ + "/v2/projects/demo/locations/us-central1/services/api";
  request.headers["Authorization"] = "Bearer ya29.secret-token";
  absl::StatusOr<HttpResponse> response = transport_.Send(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 429);
  EXPECT_EQ(response->headers["retry-after"], "7");
  EXPECT_EQ(response->headers.count("Retry-After"), 0u);
  EXPECT_THAT(response->body, HasSubstr("RESOURCE_EXHAUSTED"));
}

TEST_F(CloudRunEmulatorTest, TransportTimesOutOnAStalledAnswer) {
  Admin("POST", "/_emulator/faults",
        R"({"method":"GET","path":"*","action":"stall","duration":"3s"})");
  HttpRequest request;
  request.method = "GET";
  request.url = base_ + "/v2/projects/demo/locations/us-central1/services/api";
  request.headers["Authorization"] = "Bearer ya29.secret-token";
  request.timeout = absl::Milliseconds(300);
  absl::Status status = transport_.Send(request).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded,
                               absl::StrCat("127.0.0.1:", server_->port())));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));
}

TEST_F(CloudRunEmulatorTest, TransportReportsRefusedAndMalformed) {
  const std::string url = base_ + "/v2/projects/demo/locations/us-central1/services/api";
  const int port = server_->port();
  // Stop() alone keeps the listening socket open (connects would hang); destruction closes it.
  server_.reset();
  CpprestHttpTransport transport;
  HttpRequest request;
  request.method = "GET";
  request.url = url;
  request.headers["Authorization"] = "Bearer ya29.secret-token";
  request.timeout = absl::Seconds(5);
  absl::Status status = transport.Send(request).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                               absl::StrCat("connection refused to 127.0.0.1:", port)));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));

  request.url = "not a url";
  EXPECT_THAT(transport.Send(request).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "malformed URL"));
  request.url = "ftp://127.0.0.1/x";
  EXPECT_THAT(transport.Send(request).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "malformed URL"));
}

// ---- Cloud Build ------------------------------------------------------------------------------

class CloudBuildEmulatorTest : public CloudRunEmulatorTest {
 protected:
  CloudBuildRestClient& Builds() {
    if (builds_ == nullptr) {
      CloudBuildRestClientOptions options;
      options.endpoint = base_ + "/";
      options.call_timeout = absl::Seconds(10);
      options.initial_backoff = absl::Milliseconds(20);
      options.max_backoff = absl::Milliseconds(200);
      options.observer = [this](const ApiCall& call) {
        absl::MutexLock lock(&calls_mutex_);
        calls_.push_back(call);
      };
      builds_ = std::make_unique<CloudBuildRestClient>(&transport_, &tokens_, &clock_, &sleeper_,
                                                       options);
    }
    return *builds_;
  }
  static BuildRequest Request(const std::string& tag) {
    BuildRequest request;
    request.project = kProject;
    request.git = GitSource{"https://github.com/demo/api", std::string(40, 'a'), "svc"};
    request.image = "us-docker.pkg.dev/demo/apps/api:" + tag;
    request.tags = {"runway", "svc-api", tag};
    request.timeout = absl::Minutes(5);
    return request;
  }
  int CreateCalls() {
    absl::MutexLock lock(&calls_mutex_);
    int n = 0;
    for (const ApiCall& call : calls_) n += call.method == "builds.create";
    return n;
  }
  std::unique_ptr<CloudBuildRestClient> builds_;
};

TEST_F(CloudBuildEmulatorTest, CreatesPollsAndFindsBuildsByTag) {
  Admin("POST", "/_emulator/config", R"({"buildQueue":"0s","buildWork":"0s"})");
  absl::StatusOr<BuildState> created = Builds().CreateBuild(Request("src-1111"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->id.empty());
  EXPECT_FALSE(created->log_url.empty());
  absl::StatusOr<BuildState> done = Builds().GetBuild(kProject, created->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status, "SUCCESS");
  EXPECT_TRUE(done->Terminal());
  EXPECT_EQ(done->image_digest.rfind("sha256:", 0), 0u) << done->image_digest;
  EXPECT_TRUE(done->create_time.has_value() && done->finish_time.has_value());
  ASSERT_TRUE(Builds().CreateBuild(Request("src-2222")).ok());
  absl::StatusOr<std::vector<BuildState>> tagged = Builds().ListBuildsByTag(kProject, "src-1111");
  ASSERT_TRUE(tagged.ok()) << tagged.status();
  ASSERT_THAT(*tagged, SizeIs(1));
  EXPECT_EQ((*tagged)[0].id, created->id);
  EXPECT_EQ((*tagged)[0].image_digest, done->image_digest);
  absl::StatusOr<std::vector<BuildState>> none = Builds().ListBuildsByTag(kProject, "src-none");
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, SizeIs(0));
}

TEST_F(CloudBuildEmulatorTest, FailureCarriesFailureInfoAndLogUrl) {
  Admin("POST", "/_emulator/config", R"({"buildQueue":"0s","buildWork":"0s"})");
  Admin("POST", "/_emulator/build-rules",
        R"({"source":"*","outcome":"FAILURE","failureType":"USER_BUILD_STEP",)"
        R"("failureDetail":"step 0 exited 1"})");
  absl::StatusOr<BuildState> created = Builds().CreateBuild(Request("src-3333"));
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<BuildState> failed = Builds().GetBuild(kProject, created->id);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status, "FAILURE");
  EXPECT_EQ(failed->failure_type, "USER_BUILD_STEP");
  EXPECT_EQ(failed->failure_detail, "step 0 exited 1");
  EXPECT_TRUE(failed->image_digest.empty());
}

TEST_F(CloudBuildEmulatorTest, CreateIsSentOnceButReadsAreRetried) {
  Admin("POST", "/_emulator/faults",
        R"({"method":"POST","path":"/v1/*/builds","count":1,"action":"error","code":503})");
  absl::StatusOr<BuildState> refused = Builds().CreateBuild(Request("src-4444"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("builds.create"));
  EXPECT_EQ(CreateCalls(), 1) << "a create is never retried blindly";
  absl::StatusOr<BuildState> created = Builds().CreateBuild(Request("src-4444"));
  ASSERT_TRUE(created.ok()) << created.status();
  Admin("POST", "/_emulator/faults",
        R"({"method":"GET","path":"/v1/*/builds/*","count":2,"action":"error","code":503})");
  absl::StatusOr<BuildState> read = Builds().GetBuild(kProject, created->id);
  EXPECT_TRUE(read.ok()) << read.status();
}

TEST_F(CloudBuildEmulatorTest, RefusedConnectionsAreReportedAsConnectFailures) {
  server_->Stop();
  server_.reset();
  absl::StatusOr<BuildState> read = Builds().GetBuild(kProject, "x");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
  std::vector<ApiCall> calls = Calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().connect_failure, "refused");
  EXPECT_EQ(calls.back().http_status, 0);
}

}  // namespace
}  // namespace runway
