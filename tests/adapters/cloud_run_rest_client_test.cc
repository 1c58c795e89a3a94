// CloudRunRestClient against a scripted HttpTransport: request shapes, JSON mapping, error
// mapping, retries, rate limits and token handling. Time moves only through FakeClock; the
// recording Sleeper advances it instead of sleeping.

#include "controller/adapters/cloud_run_rest_client.h"

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/fake_clock.h"
#include "tests/status_matchers.h"

namespace runway {
namespace {

using Json = nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;

// Answers with the scripted results in order, then repeats the last one served; records every
// request.
class ScriptedTransport : public HttpTransport {
 public:
  void Push(absl::StatusOr<HttpResponse> result) {
    absl::MutexLock lock(&mutex_);
    script_.push_back(std::move(result));
  }
  void Push(int status, std::string body, std::map<std::string, std::string> headers = {}) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    response.headers = std::move(headers);
    Push(std::move(response));
  }
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    absl::MutexLock lock(&mutex_);
    requests_.push_back(request);
    if (!script_.empty()) {
      last_ = std::move(script_.front());
      script_.pop_front();
    }
    return last_;
  }
  std::vector<HttpRequest> requests() {
    absl::MutexLock lock(&mutex_);
    return requests_;
  }

 private:
  absl::Mutex mutex_;
  std::deque<absl::StatusOr<HttpResponse>> script_ ABSL_GUARDED_BY(mutex_);
  absl::StatusOr<HttpResponse> last_ ABSL_GUARDED_BY(mutex_) =
      absl::InternalError("test transport: nothing scripted");
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mutex_);
};

// Records each sleep and moves the fake clock by it, so token buckets refill.
class RecordingSleeper : public Sleeper {
 public:
  explicit RecordingSleeper(FakeClock* clock) : clock_(clock) {}
  void Sleep(absl::Duration duration) override {
    sleeps.push_back(duration);
    clock_->Advance(duration);
  }
  std::vector<absl::Duration> sleeps;

 private:
  FakeClock* clock_;
};

class StaticTokenSource : public TokenSource {
 public:
  absl::StatusOr<std::string> AccessToken() override { return token; }
  std::string Name() const override { return "the test token source"; }
  absl::StatusOr<std::string> token = std::string("ya29.secret-token");
};

std::string ErrorBody(int code, const std::string& status, const std::string& message,
                      const std::string& field = "", const std::string& description = "") {
  Json error = {{"code", code}, {"status", status}, {"message", message}};
  if (!field.empty()) {
    error["details"] = Json::array(
        {{{"@type", "type.googleapis.com/google.rpc.BadRequest"},
          {"fieldViolations", Json::array({{{"field", field}, {"description", description}}})}}});
  }
  return Json{{"error", error}}.dump();
}

constexpr char kOperationBody[] =
    R"({"name":"projects/p/locations/r/operations/op-1","done":false,
        "metadata":{"@type":"type.googleapis.com/google.cloud.run.v2.Service"}})";

