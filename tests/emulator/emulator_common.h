#pragma once

// Shared vocabulary of the Cloud Run / Cloud Build emulator: the request and response it handles
// (independent of the HTTP library), google.rpc errors carried in absl::Status, and small JSON,
// time and naming helpers. Nothing here does I/O.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace runway::emulator {

using Json = nlohmann::json;

struct EmuRequest {
  std::string method;                        // upper case, e.g. "PATCH"
  std::string path;                          // percent-decoded, no query, always starts with '/'
  std::map<std::string, std::string> query;  // decoded; a repeated key keeps its last value
  std::string raw_query;
  std::string host;  // Host header, or the authority of an absolute-form target
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct EmuResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// What the connection does with a handled request. Faults use everything but kRespond.
enum class ConnectionAction {
  kRespond,
  kClose,  // close the connection without answering
  kStall,  // read the request, answer nothing, hold the connection for `hold`
};

struct HandlerResult {
  EmuResponse response;
  ConnectionAction action = ConnectionAction::kRespond;
  // Wait this long before answering (latency faults, operations.wait).
  absl::Duration delay = absl::ZeroDuration();
  // When set, called after `delay` to produce the answer (operations.wait answers with the state
  // at the end of the wait, not at its start).
  std::function<EmuResponse()> after_delay;
  absl::Duration hold = absl::ZeroDuration();
  // When positive, the server stops accepting connections for this long (refuse fault).
  absl::Duration refuse_for = absl::ZeroDuration();
};

// ---- google.rpc errors --------------------------------------------------------------------------
// absl::StatusCode values equal google.rpc.Code values. Field violations ride in a payload under
// the BadRequest type URL, so handlers return plain absl::Status.

inline constexpr char kBadRequestType[] = "type.googleapis.com/google.rpc.BadRequest";

struct FieldViolation {
  std::string field;
  std::string description;
};

absl::Status InvalidArgument(std::string message, std::vector<FieldViolation> violations = {});
// INVALID_ARGUMENT with every violation attached and the first one's description as the message.
absl::Status FirstViolation(std::vector<FieldViolation> violations);
absl::Status InvalidField(const std::string& field, const std::string& description);
int HttpStatusFor(absl::StatusCode code);
std::string_view RpcStatusName(absl::StatusCode code);
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);
// {"error":{"code":HTTP,"message":...,"status":"NOT_FOUND","details":[...]}}
Json GoogleErrorBody(const absl::Status& status);
EmuResponse GoogleErrorResponse(const absl::Status& status);
EmuResponse JsonResponse(const Json& body, int status = 200);

// ---- helpers ------------------------------------------------------------------------------------

// RFC 3339 UTC with microseconds, the form Google APIs return.
std::string FormatRfc3339(absl::Time t);
// Accepts "300s", "1.5s", "0s" (google.protobuf.Duration JSON). Negative or malformed: nullopt.
std::optional<absl::Duration> ParseProtoDuration(std::string_view text);
std::string FormatProtoDuration(absl::Duration d);

// Query-string booleans: apitools sends "False"/"True".
std::optional<bool> ParseQueryBool(std::string_view text);

// Shell-style glob with `*` and `?`, iterative (no recursion on hostile patterns).
bool GlobMatch(std::string_view pattern, std::string_view text);

// Drops null, "", {} and [] members recursively, so a template written by a v1 client with empty
// fields compares equal to the same template written by a v2 client that omitted them.
Json Prune(const Json& value);

// Deterministic-per-seed identifiers.
class IdSource {
 public:
  explicit IdSource(uint64_t seed) : rng_(seed) {}
  std::string Uuid4();
  std::string LowerLetters(int count);
  std::string Hex(int count);

 private:
  std::mt19937_64 rng_;
};

// A name component Cloud Run accepts for services and revisions: lower-case letters, digits and
// '-', starting with a letter, not ending with '-', at most `max_length` characters.
bool IsDnsLabel(std::string_view name, size_t max_length);

std::string PercentDecode(std::string_view text, bool plus_is_space);
std::string Sha256Hex(std::string_view data);
std::string Base64(std::string_view data);

}  // namespace runway::emulator
