// SPDX-License-Identifier: BSD-2-Clause
// Balancer: the control library's public model of VIPs and backends (ids,
// weights, drain, health), turned into Maglev tables and published as one
// snapshot to every fast path. The daemon, the control socket and an
// embedding program all change the load balancer through this class.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/config.hpp"
#include "control/fastpath.hpp"
#include "dataplane/core/maglev.hpp"

namespace sluice::control {

/// A backend's health as its probes last said. kUnchecked: it has no
/// health check (always taken as up).
enum class Health : uint8_t { kUnchecked, kUp, kDown };

/// "unchecked", "up", "down".
const char* to_string(Health h);

/// A VIP's default name, as the config gives it: "ADDR:PORT/PROTO", with
/// an IPv6 address in brackets.
std::string default_vip_name(const VipConfig& vip);

/// A backend's probe history as the health checker counts it (from when
/// it first probed the backend; a backend removed and added again starts
/// from 0).
struct ProbeCounters {
  uint64_t ok = 0;      ///< probes that succeeded
  uint64_t failed = 0;  ///< probes that failed
  std::optional<double> last_rtt_us;  ///< the latest successful probe's RTT, µs
};

/// A policy's weight for one backend (set_effective_weights).
struct BackendWeight {
  IpAddress addr;
  uint32_t weight = 0;  ///< 0..65535
};

/// One backend as the Balancer holds it.
struct BackendView {
  std::string vip;  ///< the VIP's name
  IpAddress addr;
  uint32_t id = 0;  ///< fast-path backend id, stable for the backend's life
  uint32_t weight = 0;  ///< configured (or set) weight; 0 = draining
  std::optional<uint32_t> capacity;  ///< concurrent flows (least-conn)
  std::string health_check;          ///< its check's name; empty = none
  Health health = Health::kUnchecked;
  std::optional<double> rtt_us;  ///< probe round-trip time (EWMA), microseconds
  std::string last_check;        ///< "ok" or why the last probe failed; empty = none yet
  std::optional<ProbeCounters> probes;  ///< unset: never probed
  uint32_t policy_weight = 0;    ///< the policy's weight (defaults to `weight`)
  uint32_t effective_weight = 0;  ///< what the published table was built with
  uint32_t table_entries = 0;     ///< entries of the published table naming it
  /// Established flows the fast paths held on it at the last
  /// Balancer::refresh_active_flows(); unset: never counted, or a fast
  /// path cannot count them.
  std::optional<uint64_t> active_flows;
  [[nodiscard]] bool draining() const { return weight == 0; }
};

/// One VIP as the Balancer holds it.
struct VipView {
  std::string name;
  IpAddress addr;
  uint16_t port = 0;  ///< host order; 0 = every port
  Protocol protocol = Protocol::kTcp;
  Policy policy = Policy::kStatic;
  HashFields hash = HashFields::kFiveTuple;
  bool cache = false;
  uint32_t vip_id = 0;      ///< fast-path VIP id, stable while the VIP exists
  uint32_t table_size = 0;  ///< entries of the published table (0: not published yet)
  bool panic = false;       ///< every non-drained backend is down: table spans them all
  size_t backends = 0;
  size_t backends_up = 0;  ///< up or unchecked, not draining
};

/// What a publication changed.
struct PublishReport {
  struct Vip {
    std::string name;
    uint32_t entries_moved = 0;  ///< table slots whose backend changed; 0 for a new VIP
  };
  /// Each VIP whose table was rebuilt (or added), with the entries moved.
  std::vector<Vip> vips;
  /// Whether the fast paths were written at all.
  bool changed = false;

  /// Entries moved for `vip` (0 when its table did not change).
  [[nodiscard]] uint32_t moved(std::string_view vip) const;
};

/// Counters summed over every fast path (packets, bytes).
struct BalancerStats {
  sluice_global_stats global{};
  struct Vip {
    std::string name;
    sluice_vip_stats counters{};
  };
  struct Backend {
    std::string vip;
    IpAddress addr;
    sluice_backend_stats counters{};
  };
  std::vector<Vip> vips;
  std::vector<Backend> backends;
  /// The fast paths' flow tables, summed; nullopt when a fast path keeps
  /// the per-CPU layout (Fastpath::flow_table_size).
  std::optional<FlowTableSize> flow_table;
  /// Every fast path's workers (Fastpath::worker_stats), in order.
  std::vector<WorkerStats> workers;
};

/// The load balancer's model and its publication (DESIGN.md "Model",
/// "Weights from health"). Changes (add/remove, weights, drain, health,
/// policy weights) are made to a pending model; publish() builds the
/// Maglev table of every VIP whose inputs changed and hands one snapshot
/// to every fast path; discard() drops unpublished changes. Nothing is
/// ever partly applied: a failed publish() or reload() restores the last
/// published state (in the model and, by re-publishing it, in the fast
/// paths).
///
/// Ids: each backend of each VIP gets a backend id for life (a backend of
/// two VIPs has two ids: its drain flag and counters are per VIP). A new
/// id never equals an id its slot (id & (SLUICE_MAX_BACKENDS - 1)) held
/// before, so a flow entry of a removed backend never reaches another.
/// At create(), ids and VIP ids are taken over from what the fast paths
/// already hold (a restarted daemon's flows keep their backends).
///
/// Effective weight of a backend: 0 if draining or down, else its policy
/// weight. When every non-draining backend of a VIP is down, the VIP is in
/// panic: its table spans all of them with their configured weights. A
/// VIP whose backends are all draining, or that has none, gets a table of
/// SLUICE_BACKEND_NONE (counted no_backend drops). A down backend (outside
/// panic) is left out of the snapshot, so its flows move; a draining one
/// stays with SLUICE_BACKEND_DRAINING and keeps its flows.
///
/// Not thread-safe: one control thread. Errors are Results, never
/// exceptions: -ENOENT no such VIP/backend, -EEXIST already there,
/// -EINVAL a value the model cannot take (the message says why), other
/// codes: a fast path failed.
class Balancer {
 public:
  /// Builds the model from a validated config (nothing is published yet:
  /// call publish()). Errors: -EINVAL when the config does not fit the
  /// fast path (more than SLUICE_MAX_BACKENDS backends over all VIPs).
  [[nodiscard]] static Result<Balancer> create(Config config,
                                               std::vector<std::unique_ptr<Fastpath>> fastpaths);

