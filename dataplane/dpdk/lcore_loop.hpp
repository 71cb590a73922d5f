// SPDX-License-Identifier: BSD-2-Clause
// LcoreLoop: one worker lcore's poll loop -- rx_burst on its queues (or
// its inbox ring, for ports distributed in software), Worker::process_burst,
// buffered tx_burst drained on a timer, the exception path to and from the
// kernel port.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/core/result.hpp"
#include "dataplane/dpdk/ports.hpp"
#include "dataplane/dpdk/worker.hpp"

struct rte_eth_dev_tx_buffer;
struct rte_mbuf;

namespace sluice::dpdk {

/// The loop's own counters (the Worker counts each packet's verdict; these
/// count what happened after it). Packets.
struct LoopStats {
  uint64_t tx_unsent = 0;          ///< to a data port, freed because its TX queue was full
  uint64_t kernel_sent = 0;        ///< handed to the kernel port
  uint64_t kernel_unsent = 0;      ///< for the kernel, freed: its TX queue full, or no kernel port
  uint64_t from_kernel = 0;        ///< received from the kernel, sent out of data port 0
  uint64_t distributed = 0;        ///< read here, handed to another worker (software distribution)
  uint64_t distribute_unsent = 0;  ///< for another worker, freed: its inbox ring full
  uint64_t iterations = 0;         ///< loop iterations
};

/// One worker lcore's loop over its queue of every port (l3fwd's shape:
/// rx_burst -> process -> buffered tx, drained every kDrainUs; the
/// worker's active-flow count advances a step on the same timer).
/// On a port distributed in software (Ports) worker 0 reads the port,
/// keeps its own flows and enqueues the others' to their inboxes (by the
/// flow hash with kDistributionSeed, so a flow always meets one worker);
/// the others read their inbox and hand what they transmit on that port to
/// worker 0 through their outbox. With the hot-object cache, a burst that
/// held a write (WorkerCache holds) is transmitted at once, and its holds
/// are released when it has left: at once, or when worker 0 reports the
/// outbox flushed (Ports::outbox_sent, on its drain timer). No locks,
/// syscalls, allocation or logging inside run().
class LcoreLoop {
 public:
  /// Packets per rx_burst and per TX buffer.
  static constexpr uint16_t kBurst = 32;
  /// Longest a packet waits in a TX buffer, microseconds.
  static constexpr uint64_t kDrainUs = 100;
  /// Seed of the flow hash that picks a flow's worker in software
  /// distribution: not the flow table's seed, so a worker's flows still
  /// spread over all of its table's buckets.
  static constexpr uint32_t kDistributionSeed = 0x5bd1e995;

  /// The worker (of `workers`) that software distribution gives a frame:
  /// by the flow hash of its 5-tuple (addresses only for fragments; the
  /// inner flow for ICMP errors), worker 0 for anything that is not a flow.
  /// Every fragment of a datagram (first and later: the parser gives them
  /// all ports 0) goes to one worker, which the per-worker FragTable needs
  /// (Worker: a later fragment finds its first fragment's record there).
  [[nodiscard]] static uint32_t worker_of(const uint8_t* frame, uint32_t len,
                                          uint32_t workers) noexcept;

  /// Sets up the TX buffers (on the lcore's NUMA node) for queue
  /// `assignment.queue` of every port in `ports`. `worker` and `ports`
  /// must outlive the loop. Errors: -ENOMEM.
  [[nodiscard]] static Result<std::unique_ptr<LcoreLoop>> create(const Ports& ports,
                                                                 const QueueAssignment& assignment,
                                                                 Worker& worker);
  LcoreLoop(const LcoreLoop&) = delete;
  LcoreLoop& operator=(const LcoreLoop&) = delete;
  ~LcoreLoop();

  /// Polls until `stop` becomes true, then flushes the TX buffers.
  /// Returns 0 (an lcore function's result).
  int run(const std::atomic<bool>& stop) noexcept;

  /// A copy of the counters; safe from another thread (see Worker).
  [[nodiscard]] LoopStats stats() const noexcept;

 private:
  static constexpr uint8_t kNotData = 0xff;

  LcoreLoop(const Ports& ports, const QueueAssignment& assignment, Worker& worker);
  // Balances pkts[0..n) and sends the verdicts on: data port index `d`, or
  // each packet's own port (m->port) when d is kNotData (inbox packets).
  void handle(uint8_t d, rte_mbuf** pkts, uint16_t n) noexcept;
  // One packet out of data port index d: its TX buffer, or (a software
  // port, not worker 0) the outbox.
  void send_data(uint8_t d, rte_mbuf* m) noexcept;
  // Keeps worker 0's share of pkts[0..n) (read from data port index d) in
  // place and enqueues the rest to their workers; returns how many stay.
  uint16_t distribute(uint8_t d, rte_mbuf** pkts, uint16_t n) noexcept;
  void flush_outbox() noexcept;
  // Flushes every TX buffer this lcore owns; worker 0 then publishes what
  // it has taken from each outbox as sent (Ports::outbox_sent).
  void flush_all() noexcept;
  // After a burst whose writes took holds (WorkerCache): transmits
  // everything now and seals the holds with the outbox ticket.
  void send_holds() noexcept;
  // Releases the holds whose packets have left: all of them without an
  // outbox, else those worker 0 has flushed.
  void release_holds() noexcept;

  const Ports& ports_;
  QueueAssignment assignment_;
  Worker& worker_;
  // One per data port (same order), then the kernel port's if any.
  std::vector<rte_eth_dev_tx_buffer*> tx_;
  // Data port index by port id (kNotData for others).
  std::vector<uint8_t> data_index_;
  // Packets for worker 0 to transmit, waiting for the outbox.
  rte_mbuf* out_[kBurst];
  uint16_t n_out_ = 0;
  // Packets this worker ever put in its outbox: the ticket of its holds.
  uint64_t outbox_enqueued_ = 0;
  // Worker 0: packets taken from each worker's outbox, by queue.
  std::vector<uint64_t> outbox_taken_;
  alignas(64) LoopStats stats_{};
  // rte_eth_tx_buffer's error callback counts into these.
  uint64_t tx_unsent_ = 0;
  uint64_t kernel_unsent_ = 0;
};

}  // namespace sluice::dpdk
