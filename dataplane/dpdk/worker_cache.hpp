// SPDX-License-Identifier: BSD-2-Clause
// The memcached part of the DPDK worker's path (DESIGN.md "Hot-object
// cache"): key-affinity routing, and one worker's hot-object cache --
// hits answered in the mbuf, writes invalidating before they are forwarded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "dataplane/abi/cache.h"
#include "dataplane/core/count_min_sketch.hpp"
#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/memcached.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "dataplane/core/result.hpp"
#include "dataplane/dpdk/snapshot.hpp"

struct rte_mbuf;
struct rte_ring;

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

/// A cacheable get as WorkerCache::stage_get read it from one packet: what
/// the later stages of its burst need. Plain data (a burst's array of them
/// is not zeroed); `key` points into the packet's mbuf, valid while the
/// mbuf is unchanged.
struct CacheGet {
  const char* key;    ///< the key's first byte, in the mbuf's data
  uint16_t key_len;   ///< bytes of key, 1..SLUICE_CACHE_KEY_MAX
  bool gets;          ///< the command was `gets`: the response carries the cas unique
  uint32_t key_hash;  ///< mc::key_hash of the key (FNV-1a, dataplane/abi/cache.h)
  uint32_t vip_id;    ///< the UDP VIP's id, < SLUICE_MAX_VIPS
  [[nodiscard]] std::string_view key_view() const noexcept { return {key, key_len}; }
};

/// Set-up of one worker's cache.
struct WorkerCacheConfig {
  /// Bounds of this worker's entries (each worker holds its own copy of a
  /// hot entry: no sharing, no locks on a hit).
  HotCacheConfig store{};
  /// The versions every worker's cache of the process checks and bumps;
  /// required, outlives the workers.
  CacheVersions* versions = nullptr;
  /// Misses of a key within one period (the worker's count-min sketch)
  /// that make it hot: reported to the control thread once per period.
  uint32_t hot_threshold = 32;
  /// The sketch's period, ms (> 0): the worker zeroes it this often.
  uint32_t period_ms = 1000;
  /// Slots of the hot-key ring and of the install ring, a power of two:
  /// reports or installs beyond it wait or are dropped (a later report).
  uint32_t ring_slots = 256;
  /// Whether each write follow_writes() sees holds its key (CacheVersions) until
  /// the caller says the packet has left (seal_holds, release_holds): no
  /// fill of the key begins before then. The lcore loop does; an embedding
  /// application that transmits in its own loop must too, or turn this off
  /// and accept that a fill can race a write still in its TX buffer.
  bool hold_writes = true;
};

/// Counters of one worker's holds, readable from any thread.
struct WorkerHoldStats {
  uint64_t taken = 0;      ///< holds taken (a key's slot, or a VIP)
  uint64_t released = 0;   ///< of those, released
  uint64_t overflows = 0;  ///< times every key was held: more writes in flight than kMaxHolds
};

/// Per-VIP counters of one worker's cache (the fast path's, and the
/// store's), readable from any thread.
struct WorkerCacheCounters {
  sluice_cache_stats fast_path{};  ///< hits, misses, invalidations, hot reports, bypassed
  uint64_t fills = 0;              ///< the VIP's values installed
  uint64_t stale_fills = 0;        ///< the VIP's installs refused: a write after the lease
  HotCacheStats store{};           ///< the store's own counters, over all VIPs
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
///    back out of the port it came in on, and counted against the entry
///    (HotCache::count_answer: the hottest keys, HotCache::key_hits);
///  - anything else is forwarded (misses, multi-key gets, IPv4 options,
///    an mbuf without room for the response); a miss counts in the
///    worker's count-min sketch, and a key reaching hot_threshold misses
///    in a period goes on the hot ring (poll_hot, the control thread);
///  - values the control thread fetched come back through the install ring
///    (post_install), applied by the worker at the top of each burst or
///    idle turn (apply_installs) under the lease taken before the fetch:
///    HotCache::install checks the shared versions again, so a write any
///    worker saw since refuses the fill;
///  - with hold_writes, each write also holds its key (an unsure request
///    its VIP) in the shared versions until the write has left this lcore,
///    so that no fill begins -- and reads the backend's value from before
///    the write -- while the write still waits in a TX buffer or an
///    outbox: the caller flushes after a burst with holds_unsealed(),
///    seals them with a ticket of its choosing (seal_holds), and releases
///    them once everything up to that ticket has been handed to the NIC
///    or dropped (release_holds). HotCache::begin_fill refuses while a
///    hold covers the key and for write_settle_ms after its release.
/// Owned and called by one lcore, except: poll_hot and post_install (one
/// control thread: each ring has one producer and one consumer),
/// begin_fill and key_hits through store() (they read the shared versions
/// and the per-slot seqlocks only) and the
/// counters.
class WorkerCache {
 public:
  /// Allocates the entries. Errors: HotCache::create's; -EINVAL without
  /// versions.
  [[nodiscard]] static Result<std::unique_ptr<WorkerCache>> create(const WorkerCacheConfig& config);
  WorkerCache(const WorkerCache&) = delete;
  WorkerCache& operator=(const WorkerCache&) = delete;
  ~WorkerCache();

