#include "controller/core/work_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/fakes/fake_clock.h"

namespace runway {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;
using ::testing::UnorderedElementsAre;

WorkQueueOptions BackoffOptions(absl::Duration base, absl::Duration max) {
  WorkQueueOptions options;
  options.base_backoff = base;
  options.max_backoff = max;
  return options;
}

TEST(WorkQueueTest, AddDeduplicatesKeysWhileTheyWait) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("prod/api");
  queue.Add("prod/web");
  queue.Add("prod/api");
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_THAT(queue.TryGet(), Optional(std::string("prod/api")));
  EXPECT_THAT(queue.TryGet(), Optional(std::string("prod/web")));
  EXPECT_EQ(queue.TryGet(), std::nullopt);
}

TEST(WorkQueueTest, KeyAddedWhileProcessingIsRequeuedOnceOnDone) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("prod/api");
  ASSERT_THAT(queue.TryGet(), Optional(std::string("prod/api")));

  queue.Add("prod/api");
  queue.Add("prod/api");
  // Not handed to a second worker while the first still processes it.
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(queue.TryGet(), std::nullopt);
  EXPECT_EQ(queue.Depth().processing, 1);

  queue.Done("prod/api");
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_THAT(queue.TryGet(), Optional(std::string("prod/api")));
  queue.Done("prod/api");
  EXPECT_EQ(queue.TryGet(), std::nullopt);
}

TEST(WorkQueueTest, DoneForAKeyNotProcessingIsIgnored) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("prod/api");
  queue.Done("prod/api");  // waiting, not processing
  queue.Done("prod/other");
  EXPECT_THAT(queue.TryGet(), Optional(std::string("prod/api")));
  EXPECT_EQ(queue.TryGet(), std::nullopt);
}

// Producers bump a per-key version and then Add the key; workers record the version they see when
// they start processing. No key may be processed by two workers at once, and the last version of
// every key must have been seen by some worker (a change during processing is not lost).
TEST(WorkQueueTest, NeverTwoWorkersOnOneKeyAndNoChangeIsLost) {
  constexpr int kKeys = 5;
  constexpr int kWorkers = 8;
  constexpr int kProducers = 4;
  constexpr int kAddsPerProducer = 2000;
  FakeClock clock;
  WorkQueue queue(&clock);
  std::array<std::atomic<bool>, kKeys> active{};
  std::array<std::atomic<int>, kKeys> version{};
  std::array<std::atomic<int>, kKeys> seen{};
  std::atomic<int> overlaps{0};
  std::atomic<int> processed{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (std::optional<std::string> key = queue.Get()) {
        const int k = (*key)[1] - '0';
        if (active[k].exchange(true)) ++overlaps;
        const int v = version[k].load();
        int previous = seen[k].load();
        while (previous < v && !seen[k].compare_exchange_weak(previous, v)) {
        }
        std::this_thread::yield();
        active[k] = false;
        ++processed;
        queue.Done(*key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kAddsPerProducer; ++i) {
        const int k = (i + p) % kKeys;
        ++version[k];
        queue.Add(absl::StrCat("k", k));
      }
    });
  }
  for (std::thread& producer : producers) producer.join();
  queue.ShutDown(/*drain=*/true);
  for (std::thread& worker : workers) worker.join();

  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GT(processed.load(), 0);
  EXPECT_LE(processed.load(), kProducers * kAddsPerProducer);
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(seen[k].load(), version[k].load()) << "key k" << k;
  }
}

TEST(WorkQueueTest, AddAfterIsReadyOnlyOnceTheClockPassesTheDelay) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("prod/api", absl::Seconds(10));
  EXPECT_EQ(queue.TryGet(), std::nullopt);
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(queue.Depth().delayed, 1);

  clock.Advance(absl::Seconds(9));
  EXPECT_EQ(queue.TryGet(), std::nullopt);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(queue.Depth().delayed, 0);
  EXPECT_THAT(queue.TryGet(), Optional(std::string("prod/api")));
}

TEST(WorkQueueTest, AddAfterWithoutDelayIsAnAdd) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("prod/api", absl::ZeroDuration());
  queue.AddAfter("prod/web", absl::Seconds(-1));
  EXPECT_EQ(queue.Len(), 2);
}

