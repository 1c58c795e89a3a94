#pragma once

// WorkQueue: the controller's queue of object keys ("namespace/name"), with the semantics of
// client-go's workqueue (queue + delaying + rate-limiting layers in one class):
//
//   - A key is queued at most once while it waits (dirty set), so N events cause one reconcile.
//   - A key handed out by Get() is "processing" until Done(key). Adding it meanwhile only marks
//     it dirty; Done() re-queues it once. So one key is never processed by two workers at the
//     same time, and a change that arrives during processing is never lost.
//   - AddAfter() holds a key until a deadline; AddRateLimited() does so with per-key exponential
//     backoff, which Forget() resets.
//
// The queue is passive and does no I/O: readiness of delayed keys is decided by the injected
// Clock's MonotonicNow() whenever the queue is used. Get() blocks on a CondVar with a bounded
// real-time timeout (Options::max_timed_wait) so that it also notices a FakeClock advanced by a
// test, which cannot signal the queue; TryGet() never blocks.
//
// Thread-safe: every method may be called from any thread. Call ShutDown() and join the workers
// before destroying the queue. Typical worker loop:
//
//   while (std::optional<std::string> key = queue.Get()) {
//     absl::Status status = Reconcile(*key);
//     if (status.ok()) queue.Forget(*key); else queue.AddRateLimited(*key);
//     queue.Done(*key);
//   }

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/interfaces/clock.h"

namespace runway {

struct WorkQueueOptions {
  // Per-key exponential backoff of AddRateLimited(): base * 2^(failures so far), capped at
  // max_backoff (client-go ItemExponentialFailureRateLimiter).
  absl::Duration base_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);
  // Upper bound of one real-time wait inside Get() while delayed keys exist. It bounds how late
  // Get() notices a FakeClock moved by a test. With a real-time clock the wait also ends at the
  // next deadline, so a larger value (even absl::InfiniteDuration()) only saves wake-ups.
  absl::Duration max_timed_wait = absl::Milliseconds(50);
  // Called by Get()/TryGet(), outside the queue's lock, with the time the returned key spent
  // ready in the queue before being handed out (the workqueue_queue_duration metric).
  std::function<void(absl::Duration)> on_queue_latency;
};

// Sizes for metrics. `ready` is what client-go calls the queue depth.
struct WorkQueueDepth {
  int64_t ready = 0;       // waiting for a worker (Len())
  int64_t delayed = 0;     // held by AddAfter()/AddRateLimited() until their deadline
  int64_t processing = 0;  // handed out by Get(), Done() not yet called
};

class WorkQueue {
 public:
  // `clock` must be non-null and outlive the queue.
  explicit WorkQueue(const Clock* clock, WorkQueueOptions options = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Makes `key` ready. No effect if it is already waiting to be handed out; if it is being
  // processed it is handed out again after Done(key). Ignored after ShutDown().
  void Add(absl::string_view key);

  // Makes `key` ready once `delay` has passed on the Clock (at once if delay <= 0). If the key is
  // already held with another deadline, the earlier one is kept. Ignored after ShutDown().
  void AddAfter(absl::string_view key, absl::Duration delay);

  // AddAfter(key, backoff) where backoff doubles with each call for the same key since the last
  // Forget(key): base_backoff, 2*base_backoff, ..., max_backoff.
  void AddRateLimited(absl::string_view key);

  // Resets the backoff of `key` (call after a successful reconcile). Does not remove the key
  // from the queue or cancel a pending AddAfter().
  void Forget(absl::string_view key);

  // Number of AddRateLimited() calls for `key` since the last Forget(key).
  int NumRequeues(absl::string_view key) const;

  // Blocks until a key is ready and returns it, marking it processing; the caller must call
  // Done(key) when finished. Returns nullopt once the queue is shut down and (with drain) no
  // ready key is left, or at once after ShutDown(/*drain=*/false).
  std::optional<std::string> Get();

  // As Get(), but returns nullopt at once if no key is ready now.
  std::optional<std::string> TryGet();

  // Ends processing of `key`. If it was added again meanwhile, it is made ready again (also while
  // draining a shut-down queue). A key that is not processing is ignored.
  void Done(absl::string_view key);

  // Number of ready keys (delayed keys whose deadline passed count as ready).
  int Len() const;

  // Sizes for metrics (delayed keys whose deadline passed count as ready).
  WorkQueueDepth Depth() const;

  // Stops accepting keys and wakes every blocked Get(). Delayed keys are dropped. With `drain`,
  // keys already ready (and dirty keys re-queued by Done()) are still handed out, then Get()
  // returns nullopt; without it they are dropped and Get() returns nullopt at once. Does not
  // wait for processing keys: join the workers for that. Idempotent.
  void ShutDown(bool drain = true);
  bool ShuttingDown() const;

 private:
  struct ReadyKey {
    std::string key;
    absl::Duration ready_since;  // Clock::MonotonicNow() when it became ready
  };

  // Puts `key` in the ready queue unless it is dirty already; defers it while processing.
  void InsertLocked(const std::string& key, absl::Duration ready_since)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Moves delayed keys whose deadline is <= now to the ready queue.
  void PromoteDueLocked(absl::Duration now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Pops the next ready key and marks it processing; nullopt if none is ready.
  std::optional<ReadyKey> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Depth as if due keys had been promoted, without promoting them (so Len() can be const).
  WorkQueueDepth DepthLocked(absl::Duration now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // How long Get() may sleep in real time before it must look at the Clock again.
  absl::Duration TimedWaitLocked(absl::Duration now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Reports the latency of a popped key (outside the lock) and returns its name.
  std::optional<std::string> Handout(std::optional<ReadyKey> popped, absl::Duration now) const;

  const Clock* const clock_;
  const WorkQueueOptions options_;

  mutable absl::Mutex mutex_;
  absl::CondVar ready_cond_;  // signalled when a key becomes ready and on shutdown
  std::deque<ReadyKey> ready_ ABSL_GUARDED_BY(mutex_);
  // Keys that must be handed out again: those in ready_, plus processing keys added again.
  std::unordered_set<std::string> dirty_ ABSL_GUARDED_BY(mutex_);
  std::unordered_set<std::string> processing_ ABSL_GUARDED_BY(mutex_);
  // Delayed keys: deadline by key, and the same entries ordered by deadline.
  std::unordered_map<std::string, absl::Duration> delayed_deadline_ ABSL_GUARDED_BY(mutex_);
  std::set<std::pair<absl::Duration, std::string>> delayed_by_deadline_ ABSL_GUARDED_BY(mutex_);
  std::unordered_map<std::string, int> failures_ ABSL_GUARDED_BY(mutex_);
  bool shutting_down_ ABSL_GUARDED_BY(mutex_) = false;
  bool drain_ ABSL_GUARDED_BY(mutex_) = true;
};

// Returns `base` moved by a uniformly spread offset in [-fraction, +fraction] * base, for
// jittered periodic resyncs (base 10 min, fraction 0.1: 9 to 11 min). `seed_or_random` picks the
// offset: pass a random number in production and a fixed one in tests; nearby seeds give
// unrelated offsets. `fraction` is clamped to [0, 1]; a negative `base` is treated as zero.
absl::Duration Jitter(absl::Duration base, double fraction, uint64_t seed_or_random);

}  // namespace runway
