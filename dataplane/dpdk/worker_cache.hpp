// SPDX-License-Identifier: BSD-2-Clause
// The memcached part of the DPDK worker's path (DESIGN.md "Hot-object
// cache"): key-affinity routing, and one worker's hot-object cache --
// hits answered in the mbuf, writes invalidating before they are forwarded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "dataplane/abi/cache.h"
#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "dataplane/core/result.hpp"
#include "dataplane/dpdk/snapshot.hpp"

struct rte_mbuf;

namespace sluice::dpdk {

/// The hash a request to a VIP with SLUICE_VIP_KEY_HASH is placed by in
/// the VIP's Maglev table (table[hash % M]), instead of its flow hash:
/// mc::route_hash(key, seed) of the one key of a UDP get/gets or write
/// that fills the datagram (mc::routing_key; the key hash and Maglev pick
/// of xdp/cache.bpf.h's lb_select_by_key). nullopt -- placed by the flow
/// hash as usual -- for anything else: TCP (a connection is one stream of
/// many keys), ICMP errors, fragments, IPv6 with extension headers (the
/// XDP path does not follow them either), a payload that is not one such
/// request. `frame` holds the packet `pr` was parsed from; `seed` is the
/// flow hash's (the config's hash_seed). Never allocates.
[[nodiscard]] std::optional<uint32_t> key_route_hash(const uint8_t* frame, const ParseResult& pr,
                                                     uint32_t seed) noexcept;

/// Set-up of one worker's cache.
struct WorkerCacheConfig {
  /// Bounds of this worker's entries (each worker holds its own copy of a
  /// hot entry: no sharing, no locks on a hit).
  HotCacheConfig store{};
  /// The versions every worker's cache of the process checks and bumps;
  /// required, outlives the workers.
  CacheVersions* versions = nullptr;
};

/// One worker's hot-object cache, the DPDK twin of xdp/cache.bpf.h: on a
/// VIP with SLUICE_VIP_CACHE (keyed by its vip_id; a TCP VIP with the flag
/// is the twin of the UDP VIP on its address and port, whose keys its
/// writes invalidate):
///  - every write a UDP datagram or TCP segment holds (mc::scan_writes)
///    bumps its key's shared version before the packet is forwarded; what
///    cannot be followed -- a segment that starts mid-request, the binary
///    protocol, a fragment, an IPv6 extension header, flush_all -- bumps
///    the VIP's epoch;
///  - a single-datagram get/gets of one key (mc::cacheable_udp_get) whose
///    entry is live under the shared versions is answered in the mbuf:
///    frame header echoed, "VALUE ... END" byte for byte, MACs, addresses
///    and ports swapped, TTL / hop limit 64, IPv4 and UDP checksums, to go
///    back out of the port it came in on;
///  - anything else is forwarded (misses, multi-key gets, IPv4 options,
///    an mbuf without room for the response).
/// Owned and called by one lcore; counters readable from any thread.
class WorkerCache {
 public:
  /// Allocates the entries. Errors: HotCache::create's; -EINVAL without
  /// versions.
  [[nodiscard]] static Result<std::unique_ptr<WorkerCache>> create(
      const WorkerCacheConfig& config);
  WorkerCache(const WorkerCache&) = delete;
  WorkerCache& operator=(const WorkerCache&) = delete;
  ~WorkerCache();

  /// What handle() did with a packet.
  enum class Step : uint8_t {
    kForward,   ///< unchanged: balance it as usual
    kAnswered,  ///< the mbuf is now the response: transmit it
  };

  /// The cache's part of packet `m` (parsed as `pr`, to a VIP whose meta is
  /// `vip`, with SLUICE_VIP_CACHE) in snapshot `s`, at `now_ms` (the
  /// worker's wrapping ms clock). No allocation, locks or syscalls.
  [[nodiscard]] Step handle(const Snapshot& s, rte_mbuf* m, const ParseResult& pr,
                            const sluice_vip_meta& vip, uint32_t now_ms) noexcept;

  /// The entries (fills: begin_fill from any thread, install on the owner
  /// lcore only).
  [[nodiscard]] HotCache& store() noexcept { return store_; }
  /// The cache clock, ms: the worker's ms clock widened to 64 bits (it
  /// follows the last now_ms handed to handle() or clock()).
  [[nodiscard]] uint64_t clock(uint32_t now_ms) noexcept;
  /// A copy of this worker's counters of VIP vip_id (< SLUICE_MAX_VIPS).
  [[nodiscard]] sluice_cache_stats stats(uint32_t vip_id) const noexcept;

 private:
  explicit WorkerCache(HotCache store);
  // Bumps the VIP's epoch: nothing filled before now is served.
  void unsure(uint32_t vip_id) noexcept;

  HotCache store_;
  uint64_t clock_ms_ = 0;
  std::unique_ptr<sluice_cache_stats[]> stats_;  // by vip_id
};

}  // namespace sluice::dpdk
