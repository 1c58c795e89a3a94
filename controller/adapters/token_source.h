#pragma once

// TokenSource: the OAuth2 access token sent as "Authorization: Bearer <token>" to Google APIs
// (auth-and-git.md §1). Implementations: none (emulator), a file, the GCE/GKE metadata server,
// and `gcloud auth print-access-token` (laptops). Thread-safe; a refresh runs at most once at a
// time, other callers wait for it.
//
// Tokens are secrets: no implementation puts a token, a token file's content or a token
// response body into a status message.

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/http_transport.h"

namespace runway {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // The token to send; empty means "send no Authorization header". Errors name the source and
  // how to fix it; kUnavailable when the source may recover by itself (metadata server down),
  // kUnauthenticated or kFailedPrecondition otherwise.
  virtual absl::StatusOr<std::string> AccessToken() = 0;
  // Names the source in error messages, e.g. "the metadata server" or "token file /x".
  virtual std::string Name() const = 0;
};

// No credentials: for the emulator and other local endpoints.
class NoTokenSource : public TokenSource {
 public:
  absl::StatusOr<std::string> AccessToken() override { return std::string(); }
  std::string Name() const override { return "no token source"; }
};

// Reads the token from `path` on every call (so an external refresher can rewrite it) and trims
// surrounding whitespace. Errors: kFailedPrecondition when the file is missing, unreadable,
// empty or holds more than one token.
class FileTokenSource : public TokenSource {
 public:
  explicit FileTokenSource(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::string> AccessToken() override;
  std::string Name() const override { return "token file " + path_; }

 private:
  const std::string path_;
};

inline constexpr char kDefaultMetadataTokenUrl[] =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";

// The GCE/GKE/Cloud Run metadata server. Sends "Metadata-Flavor: Google", parses
// {access_token, expires_in} and caches the token until `refresh_margin` before it expires
// (measured from when the request was sent). A token that is already inside the margin is still
// reused for kMinRefreshInterval, so a server that hands back its cached near-expiry token does
// not cause a request per call (auth-and-git.md §1.0). When a refresh fails, the held token is
// returned until it really expires. Errors: kUnavailable when the server is unreachable or
// answers 5xx ("not on GCE? ..."), kUnauthenticated for other answers.
class MetadataTokenSource : public TokenSource {
 public:
  static constexpr absl::Duration kMinRefreshInterval = absl::Seconds(5);

  MetadataTokenSource(HttpTransport* transport, const Clock* clock,
                      std::string url = kDefaultMetadataTokenUrl,
                      absl::Duration refresh_margin = absl::Seconds(60))
      : transport_(transport), clock_(clock), url_(std::move(url)), margin_(refresh_margin) {}
  absl::StatusOr<std::string> AccessToken() override;
  std::string Name() const override { return "the metadata server"; }

 private:
  absl::StatusOr<std::string> Fetch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  HttpTransport* const transport_;
  const Clock* const clock_;
  const std::string url_;
  const absl::Duration margin_;
  absl::Mutex mutex_;
  std::string token_ ABSL_GUARDED_BY(mutex_);
  absl::Duration refresh_at_ ABSL_GUARDED_BY(mutex_);  // Clock::MonotonicNow() scale
  absl::Duration expires_at_ ABSL_GUARDED_BY(mutex_);  // Clock::MonotonicNow() scale
};

// Runs `<command> auth print-access-token` (no shell) and caches its output for `cache_for`.
// Errors: kUnauthenticated with the first stderr line when the command exits non-zero, cannot be
// started, prints no token or runs longer than `run_timeout` (it is then killed).
class GcloudTokenSource : public TokenSource {
 public:
  explicit GcloudTokenSource(const Clock* clock, std::string command = "gcloud",
                             absl::Duration cache_for = absl::Minutes(30),
                             absl::Duration run_timeout = absl::Seconds(60))
      : clock_(clock),
        command_(std::move(command)),
        cache_for_(cache_for),
        run_timeout_(run_timeout) {}
  absl::StatusOr<std::string> AccessToken() override;
  std::string Name() const override { return "`" + command_ + " auth print-access-token`"; }

 private:
  const Clock* const clock_;
  const std::string command_;
  const absl::Duration cache_for_;
  const absl::Duration run_timeout_;
  absl::Mutex mutex_;
  std::string token_ ABSL_GUARDED_BY(mutex_);
  absl::Duration refresh_at_ ABSL_GUARDED_BY(mutex_);  // Clock::MonotonicNow() scale
};

// Builds the source a --token-source flag names: "none", "file" (needs `file_path`), "metadata"
// (needs `transport`) or "gcloud". kInvalidArgument for anything else, naming the choices.
// `transport` and `clock` must outlive the source.
absl::StatusOr<std::unique_ptr<TokenSource>> MakeTokenSource(std::string_view kind,
                                                             std::string_view file_path,
                                                             HttpTransport* transport,
                                                             const Clock* clock);

}  // namespace runway