// What the emulator (and Cloud Run) answer for a converged service with a canary: int64 fields
// as strings, a LATEST status resolved to a revision, zero percents omitted, no `reconciling`.
constexpr char kServiceBody[] = R"json({
  "name": "projects/demo/locations/us-central1/services/api",
  "uid": "6f1c1c3e-8a0e-4b43-9a63-0f2b3c7d9e11",
  "generation": "3",
  "labels": {"team": "core"},
  "annotations": {"runway.dev/rollout-step": "1", "example.com/owner": "payments"},
  "template": {
    "revision": "api-v3",
    "containers": [{"image": "us-docker.pkg.dev/demo/apps/api@sha256:aaaa",
                    "ports": [{"name": "http1", "containerPort": 8080}],
                    "resources": {"limits": {"cpu": "1000m", "memory": "512Mi"}}}],
    "scaling": {"maxInstanceCount": 100},
    "timeout": "300s",
    "maxInstanceRequestConcurrency": 80
  },
  "traffic": [
    {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-v2", "percent": 90},
    {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 10, "tag": "canary"},
    {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-v1", "tag": "old"}
  ],
  "createTime": "2026-01-01T00:00:00.000000Z",
  "updateTime": "2026-01-01T00:05:00.000000Z",
  "creator": "runway@demo.iam.gserviceaccount.com",
  "lastModifier": "runway@demo.iam.gserviceaccount.com",
  "observedGeneration": "3",
  "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED",
                        "lastTransitionTime": "2026-01-01T00:05:01.000000Z"},
  "conditions": [{"type": "RoutesReady", "state": "CONDITION_SUCCEEDED"},
                 {"type": "ConfigurationsReady", "state": "CONDITION_SUCCEEDED"}],
  "latestReadyRevision": "projects/demo/locations/us-central1/services/api/revisions/api-v3",
  "latestCreatedRevision": "projects/demo/locations/us-central1/services/api/revisions/api-v3",
  "trafficStatuses": [
    {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-v2", "percent": 90},
    {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "revision": "api-v3", "percent": 10,
     "tag": "canary", "uri": "http://127.0.0.1:8080/_tag/demo/us-central1/api/canary"},
    {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-v1", "tag": "old",
     "uri": "http://127.0.0.1:8080/_tag/demo/us-central1/api/old"}
  ],
  "uri": "http://127.0.0.1:8080/_run/demo/us-central1/api",
  "urls": ["http://127.0.0.1:8080/_run/demo/us-central1/api"],
  "etag": "\"b9c2d0\""
})json";

CloudRunServiceName TestName() { return {"p", "r", "s"}; }

class CloudRunRestClientTest : public ::testing::Test {
 protected:
  CloudRunRestClientTest() : sleeper_(&clock_) {
    options_.random_fraction = [] { return 1.0; };  // backoff = its ceiling, deterministic
  }

  CloudRunRestClient& Client() {
    if (client_ == nullptr) {
      options_.observer = [this](const ApiCall& call) { calls_.push_back(call); };
      client_ =
          std::make_unique<CloudRunRestClient>(&transport_, &tokens_, &clock_, &sleeper_, options_);
    }
    return *client_;
  }

  ServiceUpdate TrafficUpdate() {
    ServiceUpdate update;
    update.name = TestName();
    update.etag = "\"e1\"";
    update.traffic = std::vector<LiveTrafficTarget>{{"s-v1", false, 100, "", ""}};
    return update;
  }

  FakeClock clock_;
  RecordingSleeper sleeper_;
  ScriptedTransport transport_;
  StaticTokenSource tokens_;
  CloudRunRestClientOptions options_;
  std::vector<ApiCall> calls_;
  std::unique_ptr<CloudRunRestClient> client_;
};

// ---- request shapes ------------------------------------------------------------------------

TEST_F(CloudRunRestClientTest, ListServicesSendsPageSizeTokenAndBearer) {
  transport_.Push(200, R"({"services":[{"name":"projects/p/locations/r/services/a"},
                                        {"name":"projects/p/locations/r/services/b"}],
                           "nextPageToken":"next+1="})");
  absl::StatusOr<LiveServicePage> page = Client().ListServices("p", "r", "tok/=1");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_THAT(transport_.requests(), SizeIs(1));
  const HttpRequest request = transport_.requests()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url,
            "https://run.googleapis.com/v2/projects/p/locations/r/services?pageSize=500&"
            "pageToken=tok%2F%3D1");
  EXPECT_THAT(request.headers, Contains(Pair("Authorization", "Bearer ya29.secret-token")));
  EXPECT_EQ(request.timeout, absl::Seconds(30));
  ASSERT_THAT(page->services, SizeIs(2));
  EXPECT_EQ(page->services[1].name.service, "b");
  EXPECT_EQ(page->next_page_token, "next+1=");
}

