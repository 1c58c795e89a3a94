#include "controller/adapters/directory_watcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace runway {
namespace {

namespace fs = std::filesystem;

// Generous: the tests must pass on a slow, loaded machine. Only a hang waits this long.
constexpr absl::Duration kEventDeadline = absl::Seconds(30);

// Counts on_change calls; waits for them without asserting how fast they come.
class CallCounter {
 public:
  std::function<void()> Callback() {
    return [this] {
      absl::MutexLock lock(&mutex_);
      ++calls_;
    };
  }

  int calls() const {
    absl::MutexLock lock(&mutex_);
    return calls_;
  }

  // True once more than `n` calls were made; false if that takes longer than kEventDeadline.
  bool WaitAbove(int n) const {
    absl::MutexLock lock(&mutex_);
    auto above = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return calls_ > n; };
    return mutex_.AwaitWithTimeout(absl::Condition(&above), kEventDeadline);
  }

  // Waits until no call came for `quiet`, so that a later WaitAbove() is not satisfied by a call
  // about an earlier step.
  int Settle(absl::Duration quiet = absl::Milliseconds(300)) const {
    int before = calls();
    while (true) {
      absl::SleepFor(quiet);
      const int now = calls();
      if (now == before) return now;
      before = now;
    }
  }

 private:
  mutable absl::Mutex mutex_;
  int calls_ ABSL_GUARDED_BY(mutex_) = 0;
};

class DirectoryWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "runway-watch-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    watcher_.Stop();
    fs::remove_all(root_);
  }

  void StartWatching(absl::Duration debounce = absl::Milliseconds(20)) {
    ASSERT_TRUE(watcher_.Start(root_.string(), counter_.Callback(), debounce).ok());
  }

  static void WriteFile(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::app) << text;
  }

  // Runs `step` and expects it to cause at least one on_change call.
  void ExpectChange(const std::string& what, const std::function<void()>& step) {
    const int before = counter_.Settle();
    step();
    EXPECT_TRUE(counter_.WaitAbove(before)) << what << " was not reported";
  }

  fs::path root_;
  CallCounter counter_;
  DirectoryWatcher watcher_;
};

TEST_F(DirectoryWatcherTest, ReportsFileChangesInTheRoot) {
  StartWatching();
  const fs::path file = root_ / "api.yaml";
  ExpectChange("create", [&] { WriteFile(file, "a: 1\n"); });
  ExpectChange("modify", [&] { WriteFile(file, "b: 2\n"); });
  ExpectChange("rename", [&] { fs::rename(file, root_ / "web.yaml"); });
  ExpectChange("delete", [&] { fs::remove(root_ / "web.yaml"); });
  ExpectChange("symlink", [&] { fs::create_symlink("elsewhere.yaml", root_ / "link.yaml"); });
  EXPECT_TRUE(watcher_.Health().ok()) << watcher_.Health();
}

TEST_F(DirectoryWatcherTest, ReportsFileChangesInNewNestedSubdirectories) {
  StartWatching();
  const fs::path nested = root_ / "team" / "prod" / "deep";
  ExpectChange("mkdir -p", [&] { fs::create_directories(nested); });
  const fs::path file = nested / "api.yaml";
  ExpectChange("create", [&] { WriteFile(file, "a: 1\n"); });
  ExpectChange("modify", [&] { WriteFile(file, "b: 2\n"); });
  ExpectChange("rename", [&] { fs::rename(file, nested / "web.yaml"); });
  ExpectChange("delete", [&] { fs::remove(nested / "web.yaml"); });

  // A directory moved within the tree is watched at its new place.
  const fs::path moved = root_ / "moved";
  ExpectChange("move dir", [&] { fs::rename(root_ / "team", moved); });
  ExpectChange("write in moved dir", [&] { WriteFile(moved / "prod" / "deep" / "x.yaml", "x\n"); });
  ExpectChange("remove dir", [&] { fs::remove_all(moved); });
  EXPECT_TRUE(watcher_.Health().ok()) << watcher_.Health();
}

