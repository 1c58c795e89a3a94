#include "controller/adapters/file_manifest_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace runway {
namespace {

namespace fs = std::filesystem;
using ::testing::SizeIs;

constexpr char kManifest[] = R"(apiVersion: runway.dev/v1alpha1
kind: CloudRunService
metadata: {name: api, namespace: prod}
spec:
  project: my-project
  region: us-central1
  image: gcr.io/p/api@sha256:a17703e9b1c44a0d8c6f0e3a5b2d9f1e7c4a6b8d0e2f4a6c8e0b2d4f6a8c0e2f
)";

TEST(FileManifestSourceTest, SnapshotsServicesInvalidManifestsAndAContentVersion) {
  const fs::path root = fs::temp_directory_path() / ("runway-source-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  std::ofstream(root / "api.yaml") << kManifest;
  std::ofstream(root / "bad.yaml") << "apiVersion: runway.dev/v1alpha1\nkind: CloudRunService\n";
  auto schema = ManifestSchema::Embedded();
  ASSERT_TRUE(schema.ok());
  FileManifestSource source(**schema, {root.string()});

  absl::StatusOr<ManifestSnapshot> first = source.Snapshot();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_THAT(first->services, SizeIs(1));
  EXPECT_EQ(first->services[0].key.ToString(), "prod/api");
  EXPECT_EQ(first->services[0].target.ResourceName(),
            "projects/my-project/locations/us-central1/services/api");
  ASSERT_THAT(first->invalid, SizeIs(1));
  EXPECT_EQ(first->invalid[0].origin, (root / "bad.yaml").string() + ":1");
  EXPECT_THAT(first->invalid[0].errors, SizeIs(2));  // metadata and spec both missing
  EXPECT_FALSE(first->invalid[0].key.has_value());   // no metadata.name: no service to blame

  absl::StatusOr<ManifestSnapshot> unchanged = source.Snapshot();
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(unchanged->version, first->version);
  std::ofstream(root / "api.yaml", std::ios::app) << "  suspend: true\n";
  absl::StatusOr<ManifestSnapshot> changed = source.Snapshot();
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->version, first->version);
  EXPECT_TRUE(changed->services[0].suspend);

  fs::remove_all(root);
  EXPECT_EQ(source.Snapshot().status().code(), absl::StatusCode::kNotFound);
}

TEST(FileManifestSourceTest, AnInvalidManifestKeepsTheKeyItsMetadataNames) {
  const fs::path root =
      fs::temp_directory_path() / ("runway-source-key-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  std::ofstream(root / "api.yaml") << kManifest << "  traffic:\n"
                                   << "    - {revision: \"@new\", percent: 90}\n";
  auto schema = ManifestSchema::Embedded();
  ASSERT_TRUE(schema.ok());
  FileManifestSource source(**schema, {root.string()});

  absl::StatusOr<ManifestSnapshot> snapshot = source.Snapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->services, SizeIs(0));
  ASSERT_THAT(snapshot->invalid, SizeIs(1));
  ASSERT_TRUE(snapshot->invalid[0].key.has_value());
  EXPECT_EQ(snapshot->invalid[0].key->ToString(), "prod/api");
  EXPECT_EQ(snapshot->invalid[0].errors[0].path, "spec.traffic");
  fs::remove_all(root);
}

}  // namespace
}  // namespace runway
