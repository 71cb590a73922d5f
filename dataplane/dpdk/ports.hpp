// SPDX-License-Identifier: BSD-2-Clause
// Ports: the validated {port, queue, lcore} table of the DPDK path and the
// set-up of its ethdev ports (RSS on the 5-tuple, one RX and one TX queue
// per worker per port, or software distribution over rings where a port
// has no RSS; link check), with an RAII owner that stops them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "dataplane/core/result.hpp"

struct rte_mempool;
struct rte_ring;

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
  /// Software distribution on every data port, even one with RSS (tests,
  /// and NICs whose RSS hash is not trusted).
  bool force_software = false;
};

/// One worker's queues: queue `queue` of every data port and of the kernel
/// port belongs to lcore `lcore`.
struct QueueAssignment {
  unsigned lcore = 0;
  uint16_t queue = 0;
};

/// The validated queue table of a PortsConfig: worker i gets queue i of
/// every port (of a software-distributed port, see Ports, only worker 0
/// has one). Errors (-EINVAL, naming it): no data port or worker, a port
/// id that is not a probed port, a port listed twice or also the kernel
/// port, an lcore that is not enabled, is the main lcore or is listed
/// twice, more workers than a port with RSS or the kernel port has RX or
/// TX queues, no pool.
[[nodiscard]] Result<std::vector<QueueAssignment>> plan_queues(const PortsConfig& config);

/// Whether data port `port` is distributed in software with `workers`
/// workers: more than one worker, and the port has no RSS over IP and TCP
/// or `force` is set. Errors: dev_info_get's.
[[nodiscard]] Result<bool> uses_software_distribution(uint16_t port, size_t workers, bool force);

/// The started ports; stops and closes them when destroyed.
///
/// Distribution: a data port with RSS (and more than one worker) gets one
/// RX and one TX queue per worker, RSS over IP, TCP and UDP. A port without
/// RSS (net_af_packet, net_tap, net_ring, ...; or any with force_software)
/// gets one RX and one TX queue, both worker 0's: worker 0 reads the port,
/// sends each packet to the worker its flow hash names over that worker's
/// inbox ring, and transmits what the other workers put in their outbox
/// rings. So every packet of a flow meets the same worker (and flow table)
/// either way. The kernel port always has one queue per worker.
class Ports {
 public:
  /// Ring slots of each inbox and outbox (a power of two).
  static constexpr unsigned kRingSize = 4096;

  /// Plans the queues (plan_queues), configures every port (RSS over IP,
  /// TCP and UDP with the hash functions the PMD offers, or software
  /// distribution, as above), sets up the queues on the port's NUMA node,
  /// creates the rings when a port is distributed in software, starts the
  /// ports, enables promiscuous mode where the PMD has it, gives the kernel
  /// port the first data port's MAC (where the PMD can change it and the
  /// data port has one), and
  /// waits up to link_wait for each data port's link.
  /// Errors: plan_queues()'s; the failing ethdev call's -errno, naming
  /// port and call; -ENOMEM for a ring; -ENETDOWN when a data port's link
  /// stays down.
  [[nodiscard]] static Result<Ports> start(const PortsConfig& config);

  Ports(Ports&& other) noexcept;
  Ports& operator=(Ports&& other) noexcept;
  Ports(const Ports&) = delete;
  Ports& operator=(const Ports&) = delete;
  ~Ports();

  [[nodiscard]] const std::vector<QueueAssignment>& queues() const { return queues_; }
  [[nodiscard]] const PortsConfig& config() const { return config_; }
  /// Whether data port config().data_ports[i] is distributed in software.
  [[nodiscard]] bool software(size_t i) const { return software_[i]; }
  [[nodiscard]] bool any_software() const { return !inbox_.empty(); }
  /// Worker `queue`'s inbox (packets of its flows, from worker 0) and
  /// outbox (its packets for a software port, to worker 0): single
  /// producer, single consumer. Only when any_software().
  [[nodiscard]] rte_ring* inbox(uint16_t queue) const { return inbox_[queue]; }
  [[nodiscard]] rte_ring* outbox(uint16_t queue) const { return outbox_[queue]; }
  /// Packets worker 0 has taken from worker `queue`'s outbox and flushed
  /// out of their TX buffer (sent or dropped), in all: written by worker 0
  /// (release order, after the flush), read by worker `queue` (acquire)
  /// to know which of the packets it enqueued have left (WorkerCache
  /// holds). Only when any_software().
  [[nodiscard]] std::atomic<uint64_t>& outbox_sent(uint16_t queue) const {
    return outbox_sent_[queue].value;
  }

 private:
  Ports() = default;
  void stop() noexcept;

  PortsConfig config_{};
  std::vector<QueueAssignment> queues_;
  std::vector<uint16_t> started_;
  std::vector<bool> software_;
  std::vector<rte_ring*> inbox_;
  std::vector<rte_ring*> outbox_;
  // By queue, each in a cache line of its own (written by worker 0, read
  // by its owner).
  struct alignas(64) OutboxSent {
    std::atomic<uint64_t> value{0};
  };
  std::unique_ptr<OutboxSent[]> outbox_sent_;
};

}  // namespace sluice::dpdk
