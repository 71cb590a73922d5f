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
  std::string lcores = std::to_string(d.main_lcore);
  for (uint32_t l : d.lcores) {
    lcores += ',';
    lcores += std::to_string(l);
  }
  o.eal_args = {"sluice",
                "-l",
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
  return o;
}

}  // namespace sluice::control
