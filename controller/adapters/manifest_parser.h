#pragma once

// Converts a schema-validated, defaulted CloudRunService document (JSON) into the domain model.
// Lenient by design: a field of the wrong type was already reported by the schema and is skipped
// here, so one bad field never hides the rule checks of the others.

#include "controller/core/desired_service.h"
#include "controller/core/field_error.h"
#include "nlohmann/json.hpp"

namespace runway {

struct ParsedService {
  DesiredService service;
  // Problems only the conversion can see: durations that do not parse, a metadata.name that
  // cannot double as the Cloud Run service id.
  FieldErrors errors;
};

ParsedService DesiredServiceFromJson(const nlohmann::json& document);

}  // namespace runway
