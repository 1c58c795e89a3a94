#include "controller/adapters/engine_image_builder.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

extern char** environ;

namespace runway {
namespace {

constexpr size_t kMaxQuoted = 400;              // longest engine or git message quoted in a detail
constexpr size_t kMaxBody = 64 << 10;           // kept of a response body, for error messages
constexpr size_t kMaxCommandOutput = 32 << 10;  // kept of a command's stdout and stderr (the tail)
constexpr size_t kMaxFinishedJobs = 256;        // finished jobs kept for Poll()
constexpr char kManifestAccept[] =
    "Accept: application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

std::string ErrnoText(int error) { return std::generic_category().message(error); }

// One line for a detail: whitespace collapsed, trimmed, capped.
std::string OneLine(absl::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  if (out.size() > kMaxQuoted) out = absl::StrCat(out.substr(0, kMaxQuoted), "...");
  return out;
}

// The last line of `text` that says something (git prints its reason last).
std::string LastLine(const std::string& text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    std::string line = OneLine(*it);
    if (!line.empty()) return line;
  }
  return "";
}

// A git url without user:password@, for details and logs.
std::string RedactUrl(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t host_start = scheme + 3;
  size_t at = url.find('@', host_start);
  size_t slash = url.find('/', host_start);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return url;
  return absl::StrCat(url.substr(0, host_start), "***@", url.substr(at + 1));
}

std::string Rounded(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
}

// ---- validation ----------------------------------------------------------------------------

bool IsHex(const std::string& text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Relative, inside the context: no leading '/', no ".." component, no NUL or backslash.
bool IsSafeRelativePath(const std::string& path) {
  if (path.empty() || path[0] == '/' || path.find('\0') != std::string::npos ||
      path.find('\\') != std::string::npos) {
    return false;
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return false;
  }
  return true;
}

struct ImageRef {
  std::string host;        // 127.0.0.1:5000
  std::string name;        // demo/api
  std::string tag;         // src-0123abcd
  std::string repository;  // host/name
};

absl::StatusOr<ImageRef> ParseImage(const std::string& image) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: \"", OneLine(image), "\" ", why,
                     " (want <registry host>/<name>:<tag>, e.g. 127.0.0.1:5000/demo/api:v1)"));
  };
  if (image.empty()) return bad("is empty");
  if (image.size() > 512) return bad("is too long");
  if (image.find('@') != std::string::npos) return bad("has a digest; name a tag");
  size_t slash = image.find('/');
  if (slash == std::string::npos) return bad("does not name a registry host");
  ImageRef ref;
  ref.host = image.substr(0, slash);
  if (ref.host != "localhost" && ref.host.find('.') == std::string::npos &&
      ref.host.find(':') == std::string::npos) {
    return bad("does not start with a registry host");
  }
  for (char c : ref.host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':') {
      return bad("has a malformed registry host");
    }
  }
  size_t colon = image.rfind(':');
  if (colon == std::string::npos || colon < slash) return bad("has no tag");
  ref.tag = image.substr(colon + 1);
  ref.name = image.substr(slash + 1, colon - slash - 1);
  ref.repository = image.substr(0, colon);
  if (ref.tag.empty() || ref.tag.size() > 128 || ref.tag[0] == '.' || ref.tag[0] == '-') {
    return bad("has a malformed tag");
  }
  for (char c : ref.tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return bad("has a malformed tag");
    }
  }
  if (ref.name.empty()) return bad("has no name");
  for (absl::string_view part : absl::StrSplit(ref.name, '/')) {
    if (part.empty() || !absl::ascii_isalnum(static_cast<unsigned char>(part.front())) ||
        !absl::ascii_isalnum(static_cast<unsigned char>(part.back()))) {
      return bad("has a malformed name");
    }
    for (char c : part) {
      if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
            absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
            c == '-')) {
        return bad("has a malformed name (lowercase letters, digits, '.', '_', '-')");
      }
    }
  }
  return ref;
}

absl::Status ValidateEndpoint(const std::string& endpoint) {
  if (absl::StartsWith(endpoint, "unix://")) {
    std::string path = endpoint.substr(7);
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("engine_endpoint: \"", endpoint, "\" must name an absolute socket path"));
    }
    if (path.size() >= 108) {  // sizeof(sockaddr_un::sun_path)
      return absl::InvalidArgumentError(
          absl::StrCat("engine_endpoint: the socket path of \"", endpoint, "\" is too long"));
    }
    return absl::OkStatus();
  }
  if (absl::StartsWith(endpoint, "tcp://")) {
    std::string host_port = endpoint.substr(6);
    size_t colon = host_port.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port <= 0 || port > 65535 ||
        host_port.find_first_of("/?#@ ") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("engine_endpoint: \"", endpoint, "\" must be tcp://<host>:<port>"));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "engine_endpoint: \"", endpoint, "\" must be unix:///path/to.sock or tcp://host:port"));
}

