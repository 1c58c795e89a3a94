#include "controller/app/validate_command.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "controller/adapters/manifest_loader.h"
#include "controller/adapters/manifest_schema.h"
#include "nlohmann/json.hpp"

namespace runway {
namespace {

using nlohmann::ordered_json;

std::string Count(size_t n, const std::string& singular, const std::string& plural) {
  return absl::StrCat(n, " ", n == 1 ? singular : plural);
}

void PrintText(const ManifestLoad& load, std::ostream& out) {
  for (const Diagnostic& diagnostic : load.diagnostics) out << FormatDiagnostic(diagnostic) << "\n";
  const size_t manifests = load.services.size() + load.invalid_documents;
  out << Count(load.files, "file", "files") << ", "
      << Count(manifests, "CloudRunService manifest", "CloudRunService manifests") << ": "
      << load.services.size() << " valid, " << load.invalid_documents << " invalid ("
      << Count(load.diagnostics.size(), "error", "errors") << ")";
  if (load.skipped_documents > 0) {
    out << "; " << Count(load.skipped_documents, "document", "documents")
        << " of other kinds skipped";
  }
  out << "\n";
}

void PrintJson(const ManifestLoad& load, std::ostream& out) {
  ordered_json doc;
  doc["valid"] = load.diagnostics.empty();
  doc["files"] = load.files;
  doc["documents"] = load.documents;
  doc["skippedDocuments"] = load.skipped_documents;
  doc["manifests"] = ordered_json::array();
  for (const LoadedService& loaded : load.services) {
    doc["manifests"].push_back({{"file", loaded.file},
                                {"document", loaded.document},
                                {"namespace", loaded.service.key.name_space},
                                {"name", loaded.service.key.name},
                                {"service", loaded.service.target.ResourceName()}});
  }
  doc["errors"] = ordered_json::array();
  for (const Diagnostic& diagnostic : load.diagnostics) {
    doc["errors"].push_back({{"file", diagnostic.file},
                             {"document", diagnostic.document},
                             {"line", diagnostic.line},
                             {"field", diagnostic.field},
                             {"message", diagnostic.message}});
  }
  out << doc.dump(2, ' ', false, ordered_json::error_handler_t::replace) << "\n";
}

}  // namespace

int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err) {
  if (options.output != "text" && options.output != "json") {
    err << "runway validate: -o/--output: \"" << options.output << "\" is not one of text, json\n";
    return kExitUsage;
  }
  for (const std::string& path : options.paths) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
      err << "runway validate: " << path << ": no such file or directory\n";
      return kExitUsage;
    }
  }
  absl::StatusOr<std::unique_ptr<ManifestSchema>> schema = ManifestSchema::Embedded();
  if (!schema.ok()) {
    err << "runway validate: embedded CRD: " << schema.status().message() << "\n";
    return kExitInvalid;
  }
  LoadOptions load_options;
  load_options.limits.max_file_bytes = options.max_file_bytes;
  const ManifestLoad load = ManifestLoader(**schema, load_options).Load(options.paths);
  if (options.output == "json") {
    PrintJson(load, out);
  } else {
    PrintText(load, out);
  }
  return load.diagnostics.empty() ? kExitOk : kExitInvalid;
}

}  // namespace runway
