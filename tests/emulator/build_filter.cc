#include "tests/emulator/build_filter.h"

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace runway::emulator {
namespace build_filter_internal {

// One filterable key. `path` holds the JSON member names to follow from the Build, with unused
// trailing entries null; an array met anywhere on the way is searched element by element.
struct KeySpec {
  std::string_view name;
  std::array<const char*, 3> path;
  bool time = false;
};

// Sorted by name: the unknown-key message lists them in this order.
constexpr KeySpec kKeys[] = {
    {"build_id", {"id"}},
    {"create_time", {"createTime"}, true},
    {"finish_time", {"finishTime"}, true},
    {"images", {"images"}},
    {"options.requested_verify_option", {"options", "requestedVerifyOption"}},
    {"project_id", {"projectId"}},
    {"results.images.digest", {"results", "images", "digest"}},
    {"results.images.name", {"results", "images", "name"}},
    {"source.repo_source.branch_name", {"source", "repoSource", "branchName"}},
    {"source.repo_source.commit_sha", {"source", "repoSource", "commitSha"}},
    {"source.repo_source.repo_name", {"source", "repoSource", "repoName"}},
    {"source.repo_source.tag_name", {"source", "repoSource", "tagName"}},
    {"source.storage_source.bucket", {"source", "storageSource", "bucket"}},
    {"source.storage_source.object", {"source", "storageSource", "object"}},
    {"source_provenance.resolved_repo_source.commit_sha",
     {"sourceProvenance", "resolvedRepoSource", "commitSha"}},
    {"start_time", {"startTime"}, true},
    {"status", {"status"}},
    {"tags", {"tags"}},
    {"trigger_id", {"buildTriggerId"}},
};

enum class Op { kEq, kNe, kHas, kLt, kLe, kGt, kGe };

struct Node {
  enum class Kind { kAnd, kOr, kRestriction };

  Kind kind = Kind::kRestriction;
  // Inverts the node's result: the parity of the NOT and "-" prefixes of its term.
  bool negated = false;
  // kAnd and kOr: at least two operands.
  std::vector<std::unique_ptr<Node>> children;
  // kRestriction.
  const KeySpec* key = nullptr;
  Op op = Op::kEq;
  bool any_value = false;  // "key:*"
  std::string value;
  absl::Time time;  // `value` parsed, for time keys
};

}  // namespace build_filter_internal

namespace {

using build_filter_internal::KeySpec;
using build_filter_internal::kKeys;
using build_filter_internal::Node;
using build_filter_internal::Op;
using NodeOr = absl::StatusOr<std::unique_ptr<Node>>;

// absl::string_view is a distinct type from std::string_view in the Abseil release we build with.
absl::string_view ToAbsl(std::string_view text) { return {text.data(), text.size()}; }

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
// Characters of keys and keywords.
bool IsWordChar(char c) { return IsAsciiAlnum(c) || c == '_' || c == '.'; }
// Characters of unquoted values.
bool IsBareChar(char c) {
  return IsAsciiAlnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '@';
}
bool IsKeyword(std::string_view word) { return word == "AND" || word == "OR" || word == "NOT"; }

// Keeps error messages short when the input is long.
std::string Shorten(std::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return std::string(text);
  return absl::StrCat(ToAbsl(text.substr(0, kMax)), "...");
}

const KeySpec* FindKey(std::string_view name) {
  for (const KeySpec& key : kKeys) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

std::string KeyList() {
  std::string list;
  for (const KeySpec& key : kKeys) {
    absl::StrAppend(&list, list.empty() ? "" : ", ", ToAbsl(key.name));
  }
  return list;
}

std::string_view OpText(Op op) {
  switch (op) {
    case Op::kEq:
      return "=";
    case Op::kNe:
      return "!=";
    case Op::kHas:
      return ":";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
  }
  return "?";
}

bool ParseRfc3339(std::string_view text, absl::Time* time) {
  std::string error;
  return absl::ParseTime(absl::RFC3339_full, ToAbsl(text), time, &error);
}

// Recursive descent over the grammar in build_filter.h. Recursion happens only through
// parentheses, whose depth is bounded by kMaxDepth; runs of AND, OR and NOT are loops.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  // Null for a blank filter.
  NodeOr ParseFilter() {
    SkipBlanks();
    if (AtEnd()) return nullptr;
    NodeOr root = ParseExpression(0);
    if (!root.ok()) return root;
    SkipBlanks();
    // ParseExpression stops only at the end or at ")"; at the top level a ")" is unbalanced.
    if (!AtEnd()) {
      return Expected(pos_, "the end of the filter", " with no matching \"(\"");
    }
    return root;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  bool Peek(char c) const { return !AtEnd() && text_[pos_] == c; }
  void SkipBlanks() {
    while (!AtEnd() && IsBlank(text_[pos_])) ++pos_;
  }
  std::string_view WordAt(size_t pos) const {
    size_t end = pos;
    while (end < text_.size() && IsWordChar(text_[end])) ++end;
    return text_.substr(pos, end - pos);
  }

  // What the input holds at `pos`, for "found ..." in error messages.
  std::string Describe(size_t pos) const {
    if (pos >= text_.size()) return "end of filter";
    const char c = text_[pos];
    if (IsBareChar(c)) {
      size_t end = pos;
      while (end < text_.size() && IsBareChar(text_[end])) ++end;
      return absl::StrCat("\"", Shorten(text_.substr(pos, end - pos)), "\"");
    }
    return DescribeChar(c);
  }
  static std::string DescribeChar(char c) {
    if (c == '"') return "'\"'";
    if (c > ' ' && c < 0x7f) return absl::StrCat("\"", std::string(1, c), "\"");
    constexpr char kHex[] = "0123456789ABCDEF";
    const auto byte = static_cast<unsigned char>(c);
    return absl::StrCat("byte 0x", std::string{kHex[byte >> 4], kHex[byte & 0xf]});
  }

  absl::Status Error(size_t pos, std::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat("filter: column ", pos + 1, ": ", ToAbsl(message)));
  }
  absl::Status Expected(size_t pos, std::string_view what, std::string_view suffix = "") const {
    return Error(
        pos, absl::StrCat("expected ", ToAbsl(what), ", found ", Describe(pos), ToAbsl(suffix)));
  }

  static std::string After(std::string_view token) {
    return token.empty() ? "" : absl::StrCat(" after \"", ToAbsl(token), "\"");
  }

  static std::unique_ptr<Node> Combine(Node::Kind kind, std::vector<std::unique_ptr<Node>> nodes) {
    if (nodes.size() == 1) return std::move(nodes.front());
    auto node = std::make_unique<Node>();
    node->kind = kind;
    node->children = std::move(nodes);
    return node;
  }

  // expression = sequence { "AND" sequence }; sequence = factor { factor }. Both mean AND, so
  // the operands go into one flat node. Stops at the end of input or before ")".
  NodeOr ParseExpression(int depth) {
    std::vector<std::unique_ptr<Node>> operands;
    std::string_view after;
    for (;;) {
      NodeOr factor = ParseFactor(depth, after);
      if (!factor.ok()) return factor;
      operands.push_back(*std::move(factor));
      SkipBlanks();
      if (AtEnd() || Peek(')')) break;
      after = "";
      if (WordAt(pos_) == "AND") {
        pos_ += 3;
        after = "AND";
      }
    }
    return Combine(Node::Kind::kAnd, std::move(operands));
  }

  // factor = term { "OR" term }
  NodeOr ParseFactor(int depth, std::string_view after) {
    std::vector<std::unique_ptr<Node>> operands;
    for (;;) {
      NodeOr term = ParseTerm(depth, after);
      if (!term.ok()) return term;
      operands.push_back(*std::move(term));
      SkipBlanks();
      if (WordAt(pos_) != "OR") break;
      pos_ += 2;
      after = "OR";
    }
    return Combine(Node::Kind::kOr, std::move(operands));
  }

  // term = { "NOT" | "-" } ( restriction | "(" expression ")" )
  NodeOr ParseTerm(int depth, std::string_view after) {
    bool negated = false;
    for (;;) {
      SkipBlanks();
      if (Peek('-')) {
        ++pos_;
        after = "-";
      } else if (WordAt(pos_) == "NOT") {
        pos_ += 3;
        after = "NOT";
      } else {
        break;
      }
      negated = !negated;
    }
    NodeOr node = Peek('(') ? ParseParenthesized(depth) : ParseRestriction(after);
    if (node.ok()) (*node)->negated = (*node)->negated != negated;
    return node;
  }

  NodeOr ParseParenthesized(int depth) {
    const size_t open = pos_;
    if (depth >= BuildFilter::kMaxDepth) {
      return Error(
          open, absl::StrCat("parentheses nest deeper than ", BuildFilter::kMaxDepth, " levels"));
    }
    ++pos_;
    SkipBlanks();
    if (Peek(')')) return Expected(pos_, "a key or \"(\" inside the parentheses");
    NodeOr inner = ParseExpression(depth + 1);
    if (!inner.ok()) return inner;
    SkipBlanks();
    if (!Peek(')')) {
      return Expected(pos_, absl::StrCat("\")\" to close the \"(\" at column ", open + 1));
    }
    ++pos_;
    return inner;
  }

  // restriction = key comparator value
  NodeOr ParseRestriction(std::string_view after) {
    const std::string_view word = WordAt(pos_);
    if (word.empty() || IsKeyword(word)) {
      return Expected(pos_, absl::StrCat("a key or \"(\"", After(after)));
    }
    const KeySpec* key = FindKey(word);
    if (key == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("filter: unknown key \"", Shorten(word),
                                                     "\"; filterable keys are: ", KeyList()));
    }
    pos_ += word.size();
    SkipBlanks();

    auto node = std::make_unique<Node>();
    node->key = key;
    if (!ParseOp(&node->op)) {
      return Expected(pos_, absl::StrCat("an operator (=, !=, :, <, <=, >, >=) after key \"",
                                         ToAbsl(word), "\""));
    }
    SkipBlanks();
    const size_t value_pos = pos_;
    if (node->op == Op::kHas && Peek('*')) {
      ++pos_;
      node->any_value = true;
      return node;
    }
    absl::Status status = ParseValue(node->op, &node->value);
    if (!status.ok()) return status;
    if (key->time && !ParseRfc3339(node->value, &node->time)) {
      return Error(value_pos,
                   absl::StrCat("expected an RFC 3339 time such as "
                                "\"2025-01-01T00:00:00Z\" for key \"",
                                ToAbsl(key->name), "\", found \"", Shorten(node->value), "\""));
    }
    return node;
  }

  bool ParseOp(Op* op) {
    const std::string_view rest = text_.substr(pos_);
    static constexpr std::pair<std::string_view, Op> kOps[] = {
        // Two-character operators first, so that "<=" is not read as "<".
        {"!=", Op::kNe}, {"<=", Op::kLe}, {">=", Op::kGe}, {"=", Op::kEq},
        {":", Op::kHas}, {"<", Op::kLt},  {">", Op::kGt},
    };
    for (const auto& [text, value] : kOps) {
      if (rest.substr(0, text.size()) == text) {
        pos_ += text.size();
        *op = value;
        return true;
      }
    }
    return false;
  }

  // value = quoted | bare
  absl::Status ParseValue(Op op, std::string* value) {
    const std::string what = absl::StrCat("a quoted value after \"", ToAbsl(OpText(op)), "\"");
    if (Peek('"')) return ParseQuoted(value);
    size_t end = pos_;
    while (end < text_.size() && IsBareChar(text_[end])) ++end;
    const std::string_view bare = text_.substr(pos_, end - pos_);
    if (bare.empty()) return Expected(pos_, what);
    // A keyword here is far more likely a missing value than a value; quoting makes it one.
    if (IsKeyword(bare)) return Expected(pos_, what, " (quote a keyword to use it as a value)");
    *value = std::string(bare);
    pos_ = end;
    return absl::OkStatus();
  }

  absl::Status ParseQuoted(std::string* value) {
    const size_t open = pos_;
    ++pos_;
    std::string out;
    while (!AtEnd()) {
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        *value = std::move(out);
        return absl::OkStatus();
      }
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) break;
        const char escaped = text_[pos_ + 1];
        if (escaped != '"' && escaped != '\\') {
          return Error(
              pos_ + 1,
              absl::StrCat("expected \\\" or \\\\ after a backslash in a quoted value, found ",
                           DescribeChar(escaped)));
        }
        out.push_back(escaped);
        pos_ += 2;
        continue;
      }
      out.push_back(c);
      ++pos_;
    }
    return Error(open,
                 "expected a closing '\"' for the quoted value that starts here, found end of "
                 "filter");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// Appends every JSON string found by following key.path from `value`, starting at
