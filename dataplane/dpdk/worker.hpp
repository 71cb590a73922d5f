// SPDX-License-Identifier: BSD-2-Clause
// Worker: one lcore's load balancing of a burst of mbufs (parse, VIP,
// flow table, Maglev, encapsulation), the embeddable call of the DPDK path.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "dataplane/abi/consts.h"
#include "dataplane/abi/stats.h"
#include "dataplane/core/flow_table.hpp"
#include "dataplane/core/result.hpp"
#include "dataplane/dpdk/frag_table.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker_cache.hpp"

struct rte_mbuf;

namespace sluice::dpdk {

/// Largest burst process_burst() takes, packets (the flow table's burst).
inline constexpr uint16_t kMaxBurst = FlowTable::kMaxBurst;

/// Where each packet of a burst goes, filled by Worker::process_burst. The
/// mbufs are the caller's again: it transmits `tx` (encapsulated packets
/// toward the next hop, and ICMP too-big replies toward the client, both
/// out of the port they came in on), hands `kernel` to the exception path
/// (not for a VIP: ARP, ND, the host's own traffic) and frees `dropped`
/// (counted under a reason already).
struct Verdicts {
  rte_mbuf* tx[kMaxBurst];
  rte_mbuf* kernel[kMaxBurst];
  rte_mbuf* dropped[kMaxBurst];
  uint16_t n_tx = 0;
  uint16_t n_kernel = 0;
  uint16_t n_dropped = 0;
};

/// Set-up of one worker.
struct WorkerConfig {
  /// This worker's reader id in the SnapshotRcu, < its max_readers; one
  /// worker per id.
  uint32_t reader_id = 0;
  /// Seed of the flow hash (dataplane/abi/flow.h): the same as the XDP
  /// path's and every other instance's behind one ECMP group.
  uint32_t hash_seed = 0;
  /// This worker's own flow table: size and idle timeouts.
  FlowTableConfig flows{.capacity = 65536};
  /// Records of this worker's fragment table (FragTable: the datagrams
  /// whose first fragment found a VIP with a port; 64 bytes each, rounded
  /// up to a power of two, FragTable::kMinCapacity..kMaxCapacity). 4096:
  /// 256 KiB, that many fragmented datagrams in flight at once on one lcore.
  uint32_t frag_capacity = 4096;
  /// Source MAC of frames forwarded out of each port, by DPDK port id (a
  /// packet leaves the port it came in on, mbuf->port); ports not listed
  /// (nullopt, or beyond the end) use the snapshot's next_hop.src_mac.
  std::vector<std::optional<std::array<uint8_t, 6>>> port_macs{};
  /// The hot-object cache for VIPs with SLUICE_VIP_CACHE (nullopt: none,
  /// their requests are balanced as any other; see WorkerCache). With its
  /// hold_writes (the default) the caller of process_burst() must also
  /// release the holds a burst's writes take once it has transmitted them
  /// (WorkerCache::seal_holds, release_holds), as LcoreLoop does.
  std::optional<WorkerCacheConfig> cache{};
};

/// One lcore's fast path (DESIGN.md "Packet path"), the same decisions as
/// xdp/sluice_lb.bpf.c on the same packets:
///  - rejects of the parser are dropped under their reason; not IP, ICMP
///    that is not an error about a flow, other protocols, and anything not
///    for a VIP (exact address/port/protocol, then port 0) go to the kernel;
///  - the flow hash (5-tuple, or source address for SLUICE_VIP_HASH_SRC_ONLY)
///    is computed once and serves the flow table and Maglev;
///  - on a VIP with SLUICE_VIP_KEY_HASH, a UDP memcached request of one key
///    is placed by its key's route hash in the Maglev table and never enters
///    the flow table (dataplane/dpdk/worker_cache.hpp, key_route_hash);
///  - on a VIP with SLUICE_VIP_CACHE (and WorkerConfig::cache), writes
///    invalidate before they are forwarded and a cached get is answered in
///    place, back out of its port (WorkerCache); the answer counts as a VIP
///    packet transmitted, to no backend;
///  - the per-lcore FlowTable (probation until the second packet, evicting
///    only probation or expired entries) pins flows; a hit on a backend the
///    snapshot no longer has is a miss (Maglev, and the entry is moved);
///    a draining backend keeps its flows, but a SYN without ACK that hits
///    one (a new connection reusing a closed one's 5-tuple) is placed anew;
///  - ICMP errors about a flow follow the flow's entry but never create,
///    promote or refresh one;
///  - fragments (ports 0 in their key) find their VIP as
///    xdp/lb_lookup.h lb_lookup_frag_vip does: a first fragment by its own
///    destination port, recorded in this worker's FragTable when that port
///    is not 0; a later fragment by its first fragment's record (the VIP
///    must still have the recorded id), else by the port-0 wildcard VIP of
///    its address, else it goes to the kernel and counts frag_unmatched. A
///    port VIP's fragments get its port as key dport (sport stays 0), a
///    wildcard's keep ports 0, so every fragment of a datagram has one key
///    and meets one backend. A recorded first fragment that is dropped
///    (any reason) marks its record, in packet order, and its later
///    fragments are dropped as SLUICE_DROP_FRAG_OF_DROPPED. Fragments of
///    one datagram must reach one worker: see LcoreLoop::worker_of and
///    Ports (RSS);
///  - a packet that would exceed the MTU once encapsulated becomes an ICMP
///    fragmentation-needed / packet-too-big reply where the rules allow
///    (dataplane/core/icmp_too_big.hpp), counted as a TOO_BIG drop plus
///    icmp_too_big_sent, and is transmitted back; IPv4 without DF gets no
///    reply and is counted as a TOO_BIG_DF_CLEAR drop;
///  - the rest is encapsulated in the mbuf headroom (dataplane/core/encap.hpp;
///    IPv6-in-IPv4 as XDP writes it) with the next hop's MAC as destination
///    and the egress port's MAC (WorkerConfig::port_macs) as source.
///
/// No locks, syscalls, allocation or logging in process_burst(). Owned and
/// called by one lcore; the counters are that lcore's, in cache lines of
/// their own, read by others through the copies below (torn reads are
/// impossible for aligned 64-bit words on the supported CPUs, and a
/// counter read mid-burst is only a moment old).
class Worker {
 public:
  /// Builds the worker, its flow table and fragment table (allocates) and
  /// registers its reader id with `rcu` (online). Errors: the flow table's
  /// and the fragment table's (-EINVAL, -ENOMEM), -EINVAL for a reader id
  /// out of range.
  [[nodiscard]] static Result<std::unique_ptr<Worker>> create(const WorkerConfig& config,
                                                              SnapshotRcu& rcu);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  /// Goes offline in the SnapshotRcu.
  ~Worker();

