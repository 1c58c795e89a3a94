#include "controller/adapters/manifest_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "controller/adapters/document_reader.h"
#include "tests/field_error_printer.h"

namespace runway {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class ManifestSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto schema = ManifestSchema::Embedded();
    ASSERT_TRUE(schema.ok()) << schema.status();
    schema_ = std::move(*schema);
  }

  static json Minimal() {
    return json::parse(R"({
      "apiVersion": "runway.dev/v1alpha1", "kind": "CloudRunService",
      "metadata": {"name": "api"},
      "spec": {"project": "my-project", "region": "us-central1",
               "image": "gcr.io/p/api@sha256:a17703e9b1c44a0d8c6f0e3a5b2d9f1e7c4a6b8d0e2f4a6c8e0b2d4f6a8c0e2f"}
    })");
  }

  std::unique_ptr<ManifestSchema> schema_;
};

auto ErrorAt(const std::string& path, const std::string& message_part) {
  return AllOf(Field(&FieldError::path, path),
               Field(&FieldError::message, HasSubstr(message_part)));
}

TEST_F(ManifestSchemaTest, MinimalManifestIsValidAndGetsDefaults) {
  json doc = Minimal();
  doc["spec"]["rollout"] = json::object();
  doc["spec"]["build"] = json::parse(R"({"source": {}, "repository": "r.io/a/b"})");
  EXPECT_THAT(schema_->ValidateAndDefault(doc), IsEmpty());
  EXPECT_EQ(doc["spec"]["driftPolicy"], "enforce");
  EXPECT_EQ(doc["spec"]["suspend"], false);
  EXPECT_EQ(doc["spec"]["rollout"]["strategy"], "direct");
  EXPECT_EQ(doc["spec"]["rollout"]["progressDeadline"], "10m");
  EXPECT_EQ(doc["spec"]["build"]["builder"], "auto");
  EXPECT_EQ(doc["spec"]["build"]["timeout"], "20m");
  EXPECT_FALSE(doc["spec"].contains("template"));  // defaults only inside objects that exist
}

TEST_F(ManifestSchemaTest, UnknownFieldsSuggestTheClosestName) {
  json doc = Minimal();
  doc["spec"]["trafic"] = json::array();
  doc["spec"]["zzzzzz"] = 1;
  doc["metadata"]["resourceVersion"] = "12";  // ObjectMeta fields are accepted
  EXPECT_THAT(
      schema_->ValidateAndDefault(doc),
      ElementsAre(ErrorAt("spec.trafic", "unknown field \"trafic\": did you mean \"traffic\"?"),
                  ErrorAt("spec.zzzzzz", "remove it (known fields here: build,")));
}

TEST_F(ManifestSchemaTest, MessagesNameTheFieldAndTheFix) {
  json doc = Minimal();
  doc["spec"].erase("region");
  doc["spec"]["traffic"] = json::parse(R"([{"revision": "@new", "percent": "100"},
                                           {"revision": "api-1", "percent": 150}])");
  doc["spec"]["rollout"] = json::parse(R"({"strategy": "bluegreen"})");
  doc["spec"]["project"] = "My_Project";
  doc["spec"]["suspend"] = "yes";
  const FieldErrors errors = schema_->ValidateAndDefault(doc);
  EXPECT_THAT(errors, Contains(ErrorAt("spec.region",
                                       "required field is missing: add region "
                                       "(Cloud Run region, for example")));
  EXPECT_THAT(errors, Contains(ErrorAt("spec.traffic[0].percent",
                                       "must be an integer, not the string \"100\": remove the "
                                       "quotes")));
  EXPECT_THAT(errors,
              Contains(ErrorAt("spec.traffic[1].percent", "150 is above the maximum of 100")));
  EXPECT_THAT(errors, Contains(ErrorAt("spec.rollout.strategy",
                                       "\"bluegreen\" is not one of: direct, canary, manual")));
  EXPECT_THAT(errors, Contains(ErrorAt("spec.project",
                                       "\"My_Project\" does not match "
                                       "^[a-z][-a-z0-9]{4,28}[a-z0-9]$: Google")));
  EXPECT_THAT(errors, Contains(ErrorAt("spec.suspend", "use true or false")));
  EXPECT_EQ(errors.size(), 6u);
}

