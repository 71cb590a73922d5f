// SPDX-License-Identifier: BSD-2-Clause
// NextHopRefresher: keeps the fast paths' next hops current without
// blocking the daemon's event loop: the neighbour resolution waits on a
// worker thread of its own, and its result is applied on the loop.
#pragma once

#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "control/fastpath.hpp"

namespace sluice::control {

/// Runs Fastpath::resolve_next_hop for every fast path on one worker
/// thread (so a neighbour that takes its full wait, up to 1 s per target
/// for XDP, delays nothing else) and posts the results back to `io`,
/// where they are applied and reported in fast-path order.
///
/// Threading: construct, call refresh() and destroy on the thread running
/// `io`; `report` runs there too. The fast paths must outlive the
/// refresher.
class NextHopRefresher {
 public:
  /// Called on `io`'s thread for each fast path after each refresh, with
  /// the outcome of applying what was resolved.
  using Report = std::function<void(const Fastpath& fastpath, const Status& outcome)>;

  NextHopRefresher(asio::io_context& io, std::span<const std::unique_ptr<Fastpath>> fastpaths,
                   Report report);
  /// Waits for a resolution in progress to end (at most its waits); a
  /// result not yet applied is dropped.
  ~NextHopRefresher();
  NextHopRefresher(const NextHopRefresher&) = delete;
  NextHopRefresher& operator=(const NextHopRefresher&) = delete;

  /// Starts resolving toward `targets` (backend addresses). While one
  /// refresh is in progress, calls are coalesced: one more follows it,
  /// toward the targets of the latest call.
  void refresh(std::vector<IpAddress> targets);

  /// Whether a refresh is in progress (resolving, or its result not yet
  /// applied).
  [[nodiscard]] bool busy() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sluice::control
