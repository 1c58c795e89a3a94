// Every file under tests/testdata/invalid/ must fail validation with exactly the diagnostics it
// declares: `# expect: DOC: FIELD: MESSAGE` lines at the top of the file, or the lines of a
// sibling FILE.expect (for JSON and other files that cannot hold a comment). The examples under
// manifests/examples/ must all be valid.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "controller/adapters/manifest_loader.h"

namespace runway {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const fs::path kCorpus = fs::path(RUNWAY_SOURCE_DIR) / "tests/testdata/invalid";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> ExpectedLines(const fs::path& file) {
  std::vector<std::string> expected;
  fs::path sidecar = file;
  sidecar += ".expect";
  const bool has_sidecar = fs::exists(sidecar);
  std::istringstream in(ReadAll(has_sidecar ? sidecar : file));
  static constexpr absl::string_view kPrefix = "# expect: ";
  for (std::string line; std::getline(in, line);) {
    if (has_sidecar) {
      if (!line.empty()) expected.push_back(line);
    } else if (absl::StartsWith(line, kPrefix)) {
      expected.push_back(line.substr(kPrefix.size()));
    } else {
      break;
    }
  }
  return expected;
}

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.path().extension() != ".expect") files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class InvalidCorpusTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto schema = ManifestSchema::Embedded();
    ASSERT_TRUE(schema.ok()) << schema.status();
    schema_ = std::move(*schema);
  }
  std::unique_ptr<ManifestSchema> schema_;
};

TEST_P(InvalidCorpusTest, FailsWithItsExpectedMessages) {
  const fs::path file = kCorpus / GetParam();
  const std::vector<std::string> expected = ExpectedLines(file);
  ASSERT_THAT(expected, Not(IsEmpty())) << file << " declares no expected message";
  const ManifestLoad load = ManifestLoader(*schema_, LoadOptions{}).Load({file.string()});
  std::vector<std::string> actual;
  for (const Diagnostic& diagnostic : load.diagnostics) {
    std::string line = FormatDiagnostic(diagnostic).substr(file.string().size());
    if (absl::StartsWith(line, ":")) line = line.substr(1);
    if (absl::StartsWith(line, " ")) line = line.substr(1);
    // Messages that name the file (ownership conflicts) are compared with the path as FILE.
    for (size_t at; (at = line.find(file.string())) != std::string::npos;) {
      line.replace(at, file.string().size(), "FILE");
    }
    actual.push_back(line);
  }
  EXPECT_THAT(actual, ElementsAreArray(expected)) << file;
}

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidCorpusTest, ::testing::ValuesIn(CorpusFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ExamplesTest, EveryExampleIsValidAgainstTheCrd) {
  auto schema = ManifestSchema::Embedded();
  ASSERT_TRUE(schema.ok()) << schema.status();
  const fs::path examples = fs::path(RUNWAY_SOURCE_DIR) / "manifests/examples";
  const ManifestLoad load = ManifestLoader(**schema, LoadOptions{}).Load({examples.string()});
  std::vector<std::string> problems;
  for (const Diagnostic& d : load.diagnostics) problems.push_back(FormatDiagnostic(d));
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_THAT(load.services, SizeIs(5));
  EXPECT_EQ(load.skipped_documents, 1);
  // The set exercises every strategy, both build sources, tags and pinned revisions.
  std::set<RolloutStrategy> strategies;
  bool git = false, storage = false, pinned = false, analysis = false;
  for (const LoadedService& loaded : load.services) {
    const DesiredService& s = loaded.service;
    strategies.insert(s.rollout.strategy);
    git |= s.build && s.build->git.has_value();
    storage |= s.build && s.build->storage.has_value();
    analysis |= s.rollout.analysis.has_value();
    for (const TrafficTarget& t : s.traffic) pinned |= !t.IsNew() && !t.tag.empty();
  }
  EXPECT_THAT(strategies, SizeIs(3));
  EXPECT_TRUE(git && storage && pinned && analysis);
}

}  // namespace
}  // namespace runway
