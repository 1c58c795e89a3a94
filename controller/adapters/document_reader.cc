#include "controller/adapters/document_reader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <limits>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace runway {
namespace {

using nlohmann::json;

bool IsIdentifier(const std::string& key) {
  if (key.empty() || !(std::isalpha(static_cast<unsigned char>(key[0])) || key[0] == '_')) {
    return false;
  }
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Line (1-based) and column (1-based, in bytes) of `offset` in `text`.
std::pair<int, int> LineAndColumn(std::string_view text, size_t offset) {
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(offset - line_start + 1)};
}

// Returns the offset of the first byte that makes `text` invalid UTF-8 (overlongs, surrogates
// and code points above U+10FFFF included), or npos.
size_t FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = text[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int length;
    uint32_t code_point;
    if ((c & 0xE0) == 0xC0) {
      length = 2;
      code_point = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code_point = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code_point = c & 0x07;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (int k = 1; k < length; ++k) {
      const unsigned char next = text[i + k];
      if ((next & 0xC0) != 0x80) return i;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kMinForLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

// Control characters other than tab, newline and carriage return mark a binary file.
size_t FindBinaryByte(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = text[i];
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return i;
  }
  return std::string_view::npos;
}

absl::Status CheckFileBytes(std::string_view text, const DocumentLimits& limits) {
  if (text.size() > limits.max_file_bytes) {
    return absl::InvalidArgumentError(FileTooLargeMessage(text.size(), limits.max_file_bytes));
  }
  if (size_t at = FindBinaryByte(text); at != std::string_view::npos) {
    auto [line, column] = LineAndColumn(text, at);
    return absl::InvalidArgumentError(absl::StrFormat(
        "line %d, column %d: byte 0x%02X: the file looks binary, not YAML or JSON; remove it "
        "from the manifest directory",
        line, column, static_cast<unsigned char>(text[at])));
  }
  if (size_t at = FindInvalidUtf8(text); at != std::string_view::npos) {
    auto [line, column] = LineAndColumn(text, at);
    return absl::InvalidArgumentError(
        absl::StrFormat("line %d, column %d: invalid UTF-8 (byte 0x%02X): save the file as UTF-8",
                        line, column, static_cast<unsigned char>(text[at])));
  }
  return absl::OkStatus();
}

// --- nesting estimate -----------------------------------------------------------------------

struct NestingScanner {
  int flow_depth = 0;
  char quote = 0;  // '"' or '\'' while inside a quoted scalar
  std::vector<int> block_indents;
  int block_scalar_parent_indent = -1;  // >= 0 while inside a | or > block scalar
  int max_depth = 0;

  static bool StartsBlockScalar(std::string_view line) {
    size_t end = line.find(" #");
    std::string_view content = line.substr(0, end);
    while (!content.empty() &&
           (content.back() == ' ' || content.back() == '\t' || content.back() == '\r')) {
      content.remove_suffix(1);
    }
    while (!content.empty() && (std::isdigit(static_cast<unsigned char>(content.back())) ||
                                content.back() == '-' || content.back() == '+')) {
      content.remove_suffix(1);
    }
    return !content.empty() && (content.back() == '|' || content.back() == '>') &&
           (content.size() == 1 || content[content.size() - 2] == ' ' ||
            content[content.size() - 2] == ':' || content[content.size() - 2] == '-');
  }

  void ScanLine(std::string_view line) {
    size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ') ++indent;
    const bool blank = indent == line.size() || line[indent] == '#' || line[indent] == '\r';
    if (block_scalar_parent_indent >= 0) {
      if (blank || static_cast<int>(indent) > block_scalar_parent_indent) return;
      block_scalar_parent_indent = -1;
    }
    if (blank && quote == 0) return;
    size_t pos = indent;
    int line_depth = flow_depth;
    if (flow_depth == 0 && quote == 0) {
      while (!block_indents.empty() && block_indents.back() >= static_cast<int>(indent)) {
        block_indents.pop_back();
      }
      block_indents.push_back(static_cast<int>(indent));
      int indicators = 0;
      while (pos + 1 < line.size() && (line[pos] == '-' || line[pos] == '?') &&
             (line[pos + 1] == ' ' || line[pos + 1] == '\t')) {
        ++indicators;
        pos += 2;
        while (pos < line.size() && line[pos] == ' ') ++pos;
      }
      line_depth = static_cast<int>(block_indents.size()) + indicators + 1;
      if (StartsBlockScalar(line)) block_scalar_parent_indent = static_cast<int>(indent);
    }
    max_depth = std::max(max_depth, line_depth);
    char previous = pos == 0 ? ' ' : line[pos - 1];
    for (; pos < line.size(); ++pos) {
      const char c = line[pos];
      if (quote == '"') {
        if (c == '\\') {
          ++pos;
        } else if (c == '"') {
          quote = 0;
        }
      } else if (quote == '\'') {
        if (c == '\'') {
          if (pos + 1 < line.size() && line[pos + 1] == '\'') {
            ++pos;
          } else {
            quote = 0;
          }
        }
      } else if (c == '#' && (previous == ' ' || previous == '\t')) {
        break;
      } else if ((c == '"' || c == '\'') &&
                 (previous == ' ' || previous == '\t' || previous == '[' || previous == '{' ||
                  previous == ',' || previous == ':')) {
        quote = c;
      } else if (c == '[' || c == '{') {
        ++flow_depth;
        max_depth = std::max(max_depth, line_depth + flow_depth);
      } else if ((c == ']' || c == '}') && flow_depth > 0) {
        --flow_depth;
      }
      previous = c;
    }
  }
};

struct NestingScan {
  int max_depth = 0;
  int deepest_line = 0;  // 1-based line of `text` where max_depth first passed the stop depth
};

// Scans `text` line by line and stops at the first line whose estimate passes `stop_above`.
NestingScan ScanNesting(std::string_view text, int stop_above) {
  NestingScanner scanner;
  size_t pos = 0;
  int line_number = 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    scanner.ScanLine(text.substr(pos, end - pos));
    if (scanner.max_depth > stop_above) return {scanner.max_depth, line_number};
    pos = end + 1;
    ++line_number;
  }
  return {scanner.max_depth, 0};
}

// Returns false, with the error set on `doc`, when `text` nests deeper than the limit; this runs
// before any recursive parser sees the text.
bool RefuseDeepNesting(std::string_view text, int first_line, const DocumentLimits& limits,
                       ParsedDocument& doc) {
  const NestingScan scan = ScanNesting(text, limits.max_depth);
  if (scan.deepest_line == 0) return true;
  doc.error_line = first_line + scan.deepest_line - 1;
  doc.error = absl::StrCat("line ", doc.error_line, ": nesting is deeper than ", limits.max_depth,
                           " levels: flatten the document");
  return false;
}

// --- YAML to JSON -----------------------------------------------------------------------------

std::optional<json> ResolvePlainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return json(nullptr);
  }
  if (text == "true" || text == "True" || text == "TRUE") return json(true);
  if (text == "false" || text == "False" || text == "FALSE") return json(false);
  const bool looks_numeric =
      std::isdigit(static_cast<unsigned char>(text[0])) ||
      ((text[0] == '-' || text[0] == '+' || text[0] == '.') && text.size() > 1);
  if (!looks_numeric) return std::nullopt;
  int64_t integer;
  const bool decimal =
      std::all_of(text.begin() + (text[0] == '-' || text[0] == '+'), text.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (decimal && absl::SimpleAtoi(text, &integer)) return json(integer);
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'o')) {
    uint64_t value = 0;
    const int base = text[1] == 'x' ? 16 : 8;
    char* end = nullptr;
    errno = 0;
    value = std::strtoull(text.c_str() + 2, &end, base);
    if (errno == 0 && *end == '\0' && value <= uint64_t{std::numeric_limits<int64_t>::max()}) {
      return json(static_cast<int64_t>(value));
    }
    return std::nullopt;
  }
  double real;
  bool float_syntax = true;
  for (char c : text) {
    float_syntax = float_syntax && (std::isdigit(static_cast<unsigned char>(c)) || c == '.' ||
                                    c == 'e' || c == 'E' || c == '-' || c == '+');
  }
  if (float_syntax && absl::SimpleAtod(text, &real) && std::isfinite(real)) return json(real);
  return std::nullopt;
}

