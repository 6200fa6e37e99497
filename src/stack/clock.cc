#include "stack/clock.h"

#include <chrono>

#include <boost/asio/steady_timer.hpp>

namespace dpm::stack {
namespace {

// Shared with the handler, so a handler already queued when the timer was restarted,
// cancelled or destroyed sees a newer generation (or no state) and does nothing.
struct SteadyState {
  uint64_t generation = 0;
  bool pending = false;
  uint64_t deadline_ms = 0;
  std::function<void()> fn;
};

class SteadyTimer : public Timer {
 public:
  explicit SteadyTimer(boost::asio::io_context& io) : timer_(io), state_(std::make_shared<SteadyState>()) {}
  ~SteadyTimer() override { Cancel(); }

  void Start(uint64_t deadline_ms, std::function<void()> fn) override {
    SteadyState& s = *state_;
    s.generation++;
    s.pending = true;
    s.deadline_ms = deadline_ms;
    s.fn = std::move(fn);
    timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(deadline_ms)));
    timer_.async_wait([weak = std::weak_ptr<SteadyState>(state_), generation = s.generation](
                          const boost::system::error_code& ec) {
      auto state = weak.lock();
      if (ec || !state || state->generation != generation || !state->pending) return;
      state->pending = false;
      auto fn = std::move(state->fn);
      fn();
    });
  }

  void Cancel() override {
    state_->generation++;
    state_->pending = false;
    state_->fn = nullptr;
    timer_.cancel();
  }

  bool pending() const override { return state_->pending; }
  uint64_t deadline_ms() const override { return state_->deadline_ms; }

 private:
  boost::asio::steady_timer timer_;
  std::shared_ptr<SteadyState> state_;
};

}  // namespace

uint64_t SteadyClock::NowMs() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

uint64_t SteadyClock::NowUs() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::unique_ptr<Timer> SteadyClock::NewTimer() { return std::make_unique<SteadyTimer>(io_); }

class ManualClock::ManualTimer : public Timer {
 public:
  explicit ManualTimer(ManualClock& clock) : clock_(clock) {}
  ~ManualTimer() override { Cancel(); }

  void Start(uint64_t deadline_ms, std::function<void()> fn) override {
    Cancel();
    key_ = {deadline_ms, clock_.sequence_++};
    fn_ = std::move(fn);
    pending_ = true;
    clock_.due_.emplace(key_, this);
  }

  void Cancel() override {
    if (!pending_) return;
    clock_.due_.erase(key_);
    pending_ = false;
    fn_ = nullptr;
  }

  bool pending() const override { return pending_; }
  uint64_t deadline_ms() const override { return key_.first; }

  // Called by the clock after it took this timer off its list.
  void Fire() {
    pending_ = false;
    auto fn = std::move(fn_);
    fn_ = nullptr;
    if (fn) fn();
  }

 private:
  ManualClock& clock_;
  ManualClock::Key key_{};
  std::function<void()> fn_;
  bool pending_ = false;
};

ManualClock::~ManualClock() = default;

std::unique_ptr<Timer> ManualClock::NewTimer() { return std::make_unique<ManualTimer>(*this); }

size_t ManualClock::Advance(uint64_t ms) {
  const uint64_t target = now_ms_ + ms;
  size_t fired = 0;
  while (!due_.empty() && due_.begin()->first.first <= target) {
    auto it = due_.begin();
    if (it->first.first > now_ms_) now_ms_ = it->first.first;
    ManualTimer* timer = it->second;
    due_.erase(it);
    timer->Fire();
    fired++;
  }
  now_ms_ = target;
  return fired;
}

}  // namespace dpm::stack