TEST_F(CloudRunRestClientTest, FirstPageSendsNoPageTokenAndHonoursPageSizeAndEndpoint) {
  options_.endpoint = "http://127.0.0.1:9999";  // no trailing slash
  options_.page_size = 2;
  transport_.Push(200, R"({})");
  absl::StatusOr<LiveServicePage> page = Client().ListServices("p", "r", "");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->services, IsEmpty());
  EXPECT_EQ(page->next_page_token, "");
  EXPECT_EQ(transport_.requests()[0].url,
            "http://127.0.0.1:9999/v2/projects/p/locations/r/services?pageSize=2");
}

TEST_F(CloudRunRestClientTest, EmptyTokenSendsNoAuthorizationHeader) {
  NoTokenSource none;
  CloudRunRestClient client(&transport_, &none, &clock_, &sleeper_, options_);
  transport_.Push(200, kServiceBody);
  ASSERT_TRUE(client.GetService(TestName()).ok());
  const HttpRequest request = transport_.requests()[0];
  EXPECT_EQ(request.url, "https://run.googleapis.com/v2/projects/p/locations/r/services/s");
  EXPECT_EQ(request.headers.count("Authorization"), 0u);
}

TEST_F(CloudRunRestClientTest, UpdateServiceSendsMaskAllowMissingEtagTemplateAndTraffic) {
  transport_.Push(200, kOperationBody);
  ServiceUpdate update;
  update.name = TestName();
  update.etag = "\"e1\"";
  update.image = "us-docker.pkg.dev/p/apps/s@sha256:bbbb";
  update.revision_name = "s-4f2a9c";
  RevisionTemplate spec;
  spec.container_port = 9090;
  spec.command = {"/server"};
  spec.args = {"--port", "9090"};
  spec.env = {EnvVar{"MODE", std::string("prod"), std::nullopt},
              EnvVar{"DB_PASSWORD", std::nullopt, SecretRef{"db-password", "3"}}};
  spec.min_instances = 1;
  spec.max_instances = 20;
  spec.cpu = "2";
  spec.memory = "1Gi";
  spec.concurrency = 40;
  spec.request_timeout = absl::Seconds(120);
  spec.service_account = "app@p.iam.gserviceaccount.com";
  spec.labels = {{"team", "core"}};
  update.revision_template = spec;
  update.traffic = std::vector<LiveTrafficTarget>{{"s-old", false, 90, "", ""},
                                                  {"", true, 10, "canary", ""},
                                                  {"s-older", false, 0, "rollback", ""}};
  update.annotations = {{"runway.dev/rollout-step", "1"}, {"example.com/owner", "payments"}};

  absl::StatusOr<OperationState> operation = Client().UpdateService(update);
  ASSERT_TRUE(operation.ok()) << operation.status();
  EXPECT_EQ(operation->name, "projects/p/locations/r/operations/op-1");
  EXPECT_FALSE(operation->done);

  const HttpRequest request = transport_.requests()[0];
  EXPECT_EQ(request.method, "PATCH");
  EXPECT_EQ(request.url,
            "https://run.googleapis.com/v2/projects/p/locations/r/services/s?"
            "updateMask=template,traffic,annotations&allowMissing=true&validateOnly=false");
  EXPECT_THAT(request.headers, Contains(Pair("Content-Type", "application/json")));
  Json expected = Json::parse(R"json({
    "etag": "\"e1\"",
    "template": {
      "revision": "s-4f2a9c",
      "labels": {"team": "core"},
      "containers": [{
        "image": "us-docker.pkg.dev/p/apps/s@sha256:bbbb",
        "ports": [{"containerPort": 9090}],
        "command": ["/server"],
        "args": ["--port", "9090"],
        "env": [{"name": "MODE", "value": "prod"},
                {"name": "DB_PASSWORD",
                 "valueSource": {"secretKeyRef": {"secret": "db-password", "version": "3"}}}],
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}
      }],
      "scaling": {"minInstanceCount": 1, "maxInstanceCount": 20},
      "maxInstanceRequestConcurrency": 40,
      "timeout": "120s",
      "serviceAccount": "app@p.iam.gserviceaccount.com"
    },
    "traffic": [
      {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "s-old", "percent": 90},
      {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 10, "tag": "canary"},
      {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "s-older", "tag": "rollback"}
    ],
    "annotations": {"runway.dev/rollout-step": "1", "example.com/owner": "payments"}
  })json");
  EXPECT_EQ(Json::parse(request.body), expected) << request.body;
}