absl::Status ValidateGitUrl(const std::string& url, bool allow_file) {
  bool ok = false;
  for (const char* scheme : {"https://", "ssh://", "git://"}) {
    if (absl::StartsWith(url, scheme) && url.size() > std::strlen(scheme)) ok = true;
  }
  if (allow_file && absl::StartsWith(url, "file:///")) ok = true;
  // scp-like: user@host:path
  size_t at = url.find('@');
  size_t colon = url.find(':');
  if (url.find("://") == std::string::npos && at != std::string::npos && at > 0 &&
      colon != std::string::npos && colon > at + 1 && colon + 1 < url.size()) {
    ok = true;
  }
  if (!ok || url[0] == '-' || url.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("git.url: \"", OneLine(RedactUrl(url)),
                     "\" must be an https://, ssh://, git:// or user@host:path url",
                     allow_file ? " (or file:///)" : ""));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const LocalBuildRequest& request, bool allow_file_urls) {
  if (request.engine != "docker" && request.engine != "podman") {
    return absl::InvalidArgumentError(
        absl::StrCat("engine: \"", request.engine, "\" must be docker or podman"));
  }
  if (absl::Status status = ValidateEndpoint(request.engine_endpoint); !status.ok()) return status;
  if (absl::Status status = ValidateGitUrl(request.git.url, allow_file_urls); !status.ok()) {
    return status;
  }
  if ((request.git.revision.size() != 40 && request.git.revision.size() != 64) ||
      !IsHex(request.git.revision)) {
    return absl::InvalidArgumentError(
        absl::StrCat("git.revision: \"", OneLine(request.git.revision),
                     "\" must be a full commit SHA (40 or 64 lowercase hex digits)"));
  }
  if (!request.git.directory.empty() && request.git.directory != "." &&
      !IsSafeRelativePath(request.git.directory)) {
    return absl::InvalidArgumentError(
        absl::StrCat("git.directory: \"", OneLine(request.git.directory),
                     "\" must be a relative path inside the repository (no leading '/', no '..')"));
  }
  if (!IsSafeRelativePath(request.dockerfile)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dockerfile: \"", OneLine(request.dockerfile),
        "\" must be a relative path inside the build context (no leading '/', no '..')"));
  }
  if (absl::StatusOr<ImageRef> ref = ParseImage(request.image); !ref.ok()) return ref.status();
  if (request.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  return absl::OkStatus();
}

// ---- HTTP with libcurl, to a unix socket, tcp endpoint or full url -------------------------

struct HttpCall {
  std::string method = "GET";  // GET, POST or HEAD
  std::string endpoint;        // unix:///path or tcp://host:port; empty: `target` is a full url
  std::string target;          // the path (with query) on `endpoint`, or a full url
  std::vector<std::string> headers;
  std::string upload_file;  // POST body, read from this file
  absl::Duration connect_timeout = absl::Seconds(3);
  absl::Duration timeout = absl::Seconds(15);
  std::function<void(const std::string&)> on_line;  // each body line as it arrives
  const std::atomic<bool>* stop = nullptr;          // aborts the transfer when it turns true
};

struct HttpResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  long os_errno = 0;
  std::string error;   // curl's error buffer
  std::string body;    // the first kMaxBody bytes
  std::string digest;  // the Docker-Content-Digest header
};

struct Transfer {
  const HttpCall* call;
  HttpResult* result;
  std::string partial_line;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  Transfer* transfer = static_cast<Transfer*>(user);
  size_t bytes = size * count;
  std::string& body = transfer->result->body;
  if (body.size() < kMaxBody) body.append(data, std::min(bytes, kMaxBody - body.size()));
  if (transfer->call->on_line) {
    transfer->partial_line.append(data, bytes);
    size_t start = 0;
    size_t newline;
    while ((newline = transfer->partial_line.find('\n', start)) != std::string::npos) {
      transfer->call->on_line(transfer->partial_line.substr(start, newline - start));
      start = newline + 1;
    }
    transfer->partial_line.erase(0, start);
    if (transfer->partial_line.size() > (8u << 20)) transfer->partial_line.clear();
  }
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  Transfer* transfer = static_cast<Transfer*>(user);
  absl::string_view line(data, size * count);
  constexpr absl::string_view kDigest = "docker-content-digest:";
  if (line.size() > kDigest.size() && absl::StartsWithIgnoreCase(line, kDigest)) {
    transfer->result->digest = std::string(absl::StripAsciiWhitespace(line.substr(kDigest.size())));
  }
  return size * count;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const std::atomic<bool>* stop = static_cast<const std::atomic<bool>*>(user);
  return stop != nullptr && stop->load() ? 1 : 0;
}

long Millis(absl::Duration d) {
  return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

HttpResult Perform(const HttpCall& call) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResult result;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    result.code = CURLE_FAILED_INIT;
    result.error = "curl_easy_init failed";
    return result;
  }
  std::string url;
  if (absl::StartsWith(call.endpoint, "unix://")) {
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, call.endpoint.substr(7).c_str());
    url = absl::StrCat("http://engine", call.target);
  } else if (absl::StartsWith(call.endpoint, "tcp://")) {
    url = absl::StrCat("http://", call.endpoint.substr(6), call.target);
  } else {
    url = call.target;
  }
  char error[CURL_ERROR_SIZE] = {0};
  Transfer transfer{&call, &result, ""};
  curl_slist* headers = nullptr;
  for (const std::string& header : call.headers) {
    headers = curl_slist_append(headers, header.c_str());
  }
  std::FILE* upload = nullptr;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, Millis(call.connect_timeout));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, Millis(call.timeout));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(call.stop));
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (call.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (call.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    if (!call.upload_file.empty()) {
      upload = std::fopen(call.upload_file.c_str(), "rb");
      struct stat info;
      if (upload == nullptr || ::fstat(fileno(upload), &info) != 0) {
        result.code = CURLE_READ_ERROR;
        result.error = absl::StrCat("cannot read ", call.upload_file, ": ", ErrnoText(errno));
        if (upload != nullptr) std::fclose(upload);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return result;
      }
      curl_easy_setopt(curl, CURLOPT_READDATA, upload);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(info.st_size));
      headers = curl_slist_append(headers, "Expect:");  // no 1 s wait for 100-continue
    } else {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");  // an empty body, not stdin
    }
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  result.code = curl_easy_perform(curl);
  if (!transfer.partial_line.empty() && call.on_line) call.on_line(transfer.partial_line);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &result.os_errno);
  result.error = error[0] != '\0' ? error : curl_easy_strerror(result.code);
  if (upload != nullptr) std::fclose(upload);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return result;
}

