// SPDX-License-Identifier: BSD-2-Clause
// HotCache: the hot-object cache store of a fast path -- bounded entries
// and bytes, TTL, eviction of cold entries, per-key versions and per-VIP
// epochs that make a fill race safely with writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "dataplane/abi/cache.h"
#include "dataplane/abi/consts.h"
#include "dataplane/core/memcached.hpp"
#include "dataplane/core/result.hpp"

namespace sluice {

/// Bounds of a cache, fixed at creation.
struct HotCacheConfig {
  /// Entries, 1..HotCache::kMaxEntries.
  uint32_t max_entries = 10'000;
  /// Bytes of keys and values together (the data blocks, not the response
  /// text around them), >= SLUICE_CACHE_KEY_MAX + SLUICE_CACHE_VALUE_MAX.
  uint64_t max_bytes = 16u << 20;
  /// An entry is a miss this long after its fill began, ms (> 0): the bound
  /// on staleness for writes that do not pass through sluice.
  uint32_t ttl_ms = 10'000;
  /// A fill may begin only when the key's version slot saw no write for
  /// this long, ms, and no hold of the key (its slot, its VIP or every
  /// key; CacheVersions) was released for this long: a write sluice
  /// forwarded may still be on its way to the backend, or not yet applied
  /// there, and a fetch must not read the value from before it.
  uint32_t write_settle_ms = 100;
};

/// The per-key version slots and per-VIP epochs (dataplane/abi/cache.h)
/// that every core's HotCache of one fast path shares, as the XDP program's
/// caches share its version and epoch maps: a write one core sees bumps the
/// key's slot before that core forwards it, and every core checks the slot
/// on every hit, so no core serves the old value after the write left.
///
/// Lock-free 32-bit atomics, read on every hit and written on the rare
/// write. A bump is a sequentially consistent read-modify-write that
/// completes before the writing core goes on to transmit the write (and a
/// NIC doorbell is behind a write barrier), so any lookup that starts
/// after the write could have reached a backend sees the new version. About
/// 1 MiB; allocate it once (it is too big for a stack).
class CacheVersions {
 public:
  /// The version of slot `slot` (< SLUICE_CACHE_VERSION_SLOTS).
  [[nodiscard]] uint32_t version(uint32_t slot) const noexcept {
    return load(slots_[slot].version, std::memory_order_acquire);
  }
  /// When slot `slot` was last bumped, ms (the bumper's clock, wraps).
  [[nodiscard]] uint32_t last_write_ms(uint32_t slot) const noexcept {
    return load(slots_[slot].last_write_ms, std::memory_order_relaxed);
  }
  /// A write of a key of slot `slot` is on its way at `now_ms`. The time is
  /// stamped first: whoever sees the new version sees its time too.
  void bump(uint32_t slot, uint32_t now_ms) noexcept {
    std::atomic_ref<uint32_t>(slots_[slot].last_write_ms).store(now_ms, std::memory_order_relaxed);
    std::atomic_ref<uint32_t>(slots_[slot].version).fetch_add(1, std::memory_order_seq_cst);
  }
  /// Asks the CPU to load slot `slot`'s version (< SLUICE_CACHE_VERSION_SLOTS)
  /// into its caches, ahead of version(): a hint, no effect on the values.
  void prefetch(uint32_t slot) const noexcept { __builtin_prefetch(&slots_[slot], 0, 3); }
  /// The epoch of VIP `vip_id` (< SLUICE_MAX_VIPS).
  [[nodiscard]] uint32_t epoch(uint32_t vip_id) const noexcept {
    return load(epochs_[vip_id], std::memory_order_acquire);
  }
  /// Something sent to VIP `vip_id` could not be followed.
  void bump_epoch(uint32_t vip_id) noexcept {
    std::atomic_ref<uint32_t>(epochs_[vip_id]).fetch_add(1, std::memory_order_seq_cst);
  }

