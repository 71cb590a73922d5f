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
/// Bit i (0..7) set iff sigs[i] == sig: an IPv6 bucket's signature
/// compare, with SSE2 on x86-64, NEON on AArch64, else
/// match_mask_portable(). For tests, which check that both agree.
[[nodiscard]] uint32_t match_mask(const uint16_t sigs[8], uint16_t sig);
/// match_mask() in portable C++ (GCC/Clang generic vectors).
[[nodiscard]] uint32_t match_mask_portable(const uint16_t sigs[8], uint16_t sig);
/// Bit i (0..2) set iff words[i] == src, words[3 + i] == dst and
/// words[6 + i] == ports: an IPv4 line's key compare (`words` as the line
/// stores them: 3 sources, 3 destinations, 3 port pairs, then one more word
/// that is read and ignored), with SSE2 on x86-64, NEON on AArch64, else
/// line_mask_portable(). For tests, which check that both agree.
[[nodiscard]] uint32_t line_mask(const uint32_t words[10], uint32_t src, uint32_t dst,
                                 uint32_t ports);
/// line_mask() in portable C++ (GCC/Clang generic vectors).
[[nodiscard]] uint32_t line_mask_portable(const uint32_t words[10], uint32_t src, uint32_t dst,
                                          uint32_t ports);
}  // namespace flow_table_detail

/// Size and timeouts of a flow table, fixed at construction.
struct FlowTableConfig {
  /// IPv4 entries wanted, 1..FlowTable::kMaxCapacity; rounded up to a
  /// multiple of 2 * FlowTable::kSlotsPerBucket (a pair of lines). The
  /// table also holds FlowTable::ipv6_capacity() = half as many IPv6
  /// entries, in a region of their own.
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
  uint64_t insert_failed = 0;  ///< new flows not stored: every slot they may take is live established
  uint64_t replaced = 0;       ///< insert() of a live key: its backend reassigned
  uint64_t evicted_probation = 0;  ///< live probation entries displaced by a new flow
  uint64_t evicted_expired = 0;    ///< idle-expired entries displaced by a new flow
  uint64_t expired = 0;            ///< idle-expired entries freed by lookup/insert/sweep
};

/// What insert() did.
enum class FlowInsert : uint8_t {
  kInserted,  ///< a new entry, on probation
  kReplaced,  ///< the key was live: backend set, last-seen refreshed, state kept
  kFull,      ///< not stored: every slot it may take holds a live established flow
};

