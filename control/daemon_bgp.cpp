// SPDX-License-Identifier: BSD-2-Clause
// The daemon's [bgp] part: the announced routes kept in line with the
// Balancer, instance drain, and the BGP state `sluice ctl status` shows.
#include <spdlog/spdlog.h>

#include "control/bird_client.hpp"
#include "control/daemon.hpp"

namespace sluice::control {
namespace {

using nlohmann::json;

// BIRD is read on the watcher's thread, never on the loop: how long one
// `show protocols` may take (BIRD answers in well under a millisecond when
// it runs at all), and how often it is repeated, so the state `sluice ctl
// status` shows is at most about a second old.
constexpr std::chrono::milliseconds kBirdTimeout{500};
constexpr std::chrono::milliseconds kBirdPeriod{1000};

json ok(json result) { return json{{"ok", true}, {"result", std::move(result)}}; }

json fail(std::string_view code, std::string_view message) {
  return json{{"ok", false}, {"error", {{"code", code}, {"message", message}}}};
}

// The BGP sessions BIRD reported last, with the age of that report, or why
// they are unknown.
json bird_state(const BgpConfig& cfg, const BirdWatcher* watcher) {
  json out{{"bird_socket", cfg.bird_socket}, {"sessions", json::array()}};
  if (watcher == nullptr) {
    out["bird"] = "unknown";
    out["bird_error"] = "no [bgp] bird_socket configured";
    return out;
  }
  const BirdReading r = watcher->reading();
  if (!r.at) {
    out["bird"] = "unknown";
    out["bird_error"] = "not read yet";
    return out;
  }
  out["bird_age_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - *r.at)
                           .count();
  if (!r.error.empty()) {
    out["bird"] = "unknown";
    out["bird_error"] = r.error;
    return out;
  }
  out["bird"] = "running";
  for (const BirdProtocol& p : r.protocols) {
    if (p.proto != "BGP" && p.proto != "BFD") continue;
    out["sessions"].push_back({{"name", p.name},
                               {"protocol", p.proto},
                               {"state", p.state},
                               {"since", p.since},
                               {"info", p.info}});
  }
  return out;
}

}  // namespace

void Daemon::open_announcer(std::unique_ptr<VipRoutes> routes) {
  const std::optional<BgpConfig>& bgp = balancer_->config().bgp;
  if (bgp && !bgp->bird_socket.empty())
    bird_ = std::make_unique<BirdWatcher>(bgp->bird_socket, kBirdTimeout, kBirdPeriod);
  if (!routes) return;
  spdlog::info("[bgp] announcing servable VIPs as routes through {} (ifindex {}) in table {}",
               routes->device(), routes->ifindex(), routes->table());
  // Entries the fast path kept for flows to an address it did not announce
  // may name another backend than the instances that carried those flows
  // meanwhile; the flows coming back are placed by the table instead.
  const auto forget = [this](const IpAddress& vip) {
    for (const auto& fp : balancer_->fastpaths()) {
      auto n = fp->forget_flows_to(vip);
      if (n.ok())
        spdlog::info("[bgp] {}: {} flow entries to {} dropped before announcing it",
                     fp->info().interface, n.value(), vip.to_string());
      else
        spdlog::warn("[bgp] {}: {}", fp->info().interface, n.error().message);
    }
  };
  announcer_ = std::make_unique<Announcer>(std::move(routes),
                                           std::chrono::milliseconds(bgp->announce_delay_ms),
                                           forget);
}

void Daemon::update_announcements() {
  if (!announcer_) return;
  const Announcer::Applied a = announcer_->apply(balancer_->vips());
  for (const std::string& c : a.changes) spdlog::info("[bgp] {}", c);
  if (a.again_in) {
    announce_timer_.expires_after(*a.again_in);
    announce_timer_.async_wait([this](const std::error_code& ec) {
      if (!ec) update_announcements();
    });
  }
  // Logged when it changes: a failing route is retried at every update.
  if (a.error != last_announce_error_) {
    if (a.error.empty())
      spdlog::info("[bgp] routes as planned again");
    else
      spdlog::error("[bgp] {}", a.error);
    last_announce_error_ = a.error;
  }
}

std::optional<json> Daemon::bgp_request(const json& request) {
  const auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string()) return std::nullopt;
  const std::string& name = cmd->get_ref<const std::string&>();
  const std::optional<BgpConfig>& bgp = balancer_->config().bgp;
  if (name == "drain-instance" || name == "undrain-instance") {
    if (!announcer_)
      return fail("invalid", "this instance announces nothing (no [bgp] with announce = true)");
    const bool drain = name == "drain-instance";
    announcer_->set_drained(drain);
    spdlog::info("[bgp] {}", drain ? "instance drained: withdrawing every VIP"
                                   : "instance undrained: announcing servable VIPs");
    update_announcements();
    json routes = json::array();
    for (const IpAddress& a : announcer_->announced()) routes.push_back(a.to_string());
    return ok(json{{"instance_drained", drain},
                   {"announced", routes},
                   {"announce_delay_ms", bgp ? bgp->announce_delay_ms : 0}});
  }
  if (name != "status" || !bgp) return std::nullopt;
  json response = handle_request(*balancer_, ctx_, request);
  if (!response.value("ok", false)) return response;
  json b = bird_state(*bgp, bird_.get());
  b["announce"] = bgp->announce;
  b["table"] = bgp->table;
  b["device"] = bgp->device;
  b["instance_drained"] = announcer_ && announcer_->drained();
  json routes = json::array();
  json vips = json::array();
  if (announcer_) {
    for (const IpAddress& a : announcer_->announced()) routes.push_back(a.to_string());
    for (const VipAnnouncement& v : plan_announcements(balancer_->vips(), announcer_->drained()).vips)
      vips.push_back({{"name", v.vip},
                      {"address", v.addr.to_string()},
                      {"servable", v.servable},
                      {"announced", announcer_->announced().count(v.addr) > 0}});
  }
  b["routes"] = routes;
  b["vips"] = vips;
  response["result"]["bgp"] = b;
  return response;
}

}  // namespace sluice::control
