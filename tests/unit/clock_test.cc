// The injected clock (stack/clock.h): a ManualClock fires timers in deadline order as time
// is advanced, a cancelled or restarted timer never fires its old callback, and a SteadyClock
// timer fires on the io_context.
#include "stack/clock.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace dpm::stack {
namespace {

TEST(ManualClock, StartsAtItsStartAndMovesOnlyWhenAdvanced) {
  ManualClock clock(5000);
  EXPECT_EQ(clock.NowMs(), 5000u);
  EXPECT_EQ(clock.NowUs(), 5'000'000u);
  EXPECT_EQ(clock.Advance(250), 0u);
  EXPECT_EQ(clock.NowMs(), 5250u);
}

TEST(ManualClock, FiresTimersInDeadlineOrderEachAtItsDeadline) {
  ManualClock clock(0);
  auto a = clock.NewTimer(), b = clock.NewTimer(), c = clock.NewTimer();
  std::vector<std::string> fired;
  a->Start(300, [&] { fired.push_back("a@" + std::to_string(clock.NowMs())); });
  b->Start(100, [&] { fired.push_back("b@" + std::to_string(clock.NowMs())); });
  c->Start(100, [&] { fired.push_back("c@" + std::to_string(clock.NowMs())); });
  EXPECT_EQ(clock.pending(), 3u);
  EXPECT_EQ(clock.NextDeadline(), 100u);
  EXPECT_EQ(clock.Advance(99), 0u);
  EXPECT_TRUE(b->pending());
  EXPECT_EQ(clock.Advance(1000), 3u);
  EXPECT_EQ(fired, (std::vector<std::string>{"b@100", "c@100", "a@300"}));  // ties: start order
  EXPECT_EQ(clock.NowMs(), 1099u);
  EXPECT_FALSE(a->pending());
}

TEST(ManualClock, CancelledRestartedAndDestroyedTimersDoNotFireTheirOldCallback) {
  ManualClock clock(0);
  int old_calls = 0, new_calls = 0;
  auto restarted = clock.NewTimer();
  restarted->Start(10, [&] { old_calls++; });
  restarted->Start(20, [&] { new_calls++; });
  EXPECT_EQ(restarted->deadline_ms(), 20u);
  auto cancelled = clock.NewTimer();
  cancelled->Start(5, [&] { old_calls++; });
  cancelled->Cancel();
  EXPECT_FALSE(cancelled->pending());
  {
    auto destroyed = clock.NewTimer();
    destroyed->Start(5, [&] { old_calls++; });
  }
  EXPECT_EQ(clock.pending(), 1u);
  clock.Advance(100);
  EXPECT_EQ(old_calls, 0);
  EXPECT_EQ(new_calls, 1);
}

TEST(ManualClock, ATimerStartedByACallbackInsideTheSpanFiresInTheSameAdvance) {
  ManualClock clock(0);
  auto t = clock.NewTimer();
  std::vector<uint64_t> at;
  std::function<void()> tick = [&] {
    at.push_back(clock.NowMs());
    if (at.size() < 5) t->Start(clock.NowMs() + 30, tick);
  };
  t->Start(30, tick);
  EXPECT_EQ(clock.Advance(100), 3u);  // 30, 60, 90; 120 is outside
  EXPECT_EQ(at, (std::vector<uint64_t>{30, 60, 90}));
  EXPECT_TRUE(t->pending());
  EXPECT_EQ(clock.Advance(1000), 2u);
  EXPECT_EQ(at.size(), 5u);
}

TEST(ManualClock, RunDueFiresAPastDeadlineWithoutMovingTime) {
  ManualClock clock(1000);
  auto t = clock.NewTimer();
  bool fired = false;
  t->Start(500, [&] { fired = true; });  // already past: never inside Start
  EXPECT_FALSE(fired);
  EXPECT_EQ(clock.RunDue(), 1u);
  EXPECT_TRUE(fired);
  EXPECT_EQ(clock.NowMs(), 1000u);
}

TEST(SteadyClock, TimerFiresOnTheIoContextAndCancelStopsIt) {
  boost::asio::io_context io;
  SteadyClock clock(io);
  const uint64_t start = clock.NowMs();
  EXPECT_GT(start, 0u);
  auto fires = clock.NewTimer(), cancelled = clock.NewTimer();
  bool fired = false, cancelled_fired = false;
  fires->Start(start + 5, [&] { fired = true; });
  cancelled->Start(start + 1, [&] { cancelled_fired = true; });
  cancelled->Cancel();
  EXPECT_FALSE(fired);  // not inside Start
  io.run();
  EXPECT_TRUE(fired);
  EXPECT_FALSE(cancelled_fired);
  EXPECT_GE(clock.NowMs(), start + 5);
  EXPECT_FALSE(fires->pending());
}

TEST(SteadyClock, DestroyingATimerWhoseWaitIsAlreadyDueDoesNotCallIt) {
  boost::asio::io_context io;
  SteadyClock clock(io);
  bool fired = false;
  auto t = clock.NewTimer();
  t->Start(0, [&] { fired = true; });  // long past: the wait completes on the next turn
  t.reset();
  io.run();
  EXPECT_FALSE(fired);
}

}  // namespace
}  // namespace dpm::stack
