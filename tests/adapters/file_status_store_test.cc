#include "controller/adapters/file_status_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/fakes/fake_clock.h"

namespace runway {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// 2026-01-01T00:00:00Z, FakeClock's default start.
const absl::Time kStart = absl::FromUnixSeconds(1767225600);

Condition MakeCondition(std::string type, std::string status, std::string reason,
                        absl::Time last_transition = absl::UnixEpoch()) {
  Condition condition;
  condition.type = std::move(type);
  condition.status = std::move(status);
  condition.reason = std::move(reason);
  condition.message = "message for " + condition.reason;
  condition.observed_generation = 3;
  condition.last_transition_time = last_transition;
  return condition;
}

ServiceStatus MakeStatus() {
  ServiceStatus status;
  status.observed_generation = 3;
  status.revision = "api-00003-abc";
  status.conditions.push_back(MakeCondition("Ready", "True", "Converged", kStart - absl::Hours(2)));
  status.conditions.push_back(
      MakeCondition("Reconciling", "False", "Idle", kStart - absl::Hours(1)));
  status.traffic.push_back({"api-00003-abc", 90, "candidate"});
  status.traffic.push_back({"api-00002-xyz", 10, ""});
  return status;
}

void ExpectSameStatus(const ServiceStatus& actual, const ServiceStatus& expected) {
  EXPECT_EQ(actual.observed_generation, expected.observed_generation);
  EXPECT_EQ(actual.revision, expected.revision);
  ASSERT_EQ(actual.conditions.size(), expected.conditions.size());
  for (size_t i = 0; i < actual.conditions.size(); ++i) {
    const Condition& a = actual.conditions[i];
    const Condition& e = expected.conditions[i];
    EXPECT_EQ(a.type, e.type);
    EXPECT_EQ(a.status, e.status);
    EXPECT_EQ(a.reason, e.reason);
    EXPECT_EQ(a.message, e.message);
    EXPECT_EQ(a.observed_generation, e.observed_generation);
    EXPECT_EQ(a.last_transition_time, e.last_transition_time) << a.type;
  }
  ASSERT_EQ(actual.traffic.size(), expected.traffic.size());
  for (size_t i = 0; i < actual.traffic.size(); ++i) {
    EXPECT_EQ(actual.traffic[i].revision, expected.traffic[i].revision);
    EXPECT_EQ(actual.traffic[i].percent, expected.traffic[i].percent);
    EXPECT_EQ(actual.traffic[i].tag, expected.traffic[i].tag);
  }
}

class FileStatusStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "runway-status-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    base_ = pattern;
    dir_ = base_ / "state";
  }
  void TearDown() override { fs::remove_all(base_); }

  static std::string ReadText(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  nlohmann::json ReadJson(const ObjectKey& key) const {
    return nlohmann::json::parse(ReadText(dir_ / key.name_space / (key.name + ".json")));
  }
  static void WriteText(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }

  fs::path base_;
  fs::path dir_;
  FakeClock clock_;
  const ObjectKey key_{"prod", "api"};
};

