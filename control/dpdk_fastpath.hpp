// SPDX-License-Identifier: BSD-2-Clause
// DpdkFastpath: the control library's Fastpath over the DPDK path -- a
// published FastpathSnapshot becomes an immutable dpdk::Snapshot behind the
// workers' RCU, and the workers' per-lcore counters are summed on demand.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/fastpath.hpp"
#include "dataplane/dpdk/lcore_loop.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"

namespace sluice::control {

/// The Fastpath of a DPDK deployment. It owns the SnapshotRcu the workers
/// read; the workers (created by whoever runs the lcores, with reader ids
/// below max_readers) are registered with attach_worker() for counters.
/// A fresh start: no pinned state survives a restart (initial_state() is
/// empty), as DPDK owns the port only while the process lives.
class DpdkFastpath final : public Fastpath, public FastpathCache {
 public:
  struct Options {
    /// Port or device name for `status` (e.g. "net_tap0", "0000:3b:00.0").
    std::string interface;
    /// Workers that will read snapshots (SnapshotRcu readers), >= 1.
    uint32_t max_workers = 1;
    /// The first data port's MAC: source of forwarded frames on a port
    /// whose worker has no MAC of its own (WorkerConfig::port_macs).
    std::array<uint8_t, 6> port_mac{};
  };

  /// Sets up the RCU with an empty snapshot (no VIP: everything goes to
  /// the kernel). Errors: SnapshotRcu::create's.
  [[nodiscard]] static Result<std::unique_ptr<DpdkFastpath>> create(const Options& options);

  [[nodiscard]] FastpathInfo info() const override;
  [[nodiscard]] const FastpathState& initial_state() const override { return initial_; }
  /// Builds a dpdk::Snapshot (validated whole: -EINVAL, nothing changes)
  /// and publishes it; the previous one is freed once every worker passed
  /// it. The next hop is the snapshot's gateway MAC from the port's MAC;
  /// without a gateway MAC the previous one stays (none at first: VIP
  /// packets are then counted tx_failed drops).
  [[nodiscard]] Status publish(const FastpathSnapshot& snapshot) override;
  /// -EOPNOTSUPP for a non-empty target list: the DPDK path has no kernel
  /// neighbour table to follow; configure the gateway MAC.
  [[nodiscard]] Status refresh_next_hop(std::span<const IpAddress> targets) override;
  [[nodiscard]] Result<sluice_global_stats> global_stats() const override;
  [[nodiscard]] Result<sluice_vip_stats> vip_stats(uint32_t vip_id) const override;
  [[nodiscard]] Result<sluice_backend_stats> backend_stats(uint32_t backend_id) const override;
  /// Live established flows by backend id of the last published snapshot:
  /// each attached worker's last complete walk of its flow table
  /// (Worker::count_step), summed. A backend without any is absent.
  [[nodiscard]] Result<ActiveFlowCounts> active_flows() const override;
  /// The attached workers' flow tables: each worker's capacity, summed;
  /// probation entries share a table's slots, so probation is the same.
  [[nodiscard]] std::optional<FlowTableSize> flow_table_size() const override;
  /// Each attached worker's counters, in attach order.
  [[nodiscard]] std::vector<WorkerStats> worker_stats() const override;

  /// The RCU the workers are created on.
  [[nodiscard]] dpdk::SnapshotRcu& rcu() { return *rcu_; }
  /// Adds a worker (running on EAL lcore `lcore`) whose counters the
  /// stats sum; it must outlive this object or be detached first.
  /// Thread-safe with the stats readers.
  void attach_worker(const dpdk::Worker* worker, unsigned lcore = 0);
  void detach_worker(const dpdk::Worker* worker);
  /// The same for a worker's loop: what its TX queues or a software
  /// distribution ring refused (packets freed after the worker's verdict)
  /// counts as drops[SLUICE_DROP_TX_FAILED], as a failed XDP_TX does.
  void attach_loop(const dpdk::LcoreLoop* loop);
  void detach_loop(const dpdk::LcoreLoop* loop);
  /// The same for a worker's cache (Worker::cache()): its hot keys, fills
  /// and counters go through cache(). Control thread only.
  void attach_cache(dpdk::WorkerCache* cache);
  void detach_cache(dpdk::WorkerCache* cache);

  /// The workers' caches, or nullptr before attach_cache.
  [[nodiscard]] FastpathCache* cache() override;
  /// FastpathCache over the attached workers' caches: hot keys from every
  /// worker's ring (a key reported by several once), a lease from the
  /// shared versions, the value posted to every worker's install ring.
  [[nodiscard]] std::vector<FastpathHotKey> poll_hot(size_t max) override;
  [[nodiscard]] Result<FillLease> begin_fill(uint32_t vip_id, std::string_view key) override;
  size_t install(const FillLease& lease, std::string_view key, const mc::Value& value) override;
  [[nodiscard]] FastpathCacheCounters counters(uint32_t vip_id) const override;
  /// Reads every slot of every attached worker's store (HotCache::key_hits,
  /// O(entries x workers)), sums each key's hits over the workers.
  [[nodiscard]] std::vector<FastpathCachedKey> hottest(size_t n) const override;

 private:
  DpdkFastpath(Options options, std::unique_ptr<dpdk::SnapshotRcu> rcu)
      : options_(std::move(options)), rcu_(std::move(rcu)) {}

  Options options_;
  std::unique_ptr<dpdk::SnapshotRcu> rcu_;
  FastpathState initial_;
  std::array<uint8_t, 6> gateway_mac_{};
  mutable std::mutex workers_mu_;
  // The backend ids of the last published snapshot (active_flows counts
  // these); under workers_mu_.
  std::vector<uint32_t> backend_ids_;
  struct Attached {
    const dpdk::Worker* worker;
    unsigned lcore;
  };
  std::vector<Attached> workers_;
  std::vector<const dpdk::LcoreLoop*> loops_;
  std::vector<dpdk::WorkerCache*> caches_;
};

}  // namespace sluice::control
