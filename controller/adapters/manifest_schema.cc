#include "controller/adapters/manifest_schema.h"

#include <algorithm>
#include <exception>
#include <set>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/adapters/document_reader.h"

namespace runway {
namespace {

using nlohmann::json;

// ObjectMeta fields a manifest may carry (often from `kubectl get -o yaml`); the CRD schema only
// constrains some of them, the rest are accepted as the API server would.
const std::set<std::string>& ObjectMetaFields() {
  static const auto* fields = new std::set<std::string>{"name",
                                                        "namespace",
                                                        "labels",
                                                        "annotations",
                                                        "generateName",
                                                        "uid",
                                                        "resourceVersion",
                                                        "generation",
                                                        "creationTimestamp",
                                                        "deletionTimestamp",
                                                        "deletionGracePeriodSeconds",
                                                        "finalizers",
                                                        "ownerReferences",
                                                        "managedFields",
                                                        "selfLink"};
  return *fields;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const bool same = absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string Shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string TypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "list";
    case json::value_t::object:
      return "map";
    default:
      return "value";
  }
}

std::string Description(const json& schema) {
  std::string text = schema.value("description", "");
  while (!text.empty() && (text.back() == '.' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string FormatNumber(const json& number) {
  if (number.is_number_float()) {
    const double value = number.get<double>();
    if (value == static_cast<double>(static_cast<int64_t>(value))) {
      return absl::StrCat(static_cast<int64_t>(value));
    }
  }
  return number.dump();
}

// The sub-schema that applies to `key` of an object validated by `schema`, or null.
const json* PropertySchema(const json& schema, const std::string& key) {
  if (auto props = schema.find("properties"); props != schema.end()) {
    if (auto it = props->find(key); it != props->end()) return &*it;
  }
  if (auto extra = schema.find("additionalProperties");
      extra != schema.end() && extra->is_object()) {
    return &*extra;
  }
  return nullptr;
}

// Walks document and schema together: applies defaults, reports unknown fields, and cuts strings
// longer than their maxLength so std::regex (recursive in libstdc++) never sees a huge input.
class SchemaWalker {
 public:
  explicit SchemaWalker(FieldErrors& errors) : errors_(errors) {}

  void Walk(json& value, const json& schema, const std::string& path) {
    if (value.is_object()) {
      WalkObject(value, schema, path);
    } else if (value.is_array()) {
      if (auto items = schema.find("items"); items != schema.end() && items->is_object()) {
        for (size_t i = 0; i < value.size(); ++i) Walk(value[i], *items, AppendIndex(path, i));
      }
    } else if (value.is_string()) {
      auto max_length = schema.find("maxLength");
      if (max_length != schema.end() && max_length->is_number_integer()) {
        const std::string& text = value.get_ref<const std::string&>();
        const size_t limit = max_length->get<size_t>();
        if (text.size() > limit) {
          errors_.push_back({path, absl::StrCat("is ", text.size(), " characters long, over the ",
                                                "limit of ", limit, ": shorten it")});
          value = text.substr(0, limit);
        }
      }
    }
  }

 private:
  void WalkObject(json& object, const json& schema, const std::string& path) {
    if (schema.value("x-kubernetes-preserve-unknown-fields", false)) return;
    auto props = schema.find("properties");
    const bool is_metadata = path == "metadata";
    if (props != schema.end()) {
      std::vector<std::string> unknown;
      for (auto it = object.begin(); it != object.end(); ++it) {
        if (!props->contains(it.key()) &&
            !(is_metadata && ObjectMetaFields().count(it.key()) > 0)) {
          unknown.push_back(it.key());
        }
      }
      std::vector<std::string> known;
      for (auto it = props->begin(); it != props->end(); ++it) known.push_back(it.key());
      for (const std::string& key : unknown) {
        ReportUnknown(AppendKey(path, key), key, known);
        object.erase(key);
      }
      for (auto it = props->begin(); it != props->end(); ++it) {
        if (!object.contains(it.key()) && it->contains("default")) {
          object[it.key()] = (*it)["default"];
        }
      }
    }
    for (auto it = object.begin(); it != object.end(); ++it) {
      if (const json* child = PropertySchema(schema, it.key())) {
        Walk(it.value(), *child, AppendKey(path, it.key()));
      }
    }
  }

  void ReportUnknown(const std::string& path, const std::string& key,
                     const std::vector<std::string>& known) {
    const std::string suggestion = ClosestName(key, known);
    if (!suggestion.empty()) {
      errors_.push_back(
          {path, absl::StrCat("unknown field \"", key, "\": did you mean \"", suggestion, "\"?")});
    } else {
      errors_.push_back(
          {path, absl::StrCat("unknown field \"", key, "\": remove it (known fields here: ",
                              absl::StrJoin(known, ", "), ")")});
    }
  }

  FieldErrors& errors_;
};

bool IsWrapperMessage(const std::string& message) {
  return absl::StartsWith(message, "Failed to validate against schema associated with") ||
         absl::StartsWith(message, "Failed to validate item #") ||
         absl::StartsWith(message, "Failed to validate against additional properties") ||
         absl::StartsWith(message, "Failed to validate against child schema");
}

// Renders one valijson error for a person, from the schema and the offending value.
std::string RenderViolation(const std::string& raw, const json& value, const json& schema) {
  if (raw == "Failed to match against any enum values.") {
    std::vector<std::string> allowed;
    for (const json& option : schema.value("enum", json::array())) {
      allowed.push_back(option.is_string() ? option.get<std::string>() : option.dump());
    }
    return absl::StrCat(Shown(value), " is not one of: ", absl::StrJoin(allowed, ", "));
  }
  if (raw == "Failed to match regex specified by 'pattern' constraint.") {
    return absl::StrCat(Shown(value), " does not match ", schema.value("pattern", ""), ": ",
                        Description(schema));
  }
  if (raw == "Value type not permitted by 'type' constraint.") {
    const std::string want = schema.value("type", "");
    const std::string article =
        (want == "integer" || want == "object" || want == "array") ? "an " : "a ";
    std::string message = absl::StrCat("must be ", article, want == "object" ? "map" : want,
                                       ", not the ", TypeName(value), " ", Shown(value));
    double number;
    if (value.is_string() && (want == "integer" || want == "number") &&
        absl::SimpleAtod(value.get<std::string>(), &number)) {
      absl::StrAppend(&message, ": remove the quotes");
    } else if (want == "boolean") {
      absl::StrAppend(&message, ": use true or false");
    }
    return message;
  }
  if (absl::StartsWith(raw, "Expected number greater than")) {
    return absl::StrCat(Shown(value), " is below the minimum of ",
                        FormatNumber(schema.value("minimum", json(0))));
  }
  if (absl::StartsWith(raw, "Expected number less than")) {
    return absl::StrCat(Shown(value), " is above the maximum of ",
                        FormatNumber(schema.value("maximum", json(0))));
  }
  if (absl::StartsWith(raw, "String should be no fewer than")) {
    return "must not be empty";
  }
  if (absl::StartsWith(raw, "Array should contain no fewer than")) {
    return absl::StrCat("needs at least ", schema.value("minItems", 0), " entries");
  }
  if (absl::StartsWith(raw, "Array should contain no more than")) {
    return absl::StrCat("has ", value.size(), " entries, over the limit of ",
                        schema.value("maxItems", 0));
  }
  if (absl::StartsWith(raw, "Object should have no more than")) {
    return absl::StrCat("has ", value.size(), " entries, over the limit of ",
                        schema.value("maxProperties", 0));
  }
  if (raw == "String should be a valid date-time") {
    return absl::StrCat(Shown(value), " is not an RFC 3339 time such as 2026-01-02T15:04:05Z");
  }
  return raw;
}

}  // namespace

std::string ClosestName(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

ManifestSchema::ManifestSchema(json openapi_schema, std::unique_ptr<valijson::Schema> compiled)
    : openapi_schema_(std::move(openapi_schema)), compiled_(std::move(compiled)) {}

ManifestSchema::~ManifestSchema() = default;

absl::StatusOr<std::unique_ptr<ManifestSchema>> ManifestSchema::FromCrdYaml(
    const std::string& crd_yaml) {
  absl::StatusOr<std::vector<ParsedDocument>> documents =
      ReadDocuments(crd_yaml, DocumentFormat::kYaml, DocumentLimits{});
  if (!documents.ok()) return documents.status();
  const ParsedDocument& crd = documents->front();
  if (crd.error) return absl::InvalidArgumentError(absl::StrCat("CRD: ", *crd.error));
  const json::json_pointer pointer("/spec/versions/0/schema/openAPIV3Schema");
  if (!crd.value.contains(pointer) || !crd.value[pointer].is_object()) {
    return absl::InvalidArgumentError("CRD has no spec.versions[0].schema.openAPIV3Schema");
  }
  json schema = crd.value[pointer];
  auto compiled = std::make_unique<valijson::Schema>();
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft4);
    valijson::adapters::NlohmannJsonAdapter adapter(schema);
    parser.populateSchema(adapter, *compiled);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("CRD schema does not compile: ", e.what()));
  }
  return std::unique_ptr<ManifestSchema>(
      new ManifestSchema(std::move(schema), std::move(compiled)));
}

absl::StatusOr<std::unique_ptr<ManifestSchema>> ManifestSchema::Embedded() {
  return FromCrdYaml(kCloudRunServiceCrdYaml);
}

FieldErrors ManifestSchema::ValidateAndDefault(json& document) const {
  FieldErrors errors;
  SchemaWalker(errors).Walk(document, openapi_schema_, "");

  valijson::ValidationResults results;
  try {
    // The validator caches compiled patterns; one per thread keeps validate thread-safe while
    // compiling each std::regex once instead of once per manifest.
    thread_local valijson::Validator validator(valijson::Validator::kStrongTypes);
    valijson::adapters::NlohmannJsonAdapter adapter(document);
    validator.validate(*compiled_, adapter, &results);
  } catch (const std::exception& e) {
    errors.push_back({"", absl::StrCat("schema validation failed: ", e.what())});
    return errors;
  }
  std::set<std::string> reported;
  for (const FieldError& error : errors) reported.insert(error.path);
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    if (IsWrapperMessage(error.description)) continue;
    // Follow the context ("<root>", "[spec]", "[traffic]", "[1]") through document and schema.
    std::string path;
    const json* value = &document;
    const json* schema = &openapi_schema_;
    for (size_t i = 1; i < error.context.size() && value != nullptr; ++i) {
      std::string step = error.context[i];
      if (step.size() >= 2 && step.front() == '[' && step.back() == ']') {
        step = step.substr(1, step.size() - 2);
      }
      size_t index;
      if (value->is_array() && absl::SimpleAtoi(step, &index) && index < value->size()) {
        path = AppendIndex(path, index);
        value = &(*value)[index];
        schema = schema && schema->contains("items") ? &(*schema)["items"] : nullptr;
      } else if (value->is_object() && value->contains(step)) {
        path = AppendKey(path, step);
        value = &(*value)[step];
        schema = schema ? PropertySchema(*schema, step) : nullptr;
      } else {
        value = nullptr;
      }
    }
    if (value == nullptr || schema == nullptr) {
      errors.push_back({path, error.description});
      continue;
    }
    static constexpr absl::string_view kMissing = "Missing required property '";
    if (absl::StartsWith(error.description, kMissing)) {
      std::string name = error.description.substr(kMissing.size());
      name = name.substr(0, name.find('\''));
      const std::string field_path = AppendKey(path, name);
      if (!reported.insert(field_path).second) continue;
      const json* field_schema = PropertySchema(*schema, name);
      std::string message = absl::StrCat("required field is missing: add ", name);
      if (field_schema != nullptr && !Description(*field_schema).empty()) {
        absl::StrAppend(&message, " (", Description(*field_schema), ")");
      }
      errors.push_back({field_path, message});
      continue;
    }
    if (!reported.insert(path).second) continue;
    errors.push_back({path, RenderViolation(error.description, *value, *schema)});
  }
  return errors;
}

}  // namespace runway
