// SPDX-License-Identifier: BSD-2-Clause
// dpdk_runtime_options: the EAL command line and runtime settings `sluice
// run` derives from [dpdk] -- never without --no-pci unless PCI devices are
// named, and then only those (-a).
#include "control/dpdk_options.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/config.hpp"

namespace sluice::control {
namespace {

Config parse(const std::string& dpdk_keys) {
  const ConfigReport r = parse_config(
      "hash_seed = 7\n[flow_table]\nflows_per_core = 4096\ntcp_idle_ms = 1000\n"
      "udp_idle_ms = 500\n[dpdk]\ngateway_mac = \"02:00:5e:00:53:01\"\n" +
          dpdk_keys,
      "t.toml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  return r.ok() ? *r.config : Config{};
}

TEST(DpdkOptions, VdevsOnlyMeanNoPci) {
  const DpdkRuntimeOptions o = dpdk_runtime_options(
      parse("ports = [\"net_af_packet0,iface=veth0\"]\nkernel_port = \"net_tap0,iface=sl0\"\n"
            "lcores = [1, 2]\nfile_prefix = \"lb1\"\neal_args = [\"--log-level=lib.eal:error\"]\n"
            "distribution = \"software\"\nrx_desc = 512\nmbufs = 4095\nmbuf_cache = 64\n"));
  EXPECT_EQ(o.eal_args,
            (std::vector<std::string>{"sluice", "-l", "0,1,2", "--main-lcore", "0", "--file-prefix",
                                      "lb1", "-m", "512", "--no-huge", "--no-pci", "--vdev",
                                      "net_af_packet0,iface=veth0", "--vdev", "net_tap0,iface=sl0",
                                      "--log-level=lib.eal:error"}));
  EXPECT_EQ(o.data_ports, (std::vector<std::string>{"net_af_packet0"}));
  EXPECT_EQ(o.kernel_port, "net_tap0");
  EXPECT_EQ(o.worker_lcores, (std::vector<unsigned>{1, 2}));
  EXPECT_TRUE(o.force_software_distribution);
  EXPECT_EQ(o.rx_desc, 512);
  EXPECT_EQ(o.tx_desc, 1024);
  EXPECT_EQ(o.mbufs, 4095u);
  EXPECT_EQ(o.mbuf_cache, 64u);
  EXPECT_EQ(o.runtime_dir, "/var/run/dpdk/lb1");
  EXPECT_EQ(o.hash_seed, 7u);
  EXPECT_EQ(o.flows_per_worker, 4096u);
  EXPECT_EQ(o.tcp_idle_ms, 1000u);
  EXPECT_EQ(o.udp_idle_ms, 500u);
}

TEST(DpdkOptions, PciPortsAreTheAllowlist) {
  const DpdkRuntimeOptions o = dpdk_runtime_options(
      parse("ports = [\"0000:3b:00.0\", \"3b:00.1\"]\nhugepages = true\nmain_lcore = 2\n"
            "lcores = [4]\nmemory_mb = 1024\n"));
  EXPECT_EQ(o.eal_args, (std::vector<std::string>{"sluice", "-l", "2,4", "--main-lcore", "2",
                                                  "--file-prefix", "sluice", "-m", "1024", "-a",
                                                  "0000:3b:00.0", "-a", "3b:00.1"}));
  EXPECT_EQ(o.data_ports, (std::vector<std::string>{"0000:3b:00.0", "0000:3b:00.1"}));
  EXPECT_FALSE(o.kernel_port.has_value());
  EXPECT_FALSE(o.force_software_distribution);
}

TEST(DpdkOptions, WorkerCpusMapLcoresOntoCpus) {
  // Two workers and the main lcore on a two-CPU machine.
  const DpdkRuntimeOptions o = dpdk_runtime_options(
      parse("ports = [\"net_af_packet0,iface=veth0\"]\nlcores = [1, 2]\nworker_cpus = [1, 1]\n"));
  ASSERT_GE(o.eal_args.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(o.eal_args.begin(), o.eal_args.begin() + 5),
            (std::vector<std::string>{"sluice", "--lcores", "0@0,1@1,2@1", "--main-lcore", "0"}));
  EXPECT_EQ(o.worker_lcores, (std::vector<unsigned>{1, 2}));
}

TEST(DpdkOptions, WorkerCpusNeedOneCpuPerWorker) {
  const ConfigReport r = parse_config(
      "[dpdk]\ngateway_mac = \"02:00:5e:00:53:01\"\nports = [\"net_ring0\"]\n"
      "lcores = [1, 2]\nworker_cpus = [1]\n",
      "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].to_string().find("dpdk.worker_cpus"), std::string::npos)
      << r.errors[0].to_string();
}

}  // namespace
}  // namespace sluice::control
