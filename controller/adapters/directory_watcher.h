#pragma once

// DirectoryWatcher: tells its owner that something under a directory tree changed, so that a
// level-based consumer (FileManifestSource + the work queue) re-reads it. It reports *that*
// something changed, never what: the consumer re-lists, so missed detail costs nothing.
//
// Linux inotify, recursive: the root and every subdirectory are watched; directories created or
// moved in later are added, removed or moved-out ones dropped. Symbolic links are never followed
// below the root (a link loop cannot make it walk forever; a linked directory elsewhere is not
// watched). Changes: a file closed after writing, moved in or out, deleted; a directory or
// symbolic link created; the root deleted or moved; an overflowed event queue. If the root goes
// away the watcher checks for it again every second and reports a change once it is back.
//
// on_change runs on the watcher's own thread, never concurrently with itself, and a burst of
// events is coalesced into one call: it runs once no event came for `debounce`, but at most
// 10 * debounce after the burst's first event, so a steady stream of writes cannot starve it.
// No change is lost: a subdirectory's watch is added before the change call that reports its
// creation, so the consumer's re-read covers files written before the watch existed.
//
// Thread-safety: Start and Stop must not race each other; Health may be called from any thread.

#include <functional>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace runway {

class DirectoryWatcher {
 public:
  DirectoryWatcher() = default;
  DirectoryWatcher(const DirectoryWatcher&) = delete;
  DirectoryWatcher& operator=(const DirectoryWatcher&) = delete;
  // Stops the watcher (see Stop).
  ~DirectoryWatcher();

  // Watches `root` and its subdirectories and starts the thread that calls `on_change`.
  // Errors: kNotFound (root missing), kFailedPrecondition (root not a directory, or Start called
  // twice), kPermissionDenied, kResourceExhausted (inotify limits: the message names the sysctl
  // to raise, fs.inotify.max_user_watches or fs.inotify.max_user_instances), kInternal.
  // On error nothing is left running.
  absl::Status Start(const std::string& root, std::function<void()> on_change,
                     absl::Duration debounce = absl::Milliseconds(20));

  // Wakes the thread and joins it. A change still waiting for its debounce is dropped. Returns
  // after a running on_change returns; no call starts after Stop returns. Must not be called from
  // on_change. Idempotent; no-op if never started.
  void Stop();

  // OK, or the last problem met after Start: a subdirectory that could not be watched (the
  // watch limit), or the root gone. Changes in unwatched places are then seen only by the
  // consumer's periodic resync. Cleared when a full rescan succeeds.
  absl::Status Health() const;

 private:
  void Run();
  // Reads and handles all queued events; returns true if any of them is a change.
  bool DrainEvents();
  // Handles one event; returns true if it is a change.
  bool HandleEvent(int wd, uint32_t mask, const std::string& name);
  // Watches `dir` and every directory below it, without following symbolic links. Directories
  // that vanish meanwhile are skipped. Errors only for `dir` itself, or for any directory when
  // the watch limit is reached.
  absl::Status WatchTree(const std::string& dir);
  absl::Status WatchOne(const std::string& dir);
  // Stops watching `dir` and everything below it (it was moved away).
  void UnwatchTree(const std::string& dir);
  void UnwatchAll();
  // Re-adds the watches after the root came back; returns true if the root is watched again.
  bool TryRecoverRoot();
  void SetHealth(absl::Status status);

  std::string root_;
  std::function<void()> on_change_;
  absl::Duration debounce_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd written by Stop()
  std::thread thread_;

  // Owned by the watcher thread once it runs (and by Start before that): no lock needed.
  std::unordered_map<int, std::string> path_by_wd_;
  int root_wd_ = -1;  // -1 while the root is gone

  mutable absl::Mutex health_mutex_;
  absl::Status health_ ABSL_GUARDED_BY(health_mutex_);
};

}  // namespace runway
