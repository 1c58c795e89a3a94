#pragma once

// The `filter` query parameter of the emulated Cloud Build v1 builds.list: parsing and evaluation
// against Build resources in their v1 JSON form. The accepted language is the part of AIP-160
// (https://google.aip.dev/160) that gcloud uses when it rewrites `gcloud builds list --filter` and
// `--ongoing` into a server-side filter; see docs "Cloud Build API v1", "List filter".

#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace runway::emulator {

namespace build_filter_internal {
struct Node;  // The parsed expression tree; defined in build_filter.cc.
}  // namespace build_filter_internal

// A parsed builds.list filter. Immutable once parsed; copies share the parsed tree, so copying is
// cheap and a filter may be evaluated from several threads at once.
//
// Grammar (AIP-160 precedence: OR binds tighter than AND and than juxtaposition):
//   filter      = [ expression ]
//   expression  = sequence { "AND" sequence }
//   sequence    = factor { factor }            juxtaposition means AND
//   factor      = term { "OR" term }
//   term        = { "NOT" | "-" } simple
//   simple      = restriction | "(" expression ")"
//   restriction = key comparator value
//   comparator  = "=" | "!=" | ":" | "<" | "<=" | ">" | ">="
//   value       = quoted | bare | "*"          "*" only after ":", meaning "has any value"
// Keywords AND, OR and NOT are case-sensitive. A quoted value is double-quoted and knows the
// escapes \" and \\ only. A bare value is a run of ASCII letters, digits and -_.:/@ and may not
// be a keyword. Whitespace (space, tab, CR, LF) separates tokens.
//
// Keys (snake_case) and the Build JSON fields they read:
//   build_id                       id
//   images                         images[]                       repeated
//   options.requested_verify_option  options.requestedVerifyOption
//   project_id                     projectId
//   results.images.digest          results.images[].digest        repeated
//   results.images.name            results.images[].name          repeated
//   source_provenance.resolved_repo_source.commit_sha
//                                  sourceProvenance.resolvedRepoSource.commitSha
//   source.repo_source.{branch_name,commit_sha,repo_name,tag_name}
//                                  source.repoSource.{branchName,commitSha,repoName,tagName}
//   source.storage_source.{bucket,object}  source.storageSource.{bucket,object}
//   status                         status
//   tags                           tags[]                         repeated
//   trigger_id                     buildTriggerId
//   create_time, finish_time, start_time   createTime, finishTime, startTime   (times)
//
// Evaluation:
// * String keys compare byte-wise: "=" and ":" are equality, "<" etc. are lexicographic. On a
//   repeated field a comparison holds when any element satisfies it, except "!=", which holds
//   when no element equals the value. A missing field (or one that is not a JSON string) has no
//   values: "!=" holds, every other comparison fails.
// * Time keys compare instants, so "2025-01-01T00:00:00Z" equals "2025-01-01T01:00:00.000+01:00".
//   The filter's value must be RFC 3339 (checked by Parse). A time field that is missing or not
//   RFC 3339 fails every comparison, "!=" included.
// * "key:*" holds when the field has at least one non-empty value (a parseable time for time keys).
class BuildFilter {
 public:
  // The empty filter: matches every build.
  BuildFilter() = default;

  // Parses a Cloud Build list filter. An empty or all-blank text matches every build.
  // Errors are absl::InvalidArgumentError:
  // * "filter: column N: expected ..., found ..." for syntax errors and bad time values, where N
  //   is the 1-based byte column of the offending spot (for an unterminated quote: of the quote);
  // * "filter: unknown key "foo"; filterable keys are: build_id, create_time, ...";
  // * texts over kMaxLength bytes and parentheses nested deeper than kMaxDepth.
  static absl::StatusOr<BuildFilter> Parse(std::string_view text);

  // True when `build`, a Build in Cloud Build v1 JSON (lowerCamelCase fields), satisfies the
  // filter. Never fails: fields of unexpected JSON types count as missing.
  bool Matches(const nlohmann::json& build) const;

  // Limits against hostile input. Nesting is bounded so that parsing and evaluation recurse at
  // most a small, fixed number of frames.
  static constexpr size_t kMaxLength = 4096;
  static constexpr int kMaxDepth = 32;

 private:
  explicit BuildFilter(std::shared_ptr<const build_filter_internal::Node> root)
      : root_(std::move(root)) {}

  // Null for the empty filter.
  std::shared_ptr<const build_filter_internal::Node> root_;
};

}  // namespace runway::emulator
