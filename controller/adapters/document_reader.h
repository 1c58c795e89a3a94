#pragma once

// Turns the bytes of one manifest file into JSON documents, defending against hostile input:
// files over a size limit, binary data, invalid UTF-8, nesting deep enough to overflow a
// recursive parser, and YAML alias bombs. yaml-cpp and nlohmann exceptions stop here.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace runway {

enum class DocumentFormat { kYaml, kJson };

struct DocumentLimits {
  size_t max_file_bytes = 1 << 20;
  // Deeper nesting is refused before any recursive parser sees it. Real manifests stay under 12.
  int max_depth = 64;
  // Nodes produced after alias expansion; bounds the cost of `*alias` fan-out (billion laughs).
  size_t max_nodes = 200000;
};

// One document of a file. Documents that hold nothing (a bare `---`) are not returned.
struct ParsedDocument {
  int index = 0;       // 1-based among the file's non-empty documents
  int first_line = 0;  // 1-based line where the document starts
  nlohmann::json value;
  // 1-based line of every field, keyed by its manifest path (`spec.traffic[1].percent`).
  std::map<std::string, int> lines;
  // Set when this document could not be read; `value` is then null. Other documents of the file
  // are still returned.
  std::optional<std::string> error;
  int error_line = 0;
};

// Splits `text` into documents and converts each to JSON. Returns kInvalidArgument, with a
// message naming the problem and its fix, when the file as a whole is unusable: too large,
// binary, not UTF-8, or holding no document at all.
absl::StatusOr<std::vector<ParsedDocument>> ReadDocuments(std::string_view text,
                                                          DocumentFormat format,
                                                          const DocumentLimits& limits);

// The error for a file of `size` bytes over the `limit`, shared by the reader and the loader (which
// refuses such a file before reading it).
std::string FileTooLargeMessage(uint64_t size, uint64_t limit);

// Formats a field path the way error messages show it: `a.b[2].c`, quoting keys that are not
// identifiers (`labels["app.kubernetes.io/name"]`).
std::string AppendKey(const std::string& path, const std::string& key);
std::string AppendIndex(const std::string& path, size_t index);

// A conservative estimate (never below the truth for the YAML and JSON a manifest uses) of how
// deeply a recursive parser would nest on `text`: block indentation levels, sequence indicators
// and flow brackets outside quotes and comments.
int EstimateNestingDepth(std::string_view text);

}  // namespace runway
