// SPDX-License-Identifier: BSD-2-Clause
// FlowTable: the per-core flow table (5-tuple -> backend id) of the packet
// path, with flood-proof admission and per-protocol idle timeouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/core/result.hpp"

namespace sluice {

namespace flow_table_detail {
/// Bit i (0..7) set iff sigs[i] == sig: the bucket's signature compare,
/// with SSE2 on x86-64, NEON on AArch64, else match_mask_portable(). For
/// tests, which check that both agree.
[[nodiscard]] uint32_t match_mask(const uint16_t sigs[8], uint16_t sig);
/// match_mask() in portable C++ (GCC/Clang generic vectors).
[[nodiscard]] uint32_t match_mask_portable(const uint16_t sigs[8], uint16_t sig);
}  // namespace flow_table_detail

/// Size and timeouts of a flow table, fixed at construction.
struct FlowTableConfig {
  /// Entries wanted, 1..FlowTable::kMaxCapacity; rounded up to a multiple
  /// of FlowTable::kSlotsPerBucket.
  uint32_t capacity = 0;
  /// Idle timeout of an established TCP flow, ms (1..2^30).
  uint32_t tcp_idle_ms = 300'000;
  /// Idle timeout of an established flow of any other protocol (UDP), ms
  /// (1..2^30).
  uint32_t udp_idle_ms = 30'000;
  /// Idle timeout of an entry on probation (one packet seen), ms; at most
  /// both idle timeouts, so a one-packet flow never outlives a real one.
  uint32_t probation_ms = 2'000;
};

/// Counters a table keeps about itself. Plain integers: the table has one
/// owner core, which is also the only reader (it copies them out).
struct FlowTableStats {
  uint64_t inserts = 0;        ///< new entries stored (free, expired or probation slot)
  uint64_t insert_failed = 0;  ///< new flows not stored: bucket full of live established entries
  uint64_t replaced = 0;       ///< insert() of a live key: its backend reassigned
  uint64_t evicted_probation = 0;  ///< live probation entries displaced by a new flow
  uint64_t evicted_expired = 0;    ///< idle-expired entries displaced by a new flow
  uint64_t expired = 0;            ///< idle-expired entries freed by lookup/insert/sweep
};

/// What insert() did.
enum class FlowInsert : uint8_t {
  kInserted,  ///< a new entry, on probation
  kReplaced,  ///< the key was live: backend set, last-seen refreshed, state kept
  kFull,      ///< not stored: every slot of the bucket holds a live established flow
};

/// What lookup_burst() learnt about a missed flow's bucket (the slot an
/// insert would take, and how), so that the insert after it need not
/// search the bucket again: pass it to insert(hint, ...). 12 bytes,
/// opaque. It stays usable while the bucket is unchanged: any change to
/// the bucket (an insert, a freed entry, a hit on a probation entry) or a
/// different clock makes insert() fall back to a full search, with the
/// same result either way. Meant for the inserts of the same burst.
class FlowInsertHint {
 private:
  friend class FlowTable;
  uint32_t now_ms_ = 0;   ///< the lookup's clock, ms
  uint16_t version_ = 0;  ///< the bucket's change count when the hint was made
  uint16_t sig_ = 0;      ///< the flow's signature (low 16 bits of its hash)
  uint8_t slot_ = 0;      ///< the slot an insert takes
  uint8_t take_ = 0;      ///< FlowTable::Take: how it takes it; 0 (kStale): no hint
};

/// One entry as find() reports it.
struct FlowEntry {
  uint32_t backend_id;  ///< sluice_backend.id
  uint32_t last_seen;   ///< time of the last packet, ms (the caller's clock)
  uint8_t state;        ///< SLUICE_FLOW_PROBATION or SLUICE_FLOW_ESTABLISHED
};

/// The per-core flow table: sluice_flow_key (IPv4 or IPv6 5-tuple) -> the
/// backend id the flow is pinned to (DESIGN.md "Packet path", step 3).
///
/// Not thread-safe, by design: one table per fast-path core, used only by
/// that core; no locks, no atomics. Every byte is allocated (and touched)
/// by create(); no member function allocates, throws or blocks afterwards.
///
/// Layout: buckets of 8 slots, 448 bytes each (56 bytes per entry all-in),
/// cache-line aligned and contiguous: one 64-byte header (8 16-bit
/// signatures, 8 expiry deadlines, used/probation/TCP bit masks, a change
/// count for insert hints) followed by the 8 entries (40-byte key + 4-byte
/// backend id + 4 spare). A lookup reads the header line, compares the 8
/// signatures at once (SSE2 / NEON, else portable code), then reads only
/// the key of a matching slot, which lies in the same 448-byte block (same
/// DRAM page). Slots 0, 3, 4 and 7 lie in one cache line each, the others
/// straddle two; new entries take those four first, so up to half load
/// most hits read two lines, not three.
///
/// Hash: the caller passes the flow hash (sluice_flow_hash, computed once per
/// packet and also used for Maglev's hash % M); the table never hashes. The
/// bucket is the hash's high bits by multiply-shift, floor(hash * buckets /
/// 2^32) (Lemire, "A fast alternative to the modulo reduction", 2016), so the
/// bucket count need not be a power of two; the signature is the low 16 bits.
/// Above 2^16 buckets (512K entries) the two share bits and the signature
/// has fewer independent bits (15 at 1M entries): a false match costs one
/// extra key compare, never a wrong answer.
///
/// Admission (flood-proof): a new flow's entry is on probation until a
/// lookup hits it (its second packet). A new entry may displace only an
/// idle-expired entry (the longest expired first) or else a probation entry
/// (the stalest first), never a live established one: a flood of one-packet
/// flows cannot push out an established flow. While such a flood lasts, a
/// legitimate new flow's probation entry may itself be displaced before its
/// second packet; that flow is still forwarded by Maglev, consistently.
///
/// Sizing: a flow's bucket is fixed by its hash, so new flows are refused
/// once their bucket holds 8 live established flows, well before the table
/// is full. Measured with 1M slots: with 25% of the slots established, 0.1%
/// of new flows are refused; 50%: 5%; 70%: 24%; 80%: 41%. Give each core
/// two to four times the concurrent flows it should pin.
///
/// Time: `now` is the caller's millisecond clock (TSC in DPDK, bpf_ktime in
/// XDP) as a wrapping uint32_t. Each entry keeps a deadline (last packet +
/// the timeout of its state and protocol), compared with `now` by signed
/// 32-bit difference, so the clock may wrap, and a small step back only
/// makes entries look younger. An entry left untouched for 2^31 ms (24.8
/// days) past its deadline would look live again: call sweep() often enough
/// to visit every bucket within that time (any realistic rate does).
class FlowTable {
 public:
  /// Slots per bucket (the entries one header line covers).
  static constexpr uint32_t kSlotsPerBucket = 8;
  /// Largest capacity, entries (15 GiB of table).
  static constexpr uint32_t kMaxCapacity = 1u << 28;
  /// Largest burst of lookup_burst(): the width of its hit mask.
  static constexpr uint32_t kMaxBurst = 64;
  /// Largest timeout, ms (12.4 days): deadlines are compared by signed
  /// 32-bit differences, with room to spare for the eviction rank.
  static constexpr uint32_t kMaxTimeoutMs = 1u << 30;

