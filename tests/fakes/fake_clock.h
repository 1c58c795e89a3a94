#pragma once

// A Clock that moves only when told to. Thread-safe.

#include "absl/synchronization/mutex.h"
#include "controller/interfaces/clock.h"

namespace runway {

class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1767225600))  // 2026-01-01
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mutex_);
    return now_;
  }
  absl::Duration MonotonicNow() const override {
    absl::MutexLock lock(&mutex_);
    return now_ - absl::UnixEpoch();
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mutex_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mutex_;
  absl::Time now_;
};

}  // namespace runway
