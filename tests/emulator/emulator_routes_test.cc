// Deletes, v1 revision routes and the remaining list forms, driven in process.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator.h"
#include "tests/fakes/fake_clock.h"

namespace runway::emulator {
namespace {

using ::testing::HasSubstr;

constexpr char kServices[] = "/v2/projects/p/locations/us-central1/services";

class EmulatorRoutesTest : public ::testing::Test {
 protected:
  EmulatorRoutesTest() : emulator_(&clock_, 11) {
    emulator_.SetBaseUrl("http://127.0.0.1:9");
    Call("POST", "/_emulator/config", R"({"reconcileDelay":"0s"})");
  }

  Json Call(const std::string& method, const std::string& target, const std::string& body = "",
            int expected = 200) {
    EmuRequest request;
    request.method = method;
    size_t question = target.find('?');
    request.path = target.substr(0, question);
    if (question != std::string::npos) {
      for (absl::string_view pair : absl::StrSplit(target.substr(question + 1), '&')) {
        size_t eq = pair.find('=');
        request.query[std::string(pair.substr(0, eq))] =
            PercentDecode(std::string(pair.substr(eq + 1)), true);
      }
    }
    request.host = "us-central1-127.0.0.1:9";
    request.body = body;
    HandlerResult result = emulator_.Handle(request);
    EXPECT_EQ(result.response.status, expected) << method << " " << target << "\n"
                                                << result.response.body;
    return Json::parse(result.response.body, nullptr, false);
  }

  void Deploy(const std::string& service, const std::string& image) {
    Call(
        "PATCH", absl::StrCat(kServices, "/", service, "?allowMissing=true"),
        Json({{"template", {{"containers", {{{"image", image}}}}}},
              {"traffic", {{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"percent", 100}}}}})
            .dump());
  }