TEST(WorkQueueTest, EarlierDeadlineWinsForTheSameKey) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("later-first", absl::Seconds(10));
  queue.AddAfter("later-first", absl::Seconds(5));
  queue.AddAfter("earlier-first", absl::Seconds(5));
  queue.AddAfter("earlier-first", absl::Seconds(10));
  EXPECT_EQ(queue.Depth().delayed, 2);

  clock.Advance(absl::Seconds(5));
  std::vector<std::optional<std::string>> ready = {queue.TryGet(), queue.TryGet()};
  EXPECT_THAT(ready, UnorderedElementsAre(Optional(std::string("later-first")),
                                          Optional(std::string("earlier-first"))));
  queue.Done("later-first");
  queue.Done("earlier-first");
  // The later deadlines were replaced, not kept as a second entry.
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(queue.TryGet(), std::nullopt);
}

// Hands out `key` after exactly `expected` on the clock: not a millisecond before.
void ExpectReadyAfter(FakeClock& clock, WorkQueue& queue, absl::string_view key,
                      absl::Duration expected) {
  clock.Advance(expected - absl::Milliseconds(1));
  EXPECT_EQ(queue.TryGet(), std::nullopt) << "before " << expected;
  clock.Advance(absl::Milliseconds(1));
  EXPECT_THAT(queue.TryGet(), Optional(std::string(key))) << "after " << expected;
  queue.Done(key);
}

TEST(WorkQueueTest, RateLimitedBackoffDoublesUpToTheCapAndForgetResetsIt) {
  FakeClock clock;
  WorkQueue queue(&clock, BackoffOptions(absl::Seconds(1), absl::Seconds(8)));
  const std::array<absl::Duration, 6> expected = {absl::Seconds(1), absl::Seconds(2),
                                                  absl::Seconds(4), absl::Seconds(8),
                                                  absl::Seconds(8), absl::Seconds(8)};
  for (size_t i = 0; i < expected.size(); ++i) {
    queue.AddRateLimited("prod/api");
    EXPECT_EQ(queue.NumRequeues("prod/api"), static_cast<int>(i + 1));
    ExpectReadyAfter(clock, queue, "prod/api", expected[i]);
  }
  EXPECT_EQ(queue.NumRequeues("prod/other"), 0);  // backoff is per key

  queue.Forget("prod/api");
  EXPECT_EQ(queue.NumRequeues("prod/api"), 0);
  queue.AddRateLimited("prod/api");
  ExpectReadyAfter(clock, queue, "prod/api", absl::Seconds(1));
}

TEST(WorkQueueTest, LongFailureStreakStaysAtTheCap) {
  FakeClock clock;
  WorkQueue queue(&clock, BackoffOptions(absl::Milliseconds(5), absl::Hours(1)));
  for (int i = 0; i < 200; ++i) queue.AddRateLimited("prod/api");
  EXPECT_EQ(queue.NumRequeues("prod/api"), 200);
  ExpectReadyAfter(clock, queue, "prod/api", absl::Milliseconds(5));  // earliest deadline won
  queue.AddRateLimited("prod/api");
  ExpectReadyAfter(clock, queue, "prod/api", absl::Hours(1));
}

TEST(WorkQueueTest, GetBlocksUntilAnotherThreadAdds) {
  FakeClock clock;
  WorkQueue queue(&clock);
  std::future<std::optional<std::string>> got =
      std::async(std::launch::async, [&] { return queue.Get(); });
  queue.Add("prod/api");
  EXPECT_THAT(got.get(), Optional(std::string("prod/api")));
}

TEST(WorkQueueTest, BlockedGetNoticesAFakeClockAdvancedByTheTest) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("prod/api", absl::Minutes(1));
  std::future<std::optional<std::string>> got =
      std::async(std::launch::async, [&] { return queue.Get(); });
  clock.Advance(absl::Minutes(1));
  EXPECT_THAT(got.get(), Optional(std::string("prod/api")));
}

TEST(WorkQueueTest, ShutDownWakesBlockedGet) {
  FakeClock clock;
  WorkQueue queue(&clock);
  std::future<std::optional<std::string>> idle =
      std::async(std::launch::async, [&] { return queue.Get(); });
  queue.AddAfter("prod/later", absl::Hours(1));  // a second waiter sleeps on a timed wait
  std::future<std::optional<std::string>> timed =
      std::async(std::launch::async, [&] { return queue.Get(); });
  EXPECT_FALSE(queue.ShuttingDown());
  queue.ShutDown();
  EXPECT_TRUE(queue.ShuttingDown());
  EXPECT_EQ(idle.get(), std::nullopt);
  EXPECT_EQ(timed.get(), std::nullopt);
}