  /// Builds a table, allocating and zeroing its memory (one aligned
  /// allocation; 2 MiB aligned and advised for transparent huge pages when
  /// it is that large). Errors: -EINVAL for a capacity or timeout out of
  /// range (message names it), -ENOMEM if the allocation fails.
  static Result<FlowTable> create(const FlowTableConfig& config);

  /// Builds a table in memory the caller owns (e.g. DPDK hugepage memory on
  /// the core's NUMA node), which must outlive the table and is zeroed
  /// here. Errors: -EINVAL as create(), or if `memory` is not 64-byte
  /// aligned or smaller than bytes_needed(config.capacity).
  static Result<FlowTable> create_in(const FlowTableConfig& config, std::span<std::byte> memory);

  /// Bytes of memory a table of `capacity` entries uses; 0 if the capacity
  /// is out of range.
  [[nodiscard]] static size_t bytes_needed(uint32_t capacity);

  FlowTable(FlowTable&& other) noexcept;
  FlowTable& operator=(FlowTable&& other) noexcept;
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;
  /// A moved-from table may only be destroyed or assigned to.
  ~FlowTable();

  /// Looks a flow up (`now_ms`: the caller's clock, ms). On a hit returns
  /// its backend id, refreshes its last-seen time and, if `promote`, moves a
  /// probation entry to established (pass false for a packet that does not
  /// prove the flow, e.g. a retransmitted TCP SYN). An idle-expired entry
  /// is a miss and is freed. Returns SLUICE_BACKEND_NONE on a miss.
  /// A hit on a backend that has been removed is the caller's to detect
  /// (sluice_backend slot check); it then calls insert() with the flow's new
  /// backend, which replaces it in place (same bucket, already in cache).
  uint32_t lookup(const sluice_flow_key& key, uint32_t hash, uint32_t now_ms, bool promote = true);

