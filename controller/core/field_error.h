#pragma once

#include <string>
#include <vector>

namespace runway {

// One problem with one field of a manifest. `path` is the field in manifest syntax
// (`spec.traffic[1].percent`, empty for the whole document); `message` says what is wrong and
// what to do about it, in one sentence a person can act on.
struct FieldError {
  std::string path;
  std::string message;

  friend bool operator==(const FieldError&, const FieldError&) = default;
};

using FieldErrors = std::vector<FieldError>;

}  // namespace runway
