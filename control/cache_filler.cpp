// SPDX-License-Identifier: BSD-2-Clause
// CacheFiller: the period timer, the choice of the backend a key is fetched
// from, and the worker thread that fetches.
#include "control/cache_filler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "control/cache_fetch.hpp"
#include "control/xdp_fastpath.hpp"
#include "dataplane/core/memcached.hpp"

namespace sluice::control {
namespace {

// Hot keys taken per fast path and period: a bound on the fetches queued.
constexpr size_t kMaxHotPerPeriod = 64;

}  // namespace

Result<std::unique_ptr<CacheFiller>> CacheFiller::create(asio::io_context& io, Balancer& balancer,
                                                         const CacheConfig& config) {
  std::unique_ptr<CacheFiller> f(new CacheFiller(io, balancer, config));
  for (const auto& fp : balancer.fastpaths()) {
    if (FastpathCache* c = fp->cache()) {
      f->fastpath_caches_.push_back(c);
      continue;
    }
    auto* xfp = dynamic_cast<XdpFastpath*>(fp.get());
    if (xfp == nullptr) continue;
    auto c = xdp::XdpCache::open(xfp->loader().skeleton(),
                                 {config.bytes, config.ttl_ms, config.write_settle_ms});
    if (!c.ok()) return c.error();
    f->caches_.push_back(std::move(c.value()));
  }
  f->worker_ = std::thread([p = f.get()] { p->work(); });
  return f;
}

CacheFiller::CacheFiller(asio::io_context& io, Balancer& balancer, const CacheConfig& config)
    : io_(io), balancer_(balancer), config_(config), timer_(io) {}

CacheFiller::~CacheFiller() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void CacheFiller::start() { schedule(); }

void CacheFiller::schedule() {
  timer_.expires_after(std::chrono::milliseconds(config_.period_ms));
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    tick();
    schedule();
  });
}

void CacheFiller::tick() {
  const uint64_t now = xdp::XdpCache::now_ms();
  const std::vector<VipView> vips = balancer_.vips();
  for (size_t i = 0; i < caches_.size(); ++i) {
    xdp::XdpCache& c = caches_[i];
    if (auto m = c.maintain(now); !m.ok()) spdlog::warn("cache: {}", m.error().message);
    auto hot = c.poll_hot(kMaxHotPerPeriod);
    if (!hot.ok()) {
      spdlog::warn("cache: {}", hot.error().message);
      continue;
    }
    for (xdp::HotKey& h : hot.value()) {
      const auto vip = std::find_if(vips.begin(), vips.end(), [&](const VipView& v) {
        return v.vip_id == h.vip_id && v.cache;
      });
      if (vip == vips.end()) continue;
      // The key's owner: where key-affinity routing sends its requests
      // (so a sharded pool's key comes from the shard that holds it), and
      // on a replicated pool one backend per key, every time.
      auto owner = balancer_.owner(vip->name, mc::route_hash(h.key, balancer_.config().hash_seed));
      if (!owner.ok()) continue;
      auto lease = c.begin_fill(h.vip_id, h.key, now);
      if (!lease.ok()) continue;  // written too recently, or not a key: next report
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(
          Job{i, nullptr, h.vip_id, lease.value(), std::move(h.key), owner.value(), vip->port});
    }
  }
  for (FastpathCache* c : fastpath_caches_) {
    for (FastpathHotKey& h : c->poll_hot(kMaxHotPerPeriod)) {
      const auto vip = std::find_if(vips.begin(), vips.end(), [&](const VipView& v) {
        return v.vip_id == h.vip_id && v.cache;
      });
      if (vip == vips.end()) continue;
      auto owner = balancer_.owner(vip->name, mc::route_hash(h.key, balancer_.config().hash_seed));
      if (!owner.ok()) continue;
      auto lease = c->begin_fill(h.vip_id, h.key);
      if (!lease.ok()) continue;
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(
          Job{0, c, h.vip_id, lease.value(), std::move(h.key), owner.value(), vip->port});
    }
  }
  cv_.notify_one();
}

void CacheFiller::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    // Counted before it is sent: a reader that saw the backend's get sees it.
    const size_t vip = job.vip_id < SLUICE_MAX_VIPS ? job.vip_id : 0;
    fetches_[vip].fetch_add(1, std::memory_order_relaxed);
    auto v = fetch_value(job.backend, job.port, job.key,
                         std::chrono::milliseconds(config_.fetch_timeout_ms), SLUICE_CACHE_VALUE_MAX);
    if (!v.ok()) fetch_failures_[vip].fetch_add(1, std::memory_order_relaxed);
    if (!v.ok() || !v.value()) continue;  // a miss, too big or unreachable: not cached
    asio::post(io_, [this, job = std::move(job), value = std::move(*v.value())] {
      const mc::Value mv{value.flags, value.cas, value.data};
      if (job.fastpath != nullptr) {
        // Every worker installs it at its next turn, if the lease holds.
        (void)job.fastpath->install(job.lease, job.key, mv);
        return;
      }
      auto r = caches_[job.cache].install(job.lease, job.key, mv, xdp::XdpCache::now_ms());
      if (!r.ok()) spdlog::warn("cache: installing {}: {}", job.key, r.error().message);
    });
  }
}

