// SPDX-License-Identifier: BSD-2-Clause
// Daemon: start-up (config, fast paths, first publication, pid file), the
// signal handling and the periodic next-hop refresh (resolved on a worker
// thread, applied on the Asio loop).
#include "control/daemon.hpp"

#include <net/if.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "control/dpdk_options.hpp"
#include "control/metrics.hpp"
#include "control/xdp_fastpath.hpp"

#ifndef SLUICE_VERSION
#error "SLUICE_VERSION must be defined by the build"
#endif

namespace sluice::control {
namespace {

xdp::XdpMode xdp_mode(XdpAttachMode m) {
  return m == XdpAttachMode::kNative ? xdp::XdpMode::kNative : xdp::XdpMode::kGeneric;
}

Result<Config> load(const std::string& path) {
  // The daemon's rules, as `sluice check-config` applies them.
  auto loaded = load_daemon_config_file(path);
  if (!loaded.ok()) {
    spdlog::error("{}", loaded.error().message);
    return loaded.error();
  }
  ConfigReport& r = loaded.value();
  for (const ConfigIssue& w : r.warnings) spdlog::warn("{}", w.to_string());
  for (const ConfigIssue& e : r.errors) spdlog::error("{}", e.to_string());
  if (!r.ok()) return Error{-EINVAL, path + ": invalid config"};
  return std::move(*r.config);
}

// The XDP fast paths of `sluice attach` / `sluice run` with [xdp], each
// interface locked first. Errors are logged.
// An interface this start attached a program to with maps it made new.
struct FreshAttach {
  std::string ifname;
  int ifindex;
  std::string pin_root;
};

// Undoes the fresh attaches of a start that failed after them: the program
// is detached and its maps unpinned, so no fast path is left running with
// no daemon to publish to it. A program that replaced a previous
// instance's and re-used its pinned maps stays: the interface then
// forwards as it did before this start, as after a stop.
struct UndoFreshAttaches {
  std::vector<FreshAttach> fresh;
  bool keep = false;
  UndoFreshAttaches() = default;
  UndoFreshAttaches(const UndoFreshAttaches&) = delete;
  UndoFreshAttaches& operator=(const UndoFreshAttaches&) = delete;
  ~UndoFreshAttaches() {
    if (keep) return;
    for (const FreshAttach& f : fresh) {
      const auto d = xdp::detach_interface(f.ifindex);
      const auto u = xdp::unpin_maps(f.pin_root);
      if (d.ok() && u.ok())
        spdlog::info("{}: start failed: XDP program detached, maps under {} unpinned", f.ifname,
                     f.pin_root);
      else
        spdlog::error("{}: start failed, and undoing the attach failed: {}", f.ifname,
                      !d.ok() ? d.error().message : u.error().message);
    }
  }
};

Result<std::vector<std::unique_ptr<Fastpath>>> open_xdp(const DaemonOptions& options,
                                                        const Config& cfg,
                                                        std::vector<InstanceLock>& locks,
                                                        std::vector<FreshAttach>& fresh) {
  // load() refused a config without [xdp] or [dpdk].
  if (!cfg.xdp) return Error{-EINVAL, "no [xdp] section"};
  const std::vector<std::string> ifaces =
      options.interfaces.empty() ? cfg.xdp->interfaces : options.interfaces;
  if (ifaces.empty()) {
    spdlog::error("no interface to attach to");
    return Error{-EINVAL, "no interface"};
  }
  if (!options.pin_root.empty() && ifaces.size() != 1) {
    spdlog::error("--pin-root needs exactly one interface");
    return Error{-EINVAL, "--pin-root with several interfaces"};
  }
  const XdpAttachMode mode = options.mode.value_or(cfg.xdp->mode);

  // Before anything touches an interface: a second daemon must not replace
  // a running one's program and maps.
  for (const std::string& ifname : ifaces) {
    const std::string root = !options.pin_root.empty()
                                 ? options.pin_root
                                 : xdp::default_pin_root(xdp::kBpffsRoot, ifname);
    auto lock = InstanceLock::acquire(root);
    if (!lock.ok()) {
      spdlog::error("{}: {}", ifname, lock.error().message);
      return lock.error();
    }
    locks.push_back(std::move(lock.value()));
    // The interface too: another --pin-root must not replace its program.
    if (const unsigned ifindex = if_nametoindex(ifname.c_str()); ifindex != 0) {
      auto iface_lock = InstanceLock::acquire_interface(ifindex, ifname);
      if (!iface_lock.ok()) {
        spdlog::error("{}: {}", ifname, iface_lock.error().message);
        return iface_lock.error();
      }
      locks.push_back(std::move(iface_lock.value()));
    }
  }

  std::vector<std::unique_ptr<Fastpath>> fastpaths;
  for (const std::string& ifname : ifaces) {
    xdp::LoaderOptions lo;
    lo.ifname = ifname;
    lo.mode = xdp_mode(mode);
    lo.flows_per_cpu = cfg.flow_table.flows_per_core;
    lo.probation_per_cpu = cfg.flow_table.probation_per_core;
    lo.hash_seed = cfg.hash_seed;
    lo.tcp_idle_ms = cfg.flow_table.tcp_idle_ms;
    lo.udp_idle_ms = cfg.flow_table.udp_idle_ms;
    lo.cache_entries = cfg.cache.entries;
    lo.cache_hot_threshold = cfg.cache.hot_threshold;
    lo.pin_root = options.pin_root;
    auto fp = XdpFastpath::open(lo);
    if (!fp.ok()) {
      spdlog::error("{}: {}", ifname, fp.error().message);
      return fp.error();
    }
    const FastpathInfo info = fp.value()->info();
    for (const std::string& old : fp.value()->loader().replaced_pinned_maps())
      spdlog::warn("{}: pinned map {} was an older build's: replaced, its contents start afresh",
                   ifname, old);
    if (!info.reused_pinned_maps)
      fresh.push_back({ifname, info.ifindex, fp.value()->loader().pin_root()});
    spdlog::info("{}: XDP program {} attached ({} mode, ifindex {}); maps {} under {}",
                 info.interface, info.prog_id, info.mode, info.ifindex,
                 info.reused_pinned_maps ? "re-used (flows kept)" : "new",
                 fp.value()->loader().pin_root());
    fastpaths.push_back(std::move(fp.value()));
  }
  return fastpaths;
}

// The DPDK runtime of `sluice run` with [dpdk]: EAL, ports, workers (not
// running yet). Errors are logged.
Result<std::unique_ptr<DpdkRuntime>> start_dpdk(const DaemonOptions& options, const Config& cfg) {
  if (!options.interfaces.empty() || options.mode || !options.pin_root.empty()) {
    spdlog::error(
        "{}: has [dpdk]: `sluice attach` and its XDP options are for [xdp]; use "
        "`sluice run`",
        options.config_path);
    return Error{-EINVAL, "attach with [dpdk]"};
  }
  const DpdkRuntimeOptions o = dpdk_runtime_options(cfg);
  std::string eal;
  for (const std::string& a : o.eal_args) eal += (eal.empty() ? "" : " ") + a;
  spdlog::info("dpdk: starting EAL: {}", eal);
  auto rt = DpdkRuntime::start(o);
  if (!rt.ok()) {
    spdlog::error("dpdk: {}", rt.error().message);
    return rt.error();
  }
  for (const std::string& line : rt.value()->describe()) spdlog::info("dpdk: {}", line);
  return rt;
}

}  // namespace

void log_publish(std::string_view why, const PublishReport& report, uint64_t generation) {
  if (!report.changed) {
    spdlog::info("{}: nothing to publish (generation {})", why, generation);
    return;
  }
  std::string moved;
  for (const PublishReport::Vip& v : report.vips)
    moved += " " + v.name + "=" + std::to_string(v.entries_moved);
  spdlog::info("{}: published generation {}; entries moved:{}", why, generation,
               moved.empty() ? " none" : moved);
}

Daemon::Daemon(DaemonOptions options, Balancer balancer)
    : options_(std::move(options)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      next_hop_timer_(io_),
      policy_timer_(io_),
      active_flows_timer_(io_),
      balancer_(std::move(balancer)) {
  ctx_.version = SLUICE_VERSION;
  ctx_.pid = static_cast<long>(getpid());
  ctx_.started = std::chrono::steady_clock::now();
  ctx_.config_path = options_.config_path;
  ctx_.on_change = [this](std::string_view what, const PublishReport& r) {
    log_publish(what, r, balancer_->generation());
    // A runtime change may have added or removed backends to probe, and
    // backends whose next hop is to be checked (as SIGHUP does).
    sync_health_targets();
    request_next_hop_refresh();
    update_announcements();
  };
}

Result<std::unique_ptr<Daemon>> Daemon::start(const DaemonOptions& options) {
  auto config = load(options.config_path);
  if (!config.ok()) return config.error();
  Config& cfg = config.value();
  // What can fail without touching an interface comes first: the [bgp]
  // device (a name the kernel refuses, or one held by another daemon).
  std::unique_ptr<VipRoutes> routes;
  if (cfg.bgp && cfg.bgp->announce) {
    auto r = VipRoutes::open(cfg.bgp->device, cfg.bgp->table);
    if (!r.ok()) {
      spdlog::error("[bgp] device {}: {}", cfg.bgp->device, r.error().message);
      return r.error();
    }
    routes = std::move(r.value());
  }
  // Declared before the daemon: on a failed start it runs after the daemon,
  // its fast paths and locks are gone.
  UndoFreshAttaches undo;
  std::vector<InstanceLock> locks;
  std::vector<std::unique_ptr<Fastpath>> fastpaths;
  std::unique_ptr<DpdkRuntime> dpdk;
  if (cfg.dpdk) {
    auto started = start_dpdk(options, cfg);
    if (!started.ok()) return started.error();
    dpdk = std::move(started.value());
    fastpaths.push_back(dpdk->fastpath());
  } else {
    auto xdp = open_xdp(options, cfg, locks, undo.fresh);
    if (!xdp.ok()) return xdp.error();
    fastpaths = std::move(xdp.value());
  }

  auto balancer = Balancer::create(std::move(cfg), std::move(fastpaths));
  if (!balancer.ok()) {
    spdlog::error("{}", balancer.error().message);
    return balancer.error();
  }
  std::unique_ptr<Daemon> d(new Daemon(options, std::move(balancer.value())));
  d->locks_ = std::move(locks);
  d->dpdk_ = std::move(dpdk);
  d->open_announcer(std::move(routes));
  if (Status s = d->open_servers(); !s.ok()) return s.error();
  // Next hops first, so the first published table does not forward to a
  // zero MAC.
  d->refresh_next_hops();
  auto first = d->balancer_->publish();
  if (!first.ok()) {
    spdlog::error("publishing the config: {}", first.error().message);
    return first.error();
  }
  log_publish("start", first.value(), d->balancer_->generation());
  if (d->dpdk_) {
    // After the first publication, so no packet meets the empty snapshot.
    if (Status s = d->dpdk_->launch(); !s.ok()) {
      spdlog::error("{}", s.error().message);
      return s.error();
    }
    spdlog::info("dpdk: workers running");
  }
  for (const VipView& v : d->balancer_->vips())
    if (v.panic) spdlog::warn("VIP {}: every backend is down: panic mode", v.name);

  if (!options.pidfile.empty()) {
    const std::string tmp = options.pidfile + ".tmp";
    {
      std::ofstream out(tmp);
      out << getpid() << "\n";
      if (!out) {
        spdlog::error("{}: cannot write the pid file", tmp);
        return Error{-EIO, "pid file"};
      }
    }
    // Renamed into place, so a reader never sees a half-written pid.
    if (std::rename(tmp.c_str(), options.pidfile.c_str()) != 0) {
      spdlog::error("{}: cannot write the pid file: {}", options.pidfile, std::strerror(errno));
      return Error{-errno, "pid file"};
    }
    d->pidfile_written_ = true;
  }
  undo.keep = true;
  return d;
}

Daemon::~Daemon() {
  if (pidfile_written_) std::remove(options_.pidfile.c_str());
}

int Daemon::run() {
  wait_signals();
  next_hops_ = std::make_unique<NextHopRefresher>(
      io_, balancer_->fastpaths(),
      [this](const Fastpath& fp, const Status& s) { log_next_hop(fp, s); });
  schedule_next_hop_refresh();
  // The backends of the config we start with are probed from an assumed
  // "up" (the fast path may be forwarding to them already, after a
  // restart); an unhealthy one goes down after `fall` probes.
  checker_ = std::make_unique<HealthChecker>(io_, [this](const HealthEvent& e) { on_probe(e); });
  std::vector<HealthTarget> targets = health_targets(balancer_->config(), HealthState::kUp);
  checker_->set_targets(targets);
  refresh_active_flows();
  schedule_active_flows_refresh();
  schedule_policy_update();
  start_cache();
  update_announcements();
  spdlog::info("running (pid {}); SIGHUP reloads {}, SIGTERM stops", getpid(),
               options_.config_path);
  io_.run();
  if (dpdk_) {
    spdlog::info("dpdk: stopping the workers, closing the ports");
    dpdk_.reset();
    return 0;
  }
  for (const auto& fp : balancer_->fastpaths())
    spdlog::info(
        "{}: stopped; the XDP program stays attached and its maps pinned "
        "(`sluice detach {}` removes them)",
        fp->info().interface, fp->info().interface);
  return 0;
}

void Daemon::wait_signals() {
  signals_.async_wait([this](const std::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reload();
      wait_signals();
      return;
    }
    spdlog::info("signal {}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    next_hop_timer_.cancel();
    policy_timer_.cancel();
    active_flows_timer_.cancel();
    // Withdrawn first, so the router moves flows away while this
    // instance's fast path still forwards them.
    if (announcer_) {
      announce_timer_.cancel();
      announcer_.reset();
      spdlog::info("[bgp] routes withdrawn");
    }
    checker_.reset();
    socket_.reset();
    metrics_.reset();
    next_hops_.reset();
    io_.stop();
  });
}

namespace {

// A failed reload's errors, one log line each (a config error names its
// file, line and key on a line of its own).
void log_reload_failure(const std::string& path, std::string_view how, std::string_view msg) {
  spdlog::error("reload of {} ({}) failed; nothing changed:", path, how);
  while (!msg.empty()) {
    const size_t nl = msg.find('\n');
    spdlog::error("  {}", msg.substr(0, nl));
    if (nl == std::string_view::npos) break;
    msg.remove_prefix(nl + 1);
  }
}

}  // namespace

void Daemon::reload() {
  auto r = reload_config_file(*balancer_, options_.config_path);
  if (!r.ok()) {
    log_reload_failure(options_.config_path, "SIGHUP", r.error().message);
    return;
  }
  log_publish("reload", r.value(), balancer_->generation());
  sync_health_targets();
  request_next_hop_refresh();
  update_announcements();
}

Status Daemon::open_servers() {
  const ControlSocketConfig& c = balancer_->config().control;
  const ControlHandler handler = [this](const nlohmann::json& request) {
    if (auto r = bgp_request(request)) return *r;
    nlohmann::json response = handle_request(*balancer_, ctx_, request);
    // The operator who ran `sluice ctl reload` sees the error; the log keeps
    // it too, as for SIGHUP.
    const auto cmd = request.is_object() ? request.find("cmd") : request.end();
    if (cmd != request.end() && cmd->is_string() && *cmd == "reload" &&
        response.value("ok", true) == false) {
      const auto& error = response["error"];
      log_reload_failure(options_.config_path, "sluice ctl",
                         error.is_object() ? error.value("message", std::string{}) : std::string{});
    }
    return response;
  };
  SocketServerOptions so;
  so.path = c.path;
  so.mode = c.mode;
  so.group = c.group;
  auto sock = SocketServer::open(io_, so, handler);
  if (!sock.ok()) {
    spdlog::error("control socket {}: {}", c.path, sock.error().message);
    return sock.error();
  }
  socket_ = std::move(sock.value());
  spdlog::info("control socket {}", c.path);

  const std::string& listen = balancer_->config().metrics.listen;
  if (listen.empty()) return Ok{};
  MetricsServerOptions mo;
  mo.listen = listen;
  auto m = MetricsServer::open(io_, mo, [handler] { return render_metrics_from(handler); });
  if (!m.ok()) {
    spdlog::error("metrics on {}: {}", listen, m.error().message);
    return m.error();
  }
  metrics_ = std::move(m.value());
  spdlog::info("metrics on http://{}/metrics", listen);
  return Ok{};
}

void Daemon::sync_health_targets() {
  if (!checker_) return;
  const Config& cfg = balancer_->config();
  std::map<std::string, uint16_t, std::less<>> vip_ports;
  for (const VipView& v : balancer_->vips()) vip_ports[v.name] = v.port;
  auto views = balancer_->backends();
  if (!views.ok()) return;
  std::vector<HealthTarget> targets;
  bool marked_down = false;
  for (const BackendView& b : views.value()) {
    if (b.health_check.empty()) continue;
    const HealthCheck* check = cfg.find_health_check(b.health_check);
    if (check == nullptr) continue;
    HealthTarget t;
    t.key = {b.vip, b.addr};
    t.check = *check;
    t.port = check->port != 0 ? check->port : vip_ports[b.vip];
    t.initial = HealthState::kDown;
    if (!checker_->status(t.key)) {
      // New to the checker: no new flows before it proved healthy.
      if (b.health != Health::kDown &&
          balancer_
              ->set_backend_health(b.vip, b.addr, Health::kDown, std::nullopt, "not probed yet")
              .ok())
        marked_down = true;
    }
    targets.push_back(std::move(t));
  }
  checker_->set_targets(targets);
  if (marked_down) publish("new backends wait for their probes");
}

void Daemon::on_probe(const HealthEvent& e) {
  const Health h = e.status.state == HealthState::kUp ? Health::kUp : Health::kDown;
  const ProbeCounters probes{e.status.probes - e.status.probes_failed, e.status.probes_failed,
                             e.status.last_rtt_us};
  const Status s = balancer_->set_backend_health(e.key.vip, e.key.addr, h, e.status.rtt_ewma_us,
                                                 e.probe_ok ? "ok" : e.status.last_failure, probes);
  if (!s.ok()) return;  // removed since the probe started
  if (!e.state_changed) return;
  if (h == Health::kDown)
    spdlog::warn("VIP {}: backend {} is down: {}", e.key.vip, e.key.addr.to_string(),
                 e.status.last_failure);
  else
    spdlog::info("VIP {}: backend {} is up", e.key.vip, e.key.addr.to_string());
  for (const VipView& v : balancer_->vips())
    if (v.name == e.key.vip) update_policy_weights(v);
  publish("health");
  for (const VipView& v : balancer_->vips())
    if (v.name == e.key.vip && v.panic)
      spdlog::warn("VIP {}: every backend is down: panic mode (table over all of them)", v.name);
}

bool Daemon::update_policy_weights(const VipView& vip) {
  if (vip.policy == Policy::kStatic) return false;
  auto views = balancer_->backends(vip.name);
  if (!views.ok()) return false;
  std::vector<PolicyInput> inputs;
  std::vector<IpAddress> addrs;
  for (const BackendView& b : views.value()) {
    PolicyInput in;
    in.weight = b.weight;
    in.drained = b.draining();
    in.healthy = b.health != Health::kDown;
    in.capacity = b.capacity.value_or(0);
    in.rtt_us = b.rtt_us;
    in.active_flows = b.active_flows;
    inputs.push_back(in);
    addrs.push_back(b.addr);
  }
  VipDamping& d = damping_[vip.name];
  if (d.addrs != addrs) d = VipDamping{addrs, {}};
  const WeightUpdate u = damp_weights(policy_targets(vip.policy, inputs), d.state);
  d.state = u.state;
  if (!u.changed) return false;
  std::vector<BackendWeight> weights;
  for (size_t i = 0; i < addrs.size(); ++i) weights.push_back({addrs[i], u.weights[i]});
  return balancer_->set_effective_weights(vip.name, weights).ok();
}

void Daemon::schedule_policy_update() {
  policy_timer_.expires_after(options_.policy_period);
  policy_timer_.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    bool changed = false;
    for (const VipView& v : balancer_->vips()) changed = update_policy_weights(v) || changed;
    if (changed) publish("policy");
    schedule_policy_update();
  });
}