  // Holds (DESIGN.md "Hot-object cache"): a core that sees a write takes a
  // hold (before its bump) and keeps it until the write has left the core
  // -- handed to the NIC or dropped -- so that no fill begins while the
  // backend may still answer with the value from before the write. A hold
  // is a count (several cores, several writes); the release stamps its
  // time, which begin_fill's settle time counts from. The count is taken
  // relaxed and published by the bump's seq_cst read-modify-write after
  // it: a reader that sees the new version (acquire) sees the hold. The
  // release stamps first and then decrements with release order: a reader
  // that sees the count drop (acquire) sees the stamp.

  /// Holds a key's slot `slot`; one release_slot() each.
  void hold_slot(uint32_t slot) noexcept {
    std::atomic_ref<uint32_t>(held_[slot].count).fetch_add(1, std::memory_order_relaxed);
  }
  /// Ends a hold of slot `slot` at `now_ms` (the bumper's clock, wraps).
  void release_slot(uint32_t slot, uint32_t now_ms) noexcept { release(held_[slot], now_ms); }
  /// Holds of slot `slot` not yet released.
  [[nodiscard]] uint32_t slot_holds(uint32_t slot) const noexcept {
    return load(held_[slot].count, std::memory_order_acquire);
  }
  /// When the last hold of slot `slot` was released, ms; 0 when never.
  [[nodiscard]] uint32_t slot_released_ms(uint32_t slot) const noexcept {
    return load(held_[slot].released_ms, std::memory_order_relaxed);
  }
  /// The same for VIP `vip_id` as a whole (< SLUICE_MAX_VIPS): taken
  /// before an epoch bump.
  void hold_vip(uint32_t vip_id) noexcept {
    std::atomic_ref<uint32_t>(vip_held_[vip_id].count).fetch_add(1, std::memory_order_relaxed);
  }
  void release_vip(uint32_t vip_id, uint32_t now_ms) noexcept {
    release(vip_held_[vip_id], now_ms);
  }
  [[nodiscard]] uint32_t vip_holds(uint32_t vip_id) const noexcept {
    return load(vip_held_[vip_id].count, std::memory_order_acquire);
  }
  [[nodiscard]] uint32_t vip_released_ms(uint32_t vip_id) const noexcept {
    return load(vip_held_[vip_id].released_ms, std::memory_order_relaxed);
  }
  /// The same for every key of every VIP: what a core takes when it has
  /// more writes in flight than it can track one by one. Taken before the
  /// bumps it covers.
  void hold_all() noexcept {
    std::atomic_ref<uint32_t>(all_held_.count).fetch_add(1, std::memory_order_seq_cst);
  }
  void release_all(uint32_t now_ms) noexcept { release(all_held_, now_ms); }
  [[nodiscard]] uint32_t all_holds() const noexcept {
    return load(all_held_.count, std::memory_order_acquire);
  }
  [[nodiscard]] uint32_t all_released_ms() const noexcept {
    return load(all_held_.released_ms, std::memory_order_relaxed);
  }

 private:
  static uint32_t load(const uint32_t& v, std::memory_order order) noexcept {
    // atomic_ref needs a non-const object; a load writes nothing.
    return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(v)).load(order);
  }
  // A hold count and the time its last release stamped, ms (0: never).
  struct Held {
    uint32_t count;
    uint32_t released_ms;
  };
  static void release(Held& h, uint32_t now_ms) noexcept {
    // 0 means "never released": a release at clock 0 stamps 1 instead.
    std::atomic_ref<uint32_t>(h.released_ms)
        .store(now_ms | (now_ms == 0), std::memory_order_relaxed);
    std::atomic_ref<uint32_t>(h.count).fetch_sub(1, std::memory_order_release);
  }
  alignas(64) sluice_cache_version slots_[SLUICE_CACHE_VERSION_SLOTS]{};
  alignas(64) uint32_t epochs_[SLUICE_MAX_VIPS]{};
  alignas(64) Held held_[SLUICE_CACHE_VERSION_SLOTS]{};  // by version slot
  alignas(64) Held vip_held_[SLUICE_MAX_VIPS]{};         // by vip_id
  alignas(64) Held all_held_{};                          // every key of every VIP
};

/// What begin_fill() hands the filler: the versions an install must still
/// find. Valid only for the cache that issued it.
struct FillLease {
  uint32_t vip_id = 0;
  uint32_t key_hash = 0;
  uint32_t version = 0;  ///< the key's version slot at begin_fill
  uint32_t epoch = 0;    ///< the VIP's epoch at begin_fill
  uint64_t began_ms = 0;
};

