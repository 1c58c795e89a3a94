#include "controller/adapters/token_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace runway {
namespace {

constexpr absl::Duration kMetadataTimeout = absl::Seconds(5);
constexpr size_t kMaxTokenBytes = 16 << 10;
constexpr size_t kMaxQuotedLine = 300;

std::string ErrnoText(int error) { return std::generic_category().message(error); }

// An access token is one RFC 6750 b64token: visible ASCII, no spaces. Anything else would break
// (or inject into) the Authorization header.
bool IsTokenText(const std::string& token) {
  if (token.empty() || token.size() > kMaxTokenBytes) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// The first non-empty line of `text`, trimmed and capped: enough to explain a failure.
std::string FirstLine(const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line(absl::StripAsciiWhitespace(text.substr(start, end - start)));
    if (!line.empty()) return line.size() > kMaxQuotedLine ? line.substr(0, kMaxQuotedLine) : line;
    start = end + 1;
  }
  return "";
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::FailedPreconditionError(ErrnoText(errno));
  std::string content;
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return absl::FailedPreconditionError(ErrnoText(error));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > kMaxTokenBytes) break;
  }
  ::close(fd);
  return content;
}

// ---- running a command without a shell -----------------------------------------------------

struct CommandResult {
  int wait_status = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Reads both pipes until EOF or `deadline` (steady clock). Returns false on timeout.
bool DrainPipes(int out_fd, int err_fd, std::chrono::steady_clock::time_point deadline,
                CommandResult& result) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  char buffer[4096];
  while (open_count > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;  // timeout, or a poll failure treated like one
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;  // poll ignores negative descriptors
        --open_count;
      } else if (sinks[i]->size() < kMaxTokenBytes) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      }
    }
  }
  return true;
}

// Starts argv[0] (searched in PATH) with stdin from /dev/null and both outputs captured.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError(ErrnoText(errno));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int error = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return absl::InternalError(ErrnoText(error));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int spawn_error = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  CommandResult result;
  if (spawn_error == 0) {
    auto deadline = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout);
    if (!DrainPipes(out_pipe[0], err_pipe[0], deadline, result)) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);  // our own child, by pid
    }
    while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (spawn_error != 0) return absl::NotFoundError(ErrnoText(spawn_error));
  return result;
}

// ---- metadata server response --------------------------------------------------------------

struct MetadataToken {
  std::string access_token;
  int64_t expires_in = 0;
};

// Parses {"access_token": "...", "expires_in": 3599} (expires_in may also be a string). The
// message never quotes the body: it holds the token.
absl::StatusOr<MetadataToken> ParseMetadataToken(const std::string& body) {
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return absl::UnauthenticatedError("the token response is not JSON");
  MetadataToken token;
  auto access = json.find("access_token");
  if (access == json.end() || !access->is_string()) {
    return absl::UnauthenticatedError("the token response has no access_token");
  }
  token.access_token = access->get<std::string>();
  auto expires = json.find("expires_in");
  if (expires != json.end() && expires->is_number()) {
    token.expires_in = static_cast<int64_t>(expires->get<double>());
  } else if (expires != json.end() && expires->is_string()) {
    if (!absl::SimpleAtoi(expires->get<std::string>(), &token.expires_in)) token.expires_in = 0;
  }
  if (token.expires_in <= 0) {
    return absl::UnauthenticatedError("the token response has no positive expires_in");
  }
  if (!IsTokenText(token.access_token)) {
    return absl::UnauthenticatedError("the token response holds an empty or malformed token");
  }
  return token;
}

}  // namespace

// ---- FileTokenSource -----------------------------------------------------------------------

absl::StatusOr<std::string> FileTokenSource::AccessToken() {
  const std::string fix =
      absl::StrCat("; write an access token to it (e.g. `gcloud auth ", "print-access-token > ",
                   path_, "`) or use --token-source metadata|gcloud");
  absl::StatusOr<std::string> content = ReadWholeFile(path_);
  if (!content.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read token file ", path_, ": ", content.status().message(), fix));
  }
  std::string token(absl::StripAsciiWhitespace(*content));
  if (token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("token file ", path_, " is empty", fix));
  }
  if (!IsTokenText(token)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "token file ", path_, " does not hold exactly one access token (spaces, several lines ",
        "or control characters found)", fix));
  }
  return token;
}

// ---- MetadataTokenSource -------------------------------------------------------------------

