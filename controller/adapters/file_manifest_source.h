#pragma once

// FileManifestSource: desired state from manifest files and directory trees (file mode). Each
// Snapshot re-reads the paths; the version is a hash of every file's path and content.

#include <string>
#include <vector>

#include "controller/adapters/manifest_loader.h"
#include "controller/interfaces/manifest_source.h"

namespace runway {

class FileManifestSource : public ManifestSource {
 public:
  FileManifestSource(const ManifestSchema& schema, std::vector<std::string> paths,
                     LoadOptions options = {})
      : loader_(schema, options), paths_(std::move(paths)) {}

  // ManifestSource
  absl::StatusOr<ManifestSnapshot> Snapshot() override;

 private:
  const ManifestLoader loader_;
  const std::vector<std::string> paths_;
};

}  // namespace runway