// path[index]. Arrays are searched element by element: on the way through objects, and at the
// end for strings. Nested arrays are not flattened, so the recursion depth is bounded by the
// path length.
void CollectStrings(const nlohmann::json& value, const KeySpec& key, size_t index,
                    std::vector<const std::string*>* out) {
  if (index == key.path.size() || key.path[index] == nullptr) {
    if (value.is_string()) {
      out->push_back(value.get_ptr<const std::string*>());
    } else if (value.is_array()) {
      for (const nlohmann::json& element : value) {
        if (element.is_string()) out->push_back(element.get_ptr<const std::string*>());
      }
    }
    return;
  }
  auto follow = [&](const nlohmann::json& object) {
    const auto it = object.find(key.path[index]);
    if (it != object.end()) CollectStrings(*it, key, index + 1, out);
  };
  if (value.is_object()) {
    follow(value);
  } else if (value.is_array()) {
    for (const nlohmann::json& element : value) {
      if (element.is_object()) follow(element);
    }
  }
}

template <typename T>
bool Compare(const T& actual, Op op, const T& wanted) {
  switch (op) {
    case Op::kEq:
    case Op::kHas:
      return actual == wanted;
    case Op::kNe:
      return actual != wanted;
    case Op::kLt:
      return actual < wanted;
    case Op::kLe:
      return actual <= wanted;
    case Op::kGt:
      return actual > wanted;
    case Op::kGe:
      return actual >= wanted;
  }
  return false;
}

