#pragma once

// `runway validate PATH...`: loads and validates manifests and prints the outcome.

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace runway {

// Exit codes shared by every command, for CI: 0 all good, 1 something is invalid or failed,
// 2 the command line itself is wrong.
inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;
inline constexpr int kExitUsage = 2;

struct ValidateOptions {
  std::vector<std::string> paths;
  std::string output = "text";  // text | json
  size_t max_file_bytes = 1 << 20;
};

// Writes `file:doc: field: message` lines and a summary (or one JSON object) to `out`. Returns
// kExitOk, kExitInvalid, or kExitUsage for a missing path or a bad option value.
int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err);

}  // namespace runway
