// SPDX-License-Identifier: BSD-2-Clause
// The DPDK test environment (see dpdk_env.hpp).
#include "tests/dpdk/dpdk_env.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace sluice::test {
namespace {

rte_mempool* g_pool = nullptr;

bool require_eal() {
  const char* v = std::getenv("SLUICE_REQUIRE_BPF");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace

int dpdk_test_main(int argc, char** argv, const std::vector<std::string>& extra_eal_args,
                   const std::string& lcores) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string prefix = "sluice-test-" + std::to_string(getpid());
  // --lcores rather than -l: it also takes lcore@cpu maps ("(0-2)@0"), so
  // a test can have more lcores than the machine has CPUs.
  std::vector<std::string> args = {"sluice-test", "--no-pci",      "--no-huge",    "-m",
                                   "256",         "--file-prefix", prefix,         "--lcores",
                                   lcores,        "--log-level",   "lib.eal:error"};
  args.insert(args.end(), extra_eal_args.begin(), extra_eal_args.end());
  std::vector<char*> argv_eal;
  for (std::string& a : args) argv_eal.push_back(a.data());

  cpu_set_t affinity;
  CPU_ZERO(&affinity);
  const bool have_affinity = sched_getaffinity(0, sizeof affinity, &affinity) == 0;
  const std::filesystem::path run_dir = std::filesystem::path("/var/run/dpdk") / prefix;
  if (geteuid() != 0 || rte_eal_init(static_cast<int>(argv_eal.size()), argv_eal.data()) < 0) {
    const std::string why = geteuid() != 0
                                ? std::string("EAL needs root here (--no-huge)")
                                : std::string("rte_eal_init failed: ") + rte_strerror(rte_errno);
    std::error_code ignored;
    std::filesystem::remove_all(run_dir, ignored);
    if (require_eal()) {
      std::fprintf(stderr, "FAIL: %s (SLUICE_REQUIRE_BPF=1)\n", why.c_str());
      return 1;
    }
    std::fprintf(stderr, "SKIP: %s\n", why.c_str());
    return 77;
  }
  if (have_affinity) (void)pthread_setaffinity_np(pthread_self(), sizeof affinity, &affinity);
  g_pool = rte_pktmbuf_pool_create("sluice_test", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  int rc = 1;
  if (g_pool == nullptr) {
    std::fprintf(stderr, "FAIL: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
  } else {
    rc = RUN_ALL_TESTS();
    rte_mempool_free(g_pool);
  }
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(run_dir, ignored);
  return rc;
}

rte_mempool* test_pool() { return g_pool; }

rte_mbuf* to_mbuf(const Bytes& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
  if (m == nullptr) {
    ADD_FAILURE() << "mbuf pool empty";
    std::abort();
  }
  char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
  if (p == nullptr) {
    ADD_FAILURE() << "frame of " << frame.size() << " bytes does not fit an mbuf";
    std::abort();
  }
  std::memcpy(p, frame.data(), frame.size());
  return m;
}

Bytes from_mbuf(const rte_mbuf* m) {
  const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
  return Bytes(p, p + rte_pktmbuf_data_len(m));
}

}  // namespace sluice::test
