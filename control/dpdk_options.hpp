// SPDX-License-Identifier: BSD-2-Clause
// DpdkRuntimeOptions: what `sluice run` hands the DPDK runtime, derived
// from a validated [dpdk] section -- the EAL command line and the
// port/lcore/pool settings -- without any DPDK header.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice {
// control/config.hpp's; not included, as its FlowTableConfig and the core
// flow table's share a name and DpdkRuntime's implementation needs both.
struct Config;
}  // namespace sluice

namespace sluice::control {

/// Everything DpdkRuntime::start needs, by DPDK device name.
struct DpdkRuntimeOptions {
  /// argv for rte_eal_init, argv[0] included.
  std::vector<std::string> eal_args;
  /// ethdev names of the data ports ("net_af_packet0", "0000:3b:00.0"),
  /// in config order, and of the kernel port.
  std::vector<std::string> data_ports;
  std::optional<std::string> kernel_port;
  /// Worker lcores, in config order (worker i: reader id i, queue i).
  std::vector<unsigned> worker_lcores;
  /// Software distribution even where a port has RSS.
  bool force_software_distribution = false;
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  uint32_t mbufs = 8191;
  uint32_t mbuf_cache = 256;
  uint32_t link_wait_ms = 3000;
  /// EAL's runtime folder for this file prefix (/var/run/dpdk/<prefix>),
  /// removed on a clean stop.
  std::string runtime_dir;
  /// Flow hash seed and each worker's flow table (entries, idle ms).
  uint32_t hash_seed = 0;
  uint32_t flows_per_worker = 65536;
  uint32_t tcp_idle_ms = 300000;
  uint32_t udp_idle_ms = 30000;
  /// The hot-object cache: on when a VIP has cache = true. Each worker
  /// holds up to cache_entries entries and cache_bytes key and value bytes
  /// of its own (the [cache] bounds are per worker); the other fields are
  /// [cache]'s, as the XDP path takes them.
  bool cache = false;
  uint32_t cache_entries = 10000;
  uint64_t cache_bytes = 16u << 20;
  uint32_t cache_ttl_ms = 10000;
  uint32_t cache_write_settle_ms = 100;
  uint32_t cache_hot_threshold = 32;
  uint32_t cache_period_ms = 1000;
};

/// The runtime options of a config with a [dpdk] section (precondition).
/// EAL gets: -l <main,workers> (--lcores <main@main,worker@cpu,...> with
/// worker_cpus) --main-lcore <main> --file-prefix <prefix>
/// -m <memory_mb>, --no-huge unless hugepages, --no-pci unless a port is a
/// PCI address (then -a <address> for each), --vdev for every vdev port
/// and the kernel port, then eal_args as given. The ethdev name of a vdev
/// is its text before the first ','; a short PCI address gets domain 0000.
[[nodiscard]] DpdkRuntimeOptions dpdk_runtime_options(const Config& config);

}  // namespace sluice::control
