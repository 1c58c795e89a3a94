// The emulator's HTTP surfaces, driven in process (no sockets): Cloud Run v2, v1/Knative over the
// same state, Cloud Build routes, the admin API, faults, revision URLs and /metrics.

#include "tests/emulator/emulator.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace runway::emulator {
namespace {

using ::testing::HasSubstr;

constexpr char kBase[] = "/v2/projects/p/locations/us-central1";
constexpr char kKnative[] = "/apis/serving.knative.dev/v1/namespaces/p";

class EmulatorTest : public ::testing::Test {
 protected:
  EmulatorTest() : emulator_(&clock_, 7) {
    emulator_.SetBaseUrl("http://127.0.0.1:9");
    Call("POST", "/_emulator/config", R"({"reconcileDelay":"0s"})");
  }

  HandlerResult Raw(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& host = "127.0.0.1:9") {
    EmuRequest request;
    request.method = method;
    size_t question = target.find('?');
    request.path = target.substr(0, question);
    if (question != std::string::npos) {
      request.raw_query = target.substr(question + 1);
      for (absl::string_view pair : absl::StrSplit(request.raw_query, '&')) {
        size_t eq = pair.find('=');
        request.query[std::string(pair.substr(0, eq))] =
            PercentDecode(std::string(pair.substr(eq + 1)), true);
      }
    }
    request.host = host;
    request.body = body;
    return emulator_.Handle(request);
  }

  Json Call(const std::string& method, const std::string& target, const std::string& body = "",
            int expected = 200, const std::string& host = "127.0.0.1:9") {
    HandlerResult result = Raw(method, target, body, host);
    EXPECT_EQ(result.response.status, expected) << method << " " << target << "\n"
                                                << result.response.body;
    if (result.response.content_type != "application/json") return Json(result.response.body);
    return Json::parse(result.response.body, nullptr, false);
  }

  Json CreateHello(const std::string& image = "gcr.io/p/app@sha256:1111") {
    return Call("POST", absl::StrCat(kBase, "/services?serviceId=hello"),
                Json({{"template", {{"containers", {{{"image", image}}}}}}}).dump());
  }

