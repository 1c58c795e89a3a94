#pragma once

// Lets gMock print FieldError values in failure messages.

#include <ostream>

#include "controller/core/field_error.h"

namespace runway {

inline void PrintTo(const FieldError& error, std::ostream* out) {
  *out << "{" << error.path << ": " << error.message << "}";
}

}  // namespace runway