bool MatchesRestriction(const Node& node, const nlohmann::json& build) {
  std::vector<const std::string*> strings;
  CollectStrings(build, *node.key, 0, &strings);

  if (node.key->time) {
    // Unparseable times count as missing; a missing time fails every comparison, "!=" too.
    std::vector<absl::Time> times;
    for (const std::string* text : strings) {
      absl::Time time;
      if (ParseRfc3339(*text, &time)) times.push_back(time);
    }
    if (times.empty()) return false;
    if (node.any_value) return true;
    if (node.op == Op::kNe) {
      for (absl::Time time : times) {
        if (time == node.time) return false;
      }
      return true;
    }
    for (absl::Time time : times) {
      if (Compare(time, node.op, node.time)) return true;
    }
    return false;
  }

  if (node.any_value) {
    for (const std::string* text : strings) {
      if (!text->empty()) return true;
    }
    return false;
  }
  // "!=" on a repeated field means "no element equals"; on a missing field it holds.
  if (node.op == Op::kNe) {
    for (const std::string* text : strings) {
      if (*text == node.value) return false;
    }
    return true;
  }
  for (const std::string* text : strings) {
    if (Compare(*text, node.op, node.value)) return true;
  }
  return false;
}

// Recursion depth is bounded by the parenthesis depth limit enforced by the parser.
bool Evaluate(const Node& node, const nlohmann::json& build) {
  bool result = false;
  switch (node.kind) {
    case Node::Kind::kAnd:
      result = true;
      for (const auto& child : node.children) {
        if (!Evaluate(*child, build)) {
          result = false;
          break;
        }
      }
      break;
    case Node::Kind::kOr:
      for (const auto& child : node.children) {
        if (Evaluate(*child, build)) {
          result = true;
          break;
        }
      }
      break;
    case Node::Kind::kRestriction:
      result = MatchesRestriction(node, build);
      break;
  }
  return result != node.negated;
}

}  // namespace

absl::StatusOr<BuildFilter> BuildFilter::Parse(std::string_view text) {
  if (text.size() > kMaxLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "filter: ", text.size(), " bytes is longer than the limit of ", kMaxLength, " bytes"));
  }
  Parser parser(text);
  NodeOr root = parser.ParseFilter();
  if (!root.ok()) return root.status();
  return BuildFilter(std::shared_ptr<const Node>(*std::move(root)));
}

bool BuildFilter::Matches(const nlohmann::json& build) const {
  return root_ == nullptr || Evaluate(*root_, build);
}

}  // namespace runway::emulator