// The runway_connect_failures_total reason for a failed transfer, or "" when the failure is not
// about the connection (aborted by us).
std::string ConnectReason(const HttpResult& result) {
  switch (result.code) {
    case CURLE_COULDNT_CONNECT:
      switch (result.os_errno) {
        case ENOENT:
          return "socket-missing";
        case EACCES:
        case EPERM:
          return "permission-denied";
        case ETIMEDOUT:
          return "timeout";
        case ECONNRESET:
          return "reset";
        default:
          return "refused";
      }
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "dns";
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return "reset";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return "tls";
    case CURLE_ABORTED_BY_CALLBACK:
      return "";
    default:
      return "bad-response";
  }
}

// What went wrong with a transfer, for a detail.
std::string DescribeFailure(const HttpResult& result) {
  if (result.code == CURLE_COULDNT_CONNECT && result.os_errno != 0) {
    if (result.os_errno == ENOENT) return "the socket file does not exist";
    return absl::AsciiStrToLower(ErrnoText(static_cast<int>(result.os_errno)));
  }
  return OneLine(result.error);
}

// The message of an error answer: {"message": ...} (Docker, libpod) or the body's first line.
std::string ErrorFromBody(const HttpResult& result) {
  nlohmann::json body = nlohmann::json::parse(result.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object()) {
    auto message = body.find("message");
    if (message != body.end() && message->is_string()) return OneLine(message->get<std::string>());
  }
  std::string text = OneLine(result.body);
  return text.empty() ? absl::StrCat("HTTP ", result.status) : text;
}

// Reads one line of a Docker/Podman JSON stream: keeps the error ("errorDetail".message, else
// "error") and the last "stream"/"status" text.
struct StreamState {
  std::string error;
  std::string last_text;
};

void ReadStreamLine(const std::string& line, StreamState* state) {
  if (absl::StripAsciiWhitespace(line).empty()) return;
  nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return;
  std::string error;
  auto detail = json.find("errorDetail");
  if (detail != json.end() && detail->is_object()) {
    auto message = detail->find("message");
    if (message != detail->end() && message->is_string()) error = message->get<std::string>();
  }
  auto plain = json.find("error");
  if (error.empty() && plain != json.end()) {
    error = plain->is_string() ? plain->get<std::string>() : plain->dump();
  }
  if (error.empty() && (detail != json.end() || plain != json.end())) error = "unknown error";
  if (!error.empty()) {
    state->error = OneLine(error);
    return;
  }
  for (const char* key : {"stream", "status"}) {
    auto text = json.find(key);
    if (text != json.end() && text->is_string()) {
      std::string one = OneLine(text->get<std::string>());
      if (!one.empty()) state->last_text = one;
    }
  }
}

std::string Escape(const std::string& text) {
  char* escaped = curl_escape(text.c_str(), static_cast<int>(text.size()));
  if (escaped == nullptr) return text;
  std::string out = escaped;
  curl_free(escaped);
  return out;
}

// ---- running git without a shell -------------------------------------------------------------

struct CommandResult {
  bool started = false;
  int spawn_error = 0;
  bool timed_out = false;
  bool stopped = false;
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

void AppendTail(std::string& sink, const char* data, size_t size) {
  sink.append(data, size);
  if (sink.size() > kMaxCommandOutput) sink.erase(0, sink.size() - kMaxCommandOutput);
}

// Runs argv (argv[0] searched in PATH) in its own process group, stdin from /dev/null, both
// outputs captured. Killed (the whole group) at `deadline` or when `stop` turns true.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         absl::Time deadline, const std::atomic<bool>& stop) {
  CommandResult result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.spawn_error = errno;
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.spawn_error = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t no_signals, default_signals;
  sigemptyset(&no_signals);
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &no_signals);
  posix_spawnattr_setsigdefault(&attributes, &default_signals);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  result.spawn_error =
      ::posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (result.spawn_error == 0) {
    result.started = true;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_count = 2;
    char buffer[4096];
    while (open_count > 0) {
      if (stop.load()) {
        result.stopped = true;
        break;
      }
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        result.timed_out = true;
        break;
      }
      int wait_ms = static_cast<int>(
          std::min<int64_t>(100, std::max<int64_t>(1, absl::ToInt64Milliseconds(left))));
      int ready = ::poll(fds, 2, wait_ms);
      if (ready < 0 && errno != EINTR) break;
      if (ready <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          fds[i].fd = -1;  // poll ignores negative descriptors
          --open_count;
        } else {
          AppendTail(*sinks[i], buffer, static_cast<size_t>(n));
        }
      }
    }
    if (result.stopped || result.timed_out) {
      ::kill(-pid, SIGKILL);  // our own child's process group (git, ssh, credential helpers)
      ::kill(pid, SIGKILL);
    }
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(wait_status)) result.exit_code = WEXITSTATUS(wait_status);
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  return result;
}