/// What install() did.
enum class FillResult : uint8_t {
  kInstalled,  ///< the entry is in (replacing the key's old one, if any)
  kStale,      ///< a write (or a whole-VIP invalidation) came after the lease: not installed
  kTooBig,     ///< the value is over SLUICE_CACHE_VALUE_MAX or over max_bytes
  kInvalid,    ///< the key is not a memcached key, or not the lease's
};

/// Counters a cache keeps about itself (one owner: plain integers).
struct HotCacheStats {
  uint64_t hits = 0;               ///< lookups answered
  uint64_t misses = 0;             ///< lookups not answered (absent, expired, stale)
  uint64_t fills = 0;              ///< entries installed
  uint64_t stale_fills = 0;        ///< installs refused: a write came after the lease
  uint64_t invalidations = 0;      ///< invalidate() calls
  uint64_t vip_invalidations = 0;  ///< invalidate_vip() calls
  uint64_t evictions = 0;          ///< entries removed for room or on expiry
  uint64_t entries = 0;            ///< entries held now
  uint64_t bytes = 0;              ///< key and value bytes held now
};

/// One cached key and the gets answered from it, as any thread reads it
/// (HotCache::key_hits).
struct CachedKeyHits {
  uint32_t vip_id = 0;
  uint16_t key_len = 0;             ///< bytes of key, 1..SLUICE_CACHE_KEY_MAX
  uint32_t value_bytes = 0;         ///< bytes of the value's data block
  uint64_t expires_ms = 0;          ///< on the owner's clock (the now_ms of install)
  uint64_t hits = 0;                ///< gets answered from this entry since its fill (count_answer)
  char key[SLUICE_CACHE_KEY_ROOM];  ///< the key; bytes past key_len undefined
};

/// The cache of one fast-path core (the DPDK path; the XDP program keeps
/// the same entries in BPF maps, dataplane/abi/cache.h).
///
/// Coherence (DESIGN.md "Hot-object cache"): every key of a VIP maps to a
/// version slot (sluice_cache_version_slot); invalidate() bumps it, and
/// invalidate_vip() bumps the VIP's epoch. A fill takes a lease first
/// (begin_fill: the slot's version and the VIP's epoch), fetches the value,
/// and install() stores it only if neither moved. lookup() also serves an
/// entry only while both still match, so an entry filled from a value
/// older than a write that passed through the owner is never served.
///
/// Eviction: an install into a full cache (entries or bytes) evicts
/// expired entries first, then the coldest of a few entries around a clock
/// hand (fewest hits since they were last considered; the hit counts of
/// those it passes are halved, so old popularity fades).
///
/// Not thread-safe: one owner core, which also installs (a control thread
/// hands it fetched values); only the versions may be shared
/// (CacheVersions), and begin_fill() reads nothing else, so any thread may
/// call it; key_hits() too (it reads one slot under its seqlock). Every
/// byte is allocated by create(); no member function allocates, throws or
/// blocks afterwards.
class HotCache {
 public:
  /// Largest max_entries.
  static constexpr uint32_t kMaxEntries = 1u << 20;

  /// Errors: -EINVAL for bounds out of range; -ENOMEM.
  [[nodiscard]] static Result<HotCache> create(const HotCacheConfig& config);
  /// The same, checking and bumping `shared` (which must outlive the
  /// cache) instead of versions of its own: one core's cache among several
  /// (the DPDK workers). Errors as create().
  [[nodiscard]] static Result<HotCache> create(const HotCacheConfig& config, CacheVersions& shared);

  HotCache(HotCache&&) noexcept;
  HotCache& operator=(HotCache&&) noexcept;
  HotCache(const HotCache&) = delete;
  HotCache& operator=(const HotCache&) = delete;
  ~HotCache();