void Daemon::start_cache() {
  auto f = CacheFiller::create(io_, *balancer_, balancer_->config().cache);
  if (!f.ok()) {
    spdlog::error("hot-object cache: {} (VIPs with cache = true run without it)",
                  f.error().message);
    return;
  }
  cache_ = std::move(f.value());
  cache_->start();
  ctx_.cache = [this] { return cache_report(*cache_); };
}

void Daemon::refresh_active_flows() {
  const Status s = balancer_->refresh_active_flows();
  // Logged when it changes, not every period.
  const std::string err = s.ok() ? "" : s.error().message;
  if (err != last_active_flows_error_) {
    if (s.ok())
      spdlog::info("counting active flows again");
    else
      spdlog::warn("active flows unknown: {}", err);
    last_active_flows_error_ = err;
  }
}

void Daemon::schedule_active_flows_refresh() {
  active_flows_timer_.expires_after(options_.active_flows_period);
  active_flows_timer_.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    refresh_active_flows();
    schedule_active_flows_refresh();
  });
}

void Daemon::publish(std::string_view why) {
  auto r = balancer_->publish();
  if (!r.ok()) {
    spdlog::error("{}: publishing failed, changes dropped: {}", why, r.error().message);
    return;
  }
  if (r.value().changed) log_publish(why, r.value(), balancer_->generation());
  update_announcements();
}

