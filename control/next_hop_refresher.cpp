// SPDX-License-Identifier: BSD-2-Clause
// NextHopRefresher: the worker thread, coalescing, and posting results
// back to the event loop.
#include "control/next_hop_refresher.hpp"

#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <optional>
#include <utility>

namespace sluice::control {

struct NextHopRefresher::State {
  State(asio::io_context& i, std::span<const std::unique_ptr<Fastpath>> f, Report r)
      : io(i), report(std::move(r)) {
    for (const auto& fp : f) fastpaths.push_back(fp.get());
  }

  asio::io_context& io;
  std::vector<Fastpath*> fastpaths;
  Report report;
  asio::thread_pool worker{1};  // one thread: resolutions never overlap
  bool in_flight = false;
  std::optional<std::vector<IpAddress>> next;  // coalesced request

  // On the loop's thread.
  void start(const std::shared_ptr<State>& self, std::vector<IpAddress> targets) {
    in_flight = true;
    std::vector<Fastpath*> fps = fastpaths;
    asio::post(worker, [weak = std::weak_ptr<State>(self), fps, targets = std::move(targets),
                        &loop = io] {
      // The waiting, off the loop.
      std::vector<std::function<Status()>> apply;
      apply.reserve(fps.size());
      for (Fastpath* fp : fps) apply.push_back(fp->resolve_next_hop(targets));
      asio::post(loop, [weak, fps, apply = std::move(apply)] {
        const std::shared_ptr<State> s = weak.lock();
        if (!s) return;  // the refresher is gone: drop the result
        for (size_t i = 0; i < fps.size(); ++i) {
          const Status outcome = apply[i]();
          if (s->report) s->report(*fps[i], outcome);
        }
        s->in_flight = false;
        if (s->next) {
          std::vector<IpAddress> t = std::move(*s->next);
          s->next.reset();
          s->start(s, std::move(t));
        }
      });
    });
  }
};

NextHopRefresher::NextHopRefresher(asio::io_context& io,
                                   std::span<const std::unique_ptr<Fastpath>> fastpaths,
                                   Report report)
    : state_(std::make_shared<State>(io, fastpaths, std::move(report))) {}

NextHopRefresher::~NextHopRefresher() {
  // The worker's job holds no reference to the state, only the fast
  // paths: joining it leaves nothing running that could touch them.
  state_->worker.join();
}

void NextHopRefresher::refresh(std::vector<IpAddress> targets) {
  if (state_->in_flight) {
    state_->next = std::move(targets);
    return;
  }
  state_->start(state_, std::move(targets));
}

bool NextHopRefresher::busy() const { return state_->in_flight; }

}  // namespace sluice::control