  /// The entry answering a get of `key` on VIP `vip_id` at `now_ms`, or
  /// nullptr (absent, expired, or a write since its fill). Counts a hit
  /// or a miss. The pointer is valid until the next non-const call.
  [[nodiscard]] const sluice_cache_entry* lookup(uint32_t vip_id, std::string_view key,
                                                 uint64_t now_ms) noexcept;
  /// The same with the key's hash already computed: `key_hash` must be
  /// mc::key_hash(key) (a caller that also needs the hash hashes once).
  [[nodiscard]] const sluice_cache_entry* lookup(uint32_t vip_id, std::string_view key,
                                                 uint32_t key_hash, uint64_t now_ms) noexcept;

  /// The first stage of looking up a burst's gets together (as
  /// FlowTable::lookup_burst does for flows): asks the CPU to load the
  /// index position of (vip_id, key_hash) and the key's version slot, so
  /// that the later stages of the burst's other gets overlap those loads.
  /// `key_hash` is mc::key_hash of the key. A hint: changes nothing.
  void prefetch_index(uint32_t vip_id, uint32_t key_hash) const noexcept;
  /// The second stage, after prefetch_index of the burst's gets: when the
  /// key's home index position names an entry, asks the CPU for that
  /// entry's first line (ids, lengths, key), the first lines of its
  /// response text and its hit counters -- what lookup() and an answer
  /// read and bump on a hit. Reads the index only; changes nothing. The
  /// home position is the key's unless an earlier key took it (the index
  /// is at most half full): then the hint is wasted, never wrong.
  /// (Prefetching the rest of the probe run too measured slower at 1k
  /// keys: perf/RESULTS.md, third pass.)
  void prefetch_entry(uint32_t vip_id, uint32_t key_hash) const noexcept;

  /// Owner: one get was answered from `e` (what lookup() just returned,
  /// before any other non-const call). Adds 1 to the entry's answered gets,
  /// which restart at 0 when its slot is filled again. A plain increment
  /// published with a relaxed store: no read-modify-write, no lock.
  void count_answer(const sluice_cache_entry& e) noexcept;

  /// Any thread: the entry in slot `slot` (< config().max_entries) and its
  /// answered gets, into `out`. False when the slot is free, or was emptied
  /// or refilled while it was read: each slot has a sequence count, odd
  /// while the slot is free or being filled, that the copy is checked
  /// against (a seqlock, as Linux's include/linux/seqlock.h; fences as in
  /// Boehm, "Can seqlocks get along with programming language memory
  /// models?", MSPC 2012). O(key bytes); never blocks the owner.
  [[nodiscard]] bool key_hits(uint32_t slot, CachedKeyHits& out) const noexcept;

  /// A write of `key` on VIP `vip_id` is on its way to a backend: bump the
  /// key's version (recording `now_ms`) and drop its entry.
  void invalidate(uint32_t vip_id, std::string_view key, uint64_t now_ms) noexcept;

  /// Something the fast path could not follow was sent to VIP `vip_id`:
  /// none of its entries may be served again, nor any fill leased before.
  void invalidate_vip(uint32_t vip_id) noexcept;

  /// Takes a lease for filling `key` of VIP `vip_id` at `now_ms`. Errors:
  /// -EINVAL (not a memcached key, vip_id >= SLUICE_MAX_VIPS), -EAGAIN (a
  /// hold covers the key -- a write of it, or an unsure request to its VIP,
  /// not yet transmitted -- or the key's version slot saw a write, or such
  /// a hold was released, less than write_settle_ms before `now_ms`; a
  /// stamp ahead of `now_ms`, from a core whose clock runs ahead, counts
  /// as less). Try again later.
  [[nodiscard]] Result<FillLease> begin_fill(uint32_t vip_id, std::string_view key,
                                             uint64_t now_ms) const noexcept;

  /// Installs the value fetched under `lease` at `now_ms`, expiring ttl_ms
  /// after the lease began, if the lease still holds.
  [[nodiscard]] FillResult install(const FillLease& lease, std::string_view key,
                                   const mc::Value& value, uint64_t now_ms) noexcept;

  /// Drops every expired entry; returns how many. O(max_entries).
  uint32_t evict_expired(uint64_t now_ms) noexcept;

  [[nodiscard]] HotCacheStats stats() const noexcept;
  [[nodiscard]] const HotCacheConfig& config() const noexcept;

 private:
  struct Impl;
  explicit HotCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
