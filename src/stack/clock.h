// The one clock of everything above the protocol cores: the Stack (lwIP's sys_now and its
// timers, ARP announcements), the Gateway (the NAT engine's time, the sweep), the
// SocketService (the DPM driver) and the DHCP leases all read `NowMs()` and arm `Timer`s of
// the one Clock they are given, never std::chrono themselves. dpmd runs on a SteadyClock;
// tests pass a ManualClock and move time with Advance(), so timers, expiry and lease ends
// are deterministic and need no sleeping (gVisor's faketime.ManualClock).
//
// Core thread only: a clock, its timers and their callbacks belong to the io_context's thread.
#ifndef DPM_STACK_CLOCK_H_
#define DPM_STACK_CLOCK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include <boost/asio/io_context.hpp>

namespace dpm::stack {

/// A one-shot timer of a Clock. Destroying it cancels it.
class Timer {
 public:
  virtual ~Timer() = default;
  /// Calls `fn` once, at or after `deadline_ms` (milliseconds on its Clock's NowMs scale; a
  /// deadline already past fires on the next turn, never inside Start). Replaces a pending
  /// wait, whose callback is then never called.
  virtual void Start(uint64_t deadline_ms, std::function<void()> fn) = 0;
  /// The pending callback, if any, is never called.
  virtual void Cancel() = 0;
  /// True between Start() and the callback (or Cancel()).
  virtual bool pending() const = 0;
  /// The pending deadline (milliseconds); meaningless when not pending().
  virtual uint64_t deadline_ms() const = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  /// Monotonic milliseconds since this clock's epoch (arbitrary, fixed for its life).
  virtual uint64_t NowMs() const = 0;
  /// The same in microseconds (the RFC 6528 ISN timer).
  virtual uint64_t NowUs() const = 0;
  /// A new timer on this clock; it must not outlive the clock.
  virtual std::unique_ptr<Timer> NewTimer() = 0;
};

/// Real time: std::chrono::steady_clock, timers on the io_context (boost::asio::steady_timer).
/// The epoch is the steady clock's, so NowMs() is large and never 0.
class SteadyClock : public Clock {
 public:
  explicit SteadyClock(boost::asio::io_context& io) : io_(io) {}
  uint64_t NowMs() const override;
  uint64_t NowUs() const override;
  std::unique_ptr<Timer> NewTimer() override;

 private:
  boost::asio::io_context& io_;
};

/// Time that moves only when the test says so. Starts at `start_ms` (default 1000, so that 0
/// never means "now"). Timers fire from Advance()/RunDue(), in deadline order (ties in the
/// order they were started), each seeing NowMs() equal to its deadline; a timer started by a
/// callback with a deadline inside the advanced span fires in the same Advance().
class ManualClock : public Clock {
 public:
  explicit ManualClock(uint64_t start_ms = 1000) : now_ms_(start_ms) {}
  ~ManualClock() override;
  uint64_t NowMs() const override { return now_ms_; }
  uint64_t NowUs() const override { return now_ms_ * 1000; }
  std::unique_ptr<Timer> NewTimer() override;

  /// Moves time forward by `ms`, firing every timer that falls due on the way. Returns the
  /// number of callbacks run.
  size_t Advance(uint64_t ms);
  /// Fires the timers already due (deadline <= NowMs()) without moving time.
  size_t RunDue() { return Advance(0); }
  /// Timers waiting.
  size_t pending() const { return due_.size(); }
  /// The earliest pending deadline, or 0 when none.
  uint64_t NextDeadline() const { return due_.empty() ? 0 : due_.begin()->first.first; }

 private:
  class ManualTimer;
  friend class ManualTimer;
  using Key = std::pair<uint64_t, uint64_t>;  // deadline, start order
  uint64_t now_ms_;
  uint64_t sequence_ = 0;
  std::map<Key, ManualTimer*> due_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_CLOCK_H_
