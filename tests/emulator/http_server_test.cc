// The emulator over real loopback sockets (libcurl as the client): keep-alive, absolute-form
// targets through the proxy path gcloud uses, the body limit, connection faults and concurrent
// clients. No test asserts an upper bound on time.

#include "tests/emulator/http_server.h"

#include <curl/curl.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controller/adapters/system_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator.h"

namespace runway::emulator {
namespace {

using ::testing::HasSubstr;

struct Fetched {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  long new_connections = 0;
};

size_t Collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

class Client {
 public:
  Client() : curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }

  Fetched Fetch(const std::string& method, const std::string& url, const std::string& body = "",
                const std::string& proxy = "", long timeout_ms = 20000, bool fresh = false) {
    Fetched out;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    curl_easy_setopt(curl_, CURLOPT_PROXY, proxy.c_str());
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    if (!body.empty()) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    out.code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &out.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &out.new_connections);
    curl_slist_free_all(headers);
    return out;
  }

 private:
  CURL* curl_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    emulator_ = std::make_unique<Emulator>(&clock_, 3);
    emulator_->SetMaxBodyBytes(4096);
    server_ = std::make_unique<HttpServer>(
        [this](const EmuRequest& request) { return emulator_->Handle(request); }, 4096);
    ASSERT_TRUE(server_->Start("127.0.0.1", 0, 2).ok());
    base_ = absl::StrCat("http://127.0.0.1:", server_->port());
    emulator_->SetBaseUrl(base_);
  }
  void TearDown() override { server_->Stop(); }

  std::string Url(const std::string& path) { return base_ + path; }

  SystemClock clock_;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<HttpServer> server_;
  std::string base_;
  Client client_;
};

TEST(ParseTargetTest, OriginAndAbsoluteForms) {
  EmuRequest origin;
  ParseTarget("/v2/projects/p/services/a%2Db?updateMask=traffic%2Ctemplate&x=a+b", origin);
  EXPECT_EQ(origin.path, "/v2/projects/p/services/a-b");
  EXPECT_EQ(origin.query["updateMask"], "traffic,template");
  EXPECT_EQ(origin.query["x"], "a b");
  EmuRequest absolute;
  ParseTarget("http://us-central1-127.0.0.1:8080/apis/serving.knative.dev/v1/namespaces/p/services",
              absolute);
  EXPECT_EQ(absolute.host, "us-central1-127.0.0.1:8080");
  EXPECT_EQ(absolute.path, "/apis/serving.knative.dev/v1/namespaces/p/services");
  EmuRequest authority;
  ParseTarget("oauth2.googleapis.com:443", authority);
  EXPECT_EQ(authority.host, "oauth2.googleapis.com:443");
  EXPECT_EQ(authority.path, "/");
}

TEST_F(HttpServerTest, ServesJsonAndKeepsConnectionsAlive) {
  Fetched first = client_.Fetch("GET", Url("/_emulator/healthz"));
  ASSERT_EQ(first.code, CURLE_OK) << curl_easy_strerror(first.code);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, R"({"ok":true})");
  EXPECT_EQ(first.new_connections, 1);
  Fetched second = client_.Fetch("GET", Url("/_emulator/healthz"));
  EXPECT_EQ(second.new_connections, 0) << "the connection was reused";
}

TEST_F(HttpServerTest, AcceptsAbsoluteFormTargetsAsGcloudsProxy) {
  std::string body =
      R"({"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello"},
          "spec":{"template":{"spec":{"containers":[{"image":"gcr.io/p/a:1"}]}}}})";
  std::string regional = absl::StrCat("http://europe-west4-127.0.0.1:", server_->port(),
                                      "/apis/serving.knative.dev/v1/namespaces/p/services");
  Fetched created = client_.Fetch("POST", regional, body, base_);
  ASSERT_EQ(created.code, CURLE_OK) << curl_easy_strerror(created.code);
  EXPECT_EQ(created.status, 200) << created.body;
  Fetched v2 = client_.Fetch("GET", Url("/v2/projects/p/locations/europe-west4/services/hello"));
  EXPECT_EQ(v2.status, 200) << "the region came from the proxied host: " << v2.body;
}

TEST_F(HttpServerTest, RefusesBodiesOverTheLimit) {
  Fetched huge = client_.Fetch("POST",
                               Url("/v2/projects/p/locations/us-central1/services?"
                                   "serviceId=x"),
                               std::string(10000, ' '));
  ASSERT_EQ(huge.code, CURLE_OK) << curl_easy_strerror(huge.code);
  EXPECT_EQ(huge.status, 400);
  EXPECT_THAT(huge.body, HasSubstr("exceeds the limit of 4096 bytes"));
  EXPECT_EQ(client_.Fetch("GET", Url("/_emulator/healthz"), "", "", 20000, true).status, 200);
}

