// Token sources: a file, a gcloud-like command (small scripts written into a temp dir) and the
// metadata server (a scripted transport). Time moves only through FakeClock. No test lets a
// token reach a status message.

#include "controller/adapters/token_source.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"
#include "tests/status_matchers.h"

namespace runway {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;

// A fresh directory under the test temp dir, removed with its files at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "token_source_test.XXXXXX";
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    for (const std::string& file : files_) ::unlink(file.c_str());
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    std::string file = absl::StrCat(path_, "/", name);
    std::ofstream(file, std::ios::trunc) << content;
    ::chmod(file.c_str(), mode);
    files_.push_back(file);
    return file;
  }
  void Track(const std::string& name) { files_.push_back(absl::StrCat(path_, "/", name)); }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// ---- FileTokenSource -----------------------------------------------------------------------

TEST(FileTokenSourceTest, ReadsAndTrimsOnEveryCall) {
  TempDir dir;
  std::string file = dir.Write("token", "  ya29.first-token\n\n");
  FileTokenSource source(file);
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.first-token");
  dir.Write("token", "ya29.second-token\n");  // an external refresher rewrote it
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.second-token");
  EXPECT_THAT(source.Name(), HasSubstr(file));
}

TEST(FileTokenSourceTest, MissingFileNamesThePathAndTheFix) {
  TempDir dir;
  std::string file = dir.path() + "/missing";
  FileTokenSource source(file);
  absl::Status status = source.AccessToken().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition, file));
  EXPECT_THAT(std::string(status.message()), HasSubstr("No such file or directory"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("--token-source"));
}

TEST(FileTokenSourceTest, EmptyOrMalformedContentIsAnErrorThatNeverQuotesIt) {
  TempDir dir;
  FileTokenSource empty(dir.Write("empty", " \n"));
  EXPECT_THAT(empty.AccessToken().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "is empty"));
  FileTokenSource two(dir.Write("two", "ya29.secret-one\nya29.secret-two\n"));
  absl::Status status = two.AccessToken().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition, "exactly one access token"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));
}

// ---- GcloudTokenSource ---------------------------------------------------------------------

class GcloudTokenSourceTest : public ::testing::Test {
 protected:
  // A fake gcloud that checks its arguments, counts its runs and prints a token.
  std::string GoodCommand() {
    dir_.Track("runs");
    return dir_.Write("gcloud-ok",
                      absl::StrCat("#!/bin/sh\n"
                                   "[ \"$1 $2\" = \"auth print-access-token\" ] || exit 64\n"
                                   "echo run >> '",
                                   dir_.path(),
                                   "/runs'\n"
                                   "echo 'ya29.from-gcloud'\n"),
                      0755);
  }
  int Runs() {
    std::ifstream in(dir_.path() + "/runs");
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    return lines;
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(GcloudTokenSourceTest, PrintsATokenAndCachesItForThirtyMinutes) {
  GcloudTokenSource source(&clock_, GoodCommand());
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.from-gcloud");
  clock_.Advance(absl::Minutes(29));
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.from-gcloud");
  EXPECT_EQ(Runs(), 1);
  clock_.Advance(absl::Minutes(2));
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.from-gcloud");
  EXPECT_EQ(Runs(), 2);
}

TEST_F(GcloudTokenSourceTest, NonZeroExitReportsTheFirstStderrLine) {
  std::string command = dir_.Write(
      "gcloud-fail",
      "#!/bin/sh\n"
      "echo 'ya29.must-not-leak'\n"
      "echo '' >&2\n"
      "echo 'ERROR: (gcloud.auth.print-access-token) You do not currently have an active "
      "account selected.' >&2\n"
      "echo 'Please run: gcloud auth login' >&2\n"
      "exit 1\n",
      0755);
  GcloudTokenSource source(&clock_, command);
  absl::Status status = source.AccessToken().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated, "exited with status 1"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(": ERROR: (gcloud.auth.print-access-token) You do not currently have an "
                        "active account selected."));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("Please run")));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("must-not-leak")));
}

TEST_F(GcloudTokenSourceTest, MissingCommandSaysSo) {
  GcloudTokenSource source(&clock_, dir_.path() + "/no-such-gcloud");
  EXPECT_THAT(source.AccessToken().status(),
              StatusIs(absl::StatusCode::kUnauthenticated, "No such file or directory"));
}

TEST_F(GcloudTokenSourceTest, EmptyOutputIsAnError) {
  GcloudTokenSource source(&clock_, dir_.Write("gcloud-quiet", "#!/bin/sh\nexit 0\n", 0755));
  EXPECT_THAT(source.AccessToken().status(),
              StatusIs(absl::StatusCode::kUnauthenticated, "printed no single access token"));
}

TEST_F(GcloudTokenSourceTest, HangingCommandIsKilledAtTheTimeout) {
  std::string command = dir_.Write("gcloud-hang", "#!/bin/sh\nexec sleep 30\n", 0755);
  GcloudTokenSource source(&clock_, command, absl::Minutes(30), absl::Milliseconds(200));
  EXPECT_THAT(source.AccessToken().status(),
              StatusIs(absl::StatusCode::kUnauthenticated, "was killed"));
}

// ---- MetadataTokenSource -------------------------------------------------------------------

