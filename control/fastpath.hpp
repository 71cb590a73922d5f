// SPDX-License-Identifier: BSD-2-Clause
// Fastpath: what the control library needs from a fast path (XDP now, DPDK
// later): take a whole snapshot, say what it already held at start, and
// report its counters. The Balancer talks to fast paths only through this.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/memcached.hpp"
#include "dataplane/core/result.hpp"

namespace sluice::control {

/// The value of a successful call that has nothing else to return.
struct Ok {};
/// Success, or an Error (code -errno, message a sentence).
using Status = Result<Ok>;

/// One VIP as the fast path sees it.
struct FastpathVip {
  sluice_vip_key key{};    ///< address, port (network order), protocol, family
  sluice_vip_meta meta{};  ///< vip_id, flags (SLUICE_VIP_*), table_size = table.size()
  /// The Maglev table: M backend ids (or SLUICE_BACKEND_NONE: a counted
  /// no_backend drop). Points into the Balancer's storage; valid during
  /// Fastpath::publish only.
  std::span<const uint32_t> table;
};

/// Everything every fast path gets, whole, on each publication.
struct FastpathSnapshot {
  std::vector<FastpathVip> vips;
  /// Every backend of every VIP (one id per VIP and address), flags 0 or
  /// SLUICE_BACKEND_DRAINING.
  std::vector<sluice_backend> backends;
  /// Outer sources and MTU of the encapsulation.
  sluice_encap_config encap{};
  /// A static gateway MAC from the config; nullopt: the fast path resolves
  /// its next hop itself (Fastpath::refresh_next_hop).
  std::optional<std::array<uint8_t, 6>> gateway_mac;
};

/// What a fast path already held when it started (pinned maps of a
/// previous daemon), so a restarted daemon keeps its ids and flows.
struct FastpathState {
  struct Vip {
    sluice_vip_key key{};
    uint32_t vip_id = 0;
    /// Distinct backend ids its table names.
    std::vector<uint32_t> backend_ids;
  };
  std::vector<Vip> vips;
  /// Every backend slot as held (SLUICE_MAX_BACKENDS entries, or empty for
  /// a fresh fast path): VALID ones are live; others keep the last id the
  /// slot held, which a new id for that slot must differ from.
  std::vector<sluice_backend> slots;
};

/// How a fast path describes itself (the `status` command).
struct FastpathInfo {
  std::string kind;       ///< "xdp", "fake"
  std::string interface;  ///< the interface or port name
  int ifindex = 0;
  std::string mode;       ///< "native", "generic", ...
  uint32_t prog_id = 0;   ///< the kernel's program id (XDP), else 0
  bool reused_pinned_maps = false;
  /// What the last next-hop refresh could not apply (unresolved
  /// neighbours, an egress that cannot transmit XDP frames), naming the
  /// backends; empty when every next hop is in use.
  std::string next_hop_problem;
};

/// Established flows by backend id (flows a fast path holds on it now).
/// A backend without flows is absent.
using ActiveFlowCounts = std::map<uint32_t, uint64_t>;

/// The flow-table size of a fast path, entries over all its CPUs or workers.
struct FlowTableSize {
  uint64_t capacity = 0;   ///< established-flow entries
  uint64_t probation = 0;  ///< entries new flows may hold on probation
};

/// One worker of a fast path that has workers of its own (DPDK lcores):
/// its share of the traffic, for checking the spread over workers.
struct WorkerStats {
  unsigned lcore = 0;            ///< EAL lcore id
  sluice_global_stats global{};  ///< its counters since start (packets, bytes)
  uint64_t flow_capacity = 0;    ///< its flow table's entries
};

/// A key a fast path's cache reported hot.
struct FastpathHotKey {
  uint32_t vip_id = 0;
  std::string key;
};

/// One cached key of a fast path and the gets answered from it (for
/// `sluice ctl cache` and the metrics).
struct FastpathCachedKey {
  uint32_t vip_id = 0;
  std::string key;
  uint64_t hits = 0;         ///< gets answered from it since it was installed, over all cores
  uint32_t value_bytes = 0;  ///< bytes of its value's data block
  uint64_t ttl_ms = 0;       ///< ms until it expires (the longest-lived core's copy)
};

/// `keys` (from several cores or fast paths) as one list: entries of the
/// same (vip_id, key) merged -- hits summed, the longest ttl_ms kept --,
/// most hits first (ties by VIP id, then key), at most `n`.
[[nodiscard]] inline std::vector<FastpathCachedKey> merge_hottest(
    std::vector<FastpathCachedKey> keys, size_t n) {
  std::map<std::pair<uint32_t, std::string>, FastpathCachedKey> by_key;
  for (FastpathCachedKey& k : keys) {
    auto [it, fresh] = by_key.try_emplace({k.vip_id, k.key}, k);
    if (fresh) continue;
    it->second.hits += k.hits;
    it->second.ttl_ms = std::max(it->second.ttl_ms, k.ttl_ms);
  }
  std::vector<FastpathCachedKey> out;
  out.reserve(by_key.size());
  for (auto& [id, k] : by_key) out.push_back(std::move(k));
  // Stable over the map's (vip_id, key) order: ties stay in that order.
  std::stable_sort(
      out.begin(), out.end(),
      [](const FastpathCachedKey& a, const FastpathCachedKey& b) { return a.hits > b.hits; });
  if (out.size() > n) out.resize(n);
  return out;
}

/// One VIP's cache counters of a fast path, summed over its cores.
struct FastpathCacheCounters {
  sluice_cache_stats fast_path{};  ///< hits, misses, invalidations, hot reports, bypassed
  uint64_t fills = 0;              ///< values installed (on every core: counted once)
  uint64_t stale_fills = 0;        ///< fills refused: a write came after the lease
  /// Evictions, entries and key + value bytes of the cores' stores: over
  /// every VIP (the stores keep no per-VIP totals).
  uint64_t evictions = 0;
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

/// The hot-object cache of a fast path with caches of its own per core
/// (the DPDK workers; the XDP cache is xdp::XdpCache), as the control
/// thread's filler drives it. Not thread-safe: the control thread calls it.
class FastpathCache {
 public:
  virtual ~FastpathCache() = default;
  /// The keys its cores reported hot since the last call, at most `max`.
  [[nodiscard]] virtual std::vector<FastpathHotKey> poll_hot(size_t max) = 0;
  /// A lease for filling `key` of `vip_id` now. Errors: HotCache::begin_fill's.
  [[nodiscard]] virtual Result<FillLease> begin_fill(uint32_t vip_id, std::string_view key) = 0;
  /// Hands a value fetched under `lease` to every core, which installs it
  /// if the lease still holds; returns the cores that took it.
  virtual size_t install(const FillLease& lease, std::string_view key, const mc::Value& value) = 0;
  [[nodiscard]] virtual FastpathCacheCounters counters(uint32_t vip_id) const = 0;
  /// The cached keys with most hits, at most `n`, most hits first (ties by
  /// VIP id, then key); a key cached on several cores is one key, its
  /// hits summed over them.
  [[nodiscard]] virtual std::vector<FastpathCachedKey> hottest(size_t n) const = 0;
};

/// A fast path. Not thread-safe: the control thread calls it.
class Fastpath {
 public:
  virtual ~Fastpath() = default;