// The connect-failure reason git's message shows, or "" when it is not about the connection.
std::string GitConnectReason(const std::string& err) {
  if (absl::StrContains(err, "Connection refused")) return "refused";
  if (absl::StrContains(err, "Could not resolve host") ||
      absl::StrContains(err, "Name or service not known") ||
      absl::StrContains(err, "Temporary failure in name resolution") ||
      absl::StrContains(err, "unable to look up")) {
    return "dns";
  }
  if (absl::StrContains(err, "timed out")) return "timeout";
  if (absl::StrContains(err, "Connection reset")) return "reset";
  if (absl::StrContains(err, "Permission denied") ||
      absl::StrContains(err, "Authentication failed") ||
      absl::StrContains(err, "could not read Username")) {
    return "permission-denied";
  }
  if (absl::StrContains(err, "SSL certificate problem") ||
      absl::StrContains(err, "certificate verification failed")) {
    return "tls";
  }
  return "";
}

// ---- ustar writer ------------------------------------------------------------------------------

class TarWriter {
 public:
  TarWriter(int fd, const std::atomic<bool>& stop) : fd_(fd), stop_(stop) {}

  // Adds everything under `root` (regular files, directories, symlinks; sorted; any ".git" left
  // out) with paths relative to it.
  absl::Status AddTree(const std::string& root) { return AddDirectory(root, ""); }

  absl::Status Finish() {
    char zeros[1024] = {0};
    return Write(zeros, sizeof(zeros));
  }

 private:
  absl::Status AddDirectory(const std::string& dir, const std::string& relative) {
    DIR* handle = ::opendir(dir.c_str());
    if (handle == nullptr) return absl::InternalError(absl::StrCat(dir, ": ", ErrnoText(errno)));
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(handle)) {
      std::string name = entry->d_name;
      if (name == "." || name == ".." || name == ".git") continue;
      names.push_back(std::move(name));
    }
    ::closedir(handle);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (stop_.load()) return absl::CancelledError("stopping");
      std::string path = absl::StrCat(dir, "/", name);
      std::string entry = relative.empty() ? name : absl::StrCat(relative, "/", name);
      struct stat info;
      if (::lstat(path.c_str(), &info) != 0) {
        return absl::InternalError(absl::StrCat(path, ": ", ErrnoText(errno)));
      }
      mode_t mode = info.st_mode & 07777;
      if (S_ISDIR(info.st_mode)) {
        if (absl::Status s = Header(entry + "/", '5', 0, mode, ""); !s.ok()) return s;
        if (absl::Status s = AddDirectory(path, entry); !s.ok()) return s;
      } else if (S_ISREG(info.st_mode)) {
        if (absl::Status s = AddFile(path, entry, info); !s.ok()) return s;
      } else if (S_ISLNK(info.st_mode)) {
        std::string target(4096, '\0');
        ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
        if (n < 0) return absl::InternalError(absl::StrCat(path, ": ", ErrnoText(errno)));
        target.resize(static_cast<size_t>(n));
        if (absl::Status s = Header(entry, '2', 0, 0777, target); !s.ok()) return s;
      }  // sockets, fifos, devices: not build context
    }
    return absl::OkStatus();
  }

  absl::Status AddFile(const std::string& path, const std::string& entry, const struct stat& info) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(absl::StrCat(path, ": ", ErrnoText(errno)));
    uint64_t size = static_cast<uint64_t>(info.st_size);
    absl::Status status = Header(entry, '0', size, info.st_mode & 07777, "");
    uint64_t copied = 0;
    char buffer[64 << 10];
    while (status.ok() && copied < size) {
      ssize_t n = ::read(fd, buffer,
                         static_cast<size_t>(std::min<uint64_t>(sizeof(buffer), size - copied)));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        status = absl::InternalError(absl::StrCat(path, ": changed while being read"));
        break;
      }
      status = Write(buffer, static_cast<size_t>(n));
      copied += static_cast<uint64_t>(n);
    }
    ::close(fd);
    if (!status.ok()) return status;
    return Pad(size);
  }

  absl::Status Pad(uint64_t size) {
    char zeros[512] = {0};
    size_t rest = static_cast<size_t>((512 - size % 512) % 512);
    return rest == 0 ? absl::OkStatus() : Write(zeros, rest);
  }

  // `width - 1` zero-padded octal digits and a NUL (callers keep `value` in range).
  static void Octal(char* field, size_t width, uint64_t value) {
    field[width - 1] = '\0';
    for (size_t i = width - 1; i > 0; --i) {
      field[i - 1] = static_cast<char>('0' + (value & 7));
      value >>= 3;
    }
  }

  // "<len> key=value\n", where len counts itself.
  static std::string PaxRecord(const std::string& key, const std::string& value) {
    size_t base = key.size() + value.size() + 3;
    size_t length = base + 1;
    while (std::to_string(length).size() + base != length)
      length = std::to_string(length).size() + base;
    return absl::StrCat(length, " ", key, "=", value, "\n");
  }

  absl::Status RawHeader(const std::string& name, const std::string& prefix, char type,
                         uint64_t size, mode_t mode, const std::string& link) {
    char block[512] = {0};
    std::memcpy(block, name.data(), std::min<size_t>(name.size(), 100));
    Octal(block + 100, 8, mode);
    Octal(block + 108, 8, 0);  // uid
    Octal(block + 116, 8, 0);  // gid
    Octal(block + 124, 12, size);
    Octal(block + 136, 12, 0);  // mtime: fixed, so a revision's context is reproducible
    block[156] = type;
    std::memcpy(block + 157, link.data(), std::min<size_t>(link.size(), 100));
    std::memcpy(block + 257, "ustar", 6);
    std::memcpy(block + 263, "00", 2);
    std::memcpy(block + 265, "root", 4);
    std::memcpy(block + 297, "root", 4);
    std::memcpy(block + 345, prefix.data(), std::min<size_t>(prefix.size(), 155));
    std::memset(block + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : block) sum += c;
    Octal(block + 148, 7, sum);  // six digits and a NUL; block[155] keeps its space
    return Write(block, sizeof(block));
  }

  absl::Status Header(const std::string& path, char type, uint64_t size, mode_t mode,
                      const std::string& link) {
    if (size > 077777777777ull) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is larger than 8 GiB"));
    }
    std::string name = path;
    std::string prefix;
    if (name.size() > 100) {
      // ustar: prefix (up to 155) '/' name (up to 100).
      for (size_t slash = name.find('/'); slash != std::string::npos && slash + 1 < name.size();
           slash = name.find('/', slash + 1)) {
        if (slash <= 155 && name.size() - slash - 1 <= 100) {
          prefix = path.substr(0, slash);
          name = path.substr(slash + 1);
          break;
        }
      }
    }
    if (name.size() > 100 || link.size() > 100) {  // a PAX header carries what ustar cannot
      std::string records;
      if (name.size() > 100) {
        records += PaxRecord("path", path);
        prefix.clear();
      }
      if (link.size() > 100) records += PaxRecord("linkpath", link);
      if (absl::Status s = RawHeader("././@PaxHeader", "", 'x', records.size(), 0644, "");
          !s.ok()) {
        return s;
      }
      if (absl::Status s = Write(records.data(), records.size()); !s.ok()) return s;
      if (absl::Status s = Pad(records.size()); !s.ok()) return s;
    }
    return RawHeader(name, prefix, type, size, mode, link);
  }

  absl::Status Write(const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::InternalError(absl::StrCat("writing the tar: ", ErrnoText(errno)));
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  int fd_;
  const std::atomic<bool>& stop_;
};