class ScriptedTransport : public HttpTransport {
 public:
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    absl::MutexLock lock(&mutex_);
    requests_.push_back(request);
    return next;
  }
  std::vector<HttpRequest> requests() {
    absl::MutexLock lock(&mutex_);
    return requests_;
  }
  absl::StatusOr<HttpResponse> next;  // set before each call, on the test thread

 private:
  absl::Mutex mutex_;
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mutex_);
};

HttpResponse Answer(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers["metadata-flavor"] = "Google";
  return response;
}

TEST(MetadataTokenSourceTest, FetchesWithTheHeaderAndCachesUntilSixtySecondsBeforeExpiry) {
  FakeClock clock;
  ScriptedTransport transport;
  transport.next =
      Answer(200, R"({"access_token":"ya29.meta-one","expires_in":3599,"token_type":"Bearer"})");
  MetadataTokenSource source(&transport, &clock);
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.meta-one");
  ASSERT_THAT(transport.requests(), SizeIs(1));
  const HttpRequest request = transport.requests()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url,
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/"
            "default/token");
  EXPECT_THAT(request.headers, Contains(Pair("Metadata-Flavor", "Google")));

  transport.next = Answer(200, R"({"access_token":"ya29.meta-two","expires_in":"3599"})");
  clock.Advance(absl::Seconds(3599 - 60 - 1));
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.meta-one");
  EXPECT_THAT(transport.requests(), SizeIs(1));
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.meta-two");  // expires_in as a string
  EXPECT_THAT(transport.requests(), SizeIs(2));
}

TEST(MetadataTokenSourceTest, NearExpiryTokenIsNotRefetchedOnEveryCall) {
  FakeClock clock;
  ScriptedTransport transport;
  transport.next = Answer(200, R"({"access_token":"ya29.almost-gone","expires_in":30})");
  MetadataTokenSource source(&transport, &clock);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(source.AccessToken().ok());
  EXPECT_THAT(transport.requests(), SizeIs(1));
  clock.Advance(MetadataTokenSource::kMinRefreshInterval);
  EXPECT_TRUE(source.AccessToken().ok());
  EXPECT_THAT(transport.requests(), SizeIs(2));
}

TEST(MetadataTokenSourceTest, FailedRefreshKeepsTheHeldTokenUntilItExpires) {
  FakeClock clock;
  ScriptedTransport transport;
  transport.next = Answer(200, R"({"access_token":"ya29.held","expires_in":600})");
  MetadataTokenSource source(&transport, &clock);
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.held");
  transport.next = Answer(503, "busy");
  clock.Advance(absl::Seconds(590));  // inside the margin: refresh, which fails
  EXPECT_EQ(source.AccessToken().value_or(""), "ya29.held");
  EXPECT_THAT(transport.requests(), SizeIs(2));
  clock.Advance(absl::Seconds(10));  // expired
  EXPECT_THAT(source.AccessToken().status(), StatusIs(absl::StatusCode::kUnavailable, "503"));
}

TEST(MetadataTokenSourceTest, UnreachableServerSuggestsAnotherSource) {
  FakeClock clock;
  ScriptedTransport transport;
  transport.next =
      absl::UnavailableError("connection refused to metadata.google.internal:80 (...)");
  MetadataTokenSource source(&transport, &clock);
  absl::Status status = source.AccessToken().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                               "not on GCE? use --token-source file|gcloud"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("connection refused"));
}

TEST(MetadataTokenSourceTest, ErrorAnswersAndBadBodiesNeverQuoteTheToken) {
  FakeClock clock;
  ScriptedTransport transport;
  MetadataTokenSource source(&transport, &clock, "http://127.0.0.1:1/token");
  transport.next = Answer(404, "Not Found\n");
  EXPECT_THAT(source.AccessToken().status(),
              StatusIs(absl::StatusCode::kUnauthenticated, "answered HTTP 404: Not Found"));
  transport.next = Answer(503, "busy");
  EXPECT_THAT(source.AccessToken().status(), StatusIs(absl::StatusCode::kUnavailable, "503"));
  transport.next = Answer(200, R"({"access_token":"ya29.leaky"})");
  absl::Status status = source.AccessToken().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated, "expires_in"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("leaky")));
  transport.next = Answer(200, "ya29.not-json");
  status = source.AccessToken().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnauthenticated, "not JSON"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("not-json")));
}

// ---- MakeTokenSource -----------------------------------------------------------------------

TEST(MakeTokenSourceTest, BuildsEachKindAndRejectsTheRest) {
  FakeClock clock;
  ScriptedTransport transport;
  absl::StatusOr<std::unique_ptr<TokenSource>> none = MakeTokenSource("none", "", nullptr, nullptr);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)->AccessToken().value_or("x"), "");
  EXPECT_TRUE(MakeTokenSource("metadata", "", &transport, &clock).ok());
  EXPECT_TRUE(MakeTokenSource("gcloud", "", nullptr, &clock).ok());
  absl::StatusOr<std::unique_ptr<TokenSource>> file =
      MakeTokenSource("file", "/run/token", nullptr, nullptr);
  ASSERT_TRUE(file.ok());
  EXPECT_THAT((*file)->Name(), HasSubstr("/run/token"));

  EXPECT_THAT(MakeTokenSource("file", "", nullptr, nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--token-file"));
  EXPECT_THAT(MakeTokenSource("adc", "", &transport, &clock).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown --token-source 'adc': use none, file, metadata or gcloud"));
}

}  // namespace
}  // namespace runway