TEST_F(DirectoryWatcherTest, ReportsADirectoryMovedInFromOutside) {
  std::string pattern = (fs::temp_directory_path() / "runway-outside-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path outside = pattern;
  fs::create_directories(outside / "sub");
  StartWatching();
  ExpectChange("move in", [&] { fs::rename(outside, root_ / "inside"); });
  ExpectChange("write in moved-in dir", [&] { WriteFile(root_ / "inside" / "sub" / "a", "a\n"); });
}

TEST_F(DirectoryWatcherTest, CoalescesABurstOfWrites) {
  // Like an editor's save, spread out a little: without debouncing each write is read
  // separately and reported on its own. Only if every gap exceeded the debounce could the
  // calls reach the number of writes.
  constexpr int kFiles = 20;
  StartWatching(/*debounce=*/absl::Milliseconds(500));
  const int before = counter_.calls();
  for (int i = 0; i < kFiles; ++i) {
    WriteFile(root_ / ("f" + std::to_string(i)), "data\n");
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(counter_.WaitAbove(before));
  const int calls = counter_.Settle() - before;
  EXPECT_GE(calls, 1);
  EXPECT_LT(calls, kFiles);
}

TEST_F(DirectoryWatcherTest, StopDropsAPendingChangeAndEndsCallbacks) {
  // A debounce far longer than the test: Stop must not wait for it.
  StartWatching(/*debounce=*/absl::Hours(1));
  WriteFile(root_ / "a.yaml", "a\n");
  absl::SleepFor(absl::Milliseconds(100));  // let the thread read the event, when it can
  watcher_.Stop();
  EXPECT_EQ(counter_.calls(), 0);
  watcher_.Stop();  // idempotent
}

TEST_F(DirectoryWatcherTest, NoCallbackAfterStopReturns) {
  StartWatching();
  ExpectChange("create", [&] { WriteFile(root_ / "a.yaml", "a\n"); });
  watcher_.Stop();
  const int stopped = counter_.calls();
  WriteFile(root_ / "b.yaml", "b\n");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(counter_.calls(), stopped);

  // And it can be started again.
  StartWatching();
  ExpectChange("create after restart", [&] { WriteFile(root_ / "c.yaml", "c\n"); });
}

TEST_F(DirectoryWatcherTest, DoesNotFollowSymlinkLoops) {
  fs::create_directories(root_ / "sub");
  fs::create_directory_symlink(root_, root_ / "sub" / "loop");
  fs::create_directory_symlink("..", root_ / "sub" / "up");
  StartWatching();
  ExpectChange("write", [&] { WriteFile(root_ / "sub" / "a.yaml", "a\n"); });
  EXPECT_TRUE(watcher_.Health().ok()) << watcher_.Health();
}

TEST_F(DirectoryWatcherTest, ReportsTheRootRemovedAndWatchesItAgainOnceBack) {
  fs::create_directories(root_ / "sub");
  StartWatching();
  ExpectChange("remove root", [&] { fs::remove_all(root_); });
  EXPECT_EQ(watcher_.Health().code(), absl::StatusCode::kUnavailable);

  ExpectChange("recreate root", [&] { fs::create_directories(root_ / "sub"); });
  EXPECT_TRUE(watcher_.Health().ok()) << watcher_.Health();
  ExpectChange("write in recreated root", [&] { WriteFile(root_ / "sub" / "a.yaml", "a\n"); });
}

TEST_F(DirectoryWatcherTest, StartFailsForAMissingRoot) {
  DirectoryWatcher watcher;
  absl::Status status = watcher.Start((root_ / "missing").string(), [] {});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("missing"), absl::string_view::npos) << status;
}

TEST_F(DirectoryWatcherTest, StartFailsForAFileRoot) {
  WriteFile(root_ / "file", "x");
  DirectoryWatcher watcher;
  EXPECT_EQ(watcher.Start((root_ / "file").string(), [] {}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DirectoryWatcherTest, StartTwiceFails) {
  StartWatching();
  EXPECT_EQ(watcher_.Start(root_.string(), [] {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DirectoryWatcherLifetimeTest, StopAndDestroyWithoutStartAreSafe) {
  DirectoryWatcher watcher;
  watcher.Stop();
  EXPECT_TRUE(watcher.Health().ok());
}

}  // namespace
}  // namespace runway
