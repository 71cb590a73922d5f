// SPDX-License-Identifier: BSD-2-Clause
// Which VIP addresses an instance announces (over BGP, through BIRD) and
// keeping a RouteSink in line with that choice: announced while the daemon
// runs, the instance is not drained, and the address has a VIP that can
// serve.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "control/balancer.hpp"
#include "control/vip_routes.hpp"

namespace sluice::control {

/// One VIP's announcement state.
struct VipAnnouncement {
  std::string vip;  ///< the VIP's name
  IpAddress addr;
  /// At least one backend is up (or unchecked) and not draining.
  bool servable = false;
  /// Its address is announced (routes are per address: a VIP that cannot
  /// serve is still announced while another VIP on its address can).
  bool announced = false;
};

/// The addresses to announce for `vips` (sorted, each once) and every VIP's
/// state. An address is announced while the instance is not drained and at
/// least one VIP on it is servable. Withdrawing an address that still has a
/// servable VIP would take that VIP away from this instance too, so VIPs
/// that must fail over independently need addresses of their own.
struct AnnouncementPlan {
  std::vector<IpAddress> routes;
  std::vector<VipAnnouncement> vips;
};
[[nodiscard]] AnnouncementPlan plan_announcements(const std::vector<VipView>& vips,
                                                  bool instance_drained);

/// Keeps the routes of a RouteSink equal to plan_announcements() of the
/// Balancer's VIPs: withdrawn at once, announced once wanted for `delay`
/// without a break (a hold-down). Not thread-safe: the daemon's loop
/// thread owns it.
class Announcer {
 public:
  using Clock = std::chrono::steady_clock;

  /// Called before an address is announced again; a failure is logged by
  /// the caller's hook and does not stop the announcement.
  using BeforeAnnounce = std::function<void(const IpAddress&)>;

  Announcer(std::unique_ptr<RouteSink> sink, std::chrono::milliseconds delay,
            BeforeAnnounce before_announce = {})
      : sink_(std::move(sink)), delay_(delay), before_announce_(std::move(before_announce)) {}

  /// Removes the routes the plan does not want and adds those it has
  /// wanted since `now - delay` or earlier. A route that fails stays wanted
  /// and is tried again at the next apply(). Returns the plan, a line per
  /// change in `changes` ("announce 10.0.0.1", "withdraw ..."), the first
  /// error (others are in the same state), and when to apply again for
  /// routes still held down.
  struct Applied {
    AnnouncementPlan plan;
    std::vector<std::string> changes;
    std::string error;  ///< empty: every route is as planned
    std::optional<Clock::duration> again_in;
  };
  Applied apply(const std::vector<VipView>& vips, Clock::time_point now = Clock::now());

  /// `sluice ctl drain-instance`: withdraw everything (and keep it so)
  /// while the fast path goes on forwarding what still arrives;
  /// false undoes it.
  void set_drained(bool drained) { drained_ = drained; }
  [[nodiscard]] bool drained() const { return drained_; }

  /// Addresses whose route is in the sink now.
  [[nodiscard]] const std::set<IpAddress>& announced() const { return announced_; }

 private:
  std::unique_ptr<RouteSink> sink_;
  std::chrono::milliseconds delay_;
  BeforeAnnounce before_announce_;
  std::set<IpAddress> announced_;
  std::map<IpAddress, Clock::time_point> wanted_since_;  // wanted, not yet announced
  bool drained_ = false;
};

}  // namespace sluice::control