TEST_F(ManifestSchemaTest, HugeStringsAreCutBeforeTheRegexSeesThem) {
  json doc = Minimal();
  doc["spec"]["image"] = std::string(900000, 'a');
  EXPECT_THAT(schema_->ValidateAndDefault(doc),
              ElementsAre(ErrorAt("spec.image",
                                  "is 900000 characters long, over the limit of "
                                  "1024")));
}

// Walks every property schema of the CRD, calling `visit(path, schema)`.
void VisitSchemas(const json& schema, const std::string& path,
                  const std::function<void(const std::string&, const json&)>& visit) {
  visit(path, schema);
  if (auto props = schema.find("properties"); props != schema.end()) {
    for (auto it = props->begin(); it != props->end(); ++it) {
      VisitSchemas(*it, path + "." + it.key(), visit);
    }
  }
  if (auto items = schema.find("items"); items != schema.end()) {
    VisitSchemas(*items, path + "[]", visit);
  }
}

TEST_F(ManifestSchemaTest, CrdDescribesEveryFieldAndBoundsEveryPattern) {
  int fields = 0;
  VisitSchemas(schema_->openapi_schema(), "", [&](const std::string& path, const json& schema) {
    ++fields;
    const bool is_list_item = path.size() >= 2 && path.substr(path.size() - 2) == "[]";
    if (!path.empty() && !is_list_item) {
      EXPECT_TRUE(schema.contains("description")) << path << " has no description";
    }
    if (schema.contains("pattern")) {
      // std::regex recurses per character; the walker cuts strings to maxLength first.
      EXPECT_TRUE(schema.contains("maxLength")) << path << " has a pattern but no maxLength";
    }
  });
  EXPECT_GT(fields, 100);
}

TEST_F(ManifestSchemaTest, CrdHasPrinterColumnsShortNameAndStatusSubresource) {
  auto docs = ReadDocuments(kCloudRunServiceCrdYaml, DocumentFormat::kYaml, {});
  ASSERT_TRUE(docs.ok());
  const json& crd = (*docs)[0].value;
  EXPECT_EQ(crd["metadata"]["name"], "cloudrunservices.runway.dev");
  EXPECT_EQ(crd["spec"]["names"]["shortNames"][0], "crs");
  const json& version = crd["spec"]["versions"][0];
  EXPECT_EQ(version["name"], "v1alpha1");
  EXPECT_TRUE(version["subresources"].contains("status"));
  std::vector<std::string> columns;
  for (const json& column : version["additionalPrinterColumns"]) columns.push_back(column["name"]);
  EXPECT_THAT(columns, ElementsAre("Ready", "Revision", "Traffic", "Age"));
}

TEST(ClosestNameTest, SuggestsOnlyCloseNames) {
  EXPECT_EQ(ClosestName("trafic", {"traffic", "template"}), "traffic");
  EXPECT_EQ(ClosestName("Image", {"image", "build"}), "image");
  EXPECT_EQ(ClosestName("progresDeadline", {"progressDeadline", "steps"}), "progressDeadline");
  EXPECT_EQ(ClosestName("zzzz", {"image", "build"}), "");
}

}  // namespace
}  // namespace runway

namespace runway {
namespace {

// docs/manifest-reference.md is generated from the CRD; a field added to the CRD without
// regenerating the document fails here.
TEST(ManifestReferenceTest, DocumentsEveryCrdField) {
  auto schema = ManifestSchema::Embedded();
  ASSERT_TRUE(schema.ok());
  std::ifstream in(std::string(RUNWAY_SOURCE_DIR) + "/docs/manifest-reference.md");
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string text = doc.str();
  ASSERT_FALSE(text.empty());
  int checked = 0;
  std::function<void(const json&, const std::string&)> visit = [&](const json& s,
                                                                   const std::string& path) {
    if (path.rfind("spec", 0) == 0) {
      EXPECT_NE(text.find("| `" + path + "` |"), std::string::npos) << path << " is undocumented";
      ++checked;
    }
    if (auto props = s.find("properties"); props != s.end()) {
      for (auto it = props->begin(); it != props->end(); ++it) {
        visit(*it, path.empty() ? it.key() : path + "." + it.key());
      }
    }
    if (auto items = s.find("items"); items != s.end() && items->contains("properties")) {
      for (auto it = (*items)["properties"].begin(); it != (*items)["properties"].end(); ++it) {
        visit(*it, path + "[]." + it.key());
      }
    }
  };
  visit((*schema)->openapi_schema(), "");
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace runway
