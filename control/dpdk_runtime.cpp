// SPDX-License-Identifier: BSD-2-Clause
// DpdkRuntime: EAL, pool, ports, workers and their lcores (see
// dpdk_runtime.hpp).
#include "control/dpdk_runtime.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <new>
#include <optional>

#include "control/dpdk_fastpath.hpp"
#include "dataplane/dpdk/lcore_loop.hpp"
#include "dataplane/dpdk/ports.hpp"
#include "dataplane/dpdk/worker.hpp"

namespace sluice::control {

struct DpdkRuntime::Impl {
  // What an lcore runs: its loop until `stop`.
  struct Launch {
    dpdk::LcoreLoop* loop;
    const std::atomic<bool>* stop;
  };

  DpdkRuntimeOptions options;
  bool eal_up = false;
  rte_mempool* pool = nullptr;
  std::optional<dpdk::Ports> ports;
  // Shared with what fastpath() hands out, so either may go first.
  std::shared_ptr<DpdkFastpath> fastpath;
  // Checked and bumped by every worker's cache; outlives the workers.
  std::unique_ptr<CacheVersions> cache_versions;
  std::vector<std::unique_ptr<dpdk::Worker>> workers;
  std::vector<std::unique_ptr<dpdk::LcoreLoop>> loops;
  std::vector<Launch> launches;
  std::atomic<bool> stop{false};
  bool launched = false;

  ~Impl() {
    if (launched) {
      stop.store(true, std::memory_order_relaxed);
      rte_eal_mp_wait_lcore();
    }
    for (const auto& l : loops)
      if (fastpath) fastpath->detach_loop(l.get());
    loops.clear();
    for (const auto& w : workers) {
      if (!fastpath) continue;
      fastpath->detach_worker(w.get());
      if (w->cache() != nullptr) fastpath->detach_cache(w->cache());
    }
    // Workers leave the fast path's RCU as they go.
    workers.clear();
    fastpath.reset();
    ports.reset();
    if (pool != nullptr) rte_mempool_free(pool);
    if (eal_up) {
      (void)rte_eal_cleanup();
      std::error_code ignored;
      std::filesystem::remove_all(options.runtime_dir, ignored);
    }
  }
};

namespace {

// The fast path as the Balancer holds it: shares the DpdkFastpath with the
// runtime, so neither outlives what the other uses.
class SharedFastpath final : public Fastpath {
 public:
  explicit SharedFastpath(std::shared_ptr<DpdkFastpath> fp) : fp_(std::move(fp)) {}
  [[nodiscard]] FastpathInfo info() const override { return fp_->info(); }
  [[nodiscard]] const FastpathState& initial_state() const override { return fp_->initial_state(); }
  [[nodiscard]] Status publish(const FastpathSnapshot& s) override { return fp_->publish(s); }
  [[nodiscard]] Status refresh_next_hop(std::span<const IpAddress> targets) override {
    return fp_->refresh_next_hop(targets);
  }
  [[nodiscard]] Result<sluice_global_stats> global_stats() const override {
    return fp_->global_stats();
  }
  [[nodiscard]] Result<sluice_vip_stats> vip_stats(uint32_t vip_id) const override {
    return fp_->vip_stats(vip_id);
  }
  [[nodiscard]] Result<sluice_backend_stats> backend_stats(uint32_t id) const override {
    return fp_->backend_stats(id);
  }
  [[nodiscard]] Result<ActiveFlowCounts> active_flows() const override {
    return fp_->active_flows();
  }
  [[nodiscard]] std::optional<FlowTableSize> flow_table_size() const override {
    return fp_->flow_table_size();
  }
  [[nodiscard]] FastpathCache* cache() override { return fp_->cache(); }
  [[nodiscard]] std::vector<WorkerStats> worker_stats() const override {
    return fp_->worker_stats();
  }

 private:
  std::shared_ptr<DpdkFastpath> fp_;
};

std::string mac_text(const rte_ether_addr& a) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", a.addr_bytes[0], a.addr_bytes[1],
                a.addr_bytes[2], a.addr_bytes[3], a.addr_bytes[4], a.addr_bytes[5]);
  return buf;
}

Result<uint16_t> port_id(const std::string& name) {
  uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0)
    return Error{-ENODEV, "dpdk: no port \"" + name + "\" (did EAL create it? see its log above)"};
  return id;
}

int run_loop(void* arg) {
  const auto* l = static_cast<const DpdkRuntime::Impl::Launch*>(arg);
  return l->loop->run(*l->stop);
}

}  // namespace

DpdkRuntime::DpdkRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DpdkRuntime::~DpdkRuntime() = default;