  FakeClock clock_;
  Emulator emulator_;
};

TEST_F(EmulatorTest, V2CreateGetPatchFollowTheWireContract) {
  Json operation = CreateHello();
  EXPECT_THAT(operation["name"].get<std::string>(),
              testing::StartsWith("projects/p/locations/us-central1/operations/"));
  EXPECT_EQ(operation["done"], true);
  EXPECT_EQ(operation["metadata"]["@type"], "type.googleapis.com/google.cloud.run.v2.Service");
  Json service = Call("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(service["generation"], "1");
  EXPECT_TRUE(service["generation"].is_string()) << "int64 is a JSON string in v2";
  EXPECT_EQ(service["uri"], "http://127.0.0.1:9/_run/p/us-central1/hello");

  // apitools sends capitalised booleans.
  Json patch = {
      {"etag", service["etag"]},
      {"traffic",
       {{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"percent", 100}, {"tag", "live"}}}}};
  Json patched = Call("PATCH",
                      absl::StrCat(kBase,
                                   "/services/hello?alt=json&allowMissing=False&"
                                   "updateMask=traffic&validateOnly=False"),
                      patch.dump());
  EXPECT_EQ(patched["response"]["trafficStatuses"][0]["tag"], "live");
  Json stale =
      Call("PATCH", absl::StrCat(kBase, "/services/hello?updateMask=traffic"), patch.dump(), 409);
  EXPECT_EQ(stale["error"]["status"], "ABORTED");
}

TEST_F(EmulatorTest, AllowMissingCreatesAndValidateOnlyWritesNothing) {
  Json body = {{"template", {{"containers", {{{"image", "gcr.io/p/a@sha256:22"}}}}}}};
  Call("PATCH", absl::StrCat(kBase, "/services/nope"), body.dump(), 404);
  Json preview = Call("PATCH",
                      absl::StrCat(kBase,
                                   "/services/fresh?allowMissing=true&"
                                   "validateOnly=true"),
                      body.dump());
  EXPECT_EQ(preview["response"]["template"]["containers"][0]["image"], "gcr.io/p/a@sha256:22");
  Call("GET", absl::StrCat(kBase, "/services/fresh"), "", 404);
  Call("PATCH", absl::StrCat(kBase, "/services/fresh?allowMissing=TRUE"), body.dump());
  Call("GET", absl::StrCat(kBase, "/services/fresh"));
  Json counters = Call("GET", "/_emulator/counters");
  EXPECT_EQ(counters["byRoute"]["PATCH v2.services.patch"], 3);
}

TEST_F(EmulatorTest, BadBodiesAreInvalidArgumentWithFieldViolations) {
  CreateHello();
  std::string target = absl::StrCat(kBase, "/services/hello");
  Json malformed = Call("PATCH", target, "{\"template\":", 400);
  EXPECT_EQ(malformed["error"]["status"], "INVALID_ARGUMENT");
  Json unknown = Call("PATCH", target, R"({"templat":{}})", 400);
  EXPECT_EQ(unknown["error"]["details"][0]["@type"], "type.googleapis.com/google.rpc.BadRequest");
  EXPECT_EQ(unknown["error"]["details"][0]["fieldViolations"][0]["field"], "service");
  EXPECT_THAT(unknown["error"]["message"].get<std::string>(),
              HasSubstr("Unknown name \"templat\" at 'service'"));
  Json wrong_type = Call("PATCH", target, R"({"traffic":[{"percent":"ten"}]})", 400);
  EXPECT_EQ(wrong_type["error"]["details"][0]["fieldViolations"][0]["field"],
            "service.traffic[0].percent");
  Json bad_enum = Call("PATCH", target, R"({"ingress":"EVERYONE"})", 400);
  EXPECT_THAT(bad_enum["error"]["message"].get<std::string>(), HasSubstr("INGRESS_TRAFFIC_ALL"));
  Call("PATCH", target, std::string(100, '[') + std::string(100, ']'), 400);
  Call("PATCH", absl::StrCat(target, "?validateOnly=maybe"), "{}", 400);
  Json no_id = Call("POST", absl::StrCat(kBase, "/services"), R"({"template":{}})", 400);
  EXPECT_THAT(no_id["error"]["message"].get<std::string>(), HasSubstr("serviceId"));
  emulator_.SetMaxBodyBytes(64);
  Json huge = Call("PATCH", target, std::string(65, ' '), 400);
  EXPECT_THAT(huge["error"]["message"].get<std::string>(), HasSubstr("exceeds the limit"));
  EXPECT_EQ(Call("GET", target)["generation"], "1") << "nothing changed";
}

TEST_F(EmulatorTest, ListPaginatesNewestFirst) {
  for (int i = 0; i < 5; ++i) {
    Call("POST", absl::StrCat(kBase, "/services?serviceId=s", i),
         R"({"template":{"containers":[{"image":"gcr.io/p/a@sha256:1"}]}})");
  }
  Json first = Call("GET", absl::StrCat(kBase, "/services?pageSize=2"));
  ASSERT_EQ(first["services"].size(), 2u);
  EXPECT_EQ(first["services"][0]["name"], "projects/p/locations/us-central1/services/s4");
  std::vector<std::string> names;
  std::string token = first["nextPageToken"];
  for (const Json& s : first["services"]) names.push_back(s["name"]);
  while (!token.empty()) {
    Json page = Call("GET", absl::StrCat(kBase, "/services?pageSize=2&pageToken=", token));
    for (const Json& s : page["services"]) names.push_back(s["name"]);
    token = page.value("nextPageToken", "");
  }
  EXPECT_EQ(names.size(), 5u);
  EXPECT_EQ(names.back(), "projects/p/locations/us-central1/services/s0");
  Call("GET", absl::StrCat(kBase, "/services?pageToken=garbage"), "", 400);
}

TEST_F(EmulatorTest, RevisionsAndOperationsRoutes) {
  CreateHello();
  Call("POST", absl::StrCat(kBase, "/services?serviceId=hello"),
       R"({"template":{"containers":[{"image":"gcr.io/p/app@sha256:2222"}]}})", 409);
  Call("PATCH", absl::StrCat(kBase, "/services/hello"),
       R"({"template":{"containers":[{"image":"gcr.io/p/app@sha256:2222"}]}})");
  Json revisions = Call("GET", absl::StrCat(kBase, "/services/hello/revisions"));
  ASSERT_EQ(revisions["revisions"].size(), 2u);
  std::string newest = revisions["revisions"][0]["name"];
  std::string oldest = revisions["revisions"][1]["name"];
  EXPECT_THAT(newest, HasSubstr("hello-00002-"));
  Json all = Call("GET", absl::StrCat(kBase, "/services/-/revisions"));
  EXPECT_EQ(all["revisions"].size(), 2u);
  Json revision = Call("GET", absl::StrCat("/v2/", oldest));
  EXPECT_EQ(revision["service"], "projects/p/locations/us-central1/services/hello");
  EXPECT_EQ(revision["conditions"][0]["state"], "CONDITION_SUCCEEDED");
  Json refused = Call("DELETE", absl::StrCat("/v2/", newest), "", 400);
  EXPECT_EQ(refused["error"]["status"], "FAILED_PRECONDITION");
  Json deleted = Call("DELETE", absl::StrCat("/v2/", oldest));
  EXPECT_EQ(deleted["done"], true);
  Json operations = Call("GET", absl::StrCat(kBase, "/operations"));
  ASSERT_GE(operations["operations"].size(), 3u);
  std::string op = operations["operations"][0]["name"];
  Json got = Call("GET", absl::StrCat("/v2/", op));
  EXPECT_EQ(got["done"], true);
  HandlerResult waited = Raw("POST", absl::StrCat("/v2/", op, ":wait"), R"({"timeout":"5s"})");
  EXPECT_EQ(waited.delay, absl::ZeroDuration()) << "a done operation answers at once";
  Call("DELETE", absl::StrCat("/v2/", op));
  Call("GET", absl::StrCat("/v2/", op), "", 404);
}

TEST_F(EmulatorTest, OperationsWaitDefersUntilTheServiceSettles) {
  Call("POST", "/_emulator/config", R"({"reconcileDelay":"2s"})");
  Json operation = CreateHello();
  EXPECT_FALSE(operation.contains("done"));
  HandlerResult waited =
      Raw("POST", absl::StrCat("/v2/", operation["name"].get<std::string>(), ":wait"),
          R"({"timeout":"30s"})");
  EXPECT_GT(waited.delay, absl::Seconds(1));
  EXPECT_LE(waited.delay, absl::Seconds(3));
  ASSERT_TRUE(waited.after_delay);
  clock_.Advance(absl::Seconds(2));
  Json later = Json::parse(waited.after_delay().body);
  EXPECT_EQ(later["done"], true);
  EXPECT_EQ(later["response"]["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
}

TEST_F(EmulatorTest, KnativeViewSharesStateWithV2) {
  CreateHello();
  // gcloud's regional host arrives as the authority of an absolute-form target.
  Json service =
      Call("GET", absl::StrCat(kKnative, "/services/hello"), "", 200, "us-central1-127.0.0.1:9");
  EXPECT_EQ(service["apiVersion"], "serving.knative.dev/v1");
  EXPECT_EQ(service["kind"], "Service");
  EXPECT_EQ(service["metadata"]["generation"], 1);
  EXPECT_TRUE(service["metadata"]["generation"].is_number()) << "int32 number in v1";
  EXPECT_EQ(service["metadata"]["labels"]["cloud.googleapis.com/location"], "us-central1");
  EXPECT_EQ(service["status"]["conditions"][0]["type"], "Ready");
  EXPECT_EQ(service["status"]["conditions"][0]["status"], "True");
  EXPECT_EQ(service["status"]["observedGeneration"], 1);
  std::string first = service["status"]["latestReadyRevisionName"];

  // gcloud deploy: the whole object back with a new image, traffic pinned.
  Json put = service;
  put["spec"]["template"]["spec"]["containers"][0]["image"] = "gcr.io/p/app@sha256:3333";
  put["spec"]["template"]["metadata"]["labels"]["client.knative.dev/nonce"] = "abcdefghij";
  put["spec"]["traffic"] = {{{"revisionName", first}, {"percent", 100}}};
  Json replaced = Call("PUT", absl::StrCat(kKnative, "/services/hello"), put.dump(), 200,
                       "us-central1-127.0.0.1:9");
  EXPECT_EQ(replaced["metadata"]["generation"], 2);
  std::string second = replaced["status"]["latestCreatedRevisionName"];
  EXPECT_NE(second, first);
  Json v2 = Call("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(v2["trafficStatuses"][0]["revision"], first);
  EXPECT_EQ(v2["template"]["containers"][0]["image"], "gcr.io/p/app@sha256:3333");

  // Echoing the object unchanged (update-traffic) makes no new revision.
  Json again = replaced;
  again["spec"]["traffic"] = {{{"latestRevision", true}, {"percent", 100}}};
  Json routed = Call("PUT", absl::StrCat(kKnative, "/services/hello"), again.dump(), 200,
                     "us-central1-127.0.0.1:9");
  EXPECT_EQ(routed["status"]["latestCreatedRevisionName"], second);
  EXPECT_EQ(routed["status"]["traffic"][0]["revisionName"], second);
  EXPECT_EQ(routed["status"]["traffic"][0]["latestRevision"], true);

  // The stale resourceVersion from before is refused.
  Json conflict = Call("PUT", absl::StrCat(kKnative, "/services/hello"), put.dump(), 409,
                       "us-central1-127.0.0.1:9");
  EXPECT_EQ(conflict["error"]["status"], "ABORTED");

  Json revisions = Call(
      "GET",
      absl::StrCat(kKnative, "/revisions?labelSelector=", "serving.knative.dev/service+%3D+hello"),
      "", 200, "us-central1-127.0.0.1:9");
  EXPECT_EQ(revisions["kind"], "RevisionList");
  EXPECT_TRUE(revisions.contains("metadata"));
  ASSERT_EQ(revisions["items"].size(), 2u);
  EXPECT_EQ(revisions["items"][0]["metadata"]["labels"]["serving.knative.dev/service"], "hello");
  Json none = Call(
      "GET",
      absl::StrCat(kKnative, "/revisions?labelSelector=", "serving.knative.dev/service+%3D+other"),
      "", 200, "us-central1-127.0.0.1:9");
  EXPECT_TRUE(none["items"].empty());
}

TEST_F(EmulatorTest, KnativeCreateValidatesTrafficAndDeleteReturnsStatus) {
  Json body = {{"apiVersion", "serving.knative.dev/v1"},
               {"kind", "Service"},
               {"metadata", {{"name", "new"}, {"namespace", "p"}}},
               {"spec",
                {{"template",
                  {{"metadata", {{"name", "new-v1"}}},
                   {"spec", {{"containers", {{{"image", "gcr.io/p/a:1"}, {"name", ""}}}}}}}},
                 {"traffic", {{{"latestRevision", true}, {"percent", 90}}}}}},
               {"status", {{"address", Json::object()}}}};
  Json refused = Call("POST", absl::StrCat(kKnative, "/services"), body.dump(), 400,
                      "europe-west1-127.0.0.1:9");
  EXPECT_THAT(refused["error"]["message"].get<std::string>(),
              HasSubstr("Traffic targets sum to 90, want 100"));
  body["spec"]["traffic"] = {{{"latestRevision", true}, {"percent", 100}},
                             {{"revisionName", "new-v1"}, {"tag", "canary"}}};
  Json created = Call("POST", absl::StrCat(kKnative, "/services"), body.dump(), 200,
                      "europe-west1-127.0.0.1:9");
  EXPECT_EQ(created["status"]["latestCreatedRevisionName"], "new-v1");
  EXPECT_EQ(created["status"]["traffic"][1]["url"],
            "http://127.0.0.1:9/_tag/p/europe-west1/new/canary");
  Json global = Call("GET", "/v1/projects/p/locations/-/services");
  EXPECT_EQ(global["kind"], "ServiceList");
  EXPECT_EQ(global["items"].size(), 1u);
  Json permissions = Call("POST",
                          "/v1/projects/p/locations/europe-west1/services/x:"
                          "testIamPermissions",
                          R"({"permissions":["run.services.setIamPolicy"]})");
  EXPECT_EQ(permissions["permissions"][0], "run.services.setIamPolicy");
  Json status =
      Call("DELETE", absl::StrCat(kKnative, "/services/new"), "", 200, "europe-west1-127.0.0.1:9");
  EXPECT_EQ(status["kind"], "Status");
  EXPECT_EQ(status["status"], "Success");
  Call("GET", absl::StrCat(kKnative, "/services/new"), "", 404, "europe-west1-127.0.0.1:9");
}

TEST_F(EmulatorTest, IamPolicyRoundTrip) {
  CreateHello();
  Json policy = {
      {"policy", {{"bindings", {{{"role", "roles/run.invoker"}, {"members", {"allUsers"}}}}}}}};
  Call("POST", absl::StrCat(kBase, "/services/hello:setIamPolicy"), policy.dump());
  Json got = Call("GET", absl::StrCat(kBase, "/services/hello:getIamPolicy"));
  EXPECT_EQ(got["bindings"][0]["members"][0], "allUsers");
  Json v1 = Call("GET", "/v1/projects/p/locations/us-central1/services/hello:getIamPolicy");
  EXPECT_EQ(v1["bindings"][0]["role"], "roles/run.invoker");
}

TEST_F(EmulatorTest, FaultsFailTheNextMatchingRequestsThenStop) {
  CreateHello();
  Call("POST", "/_emulator/faults",
       R"({"method":"GET","path":"/v2/*/services/hello","count":2,"code":429,"retryAfter":3})");
  HandlerResult first = Raw("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(first.response.status, 429);
  EXPECT_THAT(first.response.body, HasSubstr("RESOURCE_EXHAUSTED"));
  ASSERT_EQ(first.response.headers.size(), 1u);
  EXPECT_EQ(first.response.headers[0],
            std::make_pair(std::string("Retry-After"), std::string("3")));
  Call("GET", absl::StrCat(kBase, "/services/hello"), "", 429);
  Call("GET", absl::StrCat(kBase, "/services/hello"));
  Call("POST", "/_emulator/faults", R"({"path":"*","action":"close"})");
  EXPECT_EQ(Raw("GET", absl::StrCat(kBase, "/services/hello")).action, ConnectionAction::kClose);
  Call("POST", "/_emulator/faults", R"({"path":"*","action":"stall","duration":"2s"})");
  HandlerResult stalled = Raw("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(stalled.action, ConnectionAction::kStall);
  EXPECT_EQ(stalled.hold, absl::Seconds(2));
  Call("POST", "/_emulator/faults", R"({"path":"*","action":"refuse","duration":"1s"})");
  EXPECT_EQ(Raw("GET", "/v2/x").refuse_for, absl::Seconds(1));
  Call("POST", "/_emulator/faults", R"({"path":"*","action":"latency","latency":"0.25s"})");
  HandlerResult slow = Raw("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(slow.response.status, 200);
  EXPECT_EQ(slow.delay, absl::Milliseconds(250));
  Json bad = Call("POST", "/_emulator/faults", R"({"action":"explode"})", 400);
  EXPECT_EQ(bad["error"]["details"][0]["fieldViolations"][0]["field"], "action");
  Json log = Call("GET", "/_emulator/requests");
  int faulted = 0;
  for (const Json& entry : log["requests"]) faulted += entry.contains("fault") ? 1 : 0;
  EXPECT_EQ(faulted, 6);
}

TEST_F(EmulatorTest, ReadinessRulesAndRevisionUrls) {
  Call("POST", "/_emulator/readiness",
       R"({"rules":[{"image":"*sha256:bad*","outcome":"FAIL","reason":"CONTAINER_MISSING"},
                    {"image":"*sha256:500*","serveStatus":500}]})");
  CreateHello("gcr.io/p/app@sha256:5001");
  HandlerResult served = Raw("GET", "/_run/p/us-central1/hello/healthz");
  EXPECT_EQ(served.response.status, 500);
  EXPECT_THAT(served.response.body, HasSubstr("\"path\":\"/healthz\""));
  Call("PATCH", absl::StrCat(kBase, "/services/hello"),
       R"({"template":{"containers":[{"image":"gcr.io/p/app@sha256:bad1"}]},
           "traffic":[{"percent":100,"revision":"hello-00001-x"}]})",
       400);  // the revision name is unknown
  Json service = Call("GET", absl::StrCat(kBase, "/services/hello"));
  std::string stable = service["latestReadyRevision"];
  stable = stable.substr(stable.rfind('/') + 1);
  Call("PATCH", absl::StrCat(kBase, "/services/hello"),
       Json({{"template", {{"containers", {{{"image", "gcr.io/p/app@sha256:bad1"}}}}}},
             {"traffic",
              {{{"revision", stable}, {"percent", 100}},
               {{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"tag", "cand"}}}}})
           .dump());
  Json failed = Call("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(failed["terminalCondition"]["state"], "CONDITION_FAILED");
  EXPECT_EQ(failed["terminalCondition"]["reason"], "CONTAINER_MISSING");
  Json knative = Call("GET", absl::StrCat(kKnative, "/services/hello"));
  EXPECT_EQ(knative["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ(knative["status"]["observedGeneration"], 2) << "v1 reports the failure as fresh";
}

TEST_F(EmulatorTest, SyntheticGaugesAndServedCountsAppearOnMetrics) {
  CreateHello();
  Call("POST", "/_emulator/metrics",
       R"({"name":"cloudrun_revision_error_ratio","project":"p","location":"us-central1",
           "service":"hello","revision":"hello-00001-abc","value":0.25})");
  Raw("GET", "/_run/p/us-central1/hello/");
  std::string text = Call("GET", "/metrics").get<std::string>();
  EXPECT_THAT(text, HasSubstr("# TYPE cloudrun_revision_error_ratio gauge\n"));
  EXPECT_THAT(text, HasSubstr("cloudrun_revision_error_ratio{location=\"us-central1\",project=\"p"
                              "\",revision=\"hello-00001-abc\",service=\"hello\"} 0.25\n"));
  EXPECT_THAT(text, HasSubstr("cloudrun_emulator_revision_requests_total{project=\"p\""));
  EXPECT_THAT(text, HasSubstr("cloudrun_emulator_services 1\n"));
  Call("POST", "/_emulator/metrics", R"({"name":"bad name","value":1})", 400);
}

TEST_F(EmulatorTest, SeedDumpAndReseedRoundTrip) {
  Json seeded = Call("POST", "/_emulator/seed", R"(
services:
  - name: projects/p/locations/us-central1/services/api
    labels: {team: core}
    template:
      containers: [{image: "gcr.io/p/api@sha256:0001"}]
)");
  EXPECT_EQ(seeded["services"], 1);
  CreateHello();
  Call("PATCH", absl::StrCat(kBase, "/services/hello"),
       R"({"template":{"containers":[{"image":"gcr.io/p/app@sha256:2"}]}})");
  Json first = Call("GET", absl::StrCat(kBase, "/services/hello"));
  std::string old_revision =
      Call("GET", absl::StrCat(kBase, "/services/hello/revisions"))["revisions"][1]["name"];
  old_revision = old_revision.substr(old_revision.rfind('/') + 1);
  Call("PATCH", absl::StrCat(kBase, "/services/hello?updateMask=traffic"),
       Json({{"traffic",
              {{{"revision", old_revision}, {"percent", 30}},
               {{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"percent", 70}}}}})
           .dump());
  Json state = Call("GET", "/_emulator/state");
  ASSERT_EQ(state["services"].size(), 2u);
  Call("POST", "/_emulator/reset");
  Call("GET", absl::StrCat(kBase, "/services/hello"), "", 404);
  Call("POST", "/_emulator/seed", state.dump());
  Json again = Call("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(again["trafficStatuses"],
            Call("GET", "/_emulator/state")["services"][1]["trafficStatuses"]);
  EXPECT_EQ(again["trafficStatuses"][0]["revision"], old_revision);
  EXPECT_EQ(again["trafficStatuses"][0]["percent"], 30);
  EXPECT_EQ(again["template"]["containers"][0]["image"], "gcr.io/p/app@sha256:2");
  Json bad = Call("POST", "/_emulator/seed", R"({"services":[{"name":"x"}]})", 400);
  EXPECT_THAT(bad["error"]["message"].get<std::string>(), HasSubstr("projects/P/locations/L"));
}

TEST_F(EmulatorTest, CloudBuildRoutesBothForms) {
  Json build = {{"steps",
                 {{{"name", "gcr.io/cloud-builders/docker"},
                   {"args", {"build", "-t", "gcr.io/$PROJECT_ID/app:$_TAG", "."}}}}},
                {"images", {"gcr.io/$PROJECT_ID/app:$_TAG"}},
                {"substitutions", {{"_TAG", "v2"}}},
                {"tags", {"runway", "svc-hello"}},
                {"options", {{"logging", "CLOUD_LOGGING_ONLY"}}}};
  Json operation = Call("POST", "/v1/projects/p/locations/global/builds", build.dump());
  EXPECT_EQ(operation["metadata"]["@type"],
            "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata");
  EXPECT_EQ(operation["metadata"]["build"]["projectId"], "p");
  std::string id = operation["metadata"]["build"]["id"];
  Call("POST", "/v1/projects/p/builds", build.dump());
  Json listed = Call("GET", "/v1/projects/p/locations/global/builds?filter=tags%3D%22svc-hello%22");
  EXPECT_EQ(listed["builds"].size(), 2u);
  Json got = Call("GET", absl::StrCat("/v1/projects/p/locations/global/builds/", id));
  EXPECT_EQ(got["images"][0], "gcr.io/p/app:v2");
  Json op = Call("GET", absl::StrCat("/v1/", operation["name"].get<std::string>()));
  EXPECT_EQ(op["name"], operation["name"]);
  Json cancelled =
      Call("POST", absl::StrCat("/v1/projects/p/locations/global/builds/", id, ":cancel"),
           Json({{"id", id}, {"projectId", "p"}}).dump());
  EXPECT_EQ(cancelled["status"], "CANCELLED");
  Call("GET", "/v1/projects/p/locations/global/builds?filter=tags%3D", "", 400);
  Json project = Call("GET", "/v1/projects/p");
  EXPECT_EQ(project["lifecycleState"], "ACTIVE");
}

TEST_F(EmulatorTest, UnknownRoutesAndConnectAreExplained) {
  Json missing = Call("GET", "/v3/whatever", "", 404);
  EXPECT_THAT(missing["error"]["message"].get<std::string>(), HasSubstr("does not serve"));
  Json tunnel = Call("CONNECT", "/", "", 501, "oauth2.googleapis.com:443");
  EXPECT_THAT(tunnel["error"]["message"].get<std::string>(), HasSubstr("oauth2.googleapis.com"));
  Call("PUT", absl::StrCat(kBase, "/services"), "{}", 405);
}

TEST_F(EmulatorTest, CountersSeparateReadsAndWritesAndIgnoreAdmin) {
  CreateHello();
  Call("GET", absl::StrCat(kBase, "/services/hello"));
  Call("GET", absl::StrCat(kBase, "/services"));
  Call("GET", "/_emulator/state");
  Json counters = Call("GET", "/_emulator/counters");
  EXPECT_EQ(counters["reads"], 2);
  EXPECT_EQ(counters["writes"], 1);
  EXPECT_EQ(counters["byPath"]["GET /v2/projects/p/locations/us-central1/services/hello"], 1);
  Call("DELETE", "/_emulator/requests");
  EXPECT_EQ(Call("GET", "/_emulator/counters")["reads"], 0);
}

// What `gcloud run deploy` leaves in the spec: run.googleapis.com/... annotations on the service
// and its template, which the v2 view hides.
Json GcloudDeployBody(const std::string& image) {
  return {{"apiVersion", "serving.knative.dev/v1"},
          {"kind", "Service"},
          {"metadata",
           {{"name", "hello"},
            {"namespace", "p"},
            {"annotations",
             {{"run.googleapis.com/client-name", "gcloud"},
              {"run.googleapis.com/client-version", "528.0.0"}}}}},
          {"spec",
           {{"template",
             {{"metadata",
               {{"name", "hello-v1"},
                {"annotations",
                 {{"run.googleapis.com/client-name", "gcloud"},
                  {"run.googleapis.com/startup-cpu-boost", "True"}}}}},
              {"spec", {{"containers", {{{"image", image}, {"name", ""}}}}}}}},
            {"traffic", {{{"latestRevision", true}, {"percent", 100}}}}}}};
}

TEST_F(EmulatorTest, V2PatchOfAServiceDeployedThroughV1KeepsItsReservedAnnotations) {
  // gcloud deploys (v1), then a v2 client patches traffic: the v1 annotations the v2 client never
  // saw must not make the patch invalid (found by the SDK's v2 client after a gcloud deploy).
  Call("POST", absl::StrCat(kKnative, "/services"), GcloudDeployBody("gcr.io/p/app:v1").dump());
  Json service = Call("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_FALSE(service.contains("annotations")) << "v2 hides run.googleapis.com/ annotations";
  Json traffic = {{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"percent", 100}},
                  {{"revision", "hello-v1"}, {"tag", "green"}}};
  Json patched = Call(
      "PATCH", absl::StrCat(kBase, "/services/hello?updateMask=traffic"),
      Json({{"etag", service["etag"]}, {"template", service["template"]}, {"traffic", traffic}})
          .dump());
  EXPECT_EQ(patched["response"]["trafficStatuses"][1]["tag"], "green");
  // No mask: the body's template (without the hidden keys) is the same revision.
  Call("PATCH", absl::StrCat(kBase, "/services/hello"),
       Json({{"template", service["template"]}, {"labels", {{"team", "core"}}}}).dump());
  Json after = Call("GET", absl::StrCat(kBase, "/services/hello"));
  EXPECT_EQ(after["latestCreatedRevision"], service["latestCreatedRevision"]);
  Json knative = Call("GET", absl::StrCat(kKnative, "/services/hello"));
  EXPECT_EQ(knative["metadata"]["annotations"]["run.googleapis.com/client-name"], "gcloud");
  // What a v2 write sets itself is still held to the v2 key rules.
  Json refused = Call("PATCH", absl::StrCat(kBase, "/services/hello?updateMask=annotations"),
                      R"({"annotations":{"run.googleapis.com/client-name":"mine"}})", 400);
  EXPECT_EQ(refused["error"]["details"][0]["fieldViolations"][0]["field"],
            "service.annotations[run.googleapis.com/client-name]");
  refused =
      Call("PATCH", absl::StrCat(kBase, "/services/hello?updateMask=template.annotations"),
           R"({"template":{"annotations":{"run.googleapis.com/cpu-throttling":"false"}}})", 400);
  EXPECT_EQ(refused["error"]["details"][0]["fieldViolations"][0]["field"],
            "service.template.annotations[run.googleapis.com/cpu-throttling]");
}

TEST_F(EmulatorTest, RevisionsNameTheirCreatorAndImageDigest) {
  Call("POST", absl::StrCat(kKnative, "/services"),
       GcloudDeployBody("localhost:5000/team/app:v1").dump());
  Json v2 = Call("GET", absl::StrCat(kBase, "/services/hello/revisions/hello-v1"));
  EXPECT_EQ(v2["creator"], "emulator@runway.dev");
  Json v1 = Call("GET", absl::StrCat(kKnative, "/revisions/hello-v1"));
  // gcloud's DEPLOYED BY column reads this annotation.
  EXPECT_EQ(v1["metadata"]["annotations"]["serving.knative.dev/creator"], "emulator@runway.dev");
  // By digest, the tag replaced (not kept next to the digest); the registry port stays.
  std::string digest = v1["status"]["imageDigest"];
  EXPECT_THAT(digest, testing::StartsWith("localhost:5000/team/app@sha256:"));
  EXPECT_EQ(digest.size(), std::string("localhost:5000/team/app@sha256:").size() + 64);
  Json by_digest = GcloudDeployBody("gcr.io/p/app@sha256:1234");
  by_digest["metadata"]["name"] = "pinned";
  by_digest["spec"]["template"]["metadata"]["name"] = "pinned-v1";
  Call("POST", absl::StrCat(kKnative, "/services"), by_digest.dump());
  EXPECT_EQ(Call("GET", absl::StrCat(kKnative, "/revisions/pinned-v1"))["status"]["imageDigest"],
            "gcr.io/p/app@sha256:1234");
}

TEST_F(EmulatorTest, KnativeWriteErrorsNameTheV1Fields) {
  Call("POST", absl::StrCat(kKnative, "/services"), GcloudDeployBody("gcr.io/p/app:v1").dump());
  Json service = Call("GET", absl::StrCat(kKnative, "/services/hello"));
  // gcloud update-traffic --to-revisions=nope=50 sends an unknown revision as is.
  Json put = service;
  put["spec"]["traffic"] = {{{"revisionName", "hello-v1"}, {"percent", 50}},
                            {{"revisionName", "nope"}, {"percent", 50}}};
  Json refused = Call("PUT", absl::StrCat(kKnative, "/services/hello"), put.dump(), 400);
  EXPECT_EQ(refused["error"]["status"], "INVALID_ARGUMENT");
  EXPECT_EQ(refused["error"]["details"][0]["fieldViolations"][0]["field"],
            "spec.traffic[1].revisionName");
  EXPECT_THAT(refused["error"]["message"].get<std::string>(),
              HasSubstr("Revision 'nope' referenced in traffic not found"));
  put["spec"]["traffic"] = {{{"latestRevision", true}, {"percent", 90}}};
  refused = Call("PUT", absl::StrCat(kKnative, "/services/hello"), put.dump(), 400);
  EXPECT_EQ(refused["error"]["details"][0]["fieldViolations"][0]["field"], "spec.traffic");
  put = service;
  put["spec"]["template"]["metadata"]["name"] = "other-v2";
  refused = Call("PUT", absl::StrCat(kKnative, "/services/hello"), put.dump(), 400);
  EXPECT_EQ(refused["error"]["details"][0]["fieldViolations"][0]["field"],
            "spec.template.metadata.name");
  put = service;
  put["spec"]["template"]["spec"]["containers"][0]["image"] = "";
  refused = Call("PUT", absl::StrCat(kKnative, "/services/hello"), put.dump(), 400);
  EXPECT_EQ(refused["error"]["details"][0]["fieldViolations"][0]["field"],
            "spec.template.spec.containers[0].image");
  EXPECT_EQ(Call("GET", absl::StrCat(kBase, "/services/hello"))["generation"], "1");
  // The v2 surface keeps the v2 names.
  Json v2 = Call("PATCH", absl::StrCat(kBase, "/services/hello?updateMask=traffic"),
                 R"({"traffic":[{"revision":"nope","percent":100}]})", 400);
  EXPECT_EQ(v2["error"]["details"][0]["fieldViolations"][0]["field"],
            "service.traffic[0].revision");
}

}  // namespace
}  // namespace runway::emulator