TEST(WorkQueueTest, ShutDownWithDrainHandsOutReadyAndDirtyKeysThenStops) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.Add("b");
  queue.AddAfter("delayed", absl::Seconds(1));
  ASSERT_THAT(queue.Get(), Optional(std::string("a")));
  queue.Add("a");  // dirty while processing

  queue.ShutDown(/*drain=*/true);
  queue.Add("new");
  queue.AddAfter("new-delayed", absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  EXPECT_THAT(queue.Get(), Optional(std::string("b")));
  queue.Done("b");
  queue.Done("a");
  EXPECT_THAT(queue.Get(), Optional(std::string("a")));
  queue.Done("a");
  EXPECT_EQ(queue.Get(), std::nullopt);
  EXPECT_EQ(queue.Depth().delayed, 0);
}

TEST(WorkQueueTest, ShutDownWithoutDrainDropsEverything) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.Add("b");
  ASSERT_THAT(queue.Get(), Optional(std::string("a")));
  queue.Add("a");

  queue.ShutDown(/*drain=*/false);
  EXPECT_EQ(queue.Get(), std::nullopt);
  queue.Done("a");
  EXPECT_EQ(queue.Get(), std::nullopt);
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(queue.Depth().processing, 0);
}

TEST(WorkQueueTest, ReportsQueueLatencyFromReadyToGet) {
  FakeClock clock;
  std::vector<absl::Duration> latencies;
  WorkQueue queue(&clock, {.on_queue_latency = [&](absl::Duration d) { latencies.push_back(d); }});
  queue.Add("now");
  clock.Advance(absl::Seconds(3));
  ASSERT_THAT(queue.TryGet(), Optional(std::string("now")));
  queue.AddAfter("delayed", absl::Seconds(2));
  clock.Advance(absl::Seconds(5));  // ready 3 s ago
  ASSERT_THAT(queue.TryGet(), Optional(std::string("delayed")));
  EXPECT_THAT(latencies, ElementsAre(absl::Seconds(3), absl::Seconds(3)));
}

TEST(WorkQueueTest, DepthCountsReadyDelayedAndProcessingKeys) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.Add("b");
  queue.AddAfter("c", absl::Seconds(1));
  ASSERT_TRUE(queue.TryGet().has_value());
  const WorkQueueDepth depth = queue.Depth();
  EXPECT_EQ(depth.ready, 1);
  EXPECT_EQ(depth.delayed, 1);
  EXPECT_EQ(depth.processing, 1);
}

TEST(WorkQueueTest, LenCountsDueKeysOnceAndNotWhileProcessing) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.AddAfter("a", absl::Seconds(1));  // due later, but already queued
  queue.AddAfter("b", absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  const WorkQueue& view = queue;  // Len() and Depth() are reads
  EXPECT_EQ(view.Len(), 2);
  EXPECT_EQ(view.Depth().delayed, 0);

  ASSERT_THAT(queue.TryGet(), Optional(std::string("a")));
  ASSERT_THAT(queue.TryGet(), Optional(std::string("b")));
  queue.AddAfter("a", absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(view.Len(), 0);  // due, but "a" is still processing
  queue.Done("a");
  EXPECT_EQ(view.Len(), 1);
}

TEST(JitterTest, StaysWithinTheFractionAndSpreadsOverIt) {
  const absl::Duration base = absl::Minutes(10);
  absl::Duration lowest = absl::InfiniteDuration();
  absl::Duration highest = -absl::InfiniteDuration();
  for (uint64_t seed = 0; seed < 10000; ++seed) {
    const absl::Duration jittered = Jitter(base, 0.1, seed);
    ASSERT_GE(jittered, absl::Minutes(9)) << seed;
    ASSERT_LE(jittered, absl::Minutes(11)) << seed;
    lowest = std::min(lowest, jittered);
    highest = std::max(highest, jittered);
  }
  // Consecutive seeds cover the range, not one corner of it.
  EXPECT_LT(lowest, absl::Minutes(9) + absl::Seconds(6));
  EXPECT_GT(highest, absl::Minutes(11) - absl::Seconds(6));
  EXPECT_EQ(Jitter(base, 0.1, 42), Jitter(base, 0.1, 42));
}

TEST(JitterTest, ClampsItsInputs) {
  EXPECT_EQ(Jitter(absl::Minutes(10), 0.0, 7), absl::Minutes(10));
  EXPECT_EQ(Jitter(absl::Seconds(-5), 0.5, 7), absl::ZeroDuration());
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    const absl::Duration jittered = Jitter(absl::Minutes(10), 3.0, seed);
    ASSERT_GE(jittered, absl::ZeroDuration()) << seed;
    ASSERT_LE(jittered, absl::Minutes(20)) << seed;
  }
}

}  // namespace
}  // namespace runway
