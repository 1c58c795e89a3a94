#pragma once

// Loads CloudRunService manifests from files and directory trees (recursively, following symlinks
// but never around a loop), validates each against the CRD schema and the rules of
// core/desired_service_rules.h, and reports every problem with file, document, line and field.
// One bad manifest never stops the others.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "controller/adapters/document_reader.h"
#include "controller/adapters/manifest_schema.h"
#include "controller/core/desired_service.h"

namespace runway {

struct Diagnostic {
  std::string file;
  int document = 0;  // 1-based; 0 for the file as a whole
  int line = 0;      // 1-based; 0 when unknown
  std::string field;
  std::string message;
};

// `file:doc: field: message`, the form `runway validate` prints.
std::string FormatDiagnostic(const Diagnostic& diagnostic);

struct LoadedService {
  DesiredService service;
  std::string file;
  int document = 0;
};

struct ManifestLoad {
  std::vector<LoadedService> services;  // only manifests without any error
  std::vector<Diagnostic> diagnostics;
  int files = 0;
  int documents = 0;
  int skipped_documents = 0;  // documents of other kinds
  int invalid_documents = 0;
  // The metadata key of each invalid manifest that names one, by (file, document), so its status
  // can say why it is not applied.
  std::map<std::pair<std::string, int>, ObjectKey> invalid_keys;
  // FNV-1a over every file's path and bytes, in load order: equal loads have equal hashes.
  uint64_t content_hash = 14695981039346656037ull;
};

struct LoadOptions {
  DocumentLimits limits;
  int max_directory_depth = 32;
};

class ManifestLoader {
 public:
  ManifestLoader(const ManifestSchema& schema, LoadOptions options)
      : schema_(schema), options_(options) {}

  // Loads every path: a file of any name, or a directory searched recursively for *.yaml, *.yml
  // and *.json (names starting with '.' are skipped). A path that cannot be read becomes a
  // diagnostic.
  ManifestLoad Load(const std::vector<std::string>& paths) const;

  // Validates manifests from `text` as if read from `file`, appending to `load`. Does not check
  // ownership conflicts between files; Load does that once all files are in.
  void LoadText(const std::string& file, std::string_view text, DocumentFormat format,
                ManifestLoad& load) const;

 private:
  void LoadDocument(const std::string& file, ParsedDocument& document, ManifestLoad& load) const;
  void CheckOwnership(ManifestLoad& load) const;

  const ManifestSchema& schema_;
  const LoadOptions options_;

  // What each file yielded last time, by path, with the hash of its bytes: a resync re-reads
  // every file but validates only the ones that changed (validation is most of the cost).
  struct CachedFile {
    uint64_t hash = 0;
    ManifestLoad result;
  };
  mutable absl::Mutex cache_mutex_;
  mutable std::map<std::string, CachedFile> cache_ ABSL_GUARDED_BY(cache_mutex_);
};

}  // namespace runway
