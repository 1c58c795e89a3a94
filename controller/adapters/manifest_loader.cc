#include "controller/adapters/manifest_loader.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/adapters/manifest_parser.h"
#include "controller/core/desired_service_rules.h"

namespace runway {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using FileId = std::pair<dev_t, ino_t>;

struct ManifestFile {
  std::string path;
  DocumentFormat format;
};

DocumentFormat FormatOf(const std::string& path) {
  return absl::EndsWithIgnoreCase(path, ".json") ? DocumentFormat::kJson : DocumentFormat::kYaml;
}

bool IsManifestName(const std::string& name) {
  return absl::EndsWithIgnoreCase(name, ".yaml") || absl::EndsWithIgnoreCase(name, ".yml") ||
         absl::EndsWithIgnoreCase(name, ".json");
}

// Line of `path`, or of its nearest ancestor that has one (a missing field has no line).
int LineOf(const std::map<std::string, int>& lines, std::string path, int fallback) {
  while (true) {
    if (auto it = lines.find(path); it != lines.end()) return it->second;
    if (path.empty()) return fallback;
    const size_t cut = path.find_last_of(".[");
    path = cut == std::string::npos ? "" : path.substr(0, cut);
  }
}

std::string StringField(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

bool IsDescendant(const std::string& path, const std::string& ancestor) {
  return path.size() > ancestor.size() && absl::StartsWith(path, ancestor) &&
         (path[ancestor.size()] == '.' || path[ancestor.size()] == '[');
}

// Schema errors describe the input's shape; rule and conversion errors describe its meaning. A
// rule error that a schema error explains (a field inside it, such as a sum over a percent that
// is not a number) is noise; a rule error on the same field as a schema error says it better (a
// digest hint beats "does not match pattern").
FieldErrors MergeErrors(const FieldErrors& input_errors, const FieldErrors& rule_errors) {
  FieldErrors merged;
  std::set<std::string> rule_paths;
  for (const FieldError& rule : rule_errors) {
    const bool explained =
        rule.path != "spec" && !rule.path.empty() &&
        std::any_of(input_errors.begin(), input_errors.end(),
                    [&](const FieldError& e) { return IsDescendant(e.path, rule.path); });
    if (!explained) {
      merged.push_back(rule);
      rule_paths.insert(rule.path);
    }
  }
  for (const FieldError& error : input_errors) {
    if (rule_paths.count(error.path) == 0) merged.push_back(error);
  }
  return merged;
}

class TreeWalker {
 public:
  TreeWalker(int max_depth, std::vector<ManifestFile>& files, std::vector<Diagnostic>& diagnostics)
      : max_depth_(max_depth), files_(files), diagnostics_(diagnostics) {}

  void AddPath(const std::string& path) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
      diagnostics_.push_back({path, 0, 0, "", absl::StrCat("cannot read: ", std::strerror(errno))});
      return;
    }
    if (S_ISDIR(info.st_mode)) {
      std::vector<FileId> ancestors;
      WalkDirectory(path, info, ancestors);
    } else if (S_ISREG(info.st_mode)) {
      AddFile(path, info);
    } else {
      diagnostics_.push_back(
          {path, 0, 0, "", "not a regular file or directory: pass manifest files or directories"});
    }
  }

 private:
  void AddFile(const std::string& path, const struct stat& info) {
    if (!seen_files_.insert({info.st_dev, info.st_ino}).second) {
      spdlog::debug("{}: already loaded through another path; skipped", path);
      return;
    }
    files_.push_back({path, FormatOf(path)});
  }