TEST_F(FileStatusStoreTest, RoundTripsAStatusAsDocumentedJson) {
  FileStatusStore store(dir_.string(), &clock_);
  ASSERT_TRUE(store.Report(key_, MakeStatus()).ok());

  absl::StatusOr<ServiceStatus> loaded = store.Load(key_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameStatus(*loaded, MakeStatus());

  const nlohmann::json file = ReadJson(key_);
  EXPECT_EQ(file["key"], "prod/api");
  EXPECT_EQ(file["observedGeneration"], 3);
  EXPECT_EQ(file["revision"], "api-00003-abc");
  EXPECT_EQ(file["updateTime"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(file["conditions"][0]["lastTransitionTime"], "2025-12-31T22:00:00Z");
  EXPECT_EQ(file["conditions"][0]["observedGeneration"], 3);
  EXPECT_EQ(file["traffic"][0]["tag"], "candidate");
  EXPECT_FALSE(file["traffic"][1].contains("tag"));  // omitted when empty
  EXPECT_EQ(file["traffic"][1]["percent"], 10);
}

TEST_F(FileStatusStoreTest, ReplacesFilesAtomicallyLeavingNoTemporaryFiles) {
  FileStatusStore store(dir_.string(), &clock_);
  for (int generation = 1; generation <= 5; ++generation) {
    ServiceStatus status = MakeStatus();
    status.observed_generation = generation;
    ASSERT_TRUE(store.Report(key_, status).ok());
  }
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_ / "prod")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ElementsAre("api.json"));
  EXPECT_EQ(ReadJson(key_)["observedGeneration"], 5);
  struct stat info;
  ASSERT_EQ(::stat((dir_ / "prod" / "api.json").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644);
}

TEST_F(FileStatusStoreTest, KeepsLastTransitionTimeUntilTheConditionStatusChanges) {
  FileStatusStore store(dir_.string(), &clock_);
  ServiceStatus status;
  status.conditions = {MakeCondition("Ready", "False", "Deploying")};  // time unset: now
  ASSERT_TRUE(store.Report(key_, status).ok());
  const absl::Time first = kStart;

  clock_.Advance(absl::Hours(1));
  // Same status, new reason and a caller-supplied time: the old transition time stays.
  status.conditions = {MakeCondition("Ready", "False", "Verifying", kStart + absl::Minutes(30))};
  ASSERT_TRUE(store.Report(key_, status).ok());
  absl::StatusOr<ServiceStatus> loaded = store.Load(key_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->conditions[0].reason, "Verifying");
  EXPECT_EQ(loaded->conditions[0].last_transition_time, first);

  // A fresh store (a restarted controller) reads the previous time from the file.
  FileStatusStore restarted(dir_.string(), &clock_);
  clock_.Advance(absl::Hours(1));
  status.conditions = {MakeCondition("Ready", "True", "Converged"),
                       MakeCondition("Stalled", "False", "Fine", kStart + absl::Minutes(1))};
  ASSERT_TRUE(restarted.Report(key_, status).ok());
  loaded = restarted.Load(key_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->conditions[0].last_transition_time, kStart + absl::Hours(2));    // changed: now
  EXPECT_EQ(loaded->conditions[1].last_transition_time, kStart + absl::Minutes(1));  // new: given
}

TEST_F(FileStatusStoreTest, DoesNotRewriteAnUnchangedStatus) {
  FileStatusStore store(dir_.string(), &clock_);
  ServiceStatus status = MakeStatus();
  status.conditions[0].message = "exit code \xff";  // invalid UTF-8, stored replaced
  ASSERT_TRUE(store.Report(key_, status).ok());
  clock_.Advance(absl::Minutes(10));
  ASSERT_TRUE(store.Report(key_, status).ok());
  EXPECT_EQ(ReadJson(key_)["updateTime"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(ReadJson(key_)["conditions"][0]["message"], "exit code \uFFFD");

  ServiceStatus changed = MakeStatus();
  changed.traffic[0].percent = 100;
  changed.traffic.pop_back();
  ASSERT_TRUE(store.Report(key_, changed).ok());
  EXPECT_EQ(ReadJson(key_)["updateTime"], "2026-01-01T00:10:00Z");
}

TEST_F(FileStatusStoreTest, LoadAllIsSortedByKeyAndIgnoresOtherFiles) {
  FileStatusStore store(dir_.string(), &clock_);
  for (const ObjectKey& key : {ObjectKey{"staging", "web"}, ObjectKey{"prod", "worker"},
                               ObjectKey{"prod", "api"}, ObjectKey{"dev", "api"}}) {
    ASSERT_TRUE(store.Report(key, MakeStatus()).ok());
  }
  WriteText(dir_ / "README.txt", "not a namespace");
  WriteText(dir_ / "prod" / "notes.txt", "not a status");
  WriteText(dir_ / "prod" / ".api.json.tmp-AbCdEf", "{");  // left by a crash mid-write
  WriteText(dir_ / ".hidden" / "x.json", "{");

  absl::StatusOr<StoredStatuses> all = store.LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> keys;
  for (const auto& [key, status] : all->statuses) keys.push_back(key.ToString());
  EXPECT_THAT(keys, ElementsAre("dev/api", "prod/api", "prod/worker", "staging/web"));
  EXPECT_THAT(all->warnings, IsEmpty());
  ExpectSameStatus(all->statuses[0].second, MakeStatus());
}

TEST_F(FileStatusStoreTest, LoadAllOfAMissingDirectoryIsEmpty) {
  FileStatusStore store(dir_.string(), &clock_);
  absl::StatusOr<StoredStatuses> all = store.LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(all->statuses, IsEmpty());
  EXPECT_EQ(store.Load(key_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FileStatusStoreTest, SkipsCorruptFilesWithAWarningAndOverwritesThemOnReport) {
  FileStatusStore store(dir_.string(), &clock_);
  ASSERT_TRUE(store.Report(key_, MakeStatus()).ok());
  WriteText(dir_ / "prod" / "garbage.json", "{\"key\": ");
  WriteText(dir_ / "prod" / "typed.json", R"({"key": "prod/typed", "observedGeneration": "3"})");
  WriteText(dir_ / "prod" / "moved.json", R"({"key": "prod/other", "observedGeneration": 3})");
  WriteText(dir_ / "prod" / "time.json",
            R"({"key": "prod/time", "observedGeneration": 3, "conditions": [
                 {"type": "Ready", "status": "True", "lastTransitionTime": "yesterday"}]})");

  absl::StatusOr<StoredStatuses> all = store.LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(all->statuses, SizeIs(1));
  EXPECT_EQ(all->statuses[0].first, key_);
  ASSERT_THAT(all->warnings, SizeIs(4));
  std::sort(all->warnings.begin(), all->warnings.end());
  EXPECT_THAT(all->warnings[0], HasSubstr((dir_ / "prod" / "garbage.json").string()));
  EXPECT_THAT(all->warnings[0], HasSubstr("not valid JSON"));
  EXPECT_THAT(all->warnings[1], HasSubstr("prod/other"));
  EXPECT_THAT(all->warnings[2], HasSubstr("lastTransitionTime"));
  EXPECT_THAT(all->warnings[3], HasSubstr("observedGeneration"));

  const ObjectKey garbage{"prod", "garbage"};
  EXPECT_EQ(store.Load(garbage).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(store.Report(garbage, MakeStatus()).ok());
  absl::StatusOr<ServiceStatus> repaired = store.Load(garbage);
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  ExpectSameStatus(*repaired, MakeStatus());
}

TEST_F(FileStatusStoreTest, RefusesKeysThatCouldEscapeTheDirectory) {
  FileStatusStore store(dir_.string(), &clock_);
  const ObjectKey bad_keys[] = {
      {"..", "api"},
      {"prod", ".."},
      {"prod/../..", "api"},
      {"prod", "../api"},
      {"prod", "a/b"},
      {".", "api"},
      {"", "api"},
      {"prod", ""},
      {"prod", ".api"},
      {"prod", std::string("a\0b", 3)},
      {"prod", std::string(300, 'a')},
  };
  for (const ObjectKey& key : bad_keys) {
    EXPECT_EQ(store.Report(key, MakeStatus()).code(), absl::StatusCode::kInvalidArgument)
        << key.ToString();
    EXPECT_EQ(store.Load(key).status().code(), absl::StatusCode::kInvalidArgument)
        << key.ToString();
    EXPECT_EQ(store.Remove(key).code(), absl::StatusCode::kInvalidArgument) << key.ToString();
  }
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_FALSE(fs::exists(base_ / "api.json"));
}

TEST_F(FileStatusStoreTest, RemoveDeletesTheStatusAndAnEmptyNamespace) {
  FileStatusStore store(dir_.string(), &clock_);
  const ObjectKey worker{"prod", "worker"};
  ASSERT_TRUE(store.Report(key_, MakeStatus()).ok());
  ASSERT_TRUE(store.Report(worker, MakeStatus()).ok());

  ASSERT_TRUE(store.Remove(key_).ok());
  EXPECT_EQ(store.Load(key_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.Load(worker).ok());
  ASSERT_TRUE(store.Remove(worker).ok());
  EXPECT_FALSE(fs::exists(dir_ / "prod"));
  EXPECT_TRUE(store.Remove(worker).ok());  // already gone
}

TEST_F(FileStatusStoreTest, ReportsAnUnwritableDirectory) {
  WriteText(base_ / "file", "x");
  FileStatusStore store((base_ / "file" / "state").string(), &clock_);
  EXPECT_EQ(store.Report(key_, MakeStatus()).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.LoadAll().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace runway
