// SPDX-License-Identifier: BSD-2-Clause
// dpdk_runtime_options: [dpdk] -> EAL command line and runtime settings.
#include "control/dpdk_options.hpp"

#include <algorithm>

#include "control/config.hpp"

namespace sluice::control {
namespace {

// The config loader accepted only PCI addresses ("DDDD:BB:DD.F" or
// "BB:DD.F") and vdev strings, and vdev names start with "net_".
bool is_pci(const std::string& port) { return port.rfind("net_", 0) != 0; }

std::string device_name(const std::string& port) {
  if (is_pci(port)) return port.size() == 7 ? "0000:" + port : port;
  return port.substr(0, port.find(','));
}

}  // namespace

DpdkRuntimeOptions dpdk_runtime_options(const Config& config) {
  const DpdkConfig& d = *config.dpdk;
  DpdkRuntimeOptions o;
  // -l 0,1,2, or with worker_cpus --lcores 0@0,1@1,2@1 (lcore@cpu).
  const bool mapped = !d.worker_cpus.empty();
  std::string lcores;
  const auto add = [&](uint32_t lcore, uint32_t cpu) {
    if (!lcores.empty()) lcores.push_back(',');
    lcores.append(std::to_string(lcore));
    if (!mapped) return;
    lcores.push_back('@');
    lcores.append(std::to_string(cpu));
  };
  add(d.main_lcore, d.main_lcore);
  for (size_t i = 0; i < d.lcores.size(); ++i)
    add(d.lcores[i], mapped ? d.worker_cpus[i] : d.lcores[i]);
  o.eal_args = {"sluice",
                mapped ? "--lcores" : "-l",
                lcores,
                "--main-lcore",
                std::to_string(d.main_lcore),
                "--file-prefix",
                d.file_prefix,
                "-m",
                std::to_string(d.memory_mb)};
  if (!d.hugepages) o.eal_args.push_back("--no-huge");
  if (std::none_of(d.ports.begin(), d.ports.end(), is_pci)) o.eal_args.push_back("--no-pci");
  for (const std::string& p : d.ports) {
    o.eal_args.push_back(is_pci(p) ? "-a" : "--vdev");
    o.eal_args.push_back(p);
    o.data_ports.push_back(device_name(p));
  }
  if (d.kernel_port) {
    o.eal_args.push_back("--vdev");
    o.eal_args.push_back(*d.kernel_port);
    o.kernel_port = device_name(*d.kernel_port);
  }
  o.eal_args.insert(o.eal_args.end(), d.eal_args.begin(), d.eal_args.end());
  o.worker_lcores.assign(d.lcores.begin(), d.lcores.end());
  o.force_software_distribution = d.distribution == DpdkDistribution::kSoftware;
  o.rx_desc = static_cast<uint16_t>(d.rx_desc);
  o.tx_desc = static_cast<uint16_t>(d.tx_desc);
  o.mbufs = d.mbufs;
  o.mbuf_cache = d.mbuf_cache;
  o.link_wait_ms = d.link_wait_ms;
  o.runtime_dir = "/var/run/dpdk/" + d.file_prefix;
  o.hash_seed = config.hash_seed;
  o.flows_per_worker = config.flow_table.flows_per_core;
  o.tcp_idle_ms = config.flow_table.tcp_idle_ms;
  o.udp_idle_ms = config.flow_table.udp_idle_ms;
  o.cache = std::any_of(config.vips.begin(), config.vips.end(),
                        [](const VipConfig& v) { return v.cache; });
  o.cache_entries = config.cache.entries;
  o.cache_bytes = config.cache.bytes;
  o.cache_ttl_ms = config.cache.ttl_ms;
  o.cache_write_settle_ms = config.cache.write_settle_ms;
  o.cache_hot_threshold = config.cache.hot_threshold;
  o.cache_period_ms = config.cache.period_ms;
  return o;
}

}  // namespace sluice::control
