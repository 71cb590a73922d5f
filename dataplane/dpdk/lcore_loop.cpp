// SPDX-License-Identifier: BSD-2-Clause
// LcoreLoop: the poll loop of one worker lcore (see lcore_loop.hpp).
#include "dataplane/dpdk/lcore_loop.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <cerrno>

namespace sluice::dpdk {

Result<std::unique_ptr<LcoreLoop>> LcoreLoop::create(const Ports& ports,
                                                     const QueueAssignment& assignment,
                                                     Worker& worker) {
  std::unique_ptr<LcoreLoop> loop(new LcoreLoop(ports, assignment, worker));
  const PortsConfig& c = ports.config();
  const size_t n = c.data_ports.size() + (c.kernel_port ? 1 : 0);
  const int socket = static_cast<int>(rte_lcore_to_socket_id(assignment.lcore));
  for (size_t i = 0; i < n; ++i) {
    auto* b = static_cast<rte_eth_dev_tx_buffer*>(
        rte_zmalloc_socket("sluice_tx_buffer", RTE_ETH_TX_BUFFER_SIZE(kBurst), 0, socket));
    if (b == nullptr) return Error{-ENOMEM, "lcore loop: cannot allocate a TX buffer"};
    loop->tx_.push_back(b);
    (void)rte_eth_tx_buffer_init(b, kBurst);
    const bool kernel = i == c.data_ports.size();
    (void)rte_eth_tx_buffer_set_err_callback(b, rte_eth_tx_buffer_count_callback,
                                             kernel ? &loop->kernel_unsent_ : &loop->tx_unsent_);
  }
  return loop;
}

LcoreLoop::LcoreLoop(const Ports& ports, const QueueAssignment& assignment, Worker& worker)
    : ports_(ports), assignment_(assignment), worker_(worker) {}

LcoreLoop::~LcoreLoop() {
  for (rte_eth_dev_tx_buffer* b : tx_) rte_free(b);
}

int LcoreLoop::run(const std::atomic<bool>& stop) noexcept {
  const PortsConfig& c = ports_.config();
  const uint16_t q = assignment_.queue;
  const size_t n_data = c.data_ports.size();
  const uint64_t drain_tsc = (rte_get_tsc_hz() + 999'999) / 1'000'000 * kDrainUs;
  uint64_t last_drain = rte_get_tsc_cycles();
  rte_mbuf* pkts[kBurst];
  Verdicts v;

  while (!stop.load(std::memory_order_relaxed)) {
    bool busy = false;
    for (size_t d = 0; d < n_data; ++d) {
      const uint16_t port = c.data_ports[d];
      const uint16_t n = rte_eth_rx_burst(port, q, pkts, kBurst);
      if (n == 0) continue;
      busy = true;
      worker_.process_burst(pkts, n, v);
      for (uint16_t i = 0; i < v.n_tx; ++i) (void)rte_eth_tx_buffer(port, q, tx_[d], v.tx[i]);
      if (c.kernel_port) {
        for (uint16_t i = 0; i < v.n_kernel; ++i)
          (void)rte_eth_tx_buffer(*c.kernel_port, q, tx_[n_data], v.kernel[i]);
        stats_.kernel_sent += v.n_kernel;
      } else if (v.n_kernel != 0) {
        rte_pktmbuf_free_bulk(v.kernel, v.n_kernel);
        kernel_unsent_ += v.n_kernel;
      }
      if (v.n_dropped != 0) rte_pktmbuf_free_bulk(v.dropped, v.n_dropped);
    }
    if (c.kernel_port) {
      // The kernel's own traffic (ARP replies, its connections) goes out
      // of the first data port.
      const uint16_t n = rte_eth_rx_burst(*c.kernel_port, q, pkts, kBurst);
      for (uint16_t i = 0; i < n; ++i) (void)rte_eth_tx_buffer(c.data_ports[0], q, tx_[0], pkts[i]);
      stats_.from_kernel += n;
      busy |= n != 0;
    }
    if (!busy) worker_.idle();
    const uint64_t now = rte_get_tsc_cycles();
    if (now - last_drain >= drain_tsc) {
      flush_all();
      last_drain = now;
    }
    ++stats_.iterations;
    __atomic_store_n(&stats_.tx_unsent, tx_unsent_, __ATOMIC_RELAXED);
    __atomic_store_n(&stats_.kernel_unsent, kernel_unsent_, __ATOMIC_RELAXED);
  }
  flush_all();
  __atomic_store_n(&stats_.tx_unsent, tx_unsent_, __ATOMIC_RELAXED);
  __atomic_store_n(&stats_.kernel_unsent, kernel_unsent_, __ATOMIC_RELAXED);
  return 0;
}

void LcoreLoop::flush_all() noexcept {
  const PortsConfig& c = ports_.config();
  const uint16_t q = assignment_.queue;
  for (size_t d = 0; d < c.data_ports.size(); ++d)
    (void)rte_eth_tx_buffer_flush(c.data_ports[d], q, tx_[d]);
  if (c.kernel_port) (void)rte_eth_tx_buffer_flush(*c.kernel_port, q, tx_[c.data_ports.size()]);
}

LoopStats LcoreLoop::stats() const noexcept {
  LoopStats s;
  s.tx_unsent = __atomic_load_n(&stats_.tx_unsent, __ATOMIC_RELAXED);
  s.kernel_sent = __atomic_load_n(&stats_.kernel_sent, __ATOMIC_RELAXED);
  s.kernel_unsent = __atomic_load_n(&stats_.kernel_unsent, __ATOMIC_RELAXED);
  s.from_kernel = __atomic_load_n(&stats_.from_kernel, __ATOMIC_RELAXED);
  s.iterations = __atomic_load_n(&stats_.iterations, __ATOMIC_RELAXED);
  return s;
}

}  // namespace sluice::dpdk