TEST_F(CloudRunRestClientTest, TrafficOnlyValidateOnlyUpdateSendsOnlyTraffic) {
  transport_.Push(200, R"({"name":"projects/p/locations/r/operations/validate","done":true})");
  ServiceUpdate update = TrafficUpdate();
  update.etag.clear();
  update.validate_only = true;
  absl::StatusOr<OperationState> operation = Client().UpdateService(update);
  ASSERT_TRUE(operation.ok()) << operation.status();
  EXPECT_TRUE(operation->done);
  EXPECT_TRUE(operation->error.ok());
  const HttpRequest request = transport_.requests()[0];
  EXPECT_THAT(request.url, HasSubstr("?updateMask=traffic&allowMissing=true&validateOnly=true"));
  EXPECT_EQ(Json::parse(request.body),
            Json::parse(R"({"traffic":[{"type":"TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                                        "revision":"s-v1","percent":100}]})"));
}

TEST_F(CloudRunRestClientTest, ImageOnlyUpdateSendsTemplateWithImage) {
  transport_.Push(200, kOperationBody);
  ServiceUpdate update;
  update.name = TestName();
  update.image = "gcr.io/p/s:1";
  ASSERT_TRUE(Client().UpdateService(update).ok());
  const HttpRequest request = transport_.requests()[0];
  EXPECT_THAT(request.url, HasSubstr("?updateMask=template&"));
  EXPECT_EQ(Json::parse(request.body),
            Json::parse(R"({"template":{"containers":[{"image":"gcr.io/p/s:1"}]}})"));
}

TEST_F(CloudRunRestClientTest, UpdateThatSetsNothingIsRejectedWithoutARequest) {
  ServiceUpdate update;
  update.name = TestName();
  EXPECT_THAT(Client().UpdateService(update).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "sets no field"));
  EXPECT_THAT(transport_.requests(), IsEmpty());
}

TEST_F(CloudRunRestClientTest, OperationsGetAndWait) {
  transport_.Push(200, R"({"name":"projects/p/locations/r/operations/op-1","done":true,
                           "error":{"code":9,
                                    "message":"Revision s-v2 failed: CONTAINER_MISSING"}})");
  absl::StatusOr<OperationState> got =
      Client().GetOperation("projects/p/locations/r/operations/op-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->done);
  EXPECT_THAT(got->error, StatusIs(absl::StatusCode::kFailedPrecondition, "CONTAINER_MISSING"));
  EXPECT_EQ(transport_.requests()[0].method, "GET");
  EXPECT_EQ(transport_.requests()[0].url,
            "https://run.googleapis.com/v2/projects/p/locations/r/operations/op-1");

  absl::StatusOr<OperationState> waited =
      Client().WaitOperation("projects/p/locations/r/operations/op-1", absl::Seconds(45));
  ASSERT_TRUE(waited.ok()) << waited.status();
  const HttpRequest wait = transport_.requests()[1];
  EXPECT_EQ(wait.method, "POST");
  EXPECT_EQ(wait.url, "https://run.googleapis.com/v2/projects/p/locations/r/operations/op-1:wait");
  EXPECT_EQ(Json::parse(wait.body), Json::parse(R"({"timeout":"45s"})"));
  EXPECT_EQ(wait.timeout, absl::Seconds(75));  // the server's hold plus the call timeout

  EXPECT_THAT(Client().GetOperation("op-1").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "projects/P/locations/L/operations"));
}