std::vector<CacheVipCounters> CacheFiller::counters() const {
  std::vector<CacheVipCounters> out;
  for (const VipView& v : balancer_.vips()) {
    if (!v.cache) continue;
    CacheVipCounters c{v.name, v.vip_id, {}, 0, 0};
    if (v.vip_id < SLUICE_MAX_VIPS) {
      c.fetches = fetches_[v.vip_id].load(std::memory_order_relaxed);
      c.fetch_failures = fetch_failures_[v.vip_id].load(std::memory_order_relaxed);
    }
    for (const FastpathCache* cache : fastpath_caches_) {
      const FastpathCacheCounters x = cache->counters(v.vip_id);
      c.counters.fast_path.hits += x.fast_path.hits;
      c.counters.fast_path.misses += x.fast_path.misses;
      c.counters.fast_path.invalidations += x.fast_path.invalidations;
      c.counters.fast_path.vip_invalidations += x.fast_path.vip_invalidations;
      c.counters.fast_path.hot_reports += x.fast_path.hot_reports;
      c.counters.fast_path.bypassed += x.fast_path.bypassed;
      c.counters.fills += x.fills;
      c.counters.stale_fills += x.stale_fills;
      c.counters.evictions += x.evictions;
      c.counters.entries += x.entries;
      c.counters.bytes += x.bytes;
    }
    for (const xdp::XdpCache& cache : caches_) {
      auto n = cache.counters(v.vip_id);
      if (!n.ok()) continue;
      const xdp::XdpCacheCounters& x = n.value();
      c.counters.fast_path.hits += x.fast_path.hits;
      c.counters.fast_path.misses += x.fast_path.misses;
      c.counters.fast_path.invalidations += x.fast_path.invalidations;
      c.counters.fast_path.vip_invalidations += x.fast_path.vip_invalidations;
      c.counters.fast_path.hot_reports += x.fast_path.hot_reports;
      c.counters.fast_path.bypassed += x.fast_path.bypassed;
      c.counters.fills += x.fills;
      c.counters.stale_fills += x.stale_fills;
      c.counters.evictions += x.evictions;
      c.counters.entries += x.entries;
      c.counters.bytes += x.bytes;
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<FastpathCachedKey> CacheFiller::hottest(size_t n) const {
  std::vector<FastpathCachedKey> all;
  const uint64_t now = xdp::XdpCache::now_ms();
  for (const xdp::XdpCache& c : caches_)
    for (xdp::CachedKey& k : c.hottest(n))
      all.push_back({k.vip_id, std::move(k.key), k.hits, k.value_bytes,
                     k.expires_ms > now ? k.expires_ms - now : 0});
  for (const FastpathCache* c : fastpath_caches_) {
    std::vector<FastpathCachedKey> some = c->hottest(n);
    all.insert(all.end(), std::make_move_iterator(some.begin()),
               std::make_move_iterator(some.end()));
  }
  return merge_hottest(std::move(all), n);
}

nlohmann::json cache_report(const CacheFiller& filler) {
  nlohmann::json vips = nlohmann::json::array();
  for (const CacheVipCounters& c : filler.counters()) {
    const xdp::XdpCacheCounters& n = c.counters;
    const uint64_t lookups = n.fast_path.hits + n.fast_path.misses;
    vips.push_back({{"name", c.vip},
                    {"vip_id", c.vip_id},
                    {"hits", n.fast_path.hits},
                    {"misses", n.fast_path.misses},
                    {"hit_ratio", lookups == 0 ? nlohmann::json(nullptr)
                                               : nlohmann::json(static_cast<double>(n.fast_path.hits) /
                                                                static_cast<double>(lookups))},
                    {"fills", n.fills},
                    {"stale_fills", n.stale_fills},
                    {"fetches", c.fetches},
                    {"fetch_failures", c.fetch_failures},
                    {"invalidations", n.fast_path.invalidations},
                    {"vip_invalidations", n.fast_path.vip_invalidations},
                    {"evictions", n.evictions},
                    {"entries", n.entries},
                    {"bytes", n.bytes},
                    {"hot_reports", n.fast_path.hot_reports},
                    {"bypassed", n.fast_path.bypassed}});
  }
  nlohmann::json hottest = nlohmann::json::array();
  for (const FastpathCachedKey& k : filler.hottest(20))
    hottest.push_back({{"vip_id", k.vip_id},
                       {"key", k.key},
                       {"hits", k.hits},
                       {"value_bytes", k.value_bytes},
                       {"ttl_ms", k.ttl_ms}});
  return {{"vips", vips}, {"hottest", hottest}};
}

}  // namespace sluice::control
