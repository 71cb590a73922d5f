// SPDX-License-Identifier: BSD-2-Clause
// Which VIP addresses an instance announces (over BGP, through BIRD) and
// keeping a RouteSink in line with that choice: announced while the daemon
// runs, the instance is not drained, and the address has a VIP that can
// serve.
#pragma once

#include <memory>
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
/// Balancer's VIPs. Not thread-safe: the daemon's loop thread owns it.
class Announcer {
 public:
  explicit Announcer(std::unique_ptr<RouteSink> sink) : sink_(std::move(sink)) {}

  /// Adds the routes the plan wants and removes the others. A route that
  /// fails stays wanted and is tried again at the next apply(). Returns the
  /// plan, and the first error (others are in the same state) with a line
  /// per change in `changes` ("announce 10.0.0.1", "withdraw ...").
  struct Applied {
    AnnouncementPlan plan;
    std::vector<std::string> changes;
    std::string error;  ///< empty: every route is as planned
  };
  Applied apply(const std::vector<VipView>& vips);

  /// `sluice ctl drain-instance`: withdraw everything (and keep it so)
  /// while the fast path goes on forwarding what still arrives;
  /// false undoes it.
  void set_drained(bool drained) { drained_ = drained; }
  [[nodiscard]] bool drained() const { return drained_; }

  /// Addresses whose route is in the sink now.
  [[nodiscard]] const std::set<IpAddress>& announced() const { return announced_; }

 private:
  std::unique_ptr<RouteSink> sink_;
  std::set<IpAddress> announced_;
  bool drained_ = false;
};

}  // namespace sluice::control
