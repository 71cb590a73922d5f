// SPDX-License-Identifier: BSD-2-Clause
// CacheFiller: the daemon's hot-object cache loop -- every period it
// reclaims and ages the XDP caches, takes the hot keys they (and the DPDK
// workers' caches) reported, fetches each value from a backend of its VIP
// on a worker thread and installs it under the lease taken before the fetch.
#pragma once

#include <array>
#include <atomic>
#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "control/balancer.hpp"
#include "control/config.hpp"
#include "xdp/cache.hpp"

namespace sluice::control {

/// One VIP's cache counters over every fast path.
struct CacheVipCounters {
  std::string vip;  ///< the VIP's name
  uint32_t vip_id = 0;
  xdp::XdpCacheCounters counters;
  uint64_t fetches = 0;         ///< gets sent to a backend to fill the cache
  uint64_t fetch_failures = 0;  ///< of those: unreachable, timed out or bad reply
};

/// Runs on the daemon's io_context; fetches on its own thread. Install,
/// maintenance and the counters run on the io_context's thread only.
class CacheFiller {
 public:
  /// Opens the cache of every XDP fast path of `balancer` (which must
  /// outlive the filler). Errors: XdpCache::open's.
  [[nodiscard]] static Result<std::unique_ptr<CacheFiller>> create(asio::io_context& io,
                                                                   Balancer& balancer,
                                                                   const CacheConfig& config);
  CacheFiller(const CacheFiller&) = delete;
  CacheFiller& operator=(const CacheFiller&) = delete;
  /// Stops the worker (a fetch in progress finishes within its timeout).
  ~CacheFiller();

  /// Starts the periodic loop.
  void start();

  /// Counters of every VIP with the cache on, summed over fast paths.
  [[nodiscard]] std::vector<CacheVipCounters> counters() const;
  /// The cached keys with most hits, over fast paths (XDP and the DPDK
  /// workers; a key cached on several is one key, its hits summed), at
  /// most `n`, most hits first. A fast path contributes its `n` hottest,
  /// so a key outside every one of those is not counted.
  [[nodiscard]] std::vector<FastpathCachedKey> hottest(size_t n) const;

 private:
  struct Job {
    size_t cache = 0;  // index into caches_, unless `fastpath`
    FastpathCache* fastpath = nullptr;  // a fast path's per-core caches
    uint32_t vip_id = 0;
    FillLease lease;
    std::string key;
    IpAddress backend;
    uint16_t port = 0;
  };

  CacheFiller(asio::io_context& io, Balancer& balancer, const CacheConfig& config);
  void schedule();
  void tick();
  void work();

  asio::io_context& io_;
  Balancer& balancer_;
  CacheConfig config_;
  asio::steady_timer timer_;
  std::vector<xdp::XdpCache> caches_;
  // Fast paths with caches of their own per core (the DPDK workers').
  std::vector<FastpathCache*> fastpath_caches_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread worker_;
  // Per VIP id, written by the fetch thread, read by counters().
  std::array<std::atomic<uint64_t>, SLUICE_MAX_VIPS> fetches_{};
  std::array<std::atomic<uint64_t>, SLUICE_MAX_VIPS> fetch_failures_{};
};

/// The `cache` command's result: per VIP {name, vip_id, hits, misses,
/// hit_ratio (0..1, null before any lookup), fills, stale_fills,
/// invalidations, vip_invalidations, evictions, entries, bytes,
/// hot_reports, bypassed}, and the 20 hottest keys {vip_id, key, hits,
/// value_bytes, ttl_ms (left)}.
[[nodiscard]] nlohmann::json cache_report(const CacheFiller& filler);

}  // namespace sluice::control
