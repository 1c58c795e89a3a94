#include "controller/core/work_queue.h"

#include <algorithm>

namespace runway {
namespace {

// base * 2^failures, capped at max. Doubling stops at the cap, so the loop is short and a long
// failure streak cannot overflow.
absl::Duration ExponentialBackoff(absl::Duration base, absl::Duration max, int failures) {
  if (base <= absl::ZeroDuration()) return absl::ZeroDuration();
  absl::Duration backoff = base;
  for (int i = 0; i < failures && backoff < max; ++i) backoff *= 2;
  return std::min(backoff, max);
}

// splitmix64's finalizer: spreads consecutive seeds over the whole 64-bit range.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

WorkQueue::WorkQueue(const Clock* clock, WorkQueueOptions options)
    : clock_(clock), options_(std::move(options)) {}

void WorkQueue::Add(absl::string_view key) {
  absl::MutexLock lock(&mutex_);
  if (shutting_down_) return;
  InsertLocked(std::string(key), clock_->MonotonicNow());
}

void WorkQueue::AddAfter(absl::string_view key, absl::Duration delay) {
  absl::MutexLock lock(&mutex_);
  if (shutting_down_) return;
  const absl::Duration now = clock_->MonotonicNow();
  std::string name(key);
  if (delay <= absl::ZeroDuration()) {
    InsertLocked(name, now);
    return;
  }
  const absl::Duration deadline = now + delay;
  auto [it, inserted] = delayed_deadline_.try_emplace(name, deadline);
  if (!inserted) {
    if (it->second <= deadline) return;  // the earlier deadline wins
    delayed_by_deadline_.erase({it->second, name});
    it->second = deadline;
  }
  delayed_by_deadline_.emplace(deadline, std::move(name));
  // A blocked Get() may be sleeping without a timeout or until a later deadline.
  ready_cond_.Signal();
}

void WorkQueue::AddRateLimited(absl::string_view key) {
  absl::Duration backoff;
  {
    absl::MutexLock lock(&mutex_);
    int& failures = failures_[std::string(key)];
    backoff = ExponentialBackoff(options_.base_backoff, options_.max_backoff, failures);
    ++failures;
  }
  AddAfter(key, backoff);
}

void WorkQueue::Forget(absl::string_view key) {
  absl::MutexLock lock(&mutex_);
  failures_.erase(std::string(key));
}

int WorkQueue::NumRequeues(absl::string_view key) const {
  absl::MutexLock lock(&mutex_);
  auto it = failures_.find(std::string(key));
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::Get() {
  std::optional<ReadyKey> popped;
  absl::Duration now;
  {
    absl::MutexLock lock(&mutex_);
    while (true) {
      now = clock_->MonotonicNow();
      PromoteDueLocked(now);
      popped = PopLocked();
      if (popped.has_value() || shutting_down_) break;
      const absl::Duration wait = TimedWaitLocked(now);
      if (wait == absl::InfiniteDuration()) {
        ready_cond_.Wait(&mutex_);
      } else {
        ready_cond_.WaitWithTimeout(&mutex_, wait);
      }
    }
  }
  return Handout(std::move(popped), now);
}

std::optional<std::string> WorkQueue::TryGet() {
  std::optional<ReadyKey> popped;
  absl::Duration now;
  {
    absl::MutexLock lock(&mutex_);
    now = clock_->MonotonicNow();
    PromoteDueLocked(now);
    popped = PopLocked();
  }
  return Handout(std::move(popped), now);
}

void WorkQueue::Done(absl::string_view key) {
  absl::MutexLock lock(&mutex_);
  std::string name(key);
  if (processing_.erase(name) == 0) return;
  if (dirty_.count(name) == 0) return;
  // Added while processing: InsertLocked() deferred it, so it is dirty but not yet in ready_.
  ready_.push_back({std::move(name), clock_->MonotonicNow()});
  ready_cond_.Signal();
}

int WorkQueue::Len() const { return static_cast<int>(Depth().ready); }

WorkQueueDepth WorkQueue::Depth() const {
  absl::MutexLock lock(&mutex_);
  return DepthLocked(clock_->MonotonicNow());
}

void WorkQueue::ShutDown(bool drain) {
  absl::MutexLock lock(&mutex_);
  shutting_down_ = true;
  drain_ = drain_ && drain;
  delayed_deadline_.clear();
  delayed_by_deadline_.clear();
  if (!drain_) {
    ready_.clear();
    dirty_.clear();  // so Done() re-queues nothing
  }
  ready_cond_.SignalAll();
}

bool WorkQueue::ShuttingDown() const {
  absl::MutexLock lock(&mutex_);
  return shutting_down_;
}

void WorkQueue::InsertLocked(const std::string& key, absl::Duration ready_since) {
  if (!dirty_.insert(key).second) return;  // already waiting, or already re-queued for Done()
  // A processing key stays out of ready_ until Done(), so no second worker can get it.
  if (processing_.count(key) > 0) return;
  ready_.push_back({key, ready_since});
  ready_cond_.Signal();
}

void WorkQueue::PromoteDueLocked(absl::Duration now) {
  while (!delayed_by_deadline_.empty() && delayed_by_deadline_.begin()->first <= now) {
    auto node = delayed_by_deadline_.extract(delayed_by_deadline_.begin());
    delayed_deadline_.erase(node.value().second);
    // Latency counts from the deadline, not from when the queue happened to look at the Clock.
    InsertLocked(node.value().second, node.value().first);
  }
}

std::optional<WorkQueue::ReadyKey> WorkQueue::PopLocked() {
  if (ready_.empty()) return std::nullopt;
  ReadyKey next = std::move(ready_.front());
  ready_.pop_front();
  dirty_.erase(next.key);
  processing_.insert(next.key);
  return next;
}

WorkQueueDepth WorkQueue::DepthLocked(absl::Duration now) const {
  WorkQueueDepth depth{static_cast<int64_t>(ready_.size()),
                       static_cast<int64_t>(delayed_deadline_.size()),
                       static_cast<int64_t>(processing_.size())};
  for (auto it = delayed_by_deadline_.begin(); it != delayed_by_deadline_.end() && it->first <= now;
       ++it) {
    --depth.delayed;
    // Promotion queues a due key unless it is queued already or deferred by processing.
    if (dirty_.count(it->second) == 0 && processing_.count(it->second) == 0) ++depth.ready;
  }
  return depth;
}

absl::Duration WorkQueue::TimedWaitLocked(absl::Duration now) const {
  // Without delayed keys only Add()/Done()/ShutDown() can make progress, and they signal.
  if (delayed_by_deadline_.empty()) return absl::InfiniteDuration();
  const absl::Duration until_deadline = delayed_by_deadline_.begin()->first - now;
  return std::max(absl::ZeroDuration(), std::min(until_deadline, options_.max_timed_wait));
}

std::optional<std::string> WorkQueue::Handout(std::optional<ReadyKey> popped,
                                              absl::Duration now) const {
  if (!popped.has_value()) return std::nullopt;
  if (options_.on_queue_latency) {
    options_.on_queue_latency(std::max(absl::ZeroDuration(), now - popped->ready_since));
  }
  return std::move(popped->key);
}

absl::Duration Jitter(absl::Duration base, double fraction, uint64_t seed_or_random) {
  base = std::max(base, absl::ZeroDuration());
  fraction = std::clamp(fraction, 0.0, 1.0);
  // The top 53 bits give a double in [0, 1) exactly; map it to [-1, 1).
  const double unit = static_cast<double>(Mix(seed_or_random) >> 11) * 0x1.0p-53;
  return base + base * (fraction * (2.0 * unit - 1.0));
}

}  // namespace runway
