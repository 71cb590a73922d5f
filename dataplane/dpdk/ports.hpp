// SPDX-License-Identifier: BSD-2-Clause
// Ports: the validated {port, queue, lcore} table of the DPDK path and the
// set-up of its ethdev ports (RSS on the 5-tuple, one RX and one TX queue
// per worker per port, link check), with an RAII owner that stops them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/core/result.hpp"

struct rte_mempool;

namespace sluice::dpdk {

/// What the operator asked for, by DPDK port id and lcore id.
struct PortsConfig {
  /// Ports whose traffic is balanced (PCI devices or vdevs); at least one.
  /// Forwarded packets and too-big replies leave the port they came in on.
  std::vector<uint16_t> data_ports;
  /// The exception port toward the kernel (net_tap, virtio-user): non-VIP
  /// traffic, ARP and ND go there, and what the kernel sends on it goes out
  /// of data_ports[0]. None: such packets are dropped (counted by the loop).
  std::optional<uint16_t> kernel_port;
  /// Worker lcores, one queue each on every port; distinct, enabled, none
  /// the main lcore.
  std::vector<unsigned> worker_lcores;
  /// Descriptors per RX / TX queue.
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  /// RX buffers; its data room must hold the ports' MTU.
  rte_mempool* pool = nullptr;
  /// How long start() waits for each data port's link to come up.
  std::chrono::milliseconds link_wait{3000};
};

/// One worker's queues: queue `queue` of every data port and of the kernel
/// port belongs to lcore `lcore`.
struct QueueAssignment {
  unsigned lcore = 0;
  uint16_t queue = 0;
};

/// The validated queue table of a PortsConfig: worker i gets queue i of
/// every port. Errors (-EINVAL, naming it): no data port or worker, a port
/// id that is not a probed port, a port listed twice or also the kernel
/// port, an lcore that is not enabled, is the main lcore or is listed
/// twice, more workers than a port has RX or TX queues, more than one worker
/// on a port without RSS (software distribution is not built), no pool.
[[nodiscard]] Result<std::vector<QueueAssignment>> plan_queues(const PortsConfig& config);

/// The started ports; stops and closes them when destroyed.
class Ports {
 public:
  /// Plans the queues (plan_queues), configures every port (RSS over IP,
  /// TCP and UDP with the hash functions the PMD offers, when there is more
  /// than one worker), sets up the queues on the port's NUMA node, starts
  /// the ports, enables promiscuous mode on data ports where the PMD has
  /// it, and waits up to link_wait for each data port's link.
  /// Errors: plan_queues()'s; the failing ethdev call's -errno, naming
  /// port and call; -ENETDOWN when a data port's link stays down.
  [[nodiscard]] static Result<Ports> start(const PortsConfig& config);

  Ports(Ports&& other) noexcept;
  Ports& operator=(Ports&& other) noexcept;
  Ports(const Ports&) = delete;
  Ports& operator=(const Ports&) = delete;
  ~Ports();

  [[nodiscard]] const std::vector<QueueAssignment>& queues() const { return queues_; }
  [[nodiscard]] const PortsConfig& config() const { return config_; }

 private:
  Ports() = default;
  void stop() noexcept;

  PortsConfig config_{};
  std::vector<QueueAssignment> queues_;
  std::vector<uint16_t> started_;
};

}  // namespace sluice::dpdk