// ---- the job -------------------------------------------------------------------------------

struct Failure {
  std::string reason;
  std::string detail;
};

class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
    if (error) spdlog::warn("local build: cannot remove {}: {}", path_, error.message());
  }

 private:
  std::string path_;
};

class BuildJob {
 public:
  BuildJob(const LocalBuildRequest& request, const EngineImageBuilder::Options& options,
           const std::atomic<bool>& stop)
      : request_(request),
        options_(options),
        stop_(stop),
        deadline_(absl::Now() + request.timeout) {}

  // Runs every step; the digest on success.
  absl::StatusOr<std::string> Run(Failure* failure) {
    std::optional<Failure> failed = Steps();
    if (!failed) return digest_;
    if (stop_.load()) {
      failed = Failure{"Cancelled", "the builder was shut down before the build finished"};
    } else if (absl::Now() >= deadline_) {
      failed = Failure{"Timeout",
                       absl::StrCat("the build of ", request_.image, " did not finish within ",
                                    Rounded(request_.timeout), " (it was ", step_, ")")};
    }
    *failure = *failed;
    return absl::UnknownError(failed->detail);
  }

 private:
  std::optional<Failure> Steps() {
    ref_ = *ParseImage(request_.image);  // validated by Start()
    step_ = "contacting the engine";
    if (auto failed = PingEngine()) return failed;

    step_ = "checking out the source";
    std::string root = options_.work_root;
    if (root.empty()) {
      std::error_code error;
      root = std::filesystem::temp_directory_path(error).string();
      if (error) root = "/tmp";
    }
    std::string pattern = absl::StrCat(root, "/runway-build-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Failure{"CheckoutFailed", absl::StrCat("cannot create a work directory under ", root,
                                                    ": ", ErrnoText(errno), ".")};
    }
    RemoveOnExit cleanup(pattern);
    std::string source = absl::StrCat(pattern, "/src");
    if (auto failed = Checkout(source)) return failed;

    step_ = "packing the build context";
    std::string context_tar = absl::StrCat(pattern, "/context.tar");
    if (auto failed = PackContext(source, context_tar)) return failed;

    step_ = "building";
    if (auto failed = Build(context_tar)) return failed;
    step_ = "pushing";
    if (auto failed = Push()) return failed;
    step_ = "reading the pushed digest";
    return ReadDigest();
  }

  absl::Duration Left() const { return deadline_ - absl::Now(); }
  bool Over() const { return stop_.load() || Left() <= absl::ZeroDuration(); }

  void Count(const std::string& target, const std::string& reason) {
    if (options_.metrics != nullptr && !reason.empty()) {
      options_.metrics->ConnectFailed(target, reason);
    }
  }

  HttpCall EngineCall(const std::string& method, const std::string& target) {
    HttpCall call;
    call.method = method;
    call.endpoint = request_.engine_endpoint;
    call.target = target;
    call.connect_timeout = std::min(options_.engine_connect_timeout, Left());
    call.timeout = Left();
    call.stop = &stop_;
    return call;
  }

  // A failed engine transfer: EngineUnavailable naming the endpoint (counted), unless we stopped
  // it or the job ran out of time (Run() reports those).
  Failure EngineFailure(const HttpResult& result, const std::string& what) {
    if (result.code == CURLE_ABORTED_BY_CALLBACK || Over()) return Failure{"Cancelled", ""};
    Count(request_.engine, ConnectReason(result));
    std::string hint;
    if (result.code == CURLE_COULDNT_CONNECT &&
        absl::StartsWith(request_.engine_endpoint, "unix")) {
      hint = request_.engine == "podman"
                 ? " Is the Podman service running (podman system service, or podman machine "
                   "start)?"
                 : " Is the Docker daemon running (systemctl start docker)?";
    }
    return Failure{"EngineUnavailable", absl::StrCat(what, " the ", request_.engine, " engine at ",
                                                     request_.engine_endpoint, ": ",
                                                     DescribeFailure(result), ".", hint)};
  }

  std::optional<Failure> PingEngine() {
    HttpCall call = EngineCall("GET", "/_ping");
    call.timeout = std::min(Left(), options_.engine_connect_timeout + absl::Seconds(10));
    HttpResult result = Perform(call);
    if (result.code != CURLE_OK) return EngineFailure(result, "cannot reach");
    if (result.status != 200) {
      Count(request_.engine, "bad-response");
      return Failure{"EngineUnavailable",
                     absl::StrCat("the ", request_.engine, " engine at ", request_.engine_endpoint,
                                  " answered GET /_ping with HTTP ", result.status, ".")};
    }
    return std::nullopt;
  }

  std::vector<std::string> GitEnvironment() const {
    std::map<std::string, std::string> settings = {
        {"GIT_TERMINAL_PROMPT", "0"},
        {"GCM_INTERACTIVE", "never"},
        {"LC_ALL", "C"},
        {"GIT_ALLOW_PROTOCOL", options_.allow_file_urls ? "https:ssh:git:file" : "https:ssh:git"},
    };
    if (std::getenv("GIT_SSH_COMMAND") == nullptr) {
      settings["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes";
    }
    for (const auto& [name, value] : options_.git_env) settings[name] = value;
    std::vector<std::string> env;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      absl::string_view text = *entry;
      size_t equals = text.find('=');
      if (equals != absl::string_view::npos &&
          settings.count(std::string(text.substr(0, equals))) > 0) {
        continue;
      }
      env.emplace_back(text);
    }
    for (const auto& [name, value] : settings) env.push_back(absl::StrCat(name, "=", value));
    return env;
  }

  CommandResult Git(std::vector<std::string> args) {
    std::vector<std::string> argv = {"git",
                                     "-c",
                                     "advice.detachedHead=false",
                                     "-c",
                                     "http.lowSpeedLimit=1000",
                                     "-c",
                                     "http.lowSpeedTime=30"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult result = RunCommand(argv, GitEnvironment(), deadline_, stop_);
    spdlog::debug("local build {}: git {} -> exit {}: {}", request_.image,
                  args.size() > 2 && args[0] == "-C" ? args[2] : args[0], result.exit_code,
                  GitMessage(result.err));
    return result;
  }

  // git's last stderr line, with the url's credentials (if any) masked.
  std::string GitMessage(const std::string& err) const {
    std::string line = LastLine(err);
    if (RedactUrl(request_.git.url) == request_.git.url) return line;
    return absl::StrReplaceAll(line, {{request_.git.url, RedactUrl(request_.git.url)}});
  }

  static bool Succeeded(const CommandResult& result) {
    return result.started && !result.timed_out && !result.stopped && result.exit_code == 0;
  }

  std::optional<Failure> GitFailure(const CommandResult& result, const std::string& what) {
    if (result.stopped || result.timed_out || Over()) return Failure{"Cancelled", ""};
    if (!result.started) {
      return Failure{
          "CheckoutFailed",
          result.spawn_error == ENOENT
              ? std::string("git is not installed (scripts/install-deps.sh installs it).")
              : absl::StrCat("cannot run git: ", ErrnoText(result.spawn_error), ".")};
    }
    std::string line = GitMessage(result.err);
    return Failure{"CheckoutFailed", absl::StrCat(what, ": ", line.empty() ? "no message" : line)};
  }

  std::optional<Failure> Checkout(const std::string& source) {
    const std::string& revision = request_.git.revision;
    const std::string url = RedactUrl(request_.git.url);
    std::vector<std::string> init = {"init", "-q"};
    if (revision.size() == 64) init.push_back("--object-format=sha256");
    init.push_back(source);
    CommandResult result = Git(init);
    if (!Succeeded(result)) return GitFailure(result, "git init failed");

    // A shallow fetch of the one commit; servers that refuse unadvertised SHAs (protocol v0
    // without uploadpack.allowReachableSHA1InWant) get a full clone instead.
    CommandResult fetch = Git(
        {"-C", source, "fetch", "-q", "--no-tags", "--depth=1", "--", request_.git.url, revision});
    if (Succeeded(fetch)) {
      result = Git({"-C", source, "checkout", "-q", "--detach", "FETCH_HEAD"});
      if (!Succeeded(result)) return GitFailure(result, "git checkout failed");
    } else {
      if (fetch.stopped || fetch.timed_out || Over() || !fetch.started) {
        return GitFailure(fetch, "git fetch failed");
      }
      std::string reason = GitConnectReason(fetch.err);
      if (!reason.empty()) {
        Count(kTargetGit, reason);
        return Failure{"CheckoutFailed",
                       absl::StrCat("cannot fetch ", url, ": ", GitMessage(fetch.err))};
      }
      spdlog::info("local build {}: shallow fetch of {} refused ({}); cloning {} in full",
                   request_.image, revision, GitMessage(fetch.err), url);
      std::error_code error;
      std::filesystem::remove_all(source, error);
      CommandResult clone = Git({"clone", "-q", "--no-checkout", "--", request_.git.url, source});
      if (!Succeeded(clone)) {
        Count(kTargetGit, GitConnectReason(clone.err));
        return GitFailure(clone, absl::StrCat("cannot clone ", url));
      }
      result = Git({"-C", source, "checkout", "-q", "--detach", revision});
      if (!Succeeded(result)) {
        if (result.stopped || result.timed_out || Over()) return Failure{"Cancelled", ""};
        return Failure{
            "CheckoutFailed",
            absl::StrCat("revision ", revision, " is not in ", url, ": ", GitMessage(result.err),
                         " (shallow fetch: ", GitMessage(fetch.err), ").")};
      }
    }
    result = Git({"-C", source, "rev-parse", "HEAD"});
    std::string head(absl::StripAsciiWhitespace(result.out));
    if (!Succeeded(result) || head != revision) {
      if (Over()) return Failure{"Cancelled", ""};
      return Failure{"CheckoutFailed", absl::StrCat("checked out ", head, " instead of ", revision,
                                                    " from ", url, ".")};
    }
    return std::nullopt;
  }

  std::optional<Failure> PackContext(const std::string& source, const std::string& tar_path) {
    std::string directory = request_.git.directory;
    std::string context =
        directory.empty() || directory == "." ? source : absl::StrCat(source, "/", directory);
    // The context must be a directory inside the checkout, also after symlinks.
    char* real_source = ::realpath(source.c_str(), nullptr);
    char* real_context = ::realpath(context.c_str(), nullptr);
    std::string resolved_source = real_source ? real_source : "";
    std::string resolved_context = real_context ? real_context : "";
    std::free(real_source);
    std::free(real_context);
    struct stat info;
    if (resolved_context.empty() || ::stat(resolved_context.c_str(), &info) != 0 ||
        !S_ISDIR(info.st_mode) ||
        (resolved_context != resolved_source &&
         !absl::StartsWith(resolved_context, resolved_source + "/"))) {
      return Failure{"CheckoutFailed",
                     absl::StrCat("git.directory \"", directory, "\" is not a directory in ",
                                  RedactUrl(request_.git.url), " at ", request_.git.revision, ".")};
    }
    int fd = ::open(tar_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Failure{"BuildFailed", absl::StrCat("cannot write the build context ", tar_path, ": ",
                                                 ErrnoText(errno), ".")};
    }
    TarWriter writer(fd, stop_);
    absl::Status status = writer.AddTree(resolved_context);
    if (status.ok()) status = writer.Finish();
    if (::close(fd) != 0 && status.ok()) status = absl::InternalError(ErrnoText(errno));
    if (!status.ok()) {
      if (Over()) return Failure{"Cancelled", ""};
      return Failure{
          "BuildFailed",
          absl::StrCat("cannot pack the build context: ", std::string(status.message()), ".")};
    }
    return std::nullopt;
  }

  std::optional<Failure> Build(const std::string& context_tar) {
    StreamState stream;
    HttpCall call = EngineCall("POST", absl::StrCat("/v1.41/build?t=", Escape(request_.image),
                                                    "&dockerfile=", Escape(request_.dockerfile)));
    call.upload_file = context_tar;
    call.headers = {"Content-Type: application/x-tar"};
    call.on_line = [&stream](const std::string& line) { ReadStreamLine(line, &stream); };
    HttpResult result = Perform(call);
    if (result.code != CURLE_OK) return EngineFailure(result, "the build lost its connection to");
    if (result.status != 200) {
      return Failure{"BuildFailed",
                     absl::StrCat("the ", request_.engine, " engine refused the build (HTTP ",
                                  result.status, "): ", ErrorFromBody(result))};
    }
    if (!stream.error.empty()) {
      return Failure{"BuildFailed", absl::StrCat("the ", request_.engine, " build of ",
                                                 request_.image, " failed: ", stream.error)};
    }
    spdlog::info("local build {}: built ({})", request_.image, stream.last_text);
    return std::nullopt;
  }

  std::optional<Failure> Push() {
    HttpCall call;
    if (request_.engine == "podman") {
      // libpod answers a stream of JSON lines only with quiet=false; quiet (the default) answers
      // 200 and an empty body, or 400 {"message"} on failure.
      call = EngineCall("POST",
                        absl::StrCat("/v4.0.0/libpod/images/", request_.image, "/push?quiet=false",
                                     options_.insecure_registry ? "&tlsVerify=false" : ""));
    } else {
      call = EngineCall(
          "POST", absl::StrCat("/v1.41/images/", ref_.repository, "/push?tag=", Escape(ref_.tag)));
      call.headers = {"X-Registry-Auth: e30="};  // base64("{}"): no credentials
    }
    StreamState stream;
    call.on_line = [&stream](const std::string& line) { ReadStreamLine(line, &stream); };
    HttpResult result = Perform(call);
    if (result.code != CURLE_OK) return EngineFailure(result, "the push lost its connection to");
    if (result.status != 200) {
      return Failure{"PushFailed", absl::StrCat("the ", request_.engine, " engine could not push ",
                                                request_.image, " (HTTP ", result.status,
                                                "): ", ErrorFromBody(result))};
    }
    if (!stream.error.empty()) {
      return Failure{"PushFailed",
                     absl::StrCat("pushing ", request_.image, " failed: ", stream.error)};
    }
    spdlog::info("local build {}: pushed ({})", request_.image, stream.last_text);
    return std::nullopt;
  }

  std::optional<Failure> ReadDigest();

  const LocalBuildRequest& request_;
  const EngineImageBuilder::Options& options_;
  const std::atomic<bool>& stop_;
  absl::Time deadline_;
  ImageRef ref_;
  std::string step_;
  std::string digest_;
};