class YamlToJson {
 public:
  YamlToJson(const DocumentLimits& limits, int line_offset, std::map<std::string, int>& lines)
      : limits_(limits), line_offset_(line_offset), lines_(lines) {}

  // Converts `node`; on failure returns false and leaves the reason in error()/error_line().
  bool Convert(const YAML::Node& node, const std::string& path, int depth, json& out) {
    if (++nodes_ > limits_.max_nodes) {
      return Fail(node, absl::StrCat("document expands to more than ", limits_.max_nodes,
                                     " values (YAML aliases fanning out?): simplify it"));
    }
    if (depth > limits_.max_depth) {
      return Fail(node, absl::StrCat("nesting is deeper than ", limits_.max_depth,
                                     " levels: flatten the document"));
    }
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        out = nullptr;
        return true;
      case YAML::NodeType::Scalar:
        out = ConvertScalar(node);
        return true;
      case YAML::NodeType::Sequence: {
        out = json::array();
        size_t index = 0;
        for (const YAML::Node& item : node) {
          const std::string item_path = AppendIndex(path, index++);
          Record(item_path, item);
          json converted;
          if (!Convert(item, item_path, depth + 1, converted)) return false;
          out.push_back(std::move(converted));
        }
        return true;
      }
      case YAML::NodeType::Map:
        return ConvertMap(node, path, depth, out);
    }
    return true;
  }

  const std::string& error() const { return error_; }
  int error_line() const { return error_line_; }

 private:
  bool ConvertMap(const YAML::Node& node, const std::string& path, int depth, json& out) {
    out = json::object();
    for (const auto& entry : node) {
      if (!entry.first.IsScalar()) {
        return Fail(entry.first, "mapping keys must be plain strings, not lists or maps");
      }
      const std::string key = entry.first.Scalar();
      const std::string child_path = AppendKey(path, key);
      if (out.contains(key)) {
        return Fail(entry.first, absl::StrCat("key \"", key, "\" appears twice in ",
                                              path.empty() ? "the document" : path, ": keep one"));
      }
      Record(child_path, entry.first);
      json converted;
      if (!Convert(entry.second, child_path, depth + 1, converted)) return false;
      out[key] = std::move(converted);
    }
    return true;
  }

  static json ConvertScalar(const YAML::Node& node) {
    const std::string& text = node.Scalar();
    const std::string& tag = node.Tag();
    if (tag == "?") {
      if (std::optional<json> resolved = ResolvePlainScalar(text)) return *resolved;
    }
    return json(text);
  }

  void Record(const std::string& path, const YAML::Node& node) {
    if (!node.Mark().is_null()) lines_.emplace(path, line_offset_ + node.Mark().line + 1);
  }

  bool Fail(const YAML::Node& node, std::string message) {
    error_ = std::move(message);
    error_line_ = node.Mark().is_null() ? line_offset_ + 1 : line_offset_ + node.Mark().line + 1;
    return false;
  }

  const DocumentLimits& limits_;
  const int line_offset_;
  std::map<std::string, int>& lines_;
  size_t nodes_ = 0;
  std::string error_;
  int error_line_ = 0;
};

