// SPDX-License-Identifier: BSD-2-Clause
// The DPDK test environment: EAL brought up once per test program without
// PCI or hugepages (tests skip, or fail under SLUICE_REQUIRE_BPF=1, when it
// cannot start), its runtime folder removed at the end, and mbuf helpers.
#pragma once

#include <rte_mbuf.h>

#include <string>
#include <vector>

#include "tests/common/packet_builder.hpp"

namespace sluice::test {

/// Runs a GoogleTest program inside EAL: `--no-pci --no-huge -m 256
/// --file-prefix sluice-test-<pid> --lcores <lcores>` plus `extra_eal_args`
/// (vdevs).
/// Exits 77 with the reason when EAL cannot start (not root, say), or 1
/// when SLUICE_REQUIRE_BPF=1. Cleans up EAL and /var/run/dpdk/<prefix>.
/// The main thread's CPU affinity is restored after EAL pinned it, so
/// test threads are free to run on any CPU.
int dpdk_test_main(int argc, char** argv, const std::vector<std::string>& extra_eal_args = {},
                   const std::string& lcores = "0");

/// The mempool every test uses (8191 mbufs of RTE_MBUF_DEFAULT_BUF_SIZE).
rte_mempool* test_pool();

/// An mbuf holding `frame` (one segment, default headroom); aborts the
/// test on allocation failure.
rte_mbuf* to_mbuf(const Bytes& frame);
/// The frame an mbuf holds.
Bytes from_mbuf(const rte_mbuf* m);

}  // namespace sluice::test
