#pragma once

// The real Clock: wall time from the system, monotonic time from std::chrono::steady_clock.

#include <chrono>

#include "absl/time/clock.h"
#include "controller/interfaces/clock.h"

namespace runway {

class SystemClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Duration MonotonicNow() const override {
    return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }
};

}  // namespace runway