Result<std::unique_ptr<DpdkRuntime>> DpdkRuntime::start(const DpdkRuntimeOptions& options) {
  auto impl = std::make_unique<Impl>();
  Impl& r = *impl;
  r.options = options;
  std::vector<std::string> args = options.eal_args;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0)
    return Error{-rte_errno, std::string("rte_eal_init: ") + rte_strerror(rte_errno)};
  r.eal_up = true;

  r.pool = rte_pktmbuf_pool_create("sluice_mbufs", options.mbufs, options.mbuf_cache, 0,
                                   RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
  if (r.pool == nullptr)
    return Error{-rte_errno, "dpdk: mbuf pool of " + std::to_string(options.mbufs) +
                                 " mbufs: " + rte_strerror(rte_errno)};

  dpdk::PortsConfig pc;
  for (const std::string& name : options.data_ports) {
    auto id = port_id(name);
    if (!id.ok()) return id.error();
    pc.data_ports.push_back(id.value());
  }
  if (options.kernel_port) {
    auto id = port_id(*options.kernel_port);
    if (!id.ok()) return id.error();
    pc.kernel_port = id.value();
  }
  pc.worker_lcores = options.worker_lcores;
  pc.rx_desc = options.rx_desc;
  pc.tx_desc = options.tx_desc;
  pc.pool = r.pool;
  pc.link_wait = std::chrono::milliseconds(options.link_wait_ms);
  pc.force_software = options.force_software_distribution;
  auto ports = dpdk::Ports::start(pc);
  if (!ports.ok()) return ports.error();
  r.ports.emplace(std::move(ports.value()));

  DpdkFastpath::Options fo;
  for (const std::string& name : options.data_ports)
    fo.interface += (fo.interface.empty() ? "" : ",") + name;
  fo.max_workers = static_cast<uint32_t>(options.worker_lcores.size());
  rte_ether_addr mac{};
  (void)rte_eth_macaddr_get(pc.data_ports[0], &mac);
  std::copy(std::begin(mac.addr_bytes), std::end(mac.addr_bytes), fo.port_mac.begin());
  auto fp = DpdkFastpath::create(fo);
  if (!fp.ok()) return fp.error();
  r.fastpath = std::move(fp.value());

  // Each data port's own MAC is the source of what leaves it.
  std::vector<std::optional<std::array<uint8_t, 6>>> port_macs;
  for (const uint16_t id : pc.data_ports) {
    rte_ether_addr a{};
    if (rte_eth_macaddr_get(id, &a) != 0) continue;
    if (port_macs.size() <= id) port_macs.resize(id + 1u);
    port_macs[id].emplace();
    std::copy(std::begin(a.addr_bytes), std::end(a.addr_bytes), port_macs[id]->begin());
  }
  if (options.cache) {
    r.cache_versions.reset(new (std::nothrow) CacheVersions);
    if (!r.cache_versions) return Error{-ENOMEM, "allocating the cache versions"};
  }
  for (const dpdk::QueueAssignment& q : r.ports->queues()) {
    dpdk::WorkerConfig wc;
    if (options.cache)
      wc.cache = dpdk::WorkerCacheConfig{.store = {.max_entries = options.cache_entries,
                                                   .max_bytes = options.cache_bytes,
                                                   .ttl_ms = options.cache_ttl_ms,
                                                   .write_settle_ms = options.cache_write_settle_ms},
                                         .versions = r.cache_versions.get(),
                                         .hot_threshold = options.cache_hot_threshold,
                                         .period_ms = options.cache_period_ms};
    wc.port_macs = port_macs;
    wc.reader_id = q.queue;
    wc.hash_seed = options.hash_seed;
    wc.flows = {.capacity = options.flows_per_worker,
                .tcp_idle_ms = options.tcp_idle_ms,
                .udp_idle_ms = options.udp_idle_ms};
    auto w = dpdk::Worker::create(wc, r.fastpath->rcu());
    if (!w.ok()) return w.error();
    r.workers.push_back(std::move(w.value()));
    r.fastpath->attach_worker(r.workers.back().get(), q.lcore);
    if (r.workers.back()->cache() != nullptr) r.fastpath->attach_cache(r.workers.back()->cache());
    auto loop = dpdk::LcoreLoop::create(*r.ports, q, *r.workers.back());
    if (!loop.ok()) return loop.error();
    r.loops.push_back(std::move(loop.value()));
    r.fastpath->attach_loop(r.loops.back().get());
  }
  for (const auto& loop : r.loops) r.launches.push_back({loop.get(), &r.stop});
  return std::unique_ptr<DpdkRuntime>(new DpdkRuntime(std::move(impl)));
}

std::unique_ptr<Fastpath> DpdkRuntime::fastpath() {
  return std::make_unique<SharedFastpath>(impl_->fastpath);
}

Status DpdkRuntime::launch() {
  Impl& r = *impl_;
  const auto& queues = r.ports->queues();
  for (size_t i = 0; i < queues.size(); ++i) {
    const int rc = rte_eal_remote_launch(run_loop, &r.launches[i], queues[i].lcore);
    if (rc != 0)
      return Error{rc < 0 ? rc : -EBUSY,
                   "dpdk: cannot launch the worker on lcore " + std::to_string(queues[i].lcore)};
    r.launched = true;
  }
  return Ok{};
}

std::vector<std::string> DpdkRuntime::describe() const {
  const Impl& r = *impl_;
  std::vector<std::string> out;
  const dpdk::PortsConfig& c = r.ports->config();
  const size_t n = r.ports->queues().size();
  const auto line = [&](uint16_t id, const std::string& name, const std::string& role) {
    rte_ether_addr mac{};
    (void)rte_eth_macaddr_get(id, &mac);
    rte_eth_dev_info info{};
    (void)rte_eth_dev_info_get(id, &info);
    return role + " port " + std::to_string(id) + " " + name + " (" +
           (info.driver_name != nullptr ? info.driver_name : "?") + ", " + mac_text(mac) + ")";
  };
  for (size_t i = 0; i < c.data_ports.size(); ++i) {
    const std::string how = n == 1 ? "one worker"
                            : r.ports->software(i)
                                ? "software distribution by flow hash (read by worker 0)"
                                : "hardware RSS, " + std::to_string(n) + " queues";
    out.push_back(line(c.data_ports[i], r.options.data_ports[i], "data") + ": " + how);
  }
  if (c.kernel_port)
    out.push_back(line(*c.kernel_port, *r.options.kernel_port, "kernel") + ": " +
                  std::to_string(n) + " queues");
  for (const dpdk::QueueAssignment& q : r.ports->queues())
    out.push_back("worker " + std::to_string(q.queue) + " on lcore " + std::to_string(q.lcore));
  return out;
}

}  // namespace sluice::control