  void WalkDirectory(const std::string& dir, const struct stat& info,
                     std::vector<FileId>& ancestors) {
    const FileId id{info.st_dev, info.st_ino};
    if (std::find(ancestors.begin(), ancestors.end(), id) != ancestors.end()) {
      diagnostics_.push_back({dir, 0, 0, "",
                              "directory loop: this path leads back to a directory above it "
                              "(through a symlink); skipped it, remove the symlink"});
      return;
    }
    if (static_cast<int>(ancestors.size()) >= max_depth_) {
      diagnostics_.push_back(
          {dir, 0, 0, "",
           absl::StrCat("directory tree is deeper than ", max_depth_, " levels; skipped it")});
      return;
    }
    std::error_code error;
    std::vector<std::string> entries;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
      entries.push_back(it->path().filename().string());
    }
    if (error) {
      diagnostics_.push_back({dir, 0, 0, "", absl::StrCat("cannot list: ", error.message())});
      return;
    }
    std::sort(entries.begin(), entries.end());
    ancestors.push_back(id);
    for (const std::string& name : entries) {
      if (name.empty() || name[0] == '.') continue;
      const std::string child = (fs::path(dir) / name).string();
      struct stat child_info;
      if (::stat(child.c_str(), &child_info) != 0) {
        spdlog::debug("{}: {}; skipped", child, std::strerror(errno));  // e.g. dangling symlink
        continue;
      }
      if (S_ISDIR(child_info.st_mode)) {
        WalkDirectory(child, child_info, ancestors);
      } else if (S_ISREG(child_info.st_mode) && IsManifestName(name)) {
        AddFile(child, child_info);
      }
    }
    ancestors.pop_back();
  }

  const int max_depth_;
  std::vector<ManifestFile>& files_;
  std::vector<Diagnostic>& diagnostics_;
  std::set<FileId> seen_files_;
};

// Reads at most `limit` + 1 bytes, so a huge file costs no more than the limit. Never blocks on
// a FIFO: callers only pass regular files, and O_NONBLOCK guards a race with a swapped path.
absl::StatusOr<std::string> ReadBounded(const std::string& path, size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open: ", std::strerror(errno)));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError("not a regular file");
  }
  if (static_cast<size_t>(info.st_size) > limit) {
    ::close(fd);
    return absl::InvalidArgumentError(FileTooLargeMessage(info.st_size, limit));
  }
  std::string content;
  char buffer[65536];
  while (content.size() <= limit) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot read: ", std::strerror(saved)));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return content;
}

}  // namespace

std::string FormatDiagnostic(const Diagnostic& diagnostic) {
  std::string out = diagnostic.file;
  if (diagnostic.document > 0) absl::StrAppend(&out, ":", diagnostic.document);
  if (!diagnostic.field.empty()) absl::StrAppend(&out, ": ", diagnostic.field);
  absl::StrAppend(&out, ": ", diagnostic.message);
  return out;
}

ManifestLoad ManifestLoader::Load(const std::vector<std::string>& paths) const {
  ManifestLoad load;
  std::vector<ManifestFile> files;
  TreeWalker walker(options_.max_directory_depth, files, load.diagnostics);
  for (const std::string& path : paths) walker.AddPath(path);
  std::set<std::string> seen;
  for (const ManifestFile& file : files) {
    ++load.files;
    absl::StatusOr<std::string> text = ReadBounded(file.path, options_.limits.max_file_bytes);
    if (!text.ok()) {
      load.diagnostics.push_back({file.path, 0, 0, "", std::string(text.status().message())});
      continue;
    }
    const std::string& content = *text;
    uint64_t file_hash = 14695981039346656037ull;
    for (unsigned char c : content) file_hash = (file_hash ^ c) * 1099511628211ull;
    for (const std::string* part : {&file.path, &content}) {
      for (unsigned char c : *part) load.content_hash = (load.content_hash ^ c) * 1099511628211ull;
      load.content_hash = (load.content_hash ^ 0xFF) * 1099511628211ull;  // separator
    }
    ManifestLoad fragment;
    bool cached = false;
    {
      absl::MutexLock lock(&cache_mutex_);
      auto hit = cache_.find(file.path);
      if (hit != cache_.end() && hit->second.hash == file_hash) {
        fragment = hit->second.result;
        cached = true;
      }
    }
    if (!cached) {
      LoadText(file.path, *text, file.format, fragment);
      absl::MutexLock lock(&cache_mutex_);
      cache_[file.path] = CachedFile{file_hash, fragment};
    }
    seen.insert(file.path);
    for (LoadedService& service : fragment.services) load.services.push_back(std::move(service));
    for (Diagnostic& diagnostic : fragment.diagnostics) {
      load.diagnostics.push_back(std::move(diagnostic));
    }
    load.documents += fragment.documents;
    load.skipped_documents += fragment.skipped_documents;
    load.invalid_documents += fragment.invalid_documents;
    load.invalid_keys.insert(fragment.invalid_keys.begin(), fragment.invalid_keys.end());
  }
  {
    // Forget files that are gone, so the cache never outgrows the tree.
    absl::MutexLock lock(&cache_mutex_);
    for (auto it = cache_.begin(); it != cache_.end();) {
      it = seen.count(it->first) ? std::next(it) : cache_.erase(it);
    }
  }
  CheckOwnership(load);
  return load;
}