absl::StatusOr<std::string> MetadataTokenSource::AccessToken() {
  absl::MutexLock lock(&mutex_);
  const absl::Duration now = clock_->MonotonicNow();
  if (!token_.empty() && now < refresh_at_) return token_;
  absl::StatusOr<std::string> fresh = Fetch();
  // A failed refresh is not yet a failure while the held token is still valid.
  if (!fresh.ok() && !token_.empty() && now < expires_at_) return token_;
  return fresh;
}

absl::StatusOr<std::string> MetadataTokenSource::Fetch() {
  const absl::Duration sent = clock_->MonotonicNow();
  HttpRequest request;
  request.method = "GET";
  request.url = url_;
  request.headers["Metadata-Flavor"] = "Google";
  request.timeout = kMetadataTimeout;
  absl::StatusOr<HttpResponse> response = transport_->Send(request);
  if (!response.ok()) {
    return absl::UnavailableError(absl::StrCat("metadata server at ", url_, " is unreachable (",
                                               response.status().message(),
                                               "): not on GCE? use --token-source file|gcloud"));
  }
  if (response->status != 200) {
    std::string what = absl::StrCat("metadata server at ", url_, " answered HTTP ",
                                    response->status, ": ", FirstLine(response->body));
    if (response->status >= 500) return absl::UnavailableError(what);
    return absl::UnauthenticatedError(
        absl::StrCat(what, " (is a service account attached, and is Workload Identity bound?)"));
  }
  absl::StatusOr<MetadataToken> token = ParseMetadataToken(response->body);
  if (!token.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("metadata server at ", url_, ": ", token.status().message()));
  }
  const absl::Duration expiry = sent + absl::Seconds(token->expires_in);
  token_ = std::move(token->access_token);
  expires_at_ = expiry;
  refresh_at_ = std::min(std::max(expiry - margin_, sent + kMinRefreshInterval), expiry);
  return token_;
}

// ---- GcloudTokenSource ---------------------------------------------------------------------

absl::StatusOr<std::string> GcloudTokenSource::AccessToken() {
  absl::MutexLock lock(&mutex_);
  const absl::Duration now = clock_->MonotonicNow();
  if (!token_.empty() && now < refresh_at_) return token_;
  const std::string what = Name();
  absl::StatusOr<CommandResult> run =
      RunCommand({command_, "auth", "print-access-token"}, run_timeout_);
  if (!run.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cannot run ", what, ": ", run.status().message(),
                     "; install the Google Cloud CLI or use --token-source metadata|file"));
  }
  if (run->timed_out) {
    return absl::UnauthenticatedError(absl::StrCat(
        what, " did not finish within ", absl::FormatDuration(run_timeout_), " and was killed"));
  }
  if (!WIFEXITED(run->wait_status) || WEXITSTATUS(run->wait_status) != 0) {
    std::string how = WIFEXITED(run->wait_status)
                          ? absl::StrCat("exited with status ", WEXITSTATUS(run->wait_status))
                          : absl::StrCat("was killed by signal ", WTERMSIG(run->wait_status));
    std::string reason = FirstLine(run->err);
    return absl::UnauthenticatedError(
        absl::StrCat(what, " ", how, reason.empty() ? "" : ": ", reason,
                     " (run `gcloud auth login` or use --token-source metadata|file)"));
  }
  std::string token(absl::StripAsciiWhitespace(run->out));
  if (!IsTokenText(token)) {
    return absl::UnauthenticatedError(
        absl::StrCat(what, " printed no single access token on stdout"));
  }
  token_ = std::move(token);
  refresh_at_ = now + cache_for_;
  return token_;
}

// ---- MakeTokenSource -----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<TokenSource>> MakeTokenSource(std::string_view kind,
                                                             std::string_view file_path,
                                                             HttpTransport* transport,
                                                             const Clock* clock) {
  if (kind == "none") return std::make_unique<NoTokenSource>();
  if (kind == "file") {
    if (file_path.empty()) {
      return absl::InvalidArgumentError(
          "--token-source file needs --token-file PATH (a file holding an access token)");
    }
    return std::make_unique<FileTokenSource>(std::string(file_path));
  }
  if (kind == "metadata") {
    if (transport == nullptr || clock == nullptr) {
      return absl::InvalidArgumentError("--token-source metadata needs an HTTP transport");
    }
    return std::make_unique<MetadataTokenSource>(transport, clock);
  }
  if (kind == "gcloud") {
    if (clock == nullptr) return absl::InvalidArgumentError("--token-source gcloud needs a clock");
    return std::make_unique<GcloudTokenSource>(clock);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown --token-source '", std::string(kind),
                                                 "': use none, file, metadata or gcloud"));
}

}  // namespace runway
