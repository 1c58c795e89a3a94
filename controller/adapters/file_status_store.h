#pragma once

// FileStatusStore: the status subresource of file mode. Each service's status is one JSON file,
// <dir>/<namespace>/<name>.json, replaced atomically (temporary file in the same directory,
// fsync, rename, fsync of the directory), so a reader or a crash sees the old or the new
// document, never a mix:
//
//   {"key": "prod/api", "observedGeneration": 3,
//    "conditions": [{"type": "Ready", "status": "True", "reason": "Converged", "message": "...",
//                    "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
//    "revision": "api-00003-abc", "traffic": [{"revision": "api-00003-abc", "percent": 100,
//                                             "tag": "candidate"}],
//    "updateTime": "2026-01-01T00:00:00Z"}
//
// Times are RFC 3339 UTC with whole seconds, like metav1.Time; "tag" is left out when empty.
//
// Thread-safe: writes (Report, Remove) are serialized by one mutex; reads need no lock because
// files are only ever replaced whole.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controller/core/desired_service.h"
#include "controller/interfaces/clock.h"
#include "controller/interfaces/status_reporter.h"

namespace runway {

// What LoadAll found.
struct StoredStatuses {
  std::vector<std::pair<ObjectKey, ServiceStatus>> statuses;  // sorted by key
  // One line per file that was skipped because it is unreadable or corrupt: "<path>: <reason>".
  std::vector<std::string> warnings;
};

class FileStatusStore : public StatusReporter {
 public:
  // `dir` is created on the first Report. `clock` stamps updateTime and new transitions; it must
  // be non-null and outlive the store.
  FileStatusStore(std::string dir, const Clock* clock) : dir_(std::move(dir)), clock_(clock) {}
  FileStatusStore(const FileStatusStore&) = delete;
  FileStatusStore& operator=(const FileStatusStore&) = delete;

  // StatusReporter
  //
  // Writes `status`, keeping metav1 condition semantics: a condition whose status equals the
  // one in the previous file keeps that file's lastTransitionTime; a new or changed condition
  // takes status.conditions[i].last_transition_time, or the clock's Now() when it is unset (the
  // Unix epoch). If nothing but updateTime would change the file is not rewritten, so updateTime
  // is the time of the last change and an unchanged resync costs no disk write. A corrupt previous
  // file is overwritten. Errors: kInvalidArgument (key unusable as a file name: empty, ".", "..",
  // leading ".", "/", NUL, too long), kPermissionDenied, kResourceExhausted (disk full or quota),
  // kUnavailable (other I/O errors; retry).
  absl::Status Report(const ObjectKey& key, const ServiceStatus& status) override;

  // The stored status of `key`. kNotFound if none, kDataLoss if its file is corrupt or names
  // another key, kInvalidArgument for a bad key, kUnavailable for other read errors.
  absl::StatusOr<ServiceStatus> Load(const ObjectKey& key) const;

  // Every stored status, sorted by key. Unreadable or corrupt files are skipped and listed in
  // `warnings`, so one bad file does not hide the rest. Files and directories that cannot be a
  // status (other names, leftover temporary files) are ignored. A missing `dir` is an empty
  // store. kUnavailable only if `dir` itself cannot be listed.
  absl::StatusOr<StoredStatuses> LoadAll() const;

  // Deletes the status of `key`, and its namespace directory once empty. OK if there was none.
  // kInvalidArgument for a bad key, kUnavailable for I/O errors.
  absl::Status Remove(const ObjectKey& key);

 private:
  std::string NamespaceDir(const ObjectKey& key) const;
  std::string PathOf(const ObjectKey& key) const;

  const std::string dir_;
  const Clock* const clock_;
  absl::Mutex write_mutex_;  // one writer at a time: read-modify-write of lastTransitionTime
};

}  // namespace runway