void ManifestLoader::LoadText(const std::string& file, std::string_view text, DocumentFormat format,
                              ManifestLoad& load) const {
  absl::StatusOr<std::vector<ParsedDocument>> documents =
      ReadDocuments(text, format, options_.limits);
  if (!documents.ok()) {
    load.diagnostics.push_back({file, 0, 0, "", std::string(documents.status().message())});
    return;
  }
  for (ParsedDocument& document : *documents) LoadDocument(file, document, load);
}

void ManifestLoader::LoadDocument(const std::string& file, ParsedDocument& document,
                                  ManifestLoad& load) const {
  ++load.documents;
  if (document.error) {
    ++load.invalid_documents;
    load.diagnostics.push_back({file, document.index, document.error_line, "", *document.error});
    return;
  }
  json& value = document.value;
  if (!value.is_object()) {
    ++load.invalid_documents;
    load.diagnostics.push_back({file, document.index, document.first_line, "",
                                "document is not a map: a manifest starts with apiVersion and "
                                "kind"});
    return;
  }
  const std::string kind = StringField(value, "kind");
  const std::string api_version = StringField(value, "apiVersion");
  if (kind != "CloudRunService" && !absl::StartsWith(api_version, "runway.dev/")) {
    ++load.skipped_documents;
    spdlog::debug("{}:{}: skipping {} {} (not a Runway kind)", file, document.index,
                  api_version.empty() ? "<no apiVersion>" : api_version,
                  kind.empty() ? "<no kind>" : kind);
    return;
  }
  json defaulted = std::move(value);  // the document is not read again after this
  const FieldErrors schema_errors = schema_.ValidateAndDefault(defaulted);
  ParsedService parsed = DesiredServiceFromJson(defaulted);
  FieldErrors meaning_errors = parsed.errors;
  const FieldErrors rule_errors = ValidateDesiredService(parsed.service);
  meaning_errors.insert(meaning_errors.end(), rule_errors.begin(), rule_errors.end());
  const FieldErrors errors = MergeErrors(schema_errors, meaning_errors);
  if (errors.empty()) {
    load.services.push_back({std::move(parsed.service), file, document.index});
    return;
  }
  ++load.invalid_documents;
  if (!parsed.service.key.name.empty()) {
    load.invalid_keys[{file, document.index}] = parsed.service.key;
  }
  std::vector<Diagnostic> found;
  for (const FieldError& error : errors) {
    found.push_back({file, document.index, LineOf(document.lines, error.path, document.first_line),
                     error.path, error.message});
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
  load.diagnostics.insert(load.diagnostics.end(), found.begin(), found.end());
}

void ManifestLoader::CheckOwnership(ManifestLoad& load) const {
  std::vector<ServiceClaim> claims;
  for (const LoadedService& loaded : load.services) {
    claims.push_back({loaded.service.key, loaded.service.target,
                      absl::StrCat(loaded.file, ":", loaded.document)});
  }
  const std::vector<OwnershipConflict> conflicts = FindOwnershipConflicts(claims);
  if (conflicts.empty()) return;
  std::set<size_t> rejected;
  std::vector<Diagnostic> found;
  for (const OwnershipConflict& conflict : conflicts) {
    const LoadedService& loaded = load.services[conflict.claim_index];
    found.push_back({loaded.file, loaded.document, 0, conflict.error.path, conflict.error.message});
    rejected.insert(conflict.claim_index);
  }
  std::stable_sort(found.begin(), found.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.document) < std::tie(b.file, b.document);
  });
  load.diagnostics.insert(load.diagnostics.end(), found.begin(), found.end());
  std::vector<LoadedService> kept;
  for (size_t i = 0; i < load.services.size(); ++i) {
    if (rejected.count(i) == 0) kept.push_back(std::move(load.services[i]));
  }
  load.invalid_documents += static_cast<int>(rejected.size());
  load.services = std::move(kept);
}

}  // namespace runway