TEST_F(HttpServerTest, CloseAndStallFaultsReachTheSocket) {
  client_.Fetch("POST", Url("/_emulator/faults"), R"({"path":"/v2/*","action":"close"})");
  // Fresh connections: libcurl silently retries a request that got nothing on a reused one.
  Fetched closed =
      client_.Fetch("GET", Url("/v2/projects/p/locations/l/services"), "", "", 20000, true);
  EXPECT_EQ(closed.code, CURLE_GOT_NOTHING) << curl_easy_strerror(closed.code);
  client_.Fetch("POST", Url("/_emulator/faults"),
                R"({"path":"/v2/*","action":"stall","duration":"30s"})");
  Fetched stalled =
      client_.Fetch("GET", Url("/v2/projects/p/locations/l/services"), "", "", 300, true);
  EXPECT_EQ(stalled.code, CURLE_OPERATION_TIMEDOUT) << curl_easy_strerror(stalled.code);
  Fetched after =
      client_.Fetch("GET", Url("/v2/projects/p/locations/l/services"), "", "", 20000, true);
  EXPECT_EQ(after.status, 200) << "faults are used up";
}

TEST_F(HttpServerTest, RefuseFaultClosesTheListenerForAWhile) {
  client_.Fetch("POST", Url("/_emulator/faults"),
                R"({"path":"/v2/*","action":"refuse","duration":"3s"})");
  Fetched trigger =
      client_.Fetch("GET", Url("/v2/projects/p/locations/l/services"), "", "", 20000, true);
  EXPECT_EQ(trigger.code, CURLE_GOT_NOTHING);
  bool refused = false;
  for (int i = 0; i < 50 && !refused; ++i) {
    Fetched attempt = client_.Fetch("GET", Url("/_emulator/healthz"), "", "", 2000, true);
    refused = attempt.code == CURLE_COULDNT_CONNECT;
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(refused) << "a new connection was refused while the fault lasted";
  bool back = false;
  for (int i = 0; i < 300 && !back; ++i) {
    back = client_.Fetch("GET", Url("/_emulator/healthz"), "", "", 2000, true).status == 200;
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(back) << "the listener reopened on the same port";
}

TEST_F(HttpServerTest, OperationsWaitAnswersWhenTheServiceSettles) {
  client_.Fetch("POST", Url("/_emulator/config"), R"({"reconcileDelay":"0.3s"})");
  Fetched created =
      client_.Fetch("POST", Url("/v2/projects/p/locations/us-central1/services?serviceId=slow"),
                    R"({"template":{"containers":[{"image":"gcr.io/p/a@sha256:1"}]}})");
  ASSERT_EQ(created.status, 200) << created.body;
  Json operation = Json::parse(created.body);
  ASSERT_FALSE(operation.contains("done"));
  absl::Time start = absl::Now();
  Fetched waited = client_.Fetch(
      "POST", Url(absl::StrCat("/v2/", operation["name"].get<std::string>(), ":wait")),
      R"({"timeout":"20s"})");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_EQ(Json::parse(waited.body)["done"], true) << waited.body;
}

TEST_F(HttpServerTest, ConcurrentClientsSeeConsistentState) {
  ASSERT_EQ(client_
                .Fetch("POST",
                       Url("/v2/projects/p/locations/us-central1/services?"
                           "serviceId=busy"),
                       R"({"template":{"containers":[{"image":"gcr.io/p/a@sha256:1"}]}})")
                .status,
            200);
  constexpr int kThreads = 6;
  constexpr int kRequests = 60;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client client;
      for (int i = 0; i < kRequests; ++i) {
        Fetched f;
        if (i % 3 == 0) {
          f = client.Fetch("PATCH",
                           Url("/v2/projects/p/locations/us-central1/services/busy?"
                               "updateMask=labels"),
                           absl::StrCat(R"({"labels":{"writer":"t)", t, "-", i, R"("}})"));
        } else {
          f = client.Fetch("GET", Url("/v2/projects/p/locations/us-central1/services/busy"));
        }
        if (f.code == CURLE_OK && f.status == 200) ++ok;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  Json counters = Json::parse(client_.Fetch("GET", Url("/_emulator/counters")).body);
  EXPECT_EQ(counters["writes"], 1 + kThreads * kRequests / 3);
  Json service = Json::parse(
      client_.Fetch("GET", Url("/v2/projects/p/locations/us-central1/services/busy")).body);
  EXPECT_EQ(service["generation"], absl::StrCat(1 + kThreads * kRequests / 3))
      << "every label change is one generation";
}

}  // namespace
}  // namespace runway::emulator
