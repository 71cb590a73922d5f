// SPDX-License-Identifier: BSD-2-Clause
// LcoreLoop: the poll loop of one worker lcore (see lcore_loop.hpp).
#include "dataplane/dpdk/lcore_loop.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cerrno>

#include "dataplane/abi/flow.h"
#include "dataplane/core/packet_parser.hpp"

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
  const uint16_t max_port = *std::max_element(c.data_ports.begin(), c.data_ports.end());
  loop->data_index_.assign(max_port + 1u, kNotData);
  for (size_t d = 0; d < c.data_ports.size(); ++d)
    loop->data_index_[c.data_ports[d]] = static_cast<uint8_t>(d);
  loop->outbox_taken_.assign(ports.queues().size(), 0);
  return loop;
}

uint32_t LcoreLoop::worker_of(const uint8_t* frame, uint32_t len, uint32_t workers) noexcept {
  const ParseResult pr = parse_packet(frame, len);
  if (pr.status != ParseStatus::kOk) return 0;
  const uint32_t h = sluice_flow_hash(&pr.key, kDistributionSeed);
  // Multiply-shift: the high bits pick the worker, no division.
  return static_cast<uint32_t>((uint64_t{h} * workers) >> 32);
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
  const auto n_workers = static_cast<uint16_t>(ports_.queues().size());
  // Worker 0 of a software-distributed port reads it and transmits for
  // the others; the others read their inbox.
  rte_ring* const inbox = q != 0 && ports_.any_software() ? ports_.inbox(q) : nullptr;
  const bool drains_outboxes = q == 0 && ports_.any_software();
  const uint64_t drain_tsc = (rte_get_tsc_hz() + 999'999) / 1'000'000 * kDrainUs;
  uint64_t last_drain = rte_get_tsc_cycles();
  rte_mbuf* pkts[kBurst];

  while (!stop.load(std::memory_order_relaxed)) {
    bool busy = false;
    for (size_t d = 0; d < n_data; ++d) {
      const bool software = ports_.software(d);
      if (software && q != 0) continue;
      uint16_t n = rte_eth_rx_burst(c.data_ports[d], q, pkts, kBurst);
      if (n == 0) continue;
      busy = true;
      if (software) n = distribute(static_cast<uint8_t>(d), pkts, n);
      if (n != 0) handle(static_cast<uint8_t>(d), pkts, n);
    }
    if (inbox != nullptr) {
      const auto n = static_cast<uint16_t>(
          rte_ring_dequeue_burst(inbox, reinterpret_cast<void**>(pkts), kBurst, nullptr));
      if (n != 0) {
        busy = true;
        handle(kNotData, pkts, n);
      }
    }
    if (c.kernel_port) {
      // The kernel's own traffic (ARP replies, its connections) goes out
      // of the first data port.
      const uint16_t n = rte_eth_rx_burst(*c.kernel_port, q, pkts, kBurst);
      for (uint16_t i = 0; i < n; ++i) send_data(0, pkts[i]);
      stats_.from_kernel += n;
      busy |= n != 0;
    }
    flush_outbox();
    if (drains_outboxes) {
      for (uint16_t w = 1; w < n_workers; ++w) {
        const auto n = static_cast<uint16_t>(rte_ring_dequeue_burst(
            ports_.outbox(w), reinterpret_cast<void**>(pkts), kBurst, nullptr));
        for (uint16_t i = 0; i < n; ++i) send_data(data_index_[pkts[i]->port], pkts[i]);
        outbox_taken_[w] += n;
        busy |= n != 0;
      }
    }
    release_holds();
    if (!busy) worker_.idle();
    const uint64_t now = rte_get_tsc_cycles();
    if (now - last_drain >= drain_tsc) {
      flush_all();
      // On the timer, not per iteration: the walk's pace (and its cache
      // footprint) is the same at any load.
      worker_.count_step();
      last_drain = now;
    }
    ++stats_.iterations;
    __atomic_store_n(&stats_.tx_unsent, tx_unsent_, __ATOMIC_RELAXED);
    __atomic_store_n(&stats_.kernel_unsent, kernel_unsent_, __ATOMIC_RELAXED);
  }
  flush_outbox();
  flush_all();
  __atomic_store_n(&stats_.tx_unsent, tx_unsent_, __ATOMIC_RELAXED);
  __atomic_store_n(&stats_.kernel_unsent, kernel_unsent_, __ATOMIC_RELAXED);
  return 0;
}

void LcoreLoop::handle(uint8_t d, rte_mbuf** pkts, uint16_t n) noexcept {
  const PortsConfig& c = ports_.config();
  Verdicts v;
  worker_.process_burst(pkts, n, v);
  // Out of the port each packet came in on.
  for (uint16_t i = 0; i < v.n_tx; ++i)
    send_data(d != kNotData ? d : data_index_[v.tx[i]->port], v.tx[i]);
  if (c.kernel_port) {
    for (uint16_t i = 0; i < v.n_kernel; ++i)
      (void)rte_eth_tx_buffer(*c.kernel_port, assignment_.queue, tx_[c.data_ports.size()],
                              v.kernel[i]);
    stats_.kernel_sent += v.n_kernel;
  } else if (v.n_kernel != 0) {
    rte_pktmbuf_free_bulk(v.kernel, v.n_kernel);
    kernel_unsent_ += v.n_kernel;
  }
  if (v.n_dropped != 0) rte_pktmbuf_free_bulk(v.dropped, v.n_dropped);
  send_holds();
}

void LcoreLoop::send_holds() noexcept {
  WorkerCache* c = worker_.cache();
  if (c == nullptr || !c->holds_unsealed()) return;
  // A write waiting in a TX buffer holds its key's fills: out with it now
  // (the timer would take up to kDrainUs).
  flush_outbox();
  flush_all();
  c->seal_holds(outbox_enqueued_);
  release_holds();
}

void LcoreLoop::release_holds() noexcept {
  WorkerCache* c = worker_.cache();
  if (c == nullptr || !c->holding()) return;
  // Without an outbox every ticket is 0, and what was sealed has left.
  const uint16_t q = assignment_.queue;
  const uint64_t done = q != 0 && ports_.any_software()
                            ? ports_.outbox_sent(q).load(std::memory_order_acquire)
                            : outbox_enqueued_;
  (void)c->release_holds(done, worker_.now_ms());
}

void LcoreLoop::send_data(uint8_t d, rte_mbuf* m) noexcept {
  const uint16_t port = ports_.config().data_ports[d];
  if (assignment_.queue == 0 || !ports_.software(d)) {
    (void)rte_eth_tx_buffer(port, assignment_.queue, tx_[d], m);
    return;
  }
  m->port = port;  // where worker 0 sends it
  out_[n_out_++] = m;
  if (n_out_ == kBurst) flush_outbox();
}

void LcoreLoop::flush_outbox() noexcept {
  if (n_out_ == 0) return;
  const unsigned sent = rte_ring_enqueue_burst(
      ports_.outbox(assignment_.queue), reinterpret_cast<void* const*>(out_), n_out_, nullptr);
  outbox_enqueued_ += sent;
  if (sent < n_out_) {
    rte_pktmbuf_free_bulk(out_ + sent, n_out_ - sent);
    tx_unsent_ += n_out_ - sent;
  }
  n_out_ = 0;
}

uint16_t LcoreLoop::distribute(uint8_t d, rte_mbuf** pkts, uint16_t n) noexcept {
  const auto n_workers = static_cast<uint32_t>(ports_.queues().size());
  const uint16_t port = ports_.config().data_ports[d];
  uint8_t to[kBurst];
  uint16_t kept = 0;
  bool others = false;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    // Headers are in the first segment (see Worker); a chained frame is
    // not a flow sluice balances.
    const uint32_t w = m->nb_segs != 1 ? 0
                                       : worker_of(rte_pktmbuf_mtod(m, const uint8_t*),
                                                   rte_pktmbuf_data_len(m), n_workers);
    to[i] = static_cast<uint8_t>(w);
    others |= w != 0;
  }
  if (!others) return n;
  rte_mbuf* batch[kBurst];
  for (uint32_t w = 1; w < n_workers; ++w) {
    unsigned k = 0;
    for (uint16_t i = 0; i < n; ++i)
      if (to[i] == w) batch[k++] = pkts[i];
    if (k == 0) continue;
    for (unsigned i = 0; i < k; ++i) batch[i]->port = port;
    const unsigned sent = rte_ring_enqueue_burst(ports_.inbox(static_cast<uint16_t>(w)),
                                                 reinterpret_cast<void* const*>(batch), k, nullptr);
    stats_.distributed += sent;
    if (sent < k) {
      rte_pktmbuf_free_bulk(batch + sent, k - sent);
      stats_.distribute_unsent += k - sent;
    }
  }
  for (uint16_t i = 0; i < n; ++i)
    if (to[i] == 0) pkts[kept++] = pkts[i];
  return kept;
}

