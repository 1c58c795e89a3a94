#include "controller/adapters/file_manifest_source.h"

#include <sys/stat.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace runway {

absl::StatusOr<ManifestSnapshot> FileManifestSource::Snapshot() {
  for (const std::string& path : paths_) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
      return absl::NotFoundError(absl::StrCat("manifest path ", path, " does not exist"));
    }
  }
  ManifestLoad load = loader_.Load(paths_);
  ManifestSnapshot snapshot;
  snapshot.version = absl::StrFormat("%016x", load.content_hash);
  // Group diagnostics per document so each invalid manifest is reported once, with all errors.
  std::map<std::string, InvalidManifest> invalid;
  std::vector<std::string> order;
  for (const Diagnostic& diagnostic : load.diagnostics) {
    const std::string origin = diagnostic.document > 0
                                   ? absl::StrCat(diagnostic.file, ":", diagnostic.document)
                                   : diagnostic.file;
    auto [it, inserted] = invalid.try_emplace(origin);
    if (inserted) {
      it->second.origin = origin;
      auto key = load.invalid_keys.find({diagnostic.file, diagnostic.document});
      if (key != load.invalid_keys.end()) it->second.key = key->second;
      order.push_back(origin);
    }
    it->second.errors.push_back({diagnostic.field, diagnostic.message});
  }
  for (const std::string& origin : order) snapshot.invalid.push_back(std::move(invalid[origin]));
  for (LoadedService& loaded : load.services)
    snapshot.services.push_back(std::move(loaded.service));
  return snapshot;
}

}  // namespace runway
