#pragma once

// A hash that names things persistently (revision names, build tags): the same text gives the
// same value across builds, platforms and restarts, which std::hash does not promise.

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace runway {

// FNV-1a, 64 bits.
inline uint64_t StableHash(const std::string& text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// Appends a length-prefixed field, so no value can forge a separator.
inline void AppendHashField(std::string& out, const std::string& name, const std::string& value) {
  absl::StrAppend(&out, name, ":", value.size(), ":", value, ";");
}

}  // namespace runway