/// What lookup_burst() learnt about a missed flow's lines (the slot an
/// insert would take, and how), so that the insert after it need not
/// search again: pass it to insert(hint, ...). 20 bytes, opaque. It stays
/// usable while the lines it looked at are unchanged: any change to them
/// (an insert, a freed entry, a hit on a probation entry) or a different
/// clock makes insert() fall back to a full search, with the same result
/// either way. Meant for the inserts of the same burst.
class FlowInsertHint {
 private:
  friend class FlowTable;
  uint32_t now_ms_ = 0;      ///< the lookup's clock, ms
  uint32_t hash_ = 0;        ///< the flow's hash
  uint32_t home_meta_ = 0;   ///< the flow's line's state word when the hint was made
  uint32_t buddy_meta_ = 0;  ///< its buddy line's state word then (if `pair_`)
  uint8_t slot_ = 0;         ///< the slot an insert takes: 0..2 home line, 3..5 buddy
  uint8_t take_ = 0;         ///< FlowTable::Take: how it takes it; 0 (kStale): no hint
  uint8_t pair_ = 0;         ///< 1: the choice looked at the buddy line too
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
/// Layout: two regions of one cache-line-aligned block.
/// - IPv4 TCP/UDP flows (every IPv4 key the parser makes), capacity()
///   entries: 64-byte lines of 3 entries. A line holds its 3 keys
///   (source, destination, port pair: 12 bytes; TCP or UDP as a bit), 3
///   backend ids, 3 expiry deadlines and a 4-byte state word (used,
///   probation, TCP bits, a spill count, a change count): 21.3 bytes per
///   entry all-in, and a lookup compares the line's 3 keys at once
///   (SSE2 / NEON, else portable code). A hit reads one line.
/// - IPv6 flows (and any key that is not IPv4 TCP/UDP), ipv6_capacity() =
///   capacity() / 2 entries: buckets of 8 slots, 448 bytes each, one
///   64-byte header (8 16-bit signatures, 8 deadlines, state bit masks)
///   then 8 40-byte keys with their backend ids; a lookup reads the
///   header, compares the 8 signatures at once, then reads only the key of
///   a matching slot.
/// 49.3 bytes of table per IPv4 entry in all (21.3 in the IPv4 region a
/// lookup of an IPv4 flow touches).
///
/// IPv4 keys are compared on family, addresses, ports and protocol; the
/// address bytes the ABI requires to be zero for IPv4 (sluice_flow_key) are
/// not looked at.
///
/// Hash: the caller passes the flow hash (sluice_flow_hash, computed once per
/// packet and also used for Maglev's hash % M); the table never hashes. A
/// flow's line (or IPv6 bucket) is the hash's high bits by multiply-shift,
/// floor(hash * lines / 2^32) (Lemire, "A fast alternative to the modulo
/// reduction", 2016), so the count need not be a power of two; an IPv6
/// slot's signature is the hash's low 16 bits.
///
/// Overflow (IPv4): lines come in pairs (the two halves of an aligned
/// 128-byte block, same DRAM page). A new flow takes a free slot of its own
/// line, else of the other line of its pair (its buddy); each line counts
/// exactly its flows living in the buddy (0..3), and a lookup that misses
/// in its line reads the buddy only when that count is non-zero. So a hit
/// reads one line unless its flow overflowed (5% of flows at half load).
///
/// Admission (flood-proof): a new flow's entry is on probation until a
/// lookup hits it (its second packet). A new entry may displace only an
/// idle-expired entry (the longest expired first) or else a probation entry
/// (the stalest first; among the 6 slots of the flow's pair, and a free
/// slot of either line before any of that), never a live established one:
/// a flood of one-packet flows cannot push out an established flow. While
/// such a flood lasts, a legitimate new flow's probation entry may itself
/// be displaced before its second packet; that flow is still forwarded by
/// Maglev, consistently.
///
/// Sizing: a flow's pair is fixed by its hash, so new IPv4 flows are
/// refused once their pair holds 6 live established flows (an IPv6 flow
/// once its bucket holds 8), well before the table is full. Measured with
/// 2^20 IPv4 slots: with 25% of the slots established, 0.5% of new flows
/// are refused; 50%: 8.8%; 70%: 30%; 80%: 47% (perf/RESULTS.md, "ft6";
/// more than 8-slot buckets refuse per slot, but a slot here costs 21.3
/// bytes, not 56). Give each core three to four times the concurrent IPv4
/// flows it should pin.
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
  /// IPv4 entries per line (a 64-byte bucket).
  static constexpr uint32_t kSlotsPerBucket = 3;
  /// IPv6 entries per bucket (448 bytes).
  static constexpr uint32_t kIpv6SlotsPerBucket = 8;
  /// Largest capacity, IPv4 entries (12.3 GiB of table with the IPv6 part).
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

  /// Bytes of memory a table of `capacity` IPv4 entries (and half as many
  /// IPv6 ones) uses; 0 if the capacity is out of range.
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
  /// backend, which replaces it in place (same line, already in cache).
  uint32_t lookup(const sluice_flow_key& key, uint32_t hash, uint32_t now_ms, bool promote = true);

  /// lookup() for n packets at once (0..kMaxBurst; any beyond are not looked
  /// up), with the same answers and effects as n lookup() calls in order.
  /// Prefetches every flow's line (IPv6: bucket header) first, then
  /// compares each line's keys, prefetching the buddy lines (IPv6: keys)
  /// still needed, then finishes those, so the memory accesses of the
  /// burst overlap. A missed IPv4 flow's insert usually goes to the line
  /// just read; when it would go to the buddy line, that line is
  /// prefetched for writing.
  /// backend_out[i] gets the backend id or SLUICE_BACKEND_NONE; bit i of
  /// `promote_mask` is lookup()'s `promote` for packet i. Returns the hit
  /// mask (bit i set: packet i hit).
  uint64_t lookup_burst(const sluice_flow_key* const keys[], const uint32_t hashes[], uint32_t n,
                        uint32_t now_ms, uint32_t backend_out[], uint64_t promote_mask = ~0ull);

