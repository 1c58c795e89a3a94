#pragma once

// Clock: the only source of time for core code. Wall time stamps status conditions; monotonic
// time measures intervals (backoff, pauses, deadlines) and never jumps. Implementations are
// thread-safe. SystemClock (adapters) is the real one; tests use FakeClock, which moves only
// when told to.

#include "absl/time/time.h"

namespace runway {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for timestamps shown to people (lastTransitionTime).
  virtual absl::Time Now() const = 0;
  // Time since an arbitrary fixed origin; only differences are meaningful.
  virtual absl::Duration MonotonicNow() const = 0;
};

}  // namespace runway
