// SPDX-License-Identifier: BSD-2-Clause
// The announcement plan and the Announcer that applies it to a RouteSink.
#include "control/announcer.hpp"

#include <algorithm>

namespace sluice::control {

AnnouncementPlan plan_announcements(const std::vector<VipView>& vips, bool instance_drained) {
  AnnouncementPlan plan;
  std::set<IpAddress> routes;
  for (const VipView& v : vips)
    if (!instance_drained && v.backends_up > 0) routes.insert(v.addr);
  for (const VipView& v : vips)
    plan.vips.push_back({v.name, v.addr, v.backends_up > 0, routes.count(v.addr) > 0});
  plan.routes.assign(routes.begin(), routes.end());
  return plan;
}

Announcer::Applied Announcer::apply(const std::vector<VipView>& vips, Clock::time_point now) {
  Applied out;
  out.plan = plan_announcements(vips, drained_);
  // A break in being wanted restarts the hold-down.
  for (auto it = wanted_since_.begin(); it != wanted_since_.end();)
    it = std::binary_search(out.plan.routes.begin(), out.plan.routes.end(), it->first)
             ? std::next(it)
             : wanted_since_.erase(it);
  const auto fail = [&out](const Error& e) {
    if (out.error.empty()) out.error = e.message;
  };
  // Withdraw first: an address leaving never waits behind one arriving.
  std::vector<IpAddress> stale;
  for (const IpAddress& a : announced_)
    if (!std::binary_search(out.plan.routes.begin(), out.plan.routes.end(), a)) stale.push_back(a);
  for (const IpAddress& a : stale) {
    if (Status s = sink_->remove(a); !s.ok()) {
      fail(s.error());
      continue;
    }
    announced_.erase(a);
    out.changes.push_back("withdraw " + a.to_string());
  }
  for (const IpAddress& a : out.plan.routes) {
    if (announced_.count(a) > 0) continue;
    const Clock::time_point since = wanted_since_.emplace(a, now).first->second;
    if (now - since < delay_) {
      const Clock::duration left = since + delay_ - now;
      if (!out.again_in || left < *out.again_in) out.again_in = left;
      continue;
    }
    if (before_announce_) before_announce_(a);
    if (Status s = sink_->add(a); !s.ok()) {
      fail(s.error());
      continue;
    }
    announced_.insert(a);
    wanted_since_.erase(a);
    out.changes.push_back("announce " + a.to_string());
  }
  // The VIPs' state says what the kernel has, not what was wanted.
  for (VipAnnouncement& v : out.plan.vips) v.announced = announced_.count(v.addr) > 0;
  return out;
}

}  // namespace sluice::control