struct Chunk {
  std::string_view text;
  int first_line;  // 1-based
};

bool IsDocumentMarker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// Splits a YAML stream at `---` and `...` lines, so a syntax error in one document leaves the
// others readable. A `---` line stays with the document it opens (it may carry content).
std::vector<Chunk> SplitYamlStream(std::string_view text) {
  std::vector<Chunk> chunks;
  size_t chunk_start = 0;
  int chunk_line = 1;
  int line_number = 1;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (IsDocumentMarker(line, "---") || IsDocumentMarker(line, "...")) {
      chunks.push_back({text.substr(chunk_start, pos - chunk_start), chunk_line});
      const bool end_marker = line[0] == '.';
      chunk_start = end_marker ? std::min(end + 1, text.size()) : pos;
      chunk_line = end_marker ? line_number + 1 : line_number;
    }
    if (end == text.size()) break;
    pos = end + 1;
    ++line_number;
  }
  chunks.push_back({text.substr(chunk_start), chunk_line});
  return chunks;
}

ParsedDocument ReadYamlChunk(const Chunk& chunk, const DocumentLimits& limits) {
  ParsedDocument doc;
  doc.first_line = chunk.first_line;
  if (!RefuseDeepNesting(chunk.text, chunk.first_line, limits, doc)) return doc;
  try {
    YAML::Node root = YAML::Load(std::string(chunk.text));
    YamlToJson converter(limits, chunk.first_line - 1, doc.lines);
    if (!converter.Convert(root, "", 0, doc.value)) {
      doc.value = nullptr;
      doc.lines.clear();
      doc.error_line = converter.error_line();
      doc.error = absl::StrCat("line ", doc.error_line, ": ", converter.error());
    }
  } catch (const YAML::Exception& e) {
    doc.value = nullptr;
    doc.error_line = e.mark.is_null() ? chunk.first_line : chunk.first_line + e.mark.line;
    doc.error = e.mark.is_null() ? absl::StrCat("invalid YAML: ", e.msg)
                                 : absl::StrCat("line ", doc.error_line, ", column ",
                                                e.mark.column + 1, ": invalid YAML: ", e.msg);
  } catch (const std::exception& e) {
    doc.value = nullptr;
    doc.error = absl::StrCat("cannot read YAML: ", e.what());
    doc.error_line = chunk.first_line;
  }
  return doc;
}

