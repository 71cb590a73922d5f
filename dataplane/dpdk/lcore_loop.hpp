// SPDX-License-Identifier: BSD-2-Clause
// LcoreLoop: one worker lcore's poll loop -- rx_burst on its queues,
// Worker::process_burst, buffered tx_burst drained on a timer, the
// exception path to and from the kernel port.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/core/result.hpp"
#include "dataplane/dpdk/ports.hpp"
#include "dataplane/dpdk/worker.hpp"

struct rte_eth_dev_tx_buffer;

namespace sluice::dpdk {

/// The loop's own counters (the Worker counts each packet's verdict; these
/// count what happened after it). Packets.
struct LoopStats {
  uint64_t tx_unsent = 0;      ///< to a data port, freed because its TX queue was full
  uint64_t kernel_sent = 0;    ///< handed to the kernel port
  uint64_t kernel_unsent = 0;  ///< for the kernel, freed: its TX queue full, or no kernel port
  uint64_t from_kernel = 0;    ///< received from the kernel, sent out of data port 0
  uint64_t iterations = 0;     ///< loop iterations
};

/// One worker lcore's loop over its queue of every port (l3fwd's shape:
/// rx_burst -> process -> buffered tx, drained every kDrainUs).
/// No locks, syscalls, allocation or logging inside run().
class LcoreLoop {
 public:
  /// Packets per rx_burst and per TX buffer.
  static constexpr uint16_t kBurst = 32;
  /// Longest a packet waits in a TX buffer, microseconds.
  static constexpr uint64_t kDrainUs = 100;

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
  LcoreLoop(const Ports& ports, const QueueAssignment& assignment, Worker& worker);
  void flush_all() noexcept;

  const Ports& ports_;
  QueueAssignment assignment_;
  Worker& worker_;
  // One per data port (same order), then the kernel port's if any.
  std::vector<rte_eth_dev_tx_buffer*> tx_;
  alignas(64) LoopStats stats_{};
  // rte_eth_tx_buffer's error callback counts into these.
  uint64_t tx_unsent_ = 0;
  uint64_t kernel_unsent_ = 0;
};

}  // namespace sluice::dpdk