// ---- JSON -> LiveService -------------------------------------------------------------------

TEST_F(CloudRunRestClientTest, MapsARealisticServiceBody) {
  transport_.Push(200, kServiceBody);
  absl::StatusOr<LiveService> service = Client().GetService({"demo", "us-central1", "api"});
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ(service->name, (CloudRunServiceName{"demo", "us-central1", "api"}));
  EXPECT_EQ(service->etag, "\"b9c2d0\"");
  EXPECT_EQ(service->generation, 3);
  EXPECT_EQ(service->observed_generation, 3);
  EXPECT_FALSE(service->reconciling);
  EXPECT_EQ(service->terminal_state, "CONDITION_SUCCEEDED");
  EXPECT_EQ(service->terminal_message, "");
  EXPECT_EQ(service->latest_ready_revision, "api-v3");
  EXPECT_EQ(service->latest_created_revision, "api-v3");
  EXPECT_EQ(service->template_revision, "api-v3");
  EXPECT_EQ(service->image, "us-docker.pkg.dev/demo/apps/api@sha256:aaaa");
  ASSERT_THAT(service->traffic, SizeIs(3));
  EXPECT_EQ(service->traffic[0].revision, "api-v2");
  EXPECT_FALSE(service->traffic[0].latest);
  EXPECT_EQ(service->traffic[0].percent, 90);
  EXPECT_TRUE(service->traffic[1].latest);
  EXPECT_EQ(service->traffic[1].revision, "");
  EXPECT_EQ(service->traffic[1].percent, 10);
  EXPECT_EQ(service->traffic[1].tag, "canary");
  EXPECT_EQ(service->traffic[2].percent, 0);  // omitted in the body
  EXPECT_EQ(service->traffic[2].tag, "old");
  ASSERT_THAT(service->traffic_statuses, SizeIs(3));
  EXPECT_TRUE(service->traffic_statuses[1].latest);
  EXPECT_EQ(service->traffic_statuses[1].revision, "api-v3");
  EXPECT_EQ(service->traffic_statuses[1].uri,
            "http://127.0.0.1:8080/_tag/demo/us-central1/api/canary");
  EXPECT_EQ(service->traffic_statuses[2].percent, 0);
  EXPECT_THAT(service->annotations, ElementsAre(Pair("example.com/owner", "payments"),
                                                Pair("runway.dev/rollout-step", "1")));
}

TEST_F(CloudRunRestClientTest, MapsAReconcilingFailedServiceWithNumericGenerations) {
  transport_.Push(200, R"json({
    "name": "projects/p/locations/r/services/s", "generation": 5, "observedGeneration": 4,
    "reconciling": true,
    "terminalCondition": {"type": "Ready", "state": "CONDITION_FAILED",
                          "message": "Revision s-00005-abc is not ready"},
    "latestReadyRevision": "projects/p/locations/r/services/s/revisions/s-00004-xyz",
    "latestCreatedRevision": "projects/p/locations/r/services/s/revisions/s-00005-abc",
    "template": {"containers": [{"image": "gcr.io/p/s:5"}]},
    "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100,
                         "revision": "s-00004-xyz"}]})json");
  absl::StatusOr<LiveService> service = Client().GetService(TestName());
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ(service->generation, 5);
  EXPECT_EQ(service->observed_generation, 4);
  EXPECT_TRUE(service->reconciling);
  EXPECT_EQ(service->terminal_state, "CONDITION_FAILED");
  EXPECT_EQ(service->terminal_message, "Revision s-00005-abc is not ready");
  EXPECT_EQ(service->latest_ready_revision, "s-00004-xyz");
  EXPECT_EQ(service->latest_created_revision, "s-00005-abc");
  EXPECT_EQ(service->template_revision, "");
  EXPECT_THAT(service->traffic, IsEmpty());
  EXPECT_THAT(service->annotations, IsEmpty());
}

