#pragma once

// A compact description of the Cloud Run v2 request messages, enough to answer a body the way
// Google's JSON transcoding does: an unknown field or a value of the wrong type is a 400
// INVALID_ARGUMENT naming the field ("Invalid JSON payload received. Unknown name ...").

#include <string>

#include "absl/status/status.h"
#include "tests/emulator/emulator_common.h"

namespace runway::emulator {

// Checks `value` against the message `message_type` ("Service", "RevisionTemplate", ...). `path`
// is the field path used in errors, e.g. "service". Collects every problem, not only the first.
absl::Status CheckMessage(const Json& value, const std::string& message_type,
                          const std::string& path);

}  // namespace runway::emulator