// HEAD /v2/<name>/manifests/<tag>: the Docker-Content-Digest. Counts connection failures.
absl::StatusOr<std::string> HeadManifest(const ImageRef& ref,
                                         const EngineImageBuilder::Options& options,
                                         absl::Duration timeout, const std::atomic<bool>* stop) {
  HttpCall call;
  call.method = "HEAD";
  call.target = absl::StrCat(options.insecure_registry ? "http://" : "https://", ref.host, "/v2/",
                             ref.name, "/manifests/", ref.tag);
  call.headers = {kManifestAccept};
  call.connect_timeout = std::min(options.registry_connect_timeout, timeout);
  call.timeout = std::min(options.registry_request_timeout, timeout);
  call.stop = stop;
  HttpResult result = Perform(call);
  auto count = [&](const std::string& reason) {
    if (options.metrics != nullptr && !reason.empty()) {
      options.metrics->ConnectFailed(kTargetRegistry, reason);
    }
  };
  if (result.code != CURLE_OK) {
    count(ConnectReason(result));
    return absl::UnavailableError(
        absl::StrCat("cannot reach the registry ", ref.host, ": ", DescribeFailure(result)));
  }
  if (result.status == 404) {
    return absl::NotFoundError(
        absl::StrCat("the registry ", ref.host, " has no ", ref.name, ":", ref.tag));
  }
  if (result.status == 401 || result.status == 403) {
    count("permission-denied");
    return absl::PermissionDeniedError(
        absl::StrCat("the registry ", ref.host, " answered HTTP ", result.status, " for ", ref.name,
                     ":", ref.tag,
                     "; the local builder reads only registries open to anonymous "
                     "reads"));
  }
  if (result.status != 200 || !absl::StartsWith(result.digest, "sha256:")) {
    count("bad-response");
    return absl::UnavailableError(absl::StrCat(
        "the registry ", ref.host, " answered HTTP ", result.status, " for ", ref.name, ":",
        ref.tag, result.status == 200 ? " without a sha256 Docker-Content-Digest" : ""));
  }
  return result.digest;
}

