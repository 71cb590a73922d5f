// SPDX-License-Identifier: BSD-2-Clause
// DpdkFastpath: FastpathSnapshot -> dpdk::Snapshot, and counters summed
// over the workers (see dpdk_fastpath.hpp).
#include "control/dpdk_fastpath.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <string>

namespace sluice::control {
namespace {

template <class T>
void add_counters(T& sum, const T& part) {
  auto* s = reinterpret_cast<uint64_t*>(&sum);
  const auto* p = reinterpret_cast<const uint64_t*>(&part);
  for (size_t i = 0; i < sizeof(T) / sizeof(uint64_t); ++i) s[i] += p[i];
}

}  // namespace

Result<std::unique_ptr<DpdkFastpath>> DpdkFastpath::create(const Options& options) {
  auto empty = dpdk::Snapshot::create({});
  if (!empty.ok()) return empty.error();
  auto rcu = dpdk::SnapshotRcu::create(options.max_workers, std::move(empty.value()));
  if (!rcu.ok()) return rcu.error();
  return std::unique_ptr<DpdkFastpath>(new DpdkFastpath(options, std::move(rcu.value())));
}

FastpathInfo DpdkFastpath::info() const {
  FastpathInfo i;
  i.kind = "dpdk";
  i.interface = options_.interface;
  i.mode = "poll";
  return i;
}

Status DpdkFastpath::publish(const FastpathSnapshot& snapshot) {
  dpdk::SnapshotSpec spec;
  spec.vips.reserve(snapshot.vips.size());
  for (const FastpathVip& v : snapshot.vips) {
    dpdk::SnapshotVipSpec sv;
    sv.key = v.key;
    sv.meta = v.meta;
    sv.table.assign(v.table.begin(), v.table.end());
    spec.vips.push_back(std::move(sv));
  }
  spec.backends = snapshot.backends;
  spec.encap = snapshot.encap;
  if (snapshot.gateway_mac) gateway_mac_ = *snapshot.gateway_mac;
  spec.next_hop.dst_mac = gateway_mac_;
  spec.next_hop.src_mac = options_.port_mac;
  auto built = dpdk::Snapshot::create(spec);
  if (!built.ok()) return built.error();
  rcu_->publish(std::move(built.value()));
  std::vector<uint32_t> ids;
  ids.reserve(snapshot.backends.size());
  for (const sluice_backend& b : snapshot.backends) ids.push_back(b.id);
  std::lock_guard lock(workers_mu_);
  backend_ids_ = std::move(ids);
  return Ok{};
}

Result<ActiveFlowCounts> DpdkFastpath::active_flows() const {
  std::lock_guard lock(workers_mu_);
  std::vector<uint64_t> sum(backend_ids_.size(), 0);
  for (const Attached& a : workers_) (void)a.worker->add_active_flows(backend_ids_, sum);
  ActiveFlowCounts out;
  for (size_t i = 0; i < sum.size(); ++i)
    if (sum[i] != 0) out[backend_ids_[i]] = sum[i];
  return out;
}

Status DpdkFastpath::refresh_next_hop(std::span<const IpAddress> targets) {
  if (targets.empty()) return Ok{};
  return Error{-EOPNOTSUPP,
               "dpdk fast path: next hops are not resolved from the kernel; set the gateway MAC"};
}

Result<sluice_global_stats> DpdkFastpath::global_stats() const {
  sluice_global_stats sum{};
  std::lock_guard lock(workers_mu_);
  for (const Attached& a : workers_) add_counters(sum, a.worker->global_stats());
  for (const dpdk::LcoreLoop* l : loops_) {
    const dpdk::LoopStats s = l->stats();
    sum.drops[SLUICE_DROP_TX_FAILED] += s.tx_unsent + s.distribute_unsent;
  }
  return sum;
}

Result<sluice_vip_stats> DpdkFastpath::vip_stats(uint32_t vip_id) const {
  if (vip_id >= SLUICE_MAX_VIPS) return Error{-EINVAL, "vip id out of range"};
  sluice_vip_stats sum{};
  std::lock_guard lock(workers_mu_);
  for (const Attached& a : workers_) add_counters(sum, a.worker->vip_stats(vip_id));
  return sum;
}

Result<sluice_backend_stats> DpdkFastpath::backend_stats(uint32_t backend_id) const {
  sluice_backend_stats sum{};
  std::lock_guard lock(workers_mu_);
  for (const Attached& a : workers_) add_counters(sum, a.worker->backend_stats(backend_id));
  return sum;
}

std::optional<FlowTableSize> DpdkFastpath::flow_table_size() const {
  FlowTableSize size;
  std::lock_guard lock(workers_mu_);
  for (const Attached& a : workers_) size.capacity += a.worker->flow_capacity();
  size.probation = size.capacity;
  return size;
}

std::vector<WorkerStats> DpdkFastpath::worker_stats() const {
  std::vector<WorkerStats> out;
  std::lock_guard lock(workers_mu_);
  for (const Attached& a : workers_)
    out.push_back({.lcore = a.lcore,
                   .global = a.worker->global_stats(),
                   .flow_capacity = a.worker->flow_capacity()});
  return out;
}

void DpdkFastpath::attach_worker(const dpdk::Worker* worker, unsigned lcore) {
  std::lock_guard lock(workers_mu_);
  workers_.push_back({worker, lcore});
}

void DpdkFastpath::detach_worker(const dpdk::Worker* worker) {
  std::lock_guard lock(workers_mu_);
  std::erase_if(workers_, [worker](const Attached& a) { return a.worker == worker; });
}

void DpdkFastpath::attach_loop(const dpdk::LcoreLoop* loop) {
  std::lock_guard lock(workers_mu_);
  loops_.push_back(loop);
}

void DpdkFastpath::detach_loop(const dpdk::LcoreLoop* loop) {
  std::lock_guard lock(workers_mu_);
  loops_.erase(std::remove(loops_.begin(), loops_.end(), loop), loops_.end());
}

void DpdkFastpath::attach_cache(dpdk::WorkerCache* cache) {
  std::lock_guard lock(workers_mu_);
  caches_.push_back(cache);
}

void DpdkFastpath::detach_cache(dpdk::WorkerCache* cache) {
  std::lock_guard lock(workers_mu_);
  std::erase(caches_, cache);
}

FastpathCache* DpdkFastpath::cache() {
  std::lock_guard lock(workers_mu_);
  return caches_.empty() ? nullptr : this;
}

std::vector<FastpathHotKey> DpdkFastpath::poll_hot(size_t max) {
  std::lock_guard lock(workers_mu_);
  std::vector<FastpathHotKey> out;
  std::array<sluice_cache_hot, 16> batch;
  for (dpdk::WorkerCache* c : caches_) {
    size_t n;
    // Each ring is emptied, even past `max`: what is left over would be a
    // period old by the next call.
    while ((n = c->poll_hot(batch)) != 0) {
      for (size_t i = 0; i < n; ++i) {
        const sluice_cache_hot& h = batch[i];
        const size_t len = std::min<size_t>(h.key_len, SLUICE_CACHE_KEY_MAX);
        FastpathHotKey k{h.vip_id, std::string(reinterpret_cast<const char*>(h.key), len)};
        const bool seen = std::any_of(out.begin(), out.end(), [&](const FastpathHotKey& o) {
          return o.vip_id == k.vip_id && o.key == k.key;
        });
        if (!seen && out.size() < max) out.push_back(std::move(k));
      }
    }
  }
  return out;
}

Result<FillLease> DpdkFastpath::begin_fill(uint32_t vip_id, std::string_view key) {
  std::lock_guard lock(workers_mu_);
  if (caches_.empty()) return Error{-ENOENT, "no DPDK worker has a cache"};
  // The versions are shared, so one worker's lease holds for all; its
  // clock is theirs (the TSC).
  dpdk::WorkerCache& c = *caches_.front();
  return c.store().begin_fill(vip_id, key, c.last_clock());
}

size_t DpdkFastpath::install(const FillLease& lease, std::string_view key,
                             const mc::Value& value) {
  std::lock_guard lock(workers_mu_);
  size_t n = 0;
  for (dpdk::WorkerCache* c : caches_) n += c->post_install(lease, key, value) ? 1 : 0;
  return n;
}

FastpathCacheCounters DpdkFastpath::counters(uint32_t vip_id) const {
  std::lock_guard lock(workers_mu_);
  FastpathCacheCounters out;
  for (const dpdk::WorkerCache* c : caches_) {
    const dpdk::WorkerCacheCounters n = c->counters(vip_id);
    out.fast_path.hits += n.fast_path.hits;
    out.fast_path.misses += n.fast_path.misses;
    out.fast_path.invalidations += n.fast_path.invalidations;
    out.fast_path.vip_invalidations += n.fast_path.vip_invalidations;
    out.fast_path.hot_reports += n.fast_path.hot_reports;
    out.fast_path.bypassed += n.fast_path.bypassed;
    // Every worker gets every fetched value: a fill is counted once, as
    // the most any worker installed (or refused).
    out.fills = std::max(out.fills, n.fills);
    out.stale_fills = std::max(out.stale_fills, n.stale_fills);
    out.evictions += n.store.evictions;
    out.entries += n.store.entries;
    out.bytes += n.store.bytes;
  }
  return out;
}

std::vector<FastpathCachedKey> DpdkFastpath::hottest(size_t n) const {
  std::lock_guard lock(workers_mu_);
  std::vector<FastpathCachedKey> all;
  CachedKeyHits k;
  for (dpdk::WorkerCache* c : caches_) {
    const HotCache& store = c->store();
    const uint64_t now = c->last_clock();
    for (uint32_t slot = 0; slot < store.config().max_entries; ++slot)
      if (store.key_hits(slot, k))
        all.push_back({k.vip_id, std::string(k.key, k.key_len), k.hits, k.value_bytes,
                       k.expires_ms > now ? k.expires_ms - now : 0});
  }
  return merge_hottest(std::move(all), n);
}

}  // namespace sluice::control