  /// Balances pkts[0..n) (n <= kMaxBurst; any beyond are not looked at)
  /// against the current snapshot, with the TSC as clock, and fills `out`
  /// (overwritten). Every mbuf lands in exactly one list. Ends with a
  /// quiescent state: the caller must call it (or idle()) regularly, or
  /// snapshot publication waits. Returns the number of mbufs handled.
  uint16_t process_burst(rte_mbuf* const* pkts, uint16_t n, Verdicts& out) noexcept;
  /// The same with the flow table's clock given, ms (tests).
  uint16_t process_burst_at(rte_mbuf* const* pkts, uint16_t n, Verdicts& out,
                            uint32_t now_ms) noexcept;
  /// For an idle loop iteration: reports a quiescent state and frees a few
  /// idle-expired flow entries.
  void idle() noexcept;

  /// Advances this worker's walk of its flow table that counts live
  /// established flows per backend (least-connections) by kCountBuckets
  /// buckets (a 64K-entry table: 512 calls a walk), or zeroes the next
  /// part of the count buffer a finished walk left. The lcore loop calls it
  /// on its drain timer (100 us: a 1M-entry table is counted every ~0.8 s);
  /// an embedding application calls it as regularly from the lcore that
  /// calls process_burst(). Reads the table without changing it.
  void count_step() noexcept;
  /// Adds to out[i] the live established flows on backend id ids[i] that
  /// the last complete walk counted (none before the first: the table
  /// started empty; ids >= kCountedIds are not counted: 0), and returns the
  /// number of walks completed so far. Safe from any thread: a walk that
  /// completes meanwhile is detected (sequence number) and the read redone.
  /// `out` must be as long as `ids`.
  uint64_t add_active_flows(std::span<const uint32_t> ids, std::span<uint64_t> out) const;

  /// Buckets count_step() walks per call.
  static constexpr uint32_t kCountBuckets = 16;
  /// Backend ids counted: 0..kCountedIds-1 (FlowTable::count_established
  /// counts by id; the Balancer gives ids slot + 4096 k, so a slot's ids are
  /// counted until it has been reused 15 times).
  static constexpr uint32_t kCountedIds = 1u << 16;

