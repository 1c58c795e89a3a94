#include "controller/adapters/manifest_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace runway {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::string Manifest(const std::string& name, const std::string& service = "") {
  std::string text =
      "apiVersion: runway.dev/v1alpha1\nkind: CloudRunService\nmetadata:\n  name: " + name +
      "\nspec:\n  project: my-project\n  region: us-central1\n";
  if (!service.empty()) text += "  service: " + service + "\n";
  return text +
         "  image: "
         "gcr.io/p/x@sha256:a17703e9b1c44a0d8c6f0e3a5b2d9f1e7c4a6b8d0e2f4a6c8e0b2d4f6a8c0e2f\n";
}

class ManifestLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto schema = ManifestSchema::Embedded();
    ASSERT_TRUE(schema.ok()) << schema.status();
    schema_ = std::move(*schema);
    root_ = fs::temp_directory_path() /
            ("runway-loader-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& relative, const std::string& text) {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }

  ManifestLoad Load(std::vector<std::string> paths = {}) {
    if (paths.empty()) paths.push_back(root_.string());
    return ManifestLoader(*schema_, LoadOptions{}).Load(paths);
  }

  std::unique_ptr<ManifestSchema> schema_;
  fs::path root_;
};

TEST_F(ManifestLoaderTest, WalksTreesRecursivelyAndSkipsOtherKindsAndHiddenFiles) {
  Write("a.yaml", Manifest("a"));
  Write("nested/deeper/b.yml", Manifest("b") + "---\napiVersion: v1\nkind: ConfigMap\n");
  Write("nested/c.json", R"({"apiVersion": "apps/v1", "kind": "Deployment"})");
  Write("nested/readme.md", "not a manifest");
  Write(".git/config.yaml", "garbage: [");
  const ManifestLoad load = Load();
  EXPECT_THAT(load.diagnostics, IsEmpty());
  ASSERT_THAT(load.services, SizeIs(2));
  EXPECT_EQ(load.services[0].service.key.name, "a");
  EXPECT_EQ(load.services[0].service.key.name_space, "default");
  EXPECT_EQ(load.services[0].service.target.service, "a");  // defaults to metadata.name
  EXPECT_EQ(load.services[1].service.key.name, "b");
  EXPECT_EQ(load.files, 3);
  EXPECT_EQ(load.skipped_documents, 2);
}

TEST_F(ManifestLoaderTest, OneBadManifestDoesNotStopTheOthers) {
  Write("a.yaml",
        Manifest("a") + "---\n" + Manifest("bad") + "  suspend: maybe\n---\n" + Manifest("c"));
  const ManifestLoad load = Load();
  ASSERT_THAT(load.diagnostics, SizeIs(1));
  EXPECT_EQ(FormatDiagnostic(load.diagnostics[0]),
            (root_ / "a.yaml").string() +
                ":2: spec.suspend: must be a boolean, not the string \"maybe\": use true or false");
  EXPECT_EQ(load.diagnostics[0].line, 18);
  EXPECT_THAT(load.services, SizeIs(2));
}

TEST_F(ManifestLoaderTest, TwoManifestsForOneServiceAreBothRejected) {
  Write("one.yaml", Manifest("api"));
  Write("two.yaml", Manifest("api-copy", "api"));
  const ManifestLoad load = Load();
  EXPECT_THAT(load.services, IsEmpty());
  ASSERT_THAT(load.diagnostics, SizeIs(2));
  EXPECT_EQ(load.diagnostics[0].file, (root_ / "one.yaml").string());
  EXPECT_THAT(load.diagnostics[0].message,
              HasSubstr("projects/my-project/locations/us-central1/services/api is also managed "
                        "by " +
                        (root_ / "two.yaml").string() + ":1"));
  EXPECT_EQ(load.diagnostics[1].file, (root_ / "two.yaml").string());
  EXPECT_THAT(load.diagnostics[1].message,
              HasSubstr("is also managed by " + (root_ / "one.yaml").string() + ":1"));
}

TEST_F(ManifestLoaderTest, SymlinkLoopIsReportedNotFollowedForever) {
  Write("svc/a.yaml", Manifest("a"));
  fs::create_directory_symlink(root_, root_ / "svc" / "loop");
  const ManifestLoad load = Load();
  ASSERT_THAT(load.diagnostics, SizeIs(1));
  EXPECT_EQ(load.diagnostics[0].file, (root_ / "svc" / "loop").string());
  EXPECT_THAT(load.diagnostics[0].message, HasSubstr("directory loop"));
  EXPECT_THAT(load.services, SizeIs(1));
}

TEST_F(ManifestLoaderTest, SameFileThroughTwoPathsLoadsOnce) {
  Write("a.yaml", Manifest("a"));
  fs::create_symlink(root_ / "a.yaml", root_ / "alias.yaml");
  const ManifestLoad load = Load();
  EXPECT_THAT(load.diagnostics, IsEmpty());
  EXPECT_THAT(load.services, SizeIs(1));
}

TEST_F(ManifestLoaderTest, OversizedAndSpecialFilesAreReportedWithoutReading) {
  Write("big.yaml", std::string(2 << 20, '#'));
  ASSERT_EQ(::mkfifo((root_ / "fifo.yaml").c_str(), 0600), 0);
  const ManifestLoad load = Load({(root_ / "big.yaml").string(), (root_ / "fifo.yaml").string()});
  ASSERT_THAT(load.diagnostics, SizeIs(2));
  // Paths are vetted first, then files are read.
  EXPECT_THAT(load.diagnostics[0].message, HasSubstr("not a regular file"));
  EXPECT_THAT(load.diagnostics[1].message,
              HasSubstr("file is 2097152 bytes, over the 1048576-byte limit"));
  const ManifestLoad walked = Load();  // the walk skips the FIFO instead of blocking on it
  EXPECT_THAT(walked.diagnostics, SizeIs(1));
}

TEST_F(ManifestLoaderTest, ErrorsPointAtTheLineOfTheField) {
  Write("a.yaml", Manifest("a") +
                      "  traffic:\n    - {revision: '@new', percent: 60}\n"
                      "    - {revision: a-0001, percent: 30}\n");
  const ManifestLoad load = Load();
  ASSERT_THAT(load.diagnostics, SizeIs(1));
  EXPECT_EQ(load.diagnostics[0].field, "spec.traffic");
  EXPECT_EQ(load.diagnostics[0].line, 9);
}

TEST_F(ManifestLoaderTest, RuleErrorsExplainedBySchemaErrorsAreDropped) {
  // The bad percent is reported once; the sum it breaks is not reported on top of it.
  Write("a.yaml", Manifest("a") + "  traffic:\n    - {revision: '@new', percent: ten}\n");
  const ManifestLoad load = Load();
  ASSERT_THAT(load.diagnostics, SizeIs(1));
  EXPECT_EQ(load.diagnostics[0].field, "spec.traffic[0].percent");
}

}  // namespace
}  // namespace runway
