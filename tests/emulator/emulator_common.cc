#include "tests/emulator/emulator_common.h"

#include <openssl/evp.h>

#include <cctype>
#include <cstdio>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace runway::emulator {

absl::Status InvalidArgument(std::string message, std::vector<FieldViolation> violations) {
  absl::Status status(absl::StatusCode::kInvalidArgument, message);
  if (!violations.empty()) {
    Json list = Json::array();
    for (const FieldViolation& v : violations) {
      list.push_back({{"field", v.field}, {"description", v.description}});
    }
    status.SetPayload(kBadRequestType, absl::Cord(list.dump()));
  }
  return status;
}

absl::Status FirstViolation(std::vector<FieldViolation> violations) {
  std::string message = violations.empty() ? "invalid request" : violations.front().description;
  return InvalidArgument(std::move(message), std::move(violations));
}

absl::Status InvalidField(const std::string& field, const std::string& description) {
  return InvalidArgument(absl::StrCat("Invalid value for field '", field, "': ", description),
                         {{field, description}});
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string_view RpcStatusName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kUnknown:
      return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status) {
  std::vector<FieldViolation> out;
  absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestType);
  if (!payload) return out;
  Json list = Json::parse(std::string(*payload), nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return out;
  for (const Json& v : list) {
    out.push_back({v.value("field", ""), v.value("description", "")});
  }
  return out;
}

Json GoogleErrorBody(const absl::Status& status) {
  Json error = {{"code", HttpStatusFor(status.code())},
                {"message", std::string(status.message())},
                {"status", std::string(RpcStatusName(status.code()))}};
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (!violations.empty()) {
    Json list = Json::array();
    for (const FieldViolation& v : violations) {
      list.push_back({{"field", v.field}, {"description", v.description}});
    }
    error["details"] = Json::array({{{"@type", kBadRequestType}, {"fieldViolations", list}}});
  }
  return {{"error", error}};
}

EmuResponse GoogleErrorResponse(const absl::Status& status) {
  return JsonResponse(GoogleErrorBody(status), HttpStatusFor(status.code()));
}

EmuResponse JsonResponse(const Json& body, int status) {
  EmuResponse response;
  response.status = status;
  response.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return response;
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

std::optional<absl::Duration> ParseProtoDuration(std::string_view text) {
  if (text.size() < 2 || text.back() != 's' || text.size() > 32) return std::nullopt;
  std::string_view number = text.substr(0, text.size() - 1);
  for (char c : number) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return std::nullopt;
  }
  double seconds = 0;
  if (!absl::SimpleAtod(std::string(number), &seconds) || seconds < 0) return std::nullopt;
  return absl::Seconds(seconds);
}

std::string FormatProtoDuration(absl::Duration d) {
  int64_t micros = absl::ToInt64Microseconds(d);
  if (micros % 1000000 == 0) return absl::StrCat(micros / 1000000, "s");
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.6fs", static_cast<double>(micros) / 1e6);
  return buffer;
}

std::optional<bool> ParseQueryBool(std::string_view text) {
  std::string lower;
  for (char c : text)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "true" || lower == "1") return true;
  if (lower == "false" || lower == "0" || lower.empty()) return false;
  return std::nullopt;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Json Prune(const Json& value) {
  if (value.is_object()) {
    Json out = Json::object();
    for (auto it = value.begin(); it != value.end(); ++it) {
      Json child = Prune(it.value());
      if (child.is_null()) continue;
      if (child.is_string() && child.get_ref<const std::string&>().empty()) continue;
      if ((child.is_object() || child.is_array()) && child.empty()) continue;
      out[it.key()] = std::move(child);
    }
    return out;
  }
  if (value.is_array()) {
    Json out = Json::array();
    for (const Json& item : value) out.push_back(Prune(item));
    return out;
  }
  return value;
}

std::string IdSource::Uuid4() {
  std::string hex = Hex(32);
  hex[12] = '4';
  hex[16] = "89ab"[rng_() % 4];
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20, 12));
}

std::string IdSource::LowerLetters(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out.push_back(static_cast<char>('a' + rng_() % 26));
  return out;
}

std::string IdSource::Hex(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out.push_back("0123456789abcdef"[rng_() % 16]);
  return out;
}

bool IsDnsLabel(std::string_view name, size_t max_length) {
  if (name.empty() || name.size() > max_length) return false;
  if (name.front() < 'a' || name.front() > 'z' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

std::string PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      auto nibble = [](char h) { return h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10; };
      out.push_back(static_cast<char>(nibble(text[i + 1]) * 16 + nibble(text[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back("0123456789abcdef"[digest[i] >> 4]);
    out.push_back("0123456789abcdef"[digest[i] & 15]);
  }
  return out;
}

std::string Base64(std::string_view data) {
  return absl::Base64Escape(absl::string_view(data.data(), data.size()));
}

}  // namespace runway::emulator