std::optional<Failure> BuildJob::ReadDigest() {
  absl::StatusOr<std::string> digest = HeadManifest(ref_, options_, Left(), &stop_);
  if (!digest.ok()) {
    if (Over()) return Failure{"Cancelled", ""};
    return Failure{"PushFailed", absl::StrCat("the push of ", request_.image,
                                              " reported success, but reading it back failed: ",
                                              std::string(digest.status().message()))};
  }
  digest_ = *digest;
  return std::nullopt;
}

}  // namespace

EngineImageBuilder::EngineImageBuilder(Options options) : options_(std::move(options)) {}

EngineImageBuilder::~EngineImageBuilder() {
  stopping_ = true;
  std::vector<Job*> running;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [id, job] : jobs_) running.push_back(job.get());
  }
  for (Job* job : running) {
    if (job->thread.joinable()) job->thread.join();
  }
}

absl::StatusOr<std::string> EngineImageBuilder::Start(const LocalBuildRequest& request) {
  if (absl::Status status = ValidateRequest(request, options_.allow_file_urls); !status.ok()) {
    return status;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ReapFinishedLocked();
  for (const auto& [id, job] : jobs_) {
    if (!job->done && job->request.image == request.image) return id;
  }
  auto job = std::make_unique<Job>();
  job->sequence = next_sequence_++;
  job->id = absl::StrCat("local-", absl::ToUnixSeconds(absl::Now()), "-", job->sequence);
  job->request = request;
  Job* raw = job.get();
  try {
    job->thread = std::thread([this, raw] { Run(raw); });
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a build thread: ", e.what()));
  }
  std::string id = job->id;
  jobs_.emplace(id, std::move(job));
  spdlog::info("local build {} of {} started ({} at {})", id, request.image, request.engine,
               request.engine_endpoint);
  return id;
}

absl::StatusOr<LocalBuildState> EngineImageBuilder::Poll(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no local build ", job_id));
  return it->second->state;
}

absl::StatusOr<std::string> EngineImageBuilder::FindPushed(const std::string& image) {
  absl::StatusOr<ImageRef> ref = ParseImage(image);
  if (!ref.ok()) return ref.status();
  return HeadManifest(*ref, options_, options_.registry_request_timeout, &stopping_);
}

void EngineImageBuilder::Run(Job* job) {
  // The job's request is not written after Start(), so it is read without the lock.
  absl::Time started = absl::Now();
  LocalBuildState state;
  Failure failure;
  BuildJob build(job->request, options_, stopping_);
  absl::StatusOr<std::string> digest = build.Run(&failure);
  if (digest.ok()) {
    state.phase = LocalBuildState::Phase::kSucceeded;
    state.digest = *digest;
    spdlog::info("local build {} of {} succeeded in {}: {}", job->id, job->request.image,
                 Rounded(absl::Now() - started), state.digest);
  } else {
    state.phase = LocalBuildState::Phase::kFailed;
    state.reason = failure.reason;
    state.detail = failure.detail;
    spdlog::warn("local build {} of {} failed after {}: {}: {}", job->id, job->request.image,
                 Rounded(absl::Now() - started), state.reason, state.detail);
  }
  Finish(job, std::move(state));
}

void EngineImageBuilder::Finish(Job* job, LocalBuildState state) {
  std::lock_guard<std::mutex> lock(mutex_);
  job->state = std::move(state);
  job->done = true;
}

void EngineImageBuilder::ReapFinishedLocked() {
  std::vector<std::pair<uint64_t, std::string>> finished;
  for (auto& [id, job] : jobs_) {
    if (!job->done) continue;
    if (job->thread.joinable()) job->thread.join();  // done: the thread is returning
    finished.emplace_back(job->sequence, id);
  }
  if (finished.size() <= kMaxFinishedJobs) return;
  std::sort(finished.begin(), finished.end());
  for (size_t i = 0; i + kMaxFinishedJobs < finished.size(); ++i) jobs_.erase(finished[i].second);
}

}  // namespace runway
