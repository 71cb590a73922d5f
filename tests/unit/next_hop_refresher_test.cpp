// SPDX-License-Identifier: BSD-2-Clause
// NextHopRefresher: the resolution waits on its worker while the event loop
// keeps serving; results are applied on the loop, coalesced while busy,
// and dropped once the refresher is gone.
#include "control/next_hop_refresher.hpp"

#include <gtest/gtest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

namespace sluice::test {
namespace {

using control::Status;

// A fast path whose first resolution blocks until the test releases it,
// and that records on which thread each half ran.
class BlockingFastpath final : public control::Fastpath {
 public:
  [[nodiscard]] control::FastpathInfo info() const override {
    return {"fake", "fake0", 1, "native", 0, false, ""};
  }
  [[nodiscard]] const control::FastpathState& initial_state() const override { return state_; }
  [[nodiscard]] Status publish(const control::FastpathSnapshot&) override { return control::Ok{}; }
  [[nodiscard]] Status refresh_next_hop(std::span<const IpAddress>) override {
    return control::Ok{};
  }
  [[nodiscard]] Result<sluice_global_stats> global_stats() const override {
    return sluice_global_stats{};
  }
  [[nodiscard]] Result<sluice_vip_stats> vip_stats(uint32_t) const override {
    return sluice_vip_stats{};
  }
  [[nodiscard]] Result<sluice_backend_stats> backend_stats(uint32_t) const override {
    return sluice_backend_stats{};
  }

  std::function<Status()> resolve_next_hop(std::span<const IpAddress> targets) override {
    size_t call = 0;
    {
      std::lock_guard lock(mu_);
      call = resolved_.size();
      resolved_.emplace_back(targets.begin(), targets.end());
      resolve_thread_ = std::this_thread::get_id();
    }
    if (call == 0) {
      entered_.set_value();
      release_.get_future().wait();
    }
    return [this, call]() -> Status {
      apply_thread_ = std::this_thread::get_id();
      ++applied_;
      if (call == 0) return Error{-ETIMEDOUT, "neighbour 10.0.0.1 did not answer"};
      return control::Ok{};
    };
  }

  void wait_entered() { entered_.get_future().wait(); }
  void release() { release_.set_value(); }
  std::vector<std::vector<IpAddress>> resolved() {
    std::lock_guard lock(mu_);
    return resolved_;
  }
  std::thread::id resolve_thread() {
    std::lock_guard lock(mu_);
    return resolve_thread_;
  }
  std::thread::id apply_thread_;  // written and read on the loop's thread
  int applied_ = 0;               // likewise

 private:
  control::FastpathState state_;
  std::promise<void> entered_;
  std::promise<void> release_;
  std::mutex mu_;
  std::vector<std::vector<IpAddress>> resolved_;
  std::thread::id resolve_thread_;
};

std::vector<IpAddress> addrs(std::initializer_list<const char*> texts) {
  std::vector<IpAddress> out;
  for (const char* t : texts) out.push_back(IpAddress::parse(t).value());
  return out;
}

class NextHopRefresherTest : public testing::Test {
 protected:
  NextHopRefresherTest() {
    auto fp = std::make_unique<BlockingFastpath>();
    fake_ = fp.get();
    fastpaths_.push_back(std::move(fp));
  }
  ~NextHopRefresherTest() override {
    work_.reset();
    if (loop_.joinable()) loop_.join();
  }

  void start_loop() {
    loop_ = std::thread([this] { io_.run(); });
  }

  // Runs `f` on the loop's thread and waits for it.
  template <class F>
  void on_loop(F f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::unique_ptr<control::Fastpath>> fastpaths_;
  BlockingFastpath* fake_ = nullptr;
  std::thread loop_;
  std::vector<std::string> reports_;  // on the loop's thread
};

TEST_F(NextHopRefresherTest, LoopKeepsServingWhileANeighbourIsAwaited) {
  auto refresher = std::make_unique<control::NextHopRefresher>(
      io_, fastpaths_, [this](const control::Fastpath& fp, const Status& s) {
        reports_.push_back(fp.info().interface + ": " + (s.ok() ? "ok" : s.error().message));
      });
  start_loop();
  on_loop([&] { refresher->refresh(addrs({"10.0.0.1", "10.0.0.2"})); });
  fake_->wait_entered();
  // The resolution is stuck; the loop still answers (a control request, a
  // probe) and says a refresh is under way.
  bool busy = false;
  on_loop([&] { busy = refresher->busy(); });
  EXPECT_TRUE(busy);
  EXPECT_NE(fake_->resolve_thread(), loop_.get_id());
  fake_->release();
  // The result is applied, and reported, on the loop.
  for (;;) {
    bool done = false;
    on_loop([&] { done = !refresher->busy(); });
    if (done) break;
    std::this_thread::yield();
  }
  on_loop([&] {
    EXPECT_EQ(fake_->applied_, 1);
    EXPECT_EQ(fake_->apply_thread_, std::this_thread::get_id());
    EXPECT_EQ(reports_, std::vector<std::string>{"fake0: neighbour 10.0.0.1 did not answer"});
    refresher.reset();
  });
  EXPECT_EQ(fake_->resolved(), std::vector<std::vector<IpAddress>>{addrs({"10.0.0.1", "10.0.0.2"})});
}

TEST_F(NextHopRefresherTest, CallsWhileBusyCoalesceIntoOneMoreWithTheLatestTargets) {
  auto refresher = std::make_unique<control::NextHopRefresher>(
      io_, fastpaths_, [this](const control::Fastpath&, const Status& s) {
        reports_.push_back(s.ok() ? "ok" : "error");
      });
  start_loop();
  on_loop([&] { refresher->refresh(addrs({"10.0.0.1"})); });
  fake_->wait_entered();
  on_loop([&] {
    refresher->refresh(addrs({"10.0.0.2"}));
    refresher->refresh(addrs({"10.0.0.3"}));
  });
  fake_->release();
  for (;;) {
    size_t n = 0;
    on_loop([&] { n = reports_.size(); });
    if (n == 2) break;
    std::this_thread::yield();
  }
  on_loop([&] {
    EXPECT_EQ(reports_, (std::vector<std::string>{"error", "ok"}));
    EXPECT_FALSE(refresher->busy());
    refresher.reset();
  });
  EXPECT_EQ(fake_->resolved(),
            (std::vector<std::vector<IpAddress>>{addrs({"10.0.0.1"}), addrs({"10.0.0.3"})}));
}

TEST_F(NextHopRefresherTest, AResultArrivingAfterTheRefresherIsGoneIsDropped) {
  auto refresher = std::make_unique<control::NextHopRefresher>(
      io_, fastpaths_, [this](const control::Fastpath&, const Status&) {
        reports_.push_back("report");
      });
  start_loop();
  on_loop([&] { refresher->refresh(addrs({"10.0.0.1"})); });
  fake_->wait_entered();
  // The daemon stops while the neighbour is awaited: the destructor waits
  // for the worker (released from here), and its result is never applied.
  // Released only once the loop is inside the destructor, so the result
  // is posted behind it.
  std::promise<void> destroying;
  std::thread releaser([this, f = destroying.get_future()] {
    f.wait();
    fake_->release();
  });
  on_loop([&] {
    destroying.set_value();
    refresher.reset();
  });
  releaser.join();
  on_loop([] {});  // anything the worker posted has run by now
  on_loop([&] {
    EXPECT_EQ(fake_->applied_, 0);
    EXPECT_TRUE(reports_.empty());
  });
}

}  // namespace
}  // namespace sluice::test