  FakeClock clock_;
  Emulator emulator_;
};

TEST_F(EmulatorRoutesTest, V2DeleteChecksEtagAndReturnsTheDeletedService) {
  Deploy("gone", "gcr.io/p/a@sha256:1");
  Json service = Call("GET", absl::StrCat(kServices, "/gone"));
  Json stale = Call("DELETE", absl::StrCat(kServices, "/gone?etag=%22nope%22"), "", 409);
  EXPECT_EQ(stale["error"]["status"], "ABORTED");
  Json dry = Call("DELETE", absl::StrCat(kServices, "/gone?validateOnly=true"));
  EXPECT_EQ(dry["response"]["name"], service["name"]);
  Call("GET", absl::StrCat(kServices, "/gone"));
  std::string etag = service["etag"];
  Json operation = Call("DELETE", absl::StrCat(kServices, "/gone?etag=", etag));
  EXPECT_EQ(operation["done"], true);
  EXPECT_EQ(operation["response"]["@type"], "type.googleapis.com/google.cloud.run.v2.Service");
  EXPECT_TRUE(operation["response"].contains("deleteTime"));
  Call("GET", absl::StrCat(kServices, "/gone"), "", 404);
  Call("GET", absl::StrCat(kServices, "/gone/revisions"), "", 404);
  Call("DELETE", absl::StrCat(kServices, "/gone"), "", 404);
}

TEST_F(EmulatorRoutesTest, KnativeRevisionRoutesAndListsWithSelectors) {
  Deploy("api", "gcr.io/p/api@sha256:1");
  Deploy("api", "gcr.io/p/api@sha256:2");
  Deploy("web", "gcr.io/p/web@sha256:1");
  Call("PATCH", absl::StrCat(kServices, "/web?updateMask=labels"), R"({"labels":{"tier":"fe"}})");
  Json services = Call("GET", "/apis/serving.knative.dev/v1/namespaces/p/services");
  EXPECT_EQ(services["items"].size(), 2u);
  Json frontends =
      Call("GET", "/apis/serving.knative.dev/v1/namespaces/p/services?labelSelector=tier%3Dfe");
  ASSERT_EQ(frontends["items"].size(), 1u);
  EXPECT_EQ(frontends["items"][0]["metadata"]["name"], "web");
  Json revisions = Call("GET", "/v1/projects/p/locations/us-central1/revisions");
  EXPECT_EQ(revisions["items"].size(), 3u);
  // Newest first: web-00001, api-00002, api-00001.
  std::string old_api = revisions["items"][2]["metadata"]["name"];
  EXPECT_THAT(old_api, testing::StartsWith("api-00001-"));
  Json described =
      Call("GET", absl::StrCat("/apis/serving.knative.dev/v1/namespaces/p/revisions/", old_api));
  EXPECT_EQ(described["kind"], "Revision");
  EXPECT_EQ(described["metadata"]["labels"]["serving.knative.dev/service"], "api");
  EXPECT_EQ(described["spec"]["containers"][0]["image"], "gcr.io/p/api@sha256:1");
  bool active_false = false;
  for (const Json& c : described["status"]["conditions"]) {
    if (c["type"] == "Active") active_false = c["status"] == "False";
  }
  EXPECT_TRUE(active_false) << "a revision without traffic is not Active";
  Json status =
      Call("DELETE", absl::StrCat("/apis/serving.knative.dev/v1/namespaces/p/revisions/", old_api));
  EXPECT_EQ(status["status"], "Success");
  Call("GET", absl::StrCat("/apis/serving.knative.dev/v1/namespaces/p/revisions/", old_api), "",
       404);
  std::string current = Call("GET", absl::StrCat(kServices, "/api"))["latestCreatedRevision"];
  current = current.substr(current.rfind('/') + 1);
  Json refused = Call(
      "DELETE", absl::StrCat("/v1/projects/p/locations/us-central1/revisions/", current), "", 400);
  EXPECT_THAT(refused["error"]["message"].get<std::string>(), HasSubstr("can receive traffic"));
}

TEST_F(EmulatorRoutesTest, KnativeReplaceOfUnknownServiceIs404AndBadShapesAre400) {
  Json body = {
      {"apiVersion", "serving.knative.dev/v1"},
      {"kind", "Service"},
      {"metadata", {{"name", "ghost"}}},
      {"spec", {{"template", {{"spec", {{"containers", {{{"image", "gcr.io/p/g:1"}}}}}}}}}}};
  Call("PUT", "/apis/serving.knative.dev/v1/namespaces/p/services/ghost", body.dump(), 404);
  Json mismatch =
      Call("PUT", "/apis/serving.knative.dev/v1/namespaces/p/services/other", body.dump(), 400);
  EXPECT_EQ(mismatch["error"]["details"][0]["fieldViolations"][0]["field"], "metadata.name");
  body["spec"]["traffic"] = {
      {{"latestRevision", true}, {"revisionName", "ghost-x"}, {"percent", 100}}};
  Json both = Call("POST", "/apis/serving.knative.dev/v1/namespaces/p/services", body.dump(), 400);
  EXPECT_THAT(both["error"]["message"].get<std::string>(),
              HasSubstr("may not set revisionName if latestRevision is true"));
  body["spec"]["traffic"] = Json::array();
  body["spec"]["template"]["metadata"] = {
      {"annotations", {{"autoscaling.knative.dev/maxScale", "many"}}}};
  Json scale = Call("POST", "/apis/serving.knative.dev/v1/namespaces/p/services", body.dump(), 400);
  EXPECT_THAT(scale["error"]["message"].get<std::string>(), HasSubstr("non-negative integer"));
  Call("GET", "/apis/serving.knative.dev/v1/namespaces/p/services/ghost", "", 404);
}

TEST_F(EmulatorRoutesTest, ScalingAndTimeoutRoundTripBetweenV1AndV2) {
  Call("PATCH", absl::StrCat(kServices, "/tuned?allowMissing=true"),
       R"({"template":{"containers":[{"image":"gcr.io/p/t@sha256:1"}],"timeout":"60s",
           "maxInstanceRequestConcurrency":20,"scaling":{"minInstanceCount":1,
           "maxInstanceCount":5}}})");
  Json knative = Call("GET", "/apis/serving.knative.dev/v1/namespaces/p/services/tuned");
  const Json& tmpl = knative["spec"]["template"];
  EXPECT_EQ(tmpl["spec"]["timeoutSeconds"], 60);
  EXPECT_EQ(tmpl["spec"]["containerConcurrency"], 20);
  EXPECT_EQ(tmpl["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"], "5");
  EXPECT_EQ(tmpl["metadata"]["annotations"]["autoscaling.knative.dev/minScale"], "1");
  Json put = knative;
  Json replaced =
      Call("PUT", "/apis/serving.knative.dev/v1/namespaces/p/services/tuned", put.dump());
  EXPECT_EQ(replaced["metadata"]["generation"], 1) << "an unchanged round trip changes nothing";
  Json v2 = Call("GET", absl::StrCat(kServices, "/tuned"));
  EXPECT_EQ(v2["template"]["scaling"]["maxInstanceCount"], 5);
  EXPECT_EQ(v2["template"]["timeout"], "60s");
  Json revisions = Call("GET", absl::StrCat(kServices, "/tuned/revisions"));
  EXPECT_EQ(revisions["revisions"].size(), 1u);
}

TEST_F(EmulatorRoutesTest, WaitOnAnUnknownOperationIs404) {
  Call("POST", "/v2/projects/p/locations/us-central1/operations/nope:wait", "{}", 404);
  Call("POST", "/v2/projects/p/locations/us-central1/operations/nope:wait", R"({"timeout":"soon"})",
       400);
}

}  // namespace
}  // namespace runway::emulator
