// SPDX-License-Identifier: BSD-2-Clause
// Ports: queue-table validation and ethdev set-up (see ports.hpp).
#include "dataplane/dpdk/ports.hpp"

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <string>
#include <thread>

namespace sluice::dpdk {
namespace {

Error invalid(const std::string& what) { return Error{-EINVAL, "dpdk ports: " + what}; }

Error failed(int rc, uint16_t port, const char* call) {
  return Error{rc < 0 ? rc : -EIO, "dpdk ports: port " + std::to_string(port) + ": " + call +
                                       " failed (" + std::to_string(rc) + ")"};
}

}  // namespace

Result<bool> uses_software_distribution(uint16_t port, size_t workers, bool force) {
  if (workers < 2) return false;
  if (force) return true;
  rte_eth_dev_info info{};
  if (const int rc = rte_eth_dev_info_get(port, &info); rc != 0)
    return failed(rc, port, "dev_info_get");
  return (info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) == 0;
}

Result<std::vector<QueueAssignment>> plan_queues(const PortsConfig& config) {
  if (config.data_ports.empty()) return invalid("no data port");
  if (config.worker_lcores.empty()) return invalid("no worker lcore");
  if (config.pool == nullptr) return invalid("no mbuf pool");
  std::vector<uint16_t> all = config.data_ports;
  if (config.kernel_port) all.push_back(*config.kernel_port);
  std::set<uint16_t> seen_ports;
  const auto n = static_cast<uint16_t>(config.worker_lcores.size());
  for (uint16_t p : all) {
    if (!rte_eth_dev_is_valid_port(p))
      return invalid("port " + std::to_string(p) + " does not exist");
    if (!seen_ports.insert(p).second) return invalid("port " + std::to_string(p) + " listed twice");
    rte_eth_dev_info info{};
    if (const int rc = rte_eth_dev_info_get(p, &info); rc != 0)
      return failed(rc, p, "dev_info_get");
    const bool kernel = config.kernel_port && p == *config.kernel_port;
    auto software = uses_software_distribution(p, n, config.force_software);
    if (!software.ok()) return software.error();
    const uint16_t queues = !kernel && software.value() ? 1 : n;
    if (queues > info.max_rx_queues || queues > info.max_tx_queues)
      return invalid("port " + std::to_string(p) + " has " + std::to_string(info.max_rx_queues) +
                     " RX / " + std::to_string(info.max_tx_queues) + " TX queues, not " +
                     std::to_string(queues));
  }
  std::set<unsigned> seen_lcores;
  std::vector<QueueAssignment> out;
  for (uint16_t q = 0; q < n; ++q) {
    const unsigned l = config.worker_lcores[q];
    if (l >= RTE_MAX_LCORE || !rte_lcore_is_enabled(l))
      return invalid("lcore " + std::to_string(l) + " is not enabled (EAL -l)");
    if (l == rte_get_main_lcore())
      return invalid("lcore " + std::to_string(l) + " is the main lcore");
    if (!seen_lcores.insert(l).second)
      return invalid("lcore " + std::to_string(l) + " listed twice");
    out.push_back({l, q});
  }
  return out;
}

Result<Ports> Ports::start(const PortsConfig& config) {
  auto planned = plan_queues(config);
  if (!planned.ok()) return planned.error();
  Ports ports;
  ports.config_ = config;
  ports.queues_ = std::move(planned.value());
  const auto n = static_cast<uint16_t>(ports.queues_.size());

  std::vector<uint16_t> all = config.data_ports;
  if (config.kernel_port) all.push_back(*config.kernel_port);
  for (uint16_t p : config.data_ports) {
    auto software = uses_software_distribution(p, n, config.force_software);
    if (!software.ok()) return software.error();
    ports.software_.push_back(software.value());
  }
  if (std::find(ports.software_.begin(), ports.software_.end(), true) != ports.software_.end()) {
    ports.outbox_sent_.reset(new OutboxSent[n]);
    for (uint16_t q = 0; q < n; ++q) {
      const int socket = static_cast<int>(rte_lcore_to_socket_id(ports.queues_[q].lcore));
      for (auto* boxes : {&ports.inbox_, &ports.outbox_}) {
        // Names are global to the process (and its file prefix).
        const std::string name = std::string(boxes == &ports.inbox_ ? "sl_in_" : "sl_out_") +
                                 std::to_string(config.data_ports[0]) + "_" + std::to_string(q);
        rte_ring* r =
            rte_ring_create(name.c_str(), kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr) return Error{-ENOMEM, "dpdk ports: cannot create ring " + name};
        boxes->push_back(r);
      }
    }
  }
  for (size_t i = 0; i < all.size(); ++i) {
    const uint16_t p = all[i];
    rte_eth_dev_info info{};
    if (const int rc = rte_eth_dev_info_get(p, &info); rc != 0)
      return failed(rc, p, "dev_info_get");
    rte_eth_conf conf{};
    // RSS on IP, TCP and UDP. Assumed, not checked: the NICs we know class
    // every IP fragment (MF set or an offset), the first included, as an
    // IP (fragment) flow type, not TCP/UDP, and hash it on its addresses
    // only, so all fragments of a datagram reach one queue and one worker,
    // as the Worker's per-lcore fragment table needs (README "Fragments").
    // A NIC that hashed a first fragment on its ports would split
    // datagrams between workers: their later fragments would go to the
    // kernel (frag_unmatched) or to a wildcard VIP of the address.
    const uint64_t rss =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    const bool software = i < ports.software_.size() && ports.software_[i];
    if (n > 1 && rss != 0 && !software) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf = rss;
    }
    const uint16_t queues = software ? 1 : n;
    if (const int rc = rte_eth_dev_configure(p, queues, queues, &conf); rc != 0)
      return failed(rc, p, "dev_configure");
    uint16_t rx_desc = config.rx_desc;
    uint16_t tx_desc = config.tx_desc;
    if (const int rc = rte_eth_dev_adjust_nb_rx_tx_desc(p, &rx_desc, &tx_desc); rc != 0)
      return failed(rc, p, "adjust_nb_rx_tx_desc");
    const int socket = rte_eth_dev_socket_id(p);
    const auto node = static_cast<unsigned>(socket < 0 ? 0 : socket);
    for (uint16_t q = 0; q < queues; ++q) {
      if (const int rc = rte_eth_rx_queue_setup(p, q, rx_desc, node, nullptr, config.pool); rc != 0)
        return failed(rc, p, "rx_queue_setup");
      if (const int rc = rte_eth_tx_queue_setup(p, q, tx_desc, node, nullptr); rc != 0)
        return failed(rc, p, "tx_queue_setup");
    }
    if (const int rc = rte_eth_dev_start(p); rc != 0) return failed(rc, p, "dev_start");
    ports.started_.push_back(p);
    // Not every vdev has promiscuous mode (net_pcap, net_ring): not fatal.
    (void)rte_eth_promiscuous_enable(p);
  }
  if (config.kernel_port) {
    // The kernel takes only frames to its interface's own MAC: the tap
    // gets the MAC of the data port whose traffic it sees. A PMD that
    // cannot change its MAC (net_pcap) keeps its own, and so does the tap
    // when the data port has none (a net_ring over rings of one's own).
    rte_ether_addr mac{};
    if (const int rc = rte_eth_macaddr_get(config.data_ports[0], &mac); rc != 0)
      return failed(rc, config.data_ports[0], "macaddr_get");
    if (rte_is_valid_assigned_ether_addr(&mac)) {
      const int rc = rte_eth_dev_default_mac_addr_set(*config.kernel_port, &mac);
      if (rc != 0 && rc != -ENOTSUP) return failed(rc, *config.kernel_port, "default_mac_addr_set");
    }
  }
  for (uint16_t p : config.data_ports) {
    const auto deadline = std::chrono::steady_clock::now() + config.link_wait;
    rte_eth_link link{};
    while (rte_eth_link_get_nowait(p, &link) == 0 && link.link_status == RTE_ETH_LINK_DOWN &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (link.link_status == RTE_ETH_LINK_DOWN)
      return Error{-ENETDOWN, "dpdk ports: port " + std::to_string(p) + ": link down"};
  }
  return ports;
}

Ports::Ports(Ports&& other) noexcept
    : config_(other.config_),
      queues_(std::move(other.queues_)),
      started_(std::move(other.started_)),
      software_(std::move(other.software_)),
      inbox_(std::move(other.inbox_)),
      outbox_(std::move(other.outbox_)),
      outbox_sent_(std::move(other.outbox_sent_)) {
  other.started_.clear();
  other.inbox_.clear();
  other.outbox_.clear();
}

Ports& Ports::operator=(Ports&& other) noexcept {
  if (this != &other) {
    stop();
    config_ = other.config_;
    queues_ = std::move(other.queues_);
    started_ = std::move(other.started_);
    software_ = std::move(other.software_);
    inbox_ = std::move(other.inbox_);
    outbox_ = std::move(other.outbox_);
    outbox_sent_ = std::move(other.outbox_sent_);
    other.started_.clear();
    other.inbox_.clear();
    other.outbox_.clear();
  }
  return *this;
}

Ports::~Ports() { stop(); }

void Ports::stop() noexcept {
  for (uint16_t p : started_) {
    (void)rte_eth_dev_stop(p);
    (void)rte_eth_dev_close(p);
  }
  started_.clear();
  // The loops are stopped: what is still in a ring goes back to the pool.
  for (auto* boxes : {&inbox_, &outbox_}) {
    for (rte_ring* r : *boxes) {
      void* m = nullptr;
      while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      rte_ring_free(r);
    }
    boxes->clear();
  }
}

}  // namespace sluice::dpdk