  Balancer(Balancer&&) noexcept;
  Balancer& operator=(Balancer&&) noexcept;
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;
  ~Balancer();

  /// The config last applied by create() or reload() (runtime changes are
  /// not in it).
  [[nodiscard]] const Config& config() const;
  /// 1 after create(); +1 per publish() that changed the fast paths and per
  /// successful reload().
  [[nodiscard]] uint64_t generation() const;
  [[nodiscard]] std::span<const std::unique_ptr<Fastpath>> fastpaths() const;
  /// Whether there are changes publish() has not written yet.
  [[nodiscard]] bool dirty() const;

  /// Adds a VIP with its backends. Checked like a config [[vips]] table
  /// (name and address/port/protocol unique, table size, backends, health
  /// checks named in the config). An empty name gets default_vip_name().
  [[nodiscard]] Status add_vip(VipConfig vip);
  [[nodiscard]] Status remove_vip(std::string_view vip);
  /// Adds a backend to a VIP (weight 0..65535; health check and capacity
  /// as in the config).
  [[nodiscard]] Status add_backend(std::string_view vip, BackendConfig backend);
  [[nodiscard]] Status remove_backend(std::string_view vip, const IpAddress& addr);
  /// Sets the configured weight, 0..65535; 0 drains. The policy weight
  /// follows it until the policy sets one again.
  [[nodiscard]] Status set_weight(std::string_view vip, const IpAddress& addr, uint32_t weight);
  /// set_weight(vip, addr, 0): keeps its flows, takes no new ones.
  [[nodiscard]] Status drain(std::string_view vip, const IpAddress& addr);

  /// The health checker's hook: what a backend's probes say. `rtt_us` is
  /// the probe RTT (EWMA), microseconds; `last_check` "ok" or the failure;
  /// `probes` the checker's counters (unset: those held stay). kUnchecked
  /// is refused (-EINVAL) for a backend with a health check. Only a health
  /// change makes the model dirty (something to publish).
  [[nodiscard]] Status set_backend_health(std::string_view vip, const IpAddress& addr,
                                          Health health, std::optional<double> rtt_us,
                                          std::string last_check,
                                          std::optional<ProbeCounters> probes = std::nullopt);
  /// The weight policy's hook: each named backend's policy weight
  /// (0..65535); backends not named keep theirs. Nothing is applied if any
  /// entry is wrong.
  [[nodiscard]] Status set_effective_weights(std::string_view vip,
                                             std::span<const BackendWeight> weights);

  /// Builds the tables whose inputs changed and publishes one snapshot to
  /// every fast path (none are written when nothing changed). On an error
  /// the model and the fast paths are back at the last published state.
  [[nodiscard]] Result<PublishReport> publish();
  /// Drops the changes made since the last publish.
  void discard();

  /// Replaces the whole model with a validated config, keeping the ids,
  /// health and policy weights of VIPs (by address, port, protocol) and
  /// backends (by address) it still has, and publishes it. Unpublished
  /// changes are dropped first. On any error nothing changes. Errors:
  /// -EINVAL when the new config changes what only a restart applies
  /// (hash_seed, [flow_table], [cache], a VIP's cache turned on or off or
  /// a cached VIP added or removed, [control], [metrics] listen, [xdp]
  /// interfaces or mode, [dpdk] EAL settings, [bgp]; the message lists
  /// them), or is invalid; the publication's errors.
  [[nodiscard]] Result<PublishReport> reload(Config config);

  /// Counts the established flows of every backend over all fast paths
  /// (Fastpath::active_flows) and keeps them for backends() until the next
  /// call. Costly (a walk of each flow table): the daemon calls it every
  /// few seconds. Errors: the first fast path's error (-EOPNOTSUPP: it
  /// cannot count); the counts are then unknown (unset) until a call
  /// succeeds.
  [[nodiscard]] Status refresh_active_flows();

  [[nodiscard]] std::vector<VipView> vips() const;
  /// Backends of one VIP, or of all (empty `vip`). Errors: -ENOENT.
  [[nodiscard]] Result<std::vector<BackendView>> backends(std::string_view vip = {}) const;
  /// Counters summed over the fast paths. Errors: the first read error.
  [[nodiscard]] Result<BalancerStats> stats() const;
  /// The backend the VIP's published table gives `hash` (table[hash % M]):
  /// with mc::route_hash(key, hash_seed), the owner of a memcached key
  /// under key-affinity routing, where the cache fetches it from.
  /// Errors: -ENOENT (no such VIP, nothing published, or the slot names no
  /// backend: every backend drained or removed).
  [[nodiscard]] Result<IpAddress> owner(std::string_view vip, uint32_t hash) const;
  /// Every backend address of every VIP, published or not (for next-hop
  /// resolution), sorted, without duplicates.
  [[nodiscard]] std::vector<IpAddress> backend_addresses() const;

 private:
  struct State;
  explicit Balancer(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace sluice::control