ParsedDocument ReadJson(std::string_view text, const DocumentLimits& limits) {
  ParsedDocument doc;
  doc.first_line = 1;
  if (!RefuseDeepNesting(text, 1, limits, doc)) return doc;
  // Duplicate keys are silently merged by nlohmann; track each open object's keys to refuse them.
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end && !open_objects.empty()) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second && !duplicate) duplicate = key;
    }
    return true;
  };
  try {
    doc.value = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (size_t close = what.find("] "); close != std::string::npos) what = what.substr(close + 2);
    doc.value = nullptr;
    doc.error = absl::StrCat("invalid JSON: ", what);
    if (const auto* parse_error = dynamic_cast<const json::parse_error*>(&e)) {
      doc.error_line =
          LineAndColumn(text, parse_error->byte == 0 ? 0 : parse_error->byte - 1).first;
    }
    return doc;
  }
  if (duplicate) {
    doc.value = nullptr;
    doc.error = absl::StrCat("key \"", *duplicate, "\" appears twice in one object: keep one");
    doc.error_line = 1;
  }
  return doc;
}

bool IsBlank(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && line[first] != '#' &&
        !IsDocumentMarker(line.substr(first), "---") &&
        !IsDocumentMarker(line.substr(first), "...")) {
      return false;
    }
    pos = end + 1;
  }
  return true;
}

}  // namespace

std::string AppendKey(const std::string& path, const std::string& key) {
  if (IsIdentifier(key)) return path.empty() ? key : absl::StrCat(path, ".", key);
  return absl::StrCat(path, "[", json(key).dump(-1, ' ', false, json::error_handler_t::replace),
                      "]");
}

std::string FileTooLargeMessage(uint64_t size, uint64_t limit) {
  return absl::StrCat("file is ", size, " bytes, over the ", limit,
                      "-byte limit: split it into smaller manifests (or raise --max-file-bytes)");
}

std::string AppendIndex(const std::string& path, size_t index) {
  return absl::StrCat(path, "[", index, "]");
}

int EstimateNestingDepth(std::string_view text) {
  return ScanNesting(text, std::numeric_limits<int>::max()).max_depth;
}

absl::StatusOr<std::vector<ParsedDocument>> ReadDocuments(std::string_view text,
                                                          DocumentFormat format,
                                                          const DocumentLimits& limits) {
  if (absl::Status status = CheckFileBytes(text, limits); !status.ok()) return status;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte order mark
  std::vector<ParsedDocument> documents;
  if (format == DocumentFormat::kJson) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
      return absl::InvalidArgumentError(
          "file is empty: add a CloudRunService manifest or delete the file");
    }
    documents.push_back(ReadJson(text, limits));
    documents.back().index = 1;
    return documents;
  }
  for (const Chunk& chunk : SplitYamlStream(text)) {
    if (IsBlank(chunk.text)) continue;
    ParsedDocument doc = ReadYamlChunk(chunk, limits);
    if (!doc.error && doc.value.is_null()) continue;  // only comments or an explicit null
    doc.index = static_cast<int>(documents.size()) + 1;
    documents.push_back(std::move(doc));
  }
  if (documents.empty()) {
    return absl::InvalidArgumentError(
        "file holds no YAML document: add a CloudRunService manifest or delete the file");
  }
  return documents;
}

}  // namespace runway