void LcoreLoop::flush_all() noexcept {
  const PortsConfig& c = ports_.config();
  const uint16_t q = assignment_.queue;
  for (size_t d = 0; d < c.data_ports.size(); ++d)
    if (q == 0 || !ports_.software(d)) (void)rte_eth_tx_buffer_flush(c.data_ports[d], q, tx_[d]);
  if (c.kernel_port) (void)rte_eth_tx_buffer_flush(*c.kernel_port, q, tx_[c.data_ports.size()]);
  if (q != 0 || !ports_.any_software()) return;
  // What was taken from the outboxes went through the buffers just
  // flushed: it has left. Release order: after the flush.
  for (uint16_t w = 1; w < outbox_taken_.size(); ++w)
    ports_.outbox_sent(w).store(outbox_taken_[w], std::memory_order_release);
}

LoopStats LcoreLoop::stats() const noexcept {
  LoopStats s;
  s.tx_unsent = __atomic_load_n(&stats_.tx_unsent, __ATOMIC_RELAXED);
  s.kernel_sent = __atomic_load_n(&stats_.kernel_sent, __ATOMIC_RELAXED);
  s.kernel_unsent = __atomic_load_n(&stats_.kernel_unsent, __ATOMIC_RELAXED);
  s.from_kernel = __atomic_load_n(&stats_.from_kernel, __ATOMIC_RELAXED);
  s.distributed = __atomic_load_n(&stats_.distributed, __ATOMIC_RELAXED);
  s.distribute_unsent = __atomic_load_n(&stats_.distribute_unsent, __ATOMIC_RELAXED);
  s.iterations = __atomic_load_n(&stats_.iterations, __ATOMIC_RELAXED);
  return s;
}

}  // namespace sluice::dpdk
