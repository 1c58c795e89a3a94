#include "controller/adapters/file_status_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace runway {
namespace {

namespace fs = std::filesystem;
// Keeps fields in the order written, so the files read like the documented shape.
using Json = nlohmann::ordered_json;

constexpr char kJsonSuffix[] = ".json";
// NAME_MAX is 255; the temporary file adds "." and ".tmp-XXXXXX" to "<name>.json".
constexpr size_t kMaxNameLength = 230;
constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%SZ";

absl::Status ValidateName(absl::string_view what, absl::string_view value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  // A leading "." also refuses "." and ".." and keeps names apart from our temporary files.
  if (value.front() == '.' || value.find('/') != absl::string_view::npos ||
      value.find('\0') != absl::string_view::npos || value.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", value, "\" cannot be a file name (leading '.', '/', NUL or too long)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateKey(const ObjectKey& key) {
  absl::Status status = ValidateName("namespace", key.name_space);
  return status.ok() ? ValidateName("name", key.name) : status;
}

// Read and write failures: a retry cannot fix permissions or a full disk, it can fix the rest.
absl::Status IoError(int error, absl::string_view action, absl::string_view path) {
  const std::string message = absl::StrCat(action, " ", path, ": ", std::strerror(error));
  switch (error) {
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

std::string FormatRfc3339(absl::Time time) {
  return absl::FormatTime(kTimeFormat, time, absl::UTCTimeZone());
}

// Reads the fields of one JSON object without exceptions. The first problem is recorded in
// *problem as kDataLoss; later reads then return defaults, so callers check once at the end.
class FieldReader {
 public:
  FieldReader(const Json& object, absl::Status* problem) : object_(object), problem_(problem) {
    if (!object.is_object()) Fail("", "is not an object");
  }

  std::string String(const char* field, bool required = true) {
    const Json* value = Find(field, required);
    if (value != nullptr && value->is_string()) return value->get<std::string>();
    if (value != nullptr) Fail(field, "is not a string");
    return "";
  }
  int64_t Int(const char* field, bool required = true) {
    const Json* value = Find(field, required);
    if (value != nullptr && value->is_number_integer()) return value->get<int64_t>();
    if (value != nullptr) Fail(field, "is not an integer");
    return 0;
  }
  absl::Time Time(const char* field) {
    const std::string text = String(field);
    absl::Time time;
    std::string error;
    if (problem_->ok() && !absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
      Fail(field, absl::StrCat("is not an RFC 3339 time: ", error));
    }
    return time;
  }
  // The elements of the array in `field`; none when it is absent.
  std::vector<const Json*> Array(const char* field) {
    std::vector<const Json*> elements;
    const Json* value = Find(field, /*required=*/false);
    if (value != nullptr && !value->is_array()) Fail(field, "is not an array");
    if (value == nullptr || !value->is_array()) return elements;
    for (const Json& element : *value) elements.push_back(&element);
    return elements;
  }

 private:
  const Json* Find(const char* field, bool required) {
    if (!problem_->ok() || !object_.is_object()) return nullptr;
    auto it = object_.find(field);
    if (it != object_.end()) return &*it;
    if (required) Fail(field, "is missing");
    return nullptr;
  }
  void Fail(absl::string_view field, absl::string_view what) {
    if (problem_->ok()) *problem_ = absl::DataLossError(absl::StrCat("\"", field, "\" ", what));
  }

  const Json& object_;
  absl::Status* const problem_;
};

Json ToJson(const ObjectKey& key, const ServiceStatus& status) {
  Json conditions = Json::array();
  for (const Condition& condition : status.conditions) {
    conditions.push_back({{"type", condition.type},
                          {"status", condition.status},
                          {"reason", condition.reason},
                          {"message", condition.message},
                          {"observedGeneration", condition.observed_generation},
                          {"lastTransitionTime", FormatRfc3339(condition.last_transition_time)}});
  }
  Json traffic = Json::array();
  for (const TrafficTarget& target : status.traffic) {
    Json entry = {{"revision", target.revision}, {"percent", target.percent}};
    if (!target.tag.empty()) entry["tag"] = target.tag;
    traffic.push_back(std::move(entry));
  }
  Json out = {{"key", key.ToString()},
              {"observedGeneration", status.observed_generation},
              {"conditions", std::move(conditions)},
              {"revision", status.revision},
              {"traffic", std::move(traffic)}};
  if (status.image) {
    out["image"] = {{"digest", status.image->digest},
                    {"build",
                     {{"id", status.image->build_id},
                      {"logUrl", status.image->log_url},
                      {"builder", status.image->builder}}}};
  }
  return out;
}

absl::StatusOr<ServiceStatus> FromJson(const Json& document, const ObjectKey& key) {
  absl::Status problem;
  FieldReader reader(document, &problem);
  if (const std::string stored = reader.String("key"); problem.ok() && stored != key.ToString()) {
    return absl::DataLossError(absl::StrCat("names key ", stored, ", not ", key.ToString()));
  }
  ServiceStatus status;
  status.observed_generation = reader.Int("observedGeneration");
  status.revision = reader.String("revision", /*required=*/false);
  for (const Json* item : reader.Array("conditions")) {
    FieldReader field(*item, &problem);
    Condition condition;
    condition.type = field.String("type");
    condition.status = field.String("status");
    condition.reason = field.String("reason", /*required=*/false);
    condition.message = field.String("message", /*required=*/false);
    condition.observed_generation = field.Int("observedGeneration", /*required=*/false);
    condition.last_transition_time = field.Time("lastTransitionTime");
    status.conditions.push_back(std::move(condition));
  }
  for (const Json* item : reader.Array("traffic")) {
    FieldReader field(*item, &problem);
    TrafficTarget target;
    target.revision = field.String("revision");
    target.percent = static_cast<int>(field.Int("percent"));
    target.tag = field.String("tag", /*required=*/false);
    status.traffic.push_back(std::move(target));
  }
  if (auto image = document.find("image"); image != document.end() && image->is_object()) {
    FieldReader image_reader(*image, &problem);
    BuiltImage built;
    built.digest = image_reader.String("digest", /*required=*/false);
    if (auto build = image->find("build"); build != image->end() && build->is_object()) {
      FieldReader build_reader(*build, &problem);
      built.build_id = build_reader.String("id", /*required=*/false);
      built.log_url = build_reader.String("logUrl", /*required=*/false);
      built.builder = build_reader.String("builder", /*required=*/false);
    }
    status.image = std::move(built);
  }
  if (!problem.ok()) return problem;
  return status;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no status at ", path));
    return IoError(errno, "cannot open", path);
  }
  std::string contents;
  char buffer[16 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return IoError(error, "cannot read", path);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

absl::StatusOr<Json> ReadDocument(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  Json document = Json::parse(*text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return absl::DataLossError("not valid JSON");
  return document;
}

absl::Status WriteAll(int fd, const std::string& contents) {
  for (size_t written = 0; written < contents.size();) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(errno, "cannot write", "temporary status file");
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Invalid UTF-8 in a message is replaced rather than failing the whole status.
std::string Dump(const Json& document) {
  return document.dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace) + "\n";
}

// fsync of a directory makes a rename or unlink in it durable.
absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, "cannot open", dir);
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  return result == 0 ? absl::OkStatus() : IoError(error, "cannot sync", dir);
}

// Replaces dir/name with `contents`: readers see the old file or the new one, never a part.
absl::Status WriteFileAtomically(const std::string& dir, const std::string& name,
                                 const std::string& contents) {
  std::string temp = absl::StrCat(dir, "/.", name, ".tmp-XXXXXX");
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return IoError(errno, "cannot create a temporary file in", dir);
  absl::Status status = WriteAll(fd, contents);
  // mkostemp creates 0600; status files are meant to be read by other tools.
  if (status.ok() && ::fchmod(fd, 0644) != 0) status = IoError(errno, "cannot chmod", temp);
  if (status.ok() && ::fsync(fd) != 0) status = IoError(errno, "cannot sync", temp);
  if (::close(fd) != 0 && status.ok()) status = IoError(errno, "cannot close", temp);
  const std::string path = absl::StrCat(dir, "/", name);
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
    status = IoError(errno, "cannot rename to", path);
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  return SyncDirectory(dir);
}

// metav1 semantics: an unchanged condition keeps when it last changed.
void ResolveTransitionTimes(const ServiceStatus* previous, absl::Time now, ServiceStatus& next) {
  for (Condition& condition : next.conditions) {
    const Condition* before = nullptr;
    if (previous != nullptr) {
      auto it = std::find_if(previous->conditions.begin(), previous->conditions.end(),
                             [&](const Condition& c) { return c.type == condition.type; });
      if (it != previous->conditions.end()) before = &*it;
    }
    if (before != nullptr && before->status == condition.status) {
      condition.last_transition_time = before->last_transition_time;
    } else if (condition.last_transition_time == absl::UnixEpoch()) {
      condition.last_transition_time = now;
    }
  }
}

void LoadNamespace(const FileStatusStore& store, const fs::path& dir, const std::string& name_space,
                   StoredStatuses& result) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  for (const fs::directory_iterator end; !error && it != end; it.increment(error)) {
    const std::string file = it->path().filename().string();
    if (!absl::EndsWith(file, kJsonSuffix)) continue;
    const ObjectKey key{name_space, file.substr(0, file.size() - std::strlen(kJsonSuffix))};
    if (!ValidateKey(key).ok()) continue;  // hidden files: temporary ones among them
    std::error_code type_error;
    if (fs::symlink_status(it->path(), type_error).type() != fs::file_type::regular) continue;
    absl::StatusOr<ServiceStatus> status = store.Load(key);
    if (status.ok()) {
      result.statuses.emplace_back(key, *std::move(status));
    } else {
      result.warnings.push_back(absl::StrCat(it->path().string(), ": ", status.status().message()));
    }
  }
  if (error) result.warnings.push_back(absl::StrCat(dir.string(), ": ", error.message()));
}

}  // namespace

std::string FileStatusStore::NamespaceDir(const ObjectKey& key) const {
  return absl::StrCat(dir_, "/", key.name_space);
}

std::string FileStatusStore::PathOf(const ObjectKey& key) const {
  return absl::StrCat(NamespaceDir(key), "/", key.name, kJsonSuffix);
}

absl::Status FileStatusStore::Report(const ObjectKey& key, const ServiceStatus& status) {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  absl::MutexLock lock(&write_mutex_);
  // The previous document, if any and readable: a corrupt one is simply replaced.
  absl::StatusOr<Json> previous = ReadDocument(PathOf(key));
  if (!previous.ok() && !absl::IsNotFound(previous.status()) &&
      !absl::IsDataLoss(previous.status())) {
    return previous.status();
  }
  absl::StatusOr<ServiceStatus> previous_status =
      previous.ok() ? FromJson(*previous, key) : previous.status();
  const absl::Time now = clock_->Now();
  ServiceStatus next = status;
  ResolveTransitionTimes(previous_status.ok() ? &*previous_status : nullptr, now, next);

  Json document = ToJson(key, next);
  if (previous.ok() && previous_status.ok()) {
    // Compared as text, as written: invalid UTF-8 is only replaced when dumped.
    Json unchanged = *previous;
    unchanged.erase("updateTime");
    if (Dump(unchanged) == Dump(document)) return absl::OkStatus();
  }
  document["updateTime"] = FormatRfc3339(now);

  std::error_code error;
  fs::create_directories(NamespaceDir(key), error);
  if (error) return IoError(error.value(), "cannot create", NamespaceDir(key));
  return WriteFileAtomically(NamespaceDir(key), absl::StrCat(key.name, kJsonSuffix),
                             Dump(document));
}

absl::StatusOr<ServiceStatus> FileStatusStore::Load(const ObjectKey& key) const {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  absl::StatusOr<Json> document = ReadDocument(PathOf(key));
  if (!document.ok()) return document.status();
  return FromJson(*document, key);
}

absl::StatusOr<StoredStatuses> FileStatusStore::LoadAll() const {
  StoredStatuses result;
  std::error_code error;
  fs::directory_iterator it(dir_, error);
  if (error == std::errc::no_such_file_or_directory) return result;
  for (const fs::directory_iterator end; !error && it != end; it.increment(error)) {
    const std::string name_space = it->path().filename().string();
    if (!ValidateName("namespace", name_space).ok()) continue;
    std::error_code type_error;
    if (fs::symlink_status(it->path(), type_error).type() != fs::file_type::directory) continue;
    LoadNamespace(*this, it->path(), name_space, result);
  }
  if (error) return IoError(error.value(), "cannot list", dir_);
  std::sort(result.statuses.begin(), result.statuses.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return result;
}

absl::Status FileStatusStore::Remove(const ObjectKey& key) {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  absl::MutexLock lock(&write_mutex_);
  const std::string path = PathOf(key);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return IoError(errno, "cannot remove", path);
  }
  // Best effort: a namespace directory that still holds other statuses stays.
  if (::rmdir(NamespaceDir(key).c_str()) == 0) return SyncDirectory(dir_);
  return SyncDirectory(NamespaceDir(key));
}

}  // namespace runway