TEST_F(CloudRunRestClientTest, UnreadableSuccessBodyIsInternal) {
  transport_.Push(200, "<html>proxy</html>");
  EXPECT_THAT(
      Client().GetService(TestName()).status(),
      StatusIs(absl::StatusCode::kInternal, "services.get projects/p/locations/r/services/s"));
}

// ---- errors --------------------------------------------------------------------------------

struct ErrorCase {
  int http;
  std::string rpc_status;
  absl::StatusCode want;
};

class ErrorMappingTest : public CloudRunRestClientTest,
                         public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(ErrorMappingTest, MapsHttpAndRpcStatusToAbslCode) {
  const ErrorCase& c = GetParam();
  options_.max_attempts = 1;
  transport_.Push(c.http, ErrorBody(c.http, c.rpc_status, "the server said no"));
  absl::Status status = Client().GetService(TestName()).status();
  EXPECT_THAT(status,
              StatusIs(c.want, absl::StrCat("services.get projects/p/locations/r/services/s: ",
                                            c.http, " ", c.rpc_status, ": the server said no")));
}

INSTANTIATE_TEST_SUITE_P(
    Codes, ErrorMappingTest,
    ::testing::Values(ErrorCase{400, "INVALID_ARGUMENT", absl::StatusCode::kInvalidArgument},
                      ErrorCase{400, "FAILED_PRECONDITION", absl::StatusCode::kFailedPrecondition},
                      ErrorCase{401, "UNAUTHENTICATED", absl::StatusCode::kUnauthenticated},
                      ErrorCase{403, "PERMISSION_DENIED", absl::StatusCode::kPermissionDenied},
                      ErrorCase{404, "NOT_FOUND", absl::StatusCode::kNotFound},
                      ErrorCase{409, "ABORTED", absl::StatusCode::kAborted},
                      ErrorCase{409, "ALREADY_EXISTS", absl::StatusCode::kAlreadyExists},
                      ErrorCase{429, "RESOURCE_EXHAUSTED", absl::StatusCode::kResourceExhausted},
                      ErrorCase{500, "INTERNAL", absl::StatusCode::kUnavailable},
                      ErrorCase{501, "UNIMPLEMENTED", absl::StatusCode::kUnimplemented},
                      ErrorCase{503, "UNAVAILABLE", absl::StatusCode::kUnavailable},
                      ErrorCase{504, "DEADLINE_EXCEEDED", absl::StatusCode::kUnavailable}));

TEST_F(CloudRunRestClientTest, BadRequestNamesTheFirstFieldViolation) {
  transport_.Push(400, ErrorBody(400, "INVALID_ARGUMENT", "Traffic targets sum to 90, want 100",
                                 "service.traffic", "Traffic targets sum to 90, want 100"));
  absl::Status status = Client().UpdateService(TrafficUpdate()).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "services.patch projects/p/locations/r/services/s: 400 "
                               "INVALID_ARGUMENT: service.traffic: Traffic targets sum to 90"));
  transport_.Push(400, ErrorBody(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                 "service.template.containers[0].image", "image is required"));
  EXPECT_THAT(Client().UpdateService(TrafficUpdate()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "invalid argument. (service.template.containers[0].image: image is "
                       "required)"));
}

TEST_F(CloudRunRestClientTest, NonGoogleErrorBodyIsQuotedShortly) {
  options_.max_attempts = 1;
  transport_.Push(502, "<html><body>Bad Gateway</body></html>");
  EXPECT_THAT(Client().GetService(TestName()).status(),
              StatusIs(absl::StatusCode::kUnavailable, "502 UNAVAILABLE: <html><body>Bad Gateway"));
}

TEST_F(CloudRunRestClientTest, TransportFailuresMapToUnavailableOrPassThrough) {
  options_.max_attempts = 1;
  transport_.Push(absl::DeadlineExceededError("no answer from run.googleapis.com:443 within 30s"));
  EXPECT_THAT(Client().GetService(TestName()).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       "services.get projects/p/locations/r/services/s: no answer from "
                       "run.googleapis.com:443"));
  transport_.Push(absl::InvalidArgumentError("malformed URL"));
  transport_.Push(absl::InvalidArgumentError("malformed URL"));
  EXPECT_THAT(Client().GetService(TestName()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "malformed URL"));
}

