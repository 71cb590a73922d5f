// SPDX-License-Identifier: BSD-2-Clause
// Ports: queue-table validation and ethdev set-up (see ports.hpp).
#include "dataplane/dpdk/ports.hpp"

#include <rte_ethdev.h>
#include <rte_lcore.h>

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
    if (n > info.max_rx_queues || n > info.max_tx_queues)
      return invalid("port " + std::to_string(p) + " has " + std::to_string(info.max_rx_queues) +
                     " RX / " + std::to_string(info.max_tx_queues) + " TX queues, not " +
                     std::to_string(n));
    if (n > 1 && (info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) == 0 &&
        (!config.kernel_port || p != *config.kernel_port))
      return invalid("port " + std::to_string(p) +
                     " has no RSS; with several workers each would see any flow");
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
  for (uint16_t p : all) {
    rte_eth_dev_info info{};
    if (const int rc = rte_eth_dev_info_get(p, &info); rc != 0)
      return failed(rc, p, "dev_info_get");
    rte_eth_conf conf{};
    const uint64_t rss =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    if (n > 1 && rss != 0) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf = rss;
    }
    if (const int rc = rte_eth_dev_configure(p, n, n, &conf); rc != 0)
      return failed(rc, p, "dev_configure");
    uint16_t rx_desc = config.rx_desc;
    uint16_t tx_desc = config.tx_desc;
    if (const int rc = rte_eth_dev_adjust_nb_rx_tx_desc(p, &rx_desc, &tx_desc); rc != 0)
      return failed(rc, p, "adjust_nb_rx_tx_desc");
    const int socket = rte_eth_dev_socket_id(p);
    const auto node = static_cast<unsigned>(socket < 0 ? 0 : socket);
    for (uint16_t q = 0; q < n; ++q) {
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
      started_(std::move(other.started_)) {
  other.started_.clear();
}

Ports& Ports::operator=(Ports&& other) noexcept {
  if (this != &other) {
    stop();
    config_ = other.config_;
    queues_ = std::move(other.queues_);
    started_ = std::move(other.started_);
    other.started_.clear();
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
}

}  // namespace sluice::dpdk