  /// lookup_burst() that also fills hints_out[i] (for packets 0..n-1; a
  /// hit's hint is stale, and so is an IPv6 flow's), for insert(hints_out[i],
  /// ...) after a miss and Maglev: the insert then takes the slot found
  /// here without searching again, if its lines have not changed since.
  uint64_t lookup_burst(const sluice_flow_key* const keys[], const uint32_t hashes[], uint32_t n,
                        uint32_t now_ms, uint32_t backend_out[], uint64_t promote_mask,
                        FlowInsertHint hints_out[]);

  /// Pins a flow to `backend_id`. A new key gets an entry on probation in a
  /// free slot (IPv4: of its line, else of the buddy line), else in place
  /// of the longest-expired entry, else of the stalest probation entry
  /// (ties within 8 ms: the lowest slot, own line first); if every slot it
  /// may take holds a live established entry, nothing is stored and kFull
  /// is returned (count it as flow_insert_failed; forward by Maglev
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
  /// cursor walks the IPv4 lines, then the IPv6 buckets, round-robin), for
  /// a fast path's idle moments. Returns the number of entries freed.
  uint32_t sweep(uint32_t now_ms, uint32_t max_buckets);

  /// Adds one to counts[backend] for every live (not idle-expired at
  /// now_ms, ms) established entry in buckets [first_bucket, first_bucket +
  /// bucket_count) (clamped to bucket_count()); ids >= counts.size() are
  /// ignored. Buckets are numbered as sweep() walks them: the IPv4 lines,
  /// then the IPv6 buckets. Returns the bucket after the last one visited,
  /// 0 when the walk reached the table's end. For the control plane's
  /// active-flow counts, a slice at a time.
  uint32_t count_established(uint32_t first_bucket, uint32_t bucket_count, uint64_t now_ms,
                             std::span<uint32_t> counts) const noexcept;

  /// The entry of a flow as stored, without touching it (expired entries
  /// included: compare last_seen yourself); for diagnostics and tests.
  [[nodiscard]] std::optional<FlowEntry> find(const sluice_flow_key& key, uint32_t hash) const;

  /// The IPv4 line a hash selects, 0..capacity()/kSlotsPerBucket - 1; its
  /// buddy line is bucket_index(hash) ^ 1.
  [[nodiscard]] uint32_t bucket_index(uint32_t hash) const { return scale(hash, line_count_); }
  /// The IPv6 bucket a hash selects, 0..ipv6_capacity()/kIpv6SlotsPerBucket - 1.
  [[nodiscard]] uint32_t ipv6_bucket_index(uint32_t hash) const {
    return scale(hash, bucket6_count_);
  }
  /// IPv4 flows whose line is `line` (< capacity() / kSlotsPerBucket) that
  /// live in its buddy line; for diagnostics and tests.
  [[nodiscard]] uint32_t spill_count(uint32_t line) const;
  /// Buckets count_established() and sweep() walk: IPv4 lines plus IPv6
  /// buckets.
  [[nodiscard]] uint32_t bucket_count() const noexcept { return line_count_ + bucket6_count_; }
  /// IPv4 entries the table holds at most.
  [[nodiscard]] uint32_t capacity() const { return line_count_ * kSlotsPerBucket; }
  /// IPv6 entries (and other keys that are not IPv4 TCP/UDP) the table
  /// holds at most: capacity() / 2 rounded up to whole buckets.
  [[nodiscard]] uint32_t ipv6_capacity() const { return bucket6_count_ * kIpv6SlotsPerBucket; }
  /// Entries stored, including idle-expired ones not reclaimed yet.
  [[nodiscard]] uint32_t size() const { return size_; }
  [[nodiscard]] const FlowTableStats& stats() const { return stats_; }
  [[nodiscard]] const FlowTableConfig& config() const { return config_; }

 private:
  struct Line;
  struct Bucket;
  struct Key4;
  /// How an insert takes its slot; kNone: it cannot (every slot live
  /// established); kStale: a hint that says nothing.
  enum class Take : uint8_t { kStale, kFree, kExpired, kProbation, kNone };
  struct Target {
    uint32_t slot;  ///< IPv4: 0..2 own line, 3..5 buddy; IPv6: 0..7
    Take take;
  };