  /// What answer() did with a get.
  enum class Step : uint8_t {
    kForward,   ///< unchanged: balance it as usual
    kAnswered,  ///< the mbuf is now the response: transmit it
  };

  // A burst's packets to a VIP with SLUICE_VIP_CACHE go through the cache
  // in three stages, as FlowTable::lookup_burst takes a burst's flows, so
  // that the memory loads of one get overlap those of the others: every
  // packet's stage_get (parse, key hash, the index position and version
  // slot asked for); then prefetch_entry of each get staged (the entry the
  // index names asked for); then, in packet order, answer() of each get
  // staged and follow_writes() of every other packet. A write thus still
  // invalidates its key before a later get of that key in the same burst
  // is answered, and after an earlier one.

  /// Stage 1 of packet `m` (parsed as `pr`, to VIP `vip`): when it is a
  /// UDP datagram holding one cacheable get (mc::cacheable_udp_get: one
  /// datagram, one get/gets of one key) to a VIP id < SLUICE_MAX_VIPS --
  /// not an ICMP error, a fragment, or IPv6 with extension headers --
  /// fills `get` (its key hashed once), asks the CPU for its index
  /// position and version slot (HotCache::prefetch_index) and returns
  /// true. Otherwise returns false, `get` undefined: the packet goes to
  /// follow_writes(). Reads the packet only; counts nothing.
  [[nodiscard]] bool stage_get(const rte_mbuf* m, const ParseResult& pr, const sluice_vip_meta& vip,
                               CacheGet& get) noexcept;
  /// Stage 2 of a get stage_get took: asks the CPU for the entry its index
  /// position names (HotCache::prefetch_entry). A hint: changes nothing.
  void prefetch_entry(const CacheGet& get) const noexcept {
    store_.prefetch_entry(get.vip_id, get.key_hash);
  }
  /// Stage 3 of a get stage_get took from packet `m` (parsed as `pr`), at
  /// `now_ms` (the worker's wrapping ms clock): a live entry answers it in
  /// the mbuf (kAnswered: transmit it); else kForward -- a miss (counted,
  /// and in the count-min sketch), an IPv4 header with options or an mbuf
  /// without room for the response (counted bypassed). A forwarded get is
  /// placed by get.key_hash (mc::route_hash), not parsed again. No
  /// allocation, locks or syscalls.
  [[nodiscard]] Step answer(const CacheGet& get, rte_mbuf* m, const ParseResult& pr,
                            uint32_t now_ms) noexcept;
  /// The cache's part of a packet stage_get did not take (`m`, parsed as
  /// `pr`, to a VIP whose meta is `vip`, with SLUICE_VIP_CACHE, in
  /// snapshot `s`, at `now_ms`): every write it holds invalidates its key
  /// (and with hold_writes holds it), what cannot be followed invalidates
  /// the VIP, a read the cache cannot answer counts as bypassed. The
  /// packet is then forwarded unchanged. No allocation, locks or syscalls.
  void follow_writes(const Snapshot& s, const rte_mbuf* m, const ParseResult& pr,
                     const sluice_vip_meta& vip, uint32_t now_ms) noexcept;

  /// The entries (fills: begin_fill from any thread, install on the owner
  /// lcore only).
  [[nodiscard]] HotCache& store() noexcept { return store_; }
  /// The cache clock, ms: the worker's ms clock widened to 64 bits (it
  /// follows the last now_ms handed to answer(), follow_writes() or clock()). Lease
  /// (begin_fill) and install times are on this clock.
  [[nodiscard]] uint64_t clock(uint32_t now_ms) noexcept;
  /// The clock as the worker last advanced it; any thread.
  [[nodiscard]] uint64_t last_clock() const noexcept;
  /// A copy of this worker's counters of VIP vip_id (< SLUICE_MAX_VIPS).
  [[nodiscard]] sluice_cache_stats stats(uint32_t vip_id) const noexcept;
  /// The fast path's counters of vip_id and the store's as of the last
  /// apply_installs(); any thread.
  [[nodiscard]] WorkerCacheCounters counters(uint32_t vip_id) const noexcept;