void Daemon::refresh_next_hops() {
  const auto encap = balancer_->config().encap();
  if (encap && encap->gateway_mac) return;
  const std::vector<IpAddress> targets = balancer_->backend_addresses();
  for (const auto& fp : balancer_->fastpaths()) log_next_hop(*fp, fp->refresh_next_hop(targets));
}

void Daemon::request_next_hop_refresh() {
  if (!next_hops_) return;
  // [xdp] or [dpdk]: either section's gateway_mac means nothing to resolve.
  const auto encap = balancer_->config().encap();
  if (encap && encap->gateway_mac) return;
  next_hops_->refresh(balancer_->backend_addresses());
}

void Daemon::log_next_hop(const Fastpath& fp, const Status& s) {
  // Logged when it changes, not every period.
  const std::string err = s.ok() ? "" : s.error().message;
  if (err == last_next_hop_error_) return;
  if (s.ok())
    spdlog::info("{}: next hop resolved", fp.info().interface);
  else
    spdlog::warn("{}: next hop: {}", fp.info().interface, err);
  last_next_hop_error_ = err;
}

void Daemon::schedule_next_hop_refresh() {
  next_hop_timer_.expires_after(options_.next_hop_period);
  next_hop_timer_.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    request_next_hop_refresh();
    schedule_next_hop_refresh();
  });
}

}  // namespace sluice::control