  /// lookup() for n packets at once (0..kMaxBurst; any beyond are not looked
  /// up), with the same answers and effects as n lookup() calls in order.
  /// Prefetches every bucket first, then the key of each bucket's first
  /// slot whose signature matches, then compares keys, so the memory
  /// accesses of the burst overlap. For a
  /// miss it also prefetches (for writing) the slot an insert would take, so
  /// the caller's insert() after Maglev finds it in cache.
  /// backend_out[i] gets the backend id or SLUICE_BACKEND_NONE; bit i of
  /// `promote_mask` is lookup()'s `promote` for packet i. Returns the hit
  /// mask (bit i set: packet i hit).
  uint64_t lookup_burst(const sluice_flow_key* const keys[], const uint32_t hashes[], uint32_t n,
                        uint32_t now_ms, uint32_t backend_out[], uint64_t promote_mask = ~0ull);

  /// lookup_burst() that also fills hints_out[i] (for packets 0..n-1; a
  /// hit's hint is stale), for insert(hints_out[i], ...) after a miss and
  /// Maglev: the insert then takes the slot found here without searching
  /// again, if the bucket has not changed since.
  uint64_t lookup_burst(const sluice_flow_key* const keys[], const uint32_t hashes[], uint32_t n,
                        uint32_t now_ms, uint32_t backend_out[], uint64_t promote_mask,
                        FlowInsertHint hints_out[]);

  /// Pins a flow to `backend_id`. A new key gets an entry on probation in a
  /// free slot, else in place of the longest-expired entry, else of the
  /// stalest probation entry (ties within 8 ms: the lowest slot); if the
  /// bucket holds only live established entries, nothing is stored and
  /// kFull is returned (count it as flow_insert_failed; forward by Maglev
  /// anyway). A live key keeps its entry and state and gets the new backend
  /// and a fresh last-seen time (the "backend was removed" case): kReplaced.
  FlowInsert insert(const sluice_flow_key& key, uint32_t hash, uint32_t backend_id,
                    uint32_t now_ms);

  /// insert() of a flow that lookup_burst() missed, given the hint it made
  /// for that flow (same key and hash); same result and effects as
  /// insert(key, hash, backend_id, now_ms), which it falls back to when
  /// the hint is stale.
  FlowInsert insert(const FlowInsertHint& hint, const sluice_flow_key& key, uint32_t hash,
                    uint32_t backend_id, uint32_t now_ms);

  /// Removes a flow's entry. Returns whether there was one.
  bool erase(const sluice_flow_key& key, uint32_t hash);

  /// Frees the idle-expired entries of the next `max_buckets` buckets (a
  /// cursor walks the table round-robin), for a fast path's idle moments.
  /// Returns the number of entries freed.
  uint32_t sweep(uint32_t now_ms, uint32_t max_buckets);