  [[nodiscard]] virtual FastpathInfo info() const = 0;

  /// What the fast path held when it was opened (see FastpathState).
  [[nodiscard]] virtual const FastpathState& initial_state() const = 0;

  /// Applies a snapshot hitlessly. Errors: -EINVAL (invalid snapshot,
  /// nothing written), or what writing failed on (the fast path then holds
  /// a consistent mix; publishing again completes the change).
  [[nodiscard]] virtual Status publish(const FastpathSnapshot& snapshot) = 0;

  /// Follows the routes and neighbours toward `targets` (backends) and
  /// updates the next hop; a no-op for a fast path with a static one.
  /// Errors: the resolver's (-EHOSTUNREACH, -ETIMEDOUT, ...).
  [[nodiscard]] virtual Status refresh_next_hop(std::span<const IpAddress> targets) = 0;

  /// refresh_next_hop in two halves, for a caller whose thread must not
  /// wait (the daemon's event loop): this half does the waiting (routes,
  /// neighbour resolution) and may run on another thread while the control
  /// thread calls every other method, though never beside itself or
  /// refresh_next_hop; the function it returns applies the result and must
  /// be called on the control thread, while the fast path lives. The
  /// default waits for nothing: its function calls refresh_next_hop (right
  /// for a fast path whose refresh does not block).
  [[nodiscard]] virtual std::function<Status()> resolve_next_hop(
      std::span<const IpAddress> targets) {
    return [this, copy = std::vector<IpAddress>(targets.begin(), targets.end())] {
      return refresh_next_hop(copy);
    };
  }

  /// Counters, packets and bytes since the maps were made.
  /// Errors: the map-read errno; -EINVAL for an id out of range.
  [[nodiscard]] virtual Result<sluice_global_stats> global_stats() const = 0;
  [[nodiscard]] virtual Result<sluice_vip_stats> vip_stats(uint32_t vip_id) const = 0;
  [[nodiscard]] virtual Result<sluice_backend_stats> backend_stats(uint32_t backend_id) const = 0;

  /// The established, not idle-expired flows on each backend. May walk a
  /// whole flow table (XDP: Loader::active_flows): call it every few
  /// seconds, not per request. Errors: -EOPNOTSUPP when the fast path
  /// cannot count them (the default), or the read's errno.
  [[nodiscard]] virtual Result<ActiveFlowCounts> active_flows() const {
    return Error{-EOPNOTSUPP, info().kind + " fast path does not count active flows"};
  }

  /// Its flow tables' size; nullopt: per-CPU tables of the config's
  /// flows_per_core on every CPU (the XDP layout, the default).
  [[nodiscard]] virtual std::optional<FlowTableSize> flow_table_size() const {
    return std::nullopt;
  }

  /// Each worker's counters, in worker order; empty for a fast path
  /// without workers of its own (XDP runs on every CPU's softirq).
  [[nodiscard]] virtual std::vector<WorkerStats> worker_stats() const { return {}; }

  /// Drops the flow-table entries of flows to `vip` (any port), so their
  /// next packets are placed by the current table; returns how many. Used
  /// before an instance behind ECMP announces a VIP again (Loader::
  /// forget_flows_to says why). Errors: -EOPNOTSUPP (the default), or the
  /// fast path's.
  [[nodiscard]] virtual Result<uint64_t> forget_flows_to(const IpAddress& vip) {
    (void)vip;
    return Error{-EOPNOTSUPP, info().kind + " fast path cannot forget flows"};
  }

  /// Its per-core hot-object cache, or nullptr (none, or the XDP cache,
  /// which the filler opens through the loader).
  [[nodiscard]] virtual FastpathCache* cache() { return nullptr; }
};

}  // namespace sluice::control