  /// Control thread: moves up to out.size() hot keys reported since the
  /// last call into `out`; returns how many.
  size_t poll_hot(std::span<sluice_cache_hot> out) noexcept;
  /// Control thread: hands the worker a value fetched under `lease` (from
  /// this worker's store().begin_fill). Returns false when the install
  /// ring is full or the key or value do not fit an entry (not cached).
  [[nodiscard]] bool post_install(const FillLease& lease, std::string_view key,
                                  const mc::Value& value) noexcept;
  /// Worker lcore: installs what post_install handed over (at most a
  /// ring's worth), restarts the sketch when its period is over, and
  /// publishes the store's counters. Returns installs applied.
  uint32_t apply_installs(uint32_t now_ms) noexcept;

  /// Holds a worker tracks one by one; beyond them it holds every key
  /// until the ones in flight are released.
  static constexpr uint32_t kMaxHolds = 1024;
  /// Worker lcore: whether follow_writes() took holds since the last seal_holds()
  /// (the burst held a write: transmit it now, so the hold is short).
  [[nodiscard]] bool holds_unsealed() const noexcept { return unsealed_ != 0 || all_unsealed_; }
  /// Worker lcore: whether any hold is not yet released.
  [[nodiscard]] bool holding() const noexcept { return head_ != tail_ || all_held_; }
  /// Worker lcore: the holds taken since the last call end once
  /// release_holds() is given `ticket` or more. Tickets must not decrease
  /// from call to call (the loop: packets it ever put in its outbox).
  void seal_holds(uint64_t ticket) noexcept;
  /// Worker lcore: releases, at `now_ms` (the worker's ms clock), the
  /// sealed holds whose ticket is <= `done` (everything up to `done` has
  /// left). Returns how many were released.
  uint32_t release_holds(uint64_t done, uint32_t now_ms) noexcept;
  /// The hold counters; any thread.
  [[nodiscard]] WorkerHoldStats hold_stats() const noexcept;

 private:
  // One fetched value on its way to the worker (an element of the
  // install ring, copied in and out: no allocation on either side).
  struct Install {
    FillLease lease;
    uint64_t cas;
    uint32_t flags;
    uint16_t key_len;
    uint16_t data_len;
    char key[SLUICE_CACHE_KEY_ROOM];
    uint8_t data[SLUICE_CACHE_VALUE_MAX];
  };

  WorkerCache(HotCache store, const WorkerCacheConfig& config);
  // Bumps the VIP's epoch: nothing filled before now is served.
  void unsure(uint32_t vip_id) noexcept;
  // Counts a miss of `key` (whose mc::key_hash is `key_hash`) in the
  // sketch; reports it at the threshold.
  void count_miss(uint32_t vip_id, std::string_view key, uint32_t key_hash) noexcept;
  // Holds `what` (a version slot, or kVipHold | vip_id) before its bump;
  // every key when kMaxHolds are in flight already.
  void hold(uint32_t what) noexcept;

  // A pending hold: a version slot, or kVipHold | vip_id; released once
  // the loop's done ticket reaches `ticket` (kUnsealed until sealed).
  struct Hold {
    uint32_t what;
    uint64_t ticket;
  };
  static constexpr uint32_t kVipHold = 1u << 31;
  static constexpr uint64_t kUnsealed = UINT64_MAX;

  HotCache store_;
  uint32_t hot_threshold_;
  uint32_t period_ms_;
  uint64_t clock_ms_ = 0;
  bool clock_started_ = false;
  uint64_t period_start_ms_ = 0;
  CountMinSketch sketch_;
  rte_ring* hot_ = nullptr;      // sluice_cache_hot elements: worker -> control
  rte_ring* install_ = nullptr;  // Install elements: control -> worker
  struct Fills {
    uint64_t installed;
    uint64_t stale;
  };
  std::unique_ptr<sluice_cache_stats[]> stats_;  // by vip_id
  std::unique_ptr<Fills[]> fills_;               // by vip_id
  HotCacheStats published_{};                    // store_.stats(), for other threads
  // Holds: a FIFO ring (tickets never decrease along it), head_ the
  // oldest; indices run free, masked by kMaxHolds - 1.
  CacheVersions* versions_;
  bool hold_writes_;
  std::unique_ptr<Hold[]> holds_;
  uint32_t head_ = 0;
  uint32_t tail_ = 0;
  uint32_t unsealed_ = 0;         // holds at the tail end not yet sealed
  bool all_held_ = false;         // this worker holds every key (CacheVersions::hold_all)
  bool all_unsealed_ = false;     // ... for a write since the last seal
  uint64_t all_ticket_ = 0;       // ... released when done reaches it
  WorkerHoldStats hold_stats_{};  // written by the owner, read with atomic loads
};

}  // namespace sluice::dpdk