// ---- retries -------------------------------------------------------------------------------

TEST_F(CloudRunRestClientTest, Retries503WithGrowingBackoffThenSucceeds) {
  transport_.Push(503, ErrorBody(503, "UNAVAILABLE", "try again"));
  transport_.Push(503, ErrorBody(503, "UNAVAILABLE", "try again"));
  transport_.Push(200, kServiceBody);
  ASSERT_TRUE(Client().GetService(TestName()).ok());
  EXPECT_THAT(transport_.requests(), SizeIs(3));
  EXPECT_THAT(sleeper_.sleeps, ElementsAre(absl::Milliseconds(200), absl::Milliseconds(400)));
  ASSERT_THAT(calls_, SizeIs(3));
  EXPECT_EQ(calls_[0].method, "services.get");
  EXPECT_EQ(calls_[0].http_status, 503);
  EXPECT_EQ(calls_[0].code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls_[0].attempt, 1);
  EXPECT_EQ(calls_[2].http_status, 200);
  EXPECT_EQ(calls_[2].code, absl::StatusCode::kOk);
  EXPECT_EQ(calls_[2].attempt, 3);
}

TEST_F(CloudRunRestClientTest, GivesUpAfterMaxAttemptsWithCappedBackoff) {
  options_.max_backoff = absl::Milliseconds(500);
  transport_.Push(503, ErrorBody(503, "UNAVAILABLE", "The service is currently unavailable."));
  absl::Status status = Client().UpdateService(TrafficUpdate()).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                               "services.patch projects/p/locations/r/services/s: 503 "
                               "UNAVAILABLE: The service is currently unavailable. (after 5 "
                               "attempts)"));
  EXPECT_THAT(transport_.requests(), SizeIs(5));
  EXPECT_THAT(sleeper_.sleeps, ElementsAre(absl::Milliseconds(200), absl::Milliseconds(400),
                                           absl::Milliseconds(500), absl::Milliseconds(500)));
}

TEST_F(CloudRunRestClientTest, FullJitterStaysUnderTheCeiling) {
  options_.random_fraction = nullptr;
  options_.random_seed = 42;
  options_.max_attempts = 4;
  transport_.Push(absl::UnavailableError("connection refused to run.googleapis.com:443"));
  EXPECT_THAT(Client().GetService(TestName()).status(),
              StatusIs(absl::StatusCode::kUnavailable, "googleapis.com:443 (after 4 attempts)"));
  ASSERT_THAT(sleeper_.sleeps, SizeIs(3));
  EXPECT_LE(sleeper_.sleeps[0], absl::Milliseconds(200));
  EXPECT_LE(sleeper_.sleeps[1], absl::Milliseconds(400));
  EXPECT_LE(sleeper_.sleeps[2], absl::Milliseconds(800));
  EXPECT_NE(sleeper_.sleeps,
            (std::vector<absl::Duration>{absl::Milliseconds(200), absl::Milliseconds(400),
                                         absl::Milliseconds(800)}));  // jittered, not the ceilings
}