  FlowTable(const FlowTableConfig& config, void* memory, uint32_t line_count,
            uint32_t bucket6_count, bool owned);
  static Result<FlowTableConfig> validate(const FlowTableConfig& config);
  static uint32_t line_count_for(uint32_t capacity);
  static uint32_t bucket6_count_for(uint32_t capacity);
  static uint32_t scale(uint32_t hash, uint32_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(hash) * n) >> 32);
  }

  // IPv4 lines.
  static Key4 key4(const sluice_flow_key& key);
  [[nodiscard]] Line& buddy(const Line& l) const;
  [[nodiscard]] uint32_t line_timeout(const Line& l, uint32_t slot) const;
  [[nodiscard]] Target choose_pair(const Line& home, const Line& other, uint32_t now_ms) const;
  void free_entry(Line& l, uint32_t slot);
  bool hit(Line& l, uint32_t slot, uint32_t now_ms, bool promote);
  void place(Line& l, Line& home, uint32_t slot, const Key4& k, uint32_t backend_id,
             uint32_t now_ms);
  uint32_t lookup4(const Key4& k, uint32_t hash, uint32_t now_ms, bool promote);
  FlowInsert insert4(const Key4& k, uint32_t hash, uint32_t backend_id, uint32_t now_ms);
  FlowInsert insert4_slow(Line& home, const Key4& k, uint32_t backend_id, uint32_t now_ms);
  FlowInsert take4(Line& home, Target t, const Key4& k, uint32_t backend_id, uint32_t now_ms);
  FlowInsert insert4_by_hint_slow(const FlowInsertHint& hint, Line& home, const Key4& k,
                                  uint32_t hash, uint32_t backend_id, uint32_t now_ms);
  void hint_pair(FlowInsertHint& h, const Line& home, uint32_t now_ms) const;
  uint32_t sweep_line(Line& l, uint32_t now_ms);

  // IPv6 (and other) buckets.
  [[nodiscard]] uint32_t timeout(const Bucket& b, uint32_t slot) const;
  [[nodiscard]] bool expired(const Bucket& b, uint32_t slot, uint32_t now_ms) const;
  [[nodiscard]] Target choose_slot(const Bucket& b, uint32_t now_ms) const;
  void free_slot(Bucket& b, uint32_t slot);
  void place(Bucket& b, uint32_t slot, const sluice_flow_key& key, uint16_t sig,
             uint32_t backend_id, uint32_t now_ms);
  FlowInsert insert_slow(Bucket& b, uint32_t matches, const sluice_flow_key& key, uint16_t sig,
                         uint32_t backend_id, uint32_t now_ms);
  bool hit(Bucket& b, uint32_t slot, uint32_t now_ms, bool promote);
  FlowInsert take_slot(Bucket& b, Target t, const sluice_flow_key& key, uint16_t sig,
                       uint32_t backend_id, uint32_t now_ms);
  uint32_t lookup6(const sluice_flow_key& key, uint32_t hash, uint32_t now_ms, bool promote);
  FlowInsert insert6(const sluice_flow_key& key, uint32_t hash, uint32_t backend_id,
                     uint32_t now_ms);
  uint32_t sweep_bucket(Bucket& b, uint32_t now_ms);

  template <bool kHints>
  uint64_t lookup_burst_impl(const sluice_flow_key* const keys[], const uint32_t hashes[],
                             uint32_t n, uint32_t now_ms, uint32_t backend_out[],
                             uint64_t promote_mask, FlowInsertHint hints_out[]);

  FlowTableConfig config_{};
  /// Timeout of an entry by state: index (on probation) * 2 + (TCP), ms.
  uint32_t timeouts_[4] = {};
  Line* lines_ = nullptr;
  Bucket* buckets_ = nullptr;  ///< right after the lines, in the same block
  uint32_t line_count_ = 0;    ///< even, at least 2
  uint32_t bucket6_count_ = 0;
  uint32_t size_ = 0;
  uint32_t sweep_cursor_ = 0;
  bool owned_ = false;
  FlowTableStats stats_{};
};

}  // namespace sluice
