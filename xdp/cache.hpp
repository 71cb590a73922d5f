// SPDX-License-Identifier: BSD-2-Clause
// XdpCache: the control thread's side of the XDP hot-object cache
// (xdp/cache.bpf.h) -- hot-key reports from the ring buffer, fill leases,
// installing entries into free slots, reclaiming slots the fast path
// invalidated or that expired, evicting the coldest, and the counters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataplane/abi/cache.h"
#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/memcached.hpp"
#include "xdp/lb_skeleton.hpp"
#include "xdp/status.hpp"
#include "xdp/unique_fd.hpp"

struct ring_buffer;

namespace sluice::xdp {

/// Bounds the maps do not hold themselves.
struct XdpCacheOptions {
  /// Key and value bytes over all entries (> 0); the entry count is the
  /// size of sluice_cache_entries (LoaderOptions::cache_entries).
  uint64_t max_bytes = 16u << 20;
  /// An entry is a miss this long after its fill began, ms (> 0).
  uint32_t ttl_ms = 10'000;
  /// No fill begins within this long of a write to the key's version slot, ms.
  uint32_t write_settle_ms = 100;
};

/// A key the fast path reported hot.
struct HotKey {
  uint32_t vip_id = 0;
  std::string key;
};

/// One cached key, for `sluice ctl cache`.
struct CachedKey {
  uint32_t vip_id = 0;
  std::string key;
  uint64_t hits = 0;        ///< answered from the cache since installed (all CPUs)
  uint32_t value_bytes = 0;
  uint64_t expires_ms = 0;  ///< CLOCK_MONOTONIC_COARSE, ms
};

/// Counters of one VIP's cache, summed over CPUs.
struct XdpCacheCounters {
  sluice_cache_stats fast_path{};  ///< what the XDP program counted
  uint64_t fills = 0;              ///< entries installed
  uint64_t stale_fills = 0;        ///< fills refused: a write came after the lease
  uint64_t evictions = 0;          ///< entries evicted for room or expired
  uint64_t entries = 0;            ///< entries held now
  uint64_t bytes = 0;              ///< key and value bytes held now
};

/// The XDP cache of one loaded sluice_lb. Not thread-safe: the control
/// thread owns it. Every map write keeps the fast path's invariant: an
/// entry slot is rewritten only while no index entry names it and every
/// packet that could have read such an index entry is done (a barrier: an
/// update of a private map-in-map, which returns after an RCU grace period).
class XdpCache {
 public:
  /// Takes the cache maps of `skel` (which must outlive this object).
  /// Errors: -EINVAL (bad options), map or ring-buffer creation errnos.
  [[nodiscard]] static Result<XdpCache> open(sluice_lb_bpf* skel, const XdpCacheOptions& options);

  XdpCache(XdpCache&&) noexcept;
  XdpCache& operator=(XdpCache&&) noexcept;
  XdpCache(const XdpCache&) = delete;
  XdpCache& operator=(const XdpCache&) = delete;
  ~XdpCache();

  /// CLOCK_MONOTONIC_COARSE in ms: the clock the fast path's expiry and
  /// write stamps use (bpf_ktime_get_coarse_ns / 10^6).
  static uint64_t now_ms();

  /// The hot keys reported since the last call (without blocking), at most
  /// `max`, each (VIP, key) once. Errors: the ring buffer's errno.
  [[nodiscard]] Result<std::vector<HotKey>> poll_hot(size_t max);

  /// A lease for filling `key` of `vip_id`: the key's version and the VIP's
  /// epoch as the maps hold them now. Errors: -EINVAL (not a memcached key
  /// or vip_id out of range), -EAGAIN (a write within write_settle_ms), a
  /// map-read errno.
  [[nodiscard]] Result<FillLease> begin_fill(uint32_t vip_id, std::string_view key,
                                             uint64_t now_ms);

  /// Installs a fetched value under `lease` if it still holds: a free slot
  /// (evicting the coldest entry, with a barrier, when none is), the entry,
  /// then its index entry. The fast path checks the versions again on every
  /// hit, so a write between this check and the index update is safe.
  [[nodiscard]] Result<FillResult> install(const FillLease& lease, std::string_view key,
                                           const mc::Value& value, uint64_t now_ms);

  /// Once a period: zeroes the per-CPU miss sketches, reads the hit
  /// counts, and reclaims the slots of entries the fast path invalidated
  /// (their index entry is gone) or that expired. Returns slots reclaimed.
  [[nodiscard]] Result<uint32_t> maintain(uint64_t now_ms);

  /// Counters of one VIP. Errors: the map-read errno, -EINVAL for an id
  /// out of range.
  [[nodiscard]] Result<XdpCacheCounters> counters(uint32_t vip_id) const;

  /// The cached keys with most hits (as of the last maintain), at most `n`.
  [[nodiscard]] std::vector<CachedKey> hottest(size_t n) const;

  /// Entry slots (the size of sluice_cache_entries).
  [[nodiscard]] uint32_t capacity() const;

 private:
  struct State;
  explicit XdpCache(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace sluice::xdp
