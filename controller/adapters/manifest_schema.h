#pragma once

// Validates manifests against the CloudRunService CRD's openAPIV3Schema, the single source of
// truth for the schema (crd/cloudrunservices.runway.dev.yaml, embedded at build time). Adds what
// a Kubernetes API server would do and valijson does not: schema defaults, unknown-field errors
// (with a "did you mean" for close names) and messages that name the field and the fix.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controller/core/field_error.h"
#include "nlohmann/json.hpp"

namespace valijson {
class Schema;
}

namespace runway {

// The CRD text compiled into the binary.
extern const char kCloudRunServiceCrdYaml[];

class ManifestSchema {
 public:
  // Builds the validator from a CRD document (YAML). kInvalidArgument if it holds no usable
  // spec.versions[0].schema.openAPIV3Schema.
  static absl::StatusOr<std::unique_ptr<ManifestSchema>> FromCrdYaml(const std::string& crd_yaml);
  // The schema of the CRD embedded in this binary.
  static absl::StatusOr<std::unique_ptr<ManifestSchema>> Embedded();

  ~ManifestSchema();
  ManifestSchema(const ManifestSchema&) = delete;
  ManifestSchema& operator=(const ManifestSchema&) = delete;

  // Fills in schema defaults in `document`, then returns every schema violation, one per field
  // path at most, in document order. Thread-safe.
  FieldErrors ValidateAndDefault(nlohmann::json& document) const;

  const nlohmann::json& openapi_schema() const { return openapi_schema_; }

 private:
  ManifestSchema(nlohmann::json openapi_schema, std::unique_ptr<valijson::Schema> compiled);

  nlohmann::json openapi_schema_;
  std::unique_ptr<valijson::Schema> compiled_;
};

// The closest of `candidates` to `word` when it is close enough to be a likely typo, else "".
std::string ClosestName(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace runway
