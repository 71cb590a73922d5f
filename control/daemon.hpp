// SPDX-License-Identifier: BSD-2-Clause
// Daemon: the `sluice attach` / `sluice run` process around the control
// library: config, the XDP fast paths or the DPDK runtime, the Balancer,
// the Asio event loop with signals (SIGHUP reload; SIGTERM/SIGINT stop,
// leaving an XDP program attached and its maps pinned, or stopping the
// DPDK workers and closing their ports), periodic next-hop refresh, and the
// pid file.
#pragma once

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/announcer.hpp"
#include "control/balancer.hpp"
#include "control/bird_client.hpp"
#include "control/cache_filler.hpp"
#include "control/config.hpp"
#include "control/dpdk_runtime.hpp"
#include "control/handler.hpp"
#include "control/health.hpp"
#include "control/instance_lock.hpp"
#include "control/metrics_server.hpp"
#include "control/next_hop_refresher.hpp"
#include "control/policy.hpp"
#include "control/socket_server.hpp"
#include "control/vip_routes.hpp"

namespace sluice::control {

struct DaemonOptions {
  std::string config_path;
  /// Interfaces to attach to; empty: the config's [xdp] interfaces.
  std::vector<std::string> interfaces;
  /// Overrides the config's [xdp] mode.
  std::optional<XdpAttachMode> mode;
  /// Pin folder of the maps; empty: <bpffs>/sluice/<interface>. Only with
  /// one interface.
  std::string pin_root;
  /// Written with the pid once the fast paths are attached and published;
  /// removed on a clean exit. Empty: none.
  std::string pidfile;
  /// How often next hops are re-resolved (without a gateway_mac), ms.
  std::chrono::milliseconds next_hop_period{5000};
  /// How often `least-conn` and `fastest` weights are recomputed (and
  /// damped), ms; a backend going up or down triggers it at once.
  std::chrono::milliseconds policy_period{1000};
  /// How often the fast paths' established flows are counted (a walk of
  /// each flow table): `least-conn` weights and `sluice ctl backends` use
  /// the last count, ms.
  std::chrono::milliseconds active_flows_period{5000};
};

/// The daemon. Everything runs on one thread, io()'s: the Balancer, the
/// request handler, and what is added beside them (the control socket
/// server, health probes) must run there too.
class Daemon {
 public:
  /// Loads and validates the config, loads and attaches every XDP fast
  /// path (or, with [dpdk], starts EAL, the ports and the workers),
  /// publishes the first snapshot, sets the DPDK workers running, writes
  /// the pid file. Errors (logged already, with every config error):
  /// -EINVAL for a bad config or options, the loader's, the DPDK runtime's
  /// and the publication's errors.
  [[nodiscard]] static Result<std::unique_ptr<Daemon>> start(const DaemonOptions& options);

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  /// Removes the pid file. The fast paths stay attached with their maps
  /// pinned (`sluice detach` is the explicit end).
  ~Daemon();

  /// Runs the event loop until SIGTERM or SIGINT. Returns the exit code (0).
  int run();

  [[nodiscard]] asio::io_context& io() { return io_; }
  [[nodiscard]] Balancer& balancer() { return *balancer_; }
  /// The context handle_request() needs (what the control socket uses).
  [[nodiscard]] const HandlerContext& handler_context() const { return ctx_; }

  /// Publishes the Balancer's pending changes (the hook for health probes
  /// and policies after set_backend_health / set_effective_weights), logs
  /// what moved, or logs the error (the changes are then dropped).
  void publish(std::string_view why);

  /// SIGHUP: re-reads the config file; on any error logs it and changes
  /// nothing.
  void reload();

  /// Makes the health checker probe exactly the backends the Balancer has
  /// now (after a reload or a runtime change). Backends new to the checker
  /// start down: they take no new flows before `rise` good probes.
  void sync_health_targets();

 private:
  Daemon(DaemonOptions options, Balancer balancer);
  void wait_signals();
  /// Resolves and writes the next hops now, waiting (before the loop runs).
  void refresh_next_hops();
  /// The same on the worker thread of next_hops_ (the loop never waits
  /// for a neighbour), now and every next_hop_period.
  void request_next_hop_refresh();
  void schedule_next_hop_refresh();
  void log_next_hop(const Fastpath& fp, const Status& s);
  /// Opens the control socket and the metrics endpoint (when configured).
  [[nodiscard]] Status open_servers();
  void on_probe(const HealthEvent& e);
  /// Recomputes a `least-conn` / `fastest` VIP's weights through its
  /// damping state; true when new weights were handed to the Balancer.
  bool update_policy_weights(const VipView& vip);
  void schedule_policy_update();
  /// Balancer::refresh_active_flows now and every active_flows_period.
  void refresh_active_flows();
  void schedule_active_flows_refresh();
  /// Opens the hot-object cache of the XDP fast paths and starts its loop.
  void start_cache();
  // [bgp] (daemon_bgp.cpp): starts reading BIRD when the config names its
  // socket, and announces through `routes` (opened by start() before any
  // fast path, null when the config does not announce); keeps the routes
  // in line with the Balancer (after every publication and at start);
  // answers the commands that concern them (drain-instance,
  // undrain-instance, and status's "bgp" part), or nullopt for every other
  // request.
  void open_announcer(std::unique_ptr<VipRoutes> routes);
  void update_announcements();
  [[nodiscard]] std::optional<nlohmann::json> bgp_request(const nlohmann::json& request);

  // Damping state of one VIP, valid for the backend list it was built for.
  struct VipDamping {
    std::vector<IpAddress> addrs;
    DampState state;
  };

  DaemonOptions options_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer next_hop_timer_;
  asio::steady_timer policy_timer_;
  asio::steady_timer active_flows_timer_;
  std::optional<Balancer> balancer_;
  // The DPDK workers and ports ([dpdk]); declared after balancer_ so they
  // stop before the Balancer and its fast path go.
  std::unique_ptr<DpdkRuntime> dpdk_;
  HandlerContext ctx_;
  std::vector<InstanceLock> locks_;  // one per fast path, held for life
  std::unique_ptr<HealthChecker> checker_;
  std::unique_ptr<SocketServer> socket_;
  std::unique_ptr<MetricsServer> metrics_;
  // Declared after balancer_, so destroyed (its worker joined) before the
  // fast paths it resolves for.
  std::unique_ptr<NextHopRefresher> next_hops_;
  std::unique_ptr<CacheFiller> cache_;  // after io_: destroyed before it
  std::unique_ptr<Announcer> announcer_;  // [bgp] announce = true only
  std::unique_ptr<BirdWatcher> bird_;     // [bgp] bird_socket only
  asio::steady_timer announce_timer_{io_};  // routes held down until due
  std::string last_announce_error_;
  std::map<std::string, VipDamping, std::less<>> damping_;
  std::string last_next_hop_error_;
  std::string last_active_flows_error_;
  bool pidfile_written_ = false;
};

/// Logs a publication: the generation and the entries moved per VIP.
void log_publish(std::string_view why, const PublishReport& report, uint64_t generation);

}  // namespace sluice::control