  /// This lcore's clock for the flow table, ms (TSC based, wraps).
  [[nodiscard]] uint32_t now_ms() const noexcept;

  /// Copies of the counters (see the class comment).
  [[nodiscard]] sluice_global_stats global_stats() const noexcept;
  /// By vip_id (< SLUICE_MAX_VIPS) and by backend id (its slot's counters).
  [[nodiscard]] sluice_vip_stats vip_stats(uint32_t vip_id) const noexcept;
  [[nodiscard]] sluice_backend_stats backend_stats(uint32_t backend_id) const noexcept;
  /// The flow table (diagnostics and tests; not thread-safe: only while
  /// the worker's lcore is not in process_burst).
  [[nodiscard]] const FlowTable& flows() const noexcept { return flows_; }
  /// The fragment table (tests; the same rule as flows()).
  [[nodiscard]] const FragTable& frags() const noexcept { return frags_; }
  /// The flow table's entries; fixed at creation, so safe from any thread.
  [[nodiscard]] uint32_t flow_capacity() const noexcept { return flow_capacity_; }
  [[nodiscard]] uint32_t reader_id() const noexcept { return reader_id_; }
  /// The worker's cache, or nullptr without WorkerConfig::cache. Its
  /// entries are the worker lcore's (see WorkerCache); its counters anyone's.
  [[nodiscard]] WorkerCache* cache() noexcept { return cache_.get(); }
  [[nodiscard]] const WorkerCache* cache() const noexcept { return cache_.get(); }

 private:
  struct Packet;
  // Per-lcore counters, one allocation in cache lines of its own.
  struct alignas(64) Counters {
    sluice_global_stats global;
    alignas(64) sluice_vip_stats vips[SLUICE_MAX_VIPS];              // by vip_id
    alignas(64) sluice_backend_stats backends[SLUICE_MAX_BACKENDS];  // by backend slot
  };

  // What frag_vip() decided for a fragment.
  enum class FragStep : uint8_t { kVip, kKernel, kDropped };

  Worker(FlowTable flows, FragTable frags, SnapshotRcu& rcu, const WorkerConfig& config);
  FragStep frag_vip(const Snapshot& s, const rte_mbuf* m, Packet& p) noexcept;
  [[nodiscard]] bool frag_first_dropped(const rte_mbuf* m, const Packet& p) const noexcept;
  void select_and_forward(const Snapshot& s, rte_mbuf* m, Packet& p, Verdicts& out) noexcept;
  void forward(const Snapshot& s, rte_mbuf* m, Packet& p, const sluice_backend& b,
               Verdicts& out) noexcept;
  void too_big(const Snapshot& s, rte_mbuf* m, Packet& p, uint32_t next_mtu,
               Verdicts& out) noexcept;
  void drop(rte_mbuf* m, Packet& p, sluice_drop_reason why, Verdicts& out) noexcept;
  void mark_frag_dropped(const rte_mbuf* m, Packet& p) noexcept;
  void transmit(rte_mbuf* m, const Packet& p, Verdicts& out) noexcept;
  [[nodiscard]] bool icmp_entry_live(const FlowEntry& e, uint8_t proto,
                                     uint32_t now_ms) const noexcept;

  // Counts of the active-flow walk by backend id: buffer k & 1 takes walk
  // k (k = 1, 2, ...); walks_ = k publishes it (seqlock: readers retry
  // when it moves), and the other buffer is zeroed for the next walk.
  struct ActiveCounts {
    alignas(64) uint64_t walks = 0;  // complete walks; written by the owner only
    alignas(64) uint32_t counts[2][kCountedIds];
  };

  FlowTable flows_;
  FragTable frags_;
  SnapshotRcu& rcu_;
  uint32_t reader_id_;
  uint32_t hash_seed_;
  uint64_t tsc_per_ms_;
  uint32_t flow_capacity_;
  // Source MACs by port id (WorkerConfig::port_macs); `known` false: the
  // snapshot's.
  struct PortMac {
    std::array<uint8_t, 6> mac;
    bool known;
  };
  std::vector<PortMac> port_macs_;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<ActiveCounts> active_;
  uint32_t count_cursor_ = 0;            // next bucket of the walk in progress
  uint32_t count_zeroed_ = kCountedIds;  // ids of the walk's buffer zeroed so far
  std::unique_ptr<WorkerCache> cache_;
};

}  // namespace sluice::dpdk