TEST_F(CloudRunRestClientTest, TooManyRequestsHonoursRetryAfterUpToTheCap) {
  transport_.Push(429, ErrorBody(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
                  {{"retry-after", "7"}});
  transport_.Push(429, ErrorBody(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
                  {{"retry-after", "3600"}});
  transport_.Push(429, ErrorBody(429, "RESOURCE_EXHAUSTED", "Quota exceeded"));
  transport_.Push(200, kOperationBody);
  ASSERT_TRUE(Client().UpdateService(TrafficUpdate()).ok());
  EXPECT_THAT(sleeper_.sleeps,
              ElementsAre(absl::Seconds(7), absl::Seconds(60), absl::Milliseconds(800)));
}

TEST_F(CloudRunRestClientTest, TransportFailureIsRetried) {
  transport_.Push(absl::UnavailableError("connection reset by run.googleapis.com:443"));
  transport_.Push(200, kServiceBody);
  EXPECT_TRUE(Client().GetService(TestName()).ok());
  EXPECT_THAT(sleeper_.sleeps, ElementsAre(absl::Milliseconds(200)));
  ASSERT_THAT(calls_, SizeIs(2));
  EXPECT_EQ(calls_[0].http_status, 0);
  EXPECT_EQ(calls_[0].code, absl::StatusCode::kUnavailable);
}

TEST_F(CloudRunRestClientTest, NeverRetriesOtherClientErrors) {
  for (int code : {400, 404, 409}) {
    ScriptedTransport transport;
    RecordingSleeper sleeper(&clock_);
    CloudRunRestClient client(&transport, &tokens_, &clock_, &sleeper, options_);
    transport.Push(code, ErrorBody(code, "X", "no"));
    EXPECT_FALSE(client.UpdateService(TrafficUpdate()).ok());
    EXPECT_THAT(transport.requests(), SizeIs(1)) << code;
    EXPECT_THAT(sleeper.sleeps, IsEmpty()) << code;
  }
}

// ---- rate limits ---------------------------------------------------------------------------

TEST_F(CloudRunRestClientTest, WriteBucketMakesTheEleventhImmediateWriteWait) {
  transport_.Push(200, kOperationBody);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Client().UpdateService(TrafficUpdate()).ok());
  EXPECT_THAT(sleeper_.sleeps, IsEmpty());
  ASSERT_TRUE(Client().UpdateService(TrafficUpdate()).ok());
  EXPECT_THAT(sleeper_.sleeps, ElementsAre(absl::Seconds(1)));  // 60/min: one a second

  // Reads and other regions have their own buckets.
  transport_.Push(200, kServiceBody);
  ASSERT_TRUE(Client().GetService(TestName()).ok());
  ServiceUpdate elsewhere = TrafficUpdate();
  elsewhere.name.region = "europe-west1";
  transport_.Push(200, kOperationBody);
  ASSERT_TRUE(Client().UpdateService(elsewhere).ok());
  EXPECT_THAT(sleeper_.sleeps, SizeIs(1));

  // Time refills the bucket: after 10 s, ten more writes go without waiting.
  clock_.Advance(absl::Seconds(10));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Client().UpdateService(TrafficUpdate()).ok());
  EXPECT_THAT(sleeper_.sleeps, SizeIs(1));
}

TEST_F(CloudRunRestClientTest, DisabledLimitNeverWaits) {
  options_.write_limit = {0, 0};
  transport_.Push(200, kOperationBody);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(Client().UpdateService(TrafficUpdate()).ok());
  EXPECT_THAT(sleeper_.sleeps, IsEmpty());
}

// ---- tokens --------------------------------------------------------------------------------

TEST_F(CloudRunRestClientTest, TokenFailureFailsTheCallWithoutARequest) {
  tokens_.token = absl::UnavailableError("metadata server at http://x is unreachable");
  absl::Status status = Client().GetService(TestName()).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated,
                               "services.get projects/p/locations/r/services/s: no access token "
                               "from the test token source: metadata server"));
  EXPECT_THAT(transport_.requests(), IsEmpty());
  EXPECT_THAT(calls_, IsEmpty());
}

TEST_F(CloudRunRestClientTest, TokenNeverAppearsInErrors) {
  options_.max_attempts = 2;
  transport_.Push(401, ErrorBody(401, "UNAUTHENTICATED", "Request had invalid credentials."));
  absl::Status status = Client().GetService(TestName()).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated, "invalid credentials"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret-token")));
  EXPECT_THAT(transport_.requests(), SizeIs(1));
}

}  // namespace
}  // namespace runway
