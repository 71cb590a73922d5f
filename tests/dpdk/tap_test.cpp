// SPDX-License-Identifier: BSD-2-Clause
// The exception path with a real kernel behind it: a data port (net_ring)
// and a net_tap kernel port in a network namespace of the test's own. An
// ARP request and a ping for the tap's address arrive on the data port, go
// to the kernel through the tap, and the kernel's ARP reply and echo reply
// leave through the data port -- the host keeps working on a port DPDK owns.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_ring.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dpdk/lcore_loop.hpp"
#include "dataplane/dpdk/ports.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/dpdk/dpdk_env.hpp"
#include "tests/dpdk/world.hpp"

namespace sluice::test {
namespace {

constexpr const char* kTap = "sltap0";
constexpr const char* kHostAddr = "192.0.2.1";  // the tap's (the host's) address
constexpr const char* kPeerAddr = "192.0.2.254";
constexpr uint8_t kHost[4] = {192, 0, 2, 1};
constexpr uint8_t kPeer[4] = {192, 0, 2, 254};

struct Launch {
  dpdk::LcoreLoop* loop;
  std::atomic<bool>* stop;
};

int run_loop(void* arg) {
  auto* l = static_cast<Launch*>(arg);
  return l->loop->run(*l->stop);
}

// An ARP request (RFC 826) from the peer for the host's address.
Bytes arp_request() {
  Bytes arp = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01};
  arp.insert(arp.end(), kRouterMac.begin(), kRouterMac.end());
  arp.insert(arp.end(), kPeer, kPeer + 4);
  arp.insert(arp.end(), 6, 0x00);
  arp.insert(arp.end(), kHost, kHost + 4);
  return PacketBuilder()
      .eth({.dst = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, .src = kRouterMac})
      .raw({.bytes = arp, .ethertype = 0x0806})
      .build();
}

bool is_arp_reply_from_host(const Bytes& f) {
  return f.size() >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2 &&
         std::memcmp(&f[28], kHost, 4) == 0 &&
         std::equal(kRouterMac.begin(), kRouterMac.end(), f.begin());
}

bool is_echo_reply_from_host(const Bytes& f) {
  return f.size() >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 1 &&
         std::memcmp(&f[26], kHost, 4) == 0 && std::memcmp(&f[30], kPeer, 4) == 0 && f[34] == 0;
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

TEST(TapTest, KernelAnswersThroughTheTapAndItsRepliesLeaveTheDataPort) {
  rte_ring* rx = rte_ring_create("tap_rx", 256, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create("tap_tx", 256, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(rx, nullptr);
  ASSERT_NE(tx, nullptr);
  const int data = rte_eth_from_rings("net_ring_tapdata", &rx, 1, &tx, 1, SOCKET_ID_ANY);
  ASSERT_GE(data, 0);
  uint16_t tap = 0;
  ASSERT_EQ(rte_eth_dev_get_port_by_name("net_tap0", &tap), 0);

  const World w;
  auto rcu = dpdk::SnapshotRcu::create(1, w.snapshot());
  ASSERT_TRUE(rcu.ok());
  auto worker = dpdk::Worker::create(
      {.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = 1024}}, *rcu.value());
  ASSERT_TRUE(worker.ok());
  const unsigned lcore = rte_get_next_lcore(-1, 1, 0);
  ASSERT_LT(lcore, RTE_MAX_LCORE);

  std::vector<Bytes> out;
  dpdk::LoopStats ls{};
  {
    dpdk::PortsConfig pc;
    pc.data_ports = {static_cast<uint16_t>(data)};
    pc.kernel_port = tap;
    pc.worker_lcores = {lcore};
    pc.pool = test_pool();
    pc.rx_desc = pc.tx_desc = 256;
    auto ports = dpdk::Ports::start(pc);
    ASSERT_TRUE(ports.ok()) << ports.error().message;
    // The kernel's side of the tap: the host's address, and the peer as a
    // static neighbour (the echo reply needs no ARP of its own).
    ASSERT_EQ(sh(std::string("ip link set ") + kTap + " up && ip addr add " + kHostAddr +
                 "/24 dev " + kTap + " && ip neigh add " + kPeerAddr + " lladdr " +
                 "02:00:00:00:00:fe dev " + kTap + " nud permanent"),
              0);
    auto loop = dpdk::LcoreLoop::create(ports.value(), ports.value().queues()[0], *worker.value());
    ASSERT_TRUE(loop.ok()) << loop.error().message;
    std::atomic<bool> stop{false};
    Launch la{loop.value().get(), &stop};
    ASSERT_EQ(rte_eal_remote_launch(run_loop, &la, lcore), 0);

    // To the kernel interface's MAC: the data port's where it has one
    // (the tap takes it over; this net_ring has none).
    rte_ether_addr mac{};
    ASSERT_EQ(rte_eth_macaddr_get(tap, &mac), 0);
    Mac port_mac{};
    std::copy(std::begin(mac.addr_bytes), std::end(mac.addr_bytes), port_mac.begin());
    const Bytes ping = PacketBuilder()
                           .eth({.dst = port_mac, .src = kRouterMac})
                           .ipv4({.src = kPeerAddr, .dst = kHostAddr})
                           .icmp({.type = 8, .code = 0, .rest = 0x12340001})
                           .payload(Bytes(32, 0xab))
                           .build();
    for (const Bytes& f : {arp_request(), ping}) ASSERT_EQ(rte_ring_enqueue(rx, to_mbuf(f)), 0);

    bool arp = false, echo = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!(arp && echo) && std::chrono::steady_clock::now() < deadline) {
      void* m = nullptr;
      while (rte_ring_dequeue(tx, &m) == 0) {
        out.push_back(from_mbuf(static_cast<rte_mbuf*>(m)));
        rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        arp |= is_arp_reply_from_host(out.back());
        echo |= is_echo_reply_from_host(out.back());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop.store(true);
    EXPECT_EQ(rte_eal_wait_lcore(lcore), 0);
    ls = loop.value()->stats();
  }
  EXPECT_TRUE(std::any_of(out.begin(), out.end(), is_arp_reply_from_host))
      << out.size() << " frames out, no ARP reply";
  EXPECT_TRUE(std::any_of(out.begin(), out.end(), is_echo_reply_from_host))
      << out.size() << " frames out, no echo reply";
  // Both requests went to the kernel; it sent at least the two replies.
  EXPECT_EQ(ls.kernel_sent, 2u);
  EXPECT_EQ(ls.kernel_unsent, 0u);
  EXPECT_GE(ls.from_kernel, 2u);
  EXPECT_EQ(worker.value()->global_stats().pass_packets, 2u);
  void* m = nullptr;
  while (rte_ring_dequeue(tx, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  rte_ring_free(rx);
  rte_ring_free(tx);
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) {
  // The tap is created in this process's network namespace at EAL start:
  // a namespace of our own, so the machine's interfaces never see it.
  if (geteuid() == 0 && unshare(CLONE_NEWNET) != 0) {
    std::perror("FAIL: unshare(CLONE_NEWNET)");
    return 1;
  }
  return sluice::test::dpdk_test_main(
      argc, argv, {"--vdev", std::string("net_tap0,iface=") + sluice::test::kTap}, "0,1");
}