  /// Adds one to counts[backend] for every live (not idle-expired at
  /// now_ms, ms: the table's clock is its low 32 bits) established entry in
  /// buckets [first_bucket, first_bucket + bucket_count) (clamped to
  /// bucket_count()); ids >= counts.size() are ignored. Returns the bucket
  /// after the last one visited, 0 when the walk reached the table's end.
  /// For the control plane's active-flow counts, a slice at a time.
  uint32_t count_established(uint32_t first_bucket, uint32_t bucket_count, uint64_t now_ms,
                             std::span<uint32_t> counts) const noexcept;

  /// The entry of a flow as stored, without touching it (expired entries
  /// included: compare last_seen yourself); for diagnostics and tests.
  [[nodiscard]] std::optional<FlowEntry> find(const sluice_flow_key& key, uint32_t hash) const;

  /// The bucket a hash selects, 0..capacity()/kSlotsPerBucket - 1.
  [[nodiscard]] uint32_t bucket_index(uint32_t hash) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(hash) * bucket_count_) >> 32);
  }
  /// Buckets of the table (capacity() / kSlotsPerBucket), the range of
  /// count_established().
  [[nodiscard]] uint32_t bucket_count() const noexcept { return bucket_count_; }
  /// Entries the table holds at most.
  [[nodiscard]] uint32_t capacity() const { return bucket_count_ * kSlotsPerBucket; }
  /// Entries stored, including idle-expired ones not reclaimed yet.
  [[nodiscard]] uint32_t size() const { return size_; }
  [[nodiscard]] const FlowTableStats& stats() const { return stats_; }
  [[nodiscard]] const FlowTableConfig& config() const { return config_; }

 private:
  struct Bucket;
  /// How an insert takes its slot; kNone: it cannot (bucket full of live
  /// established entries); kStale: a hint that says nothing.
  enum class Take : uint8_t { kStale, kFree, kExpired, kProbation, kNone };
  struct Target {
    uint32_t slot;
    Take take;
  };

  FlowTable(const FlowTableConfig& config, Bucket* buckets, uint32_t bucket_count, bool owned);
  static Result<FlowTableConfig> validate(const FlowTableConfig& config);

  [[nodiscard]] uint32_t timeout(const Bucket& b, uint32_t slot) const;
  [[nodiscard]] bool expired(const Bucket& b, uint32_t slot, uint32_t now_ms) const;
  [[nodiscard]] Target choose_slot(const Bucket& b, uint32_t now_ms) const;
  void free_slot(Bucket& b, uint32_t slot);
  void place(Bucket& b, uint32_t slot, const sluice_flow_key& key, uint16_t sig,
             uint32_t backend_id, uint32_t now_ms);
  FlowInsert insert_slow(Bucket& b, uint32_t matches, const sluice_flow_key& key, uint16_t sig,
                         uint32_t backend_id, uint32_t now_ms);
  bool hit(Bucket& b, uint32_t slot, uint32_t now_ms, bool promote);
  FlowInsert insert_by_hint_slow(const FlowInsertHint& hint, const sluice_flow_key& key,
                                 uint32_t hash, uint32_t backend_id, uint32_t now_ms);
  FlowInsert take_slot(Bucket& b, Target t, const sluice_flow_key& key, uint16_t sig,
                       uint32_t backend_id, uint32_t now_ms);
  template <bool kHints>
  uint64_t lookup_burst_impl(const sluice_flow_key* const keys[], const uint32_t hashes[],
                             uint32_t n, uint32_t now_ms, uint32_t backend_out[],
                             uint64_t promote_mask, FlowInsertHint hints_out[]);

  FlowTableConfig config_{};
  /// Timeout of an entry by state: index (on probation) * 2 + (TCP), ms.
  uint32_t timeouts_[4] = {};
  Bucket* buckets_ = nullptr;
  uint32_t bucket_count_ = 0;
  uint32_t size_ = 0;
  uint32_t sweep_cursor_ = 0;
  bool owned_ = false;
  FlowTableStats stats_{};
};

}  // namespace sluice
