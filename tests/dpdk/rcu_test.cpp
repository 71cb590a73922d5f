// SPDX-License-Identifier: BSD-2-Clause
// Snapshots swapped thousands of times while a worker thread balances
// traffic: every burst goes to backends of one snapshot, one that was
// current while the burst ran; nothing leaks and nothing is read after it
// is freed (run under ASan in the asan stage).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/core/maglev.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/dpdk/dpdk_env.hpp"

namespace sluice::test {
namespace {

constexpr uint32_t kGenerations = 3000;
constexpr uint32_t kBackendsPerGen = 4;
constexpr uint16_t kBurst = 32;
constexpr uint32_t kFlows = 256;

// Generation g's backends: ids g * 8 + k, addresses 10.<g / 256>.<g % 256>.<k + 1>,
// so an outer destination names its generation, and every generation's ids
// are new (an entry pinned by an older one is a miss).
IpAddress backend_addr(uint32_t g, uint32_t k) {
  return IpAddress::v4((10u << 24) | ((g >> 8 & 0xff) << 16) | ((g & 0xff) << 8) | (k + 1));
}

std::unique_ptr<const dpdk::Snapshot> generation(uint32_t g) {
  dpdk::SnapshotSpec s;
  std::vector<MaglevBackend> in;
  for (uint32_t k = 0; k < kBackendsPerGen; ++k) {
    sluice_backend b{};
    b.addr = backend_addr(g, k).ip;
    b.id = g * 8 + k;
    b.family = SLUICE_FAMILY_IPV4;
    s.backends.push_back(b);
    in.push_back({backend_addr(g, k), 1});
  }
  auto built = maglev_build(in, SLUICE_MAGLEV_MIN_SIZE);
  EXPECT_TRUE(built.ok());
  dpdk::SnapshotVipSpec v;
  v.key.addr = address(kVipV4).ip;
  v.key.port = sl_htons(80);
  v.key.proto = SLUICE_IPPROTO_TCP;
  v.key.family = SLUICE_FAMILY_IPV4;
  v.meta.vip_id = 1;
  for (uint32_t i : built.value()) v.table.push_back(g * 8 + i);
  s.vips.push_back(v);
  s.encap.src_v4 = address("10.255.0.1").ip;
  s.encap.mtu = 1500;
  s.next_hop.dst_mac = {2, 0, 0, 0, 0, 0xfd};
  s.next_hop.src_mac = {2, 0, 0, 0, 0, 1};
  auto snap = dpdk::Snapshot::create(s);
  EXPECT_TRUE(snap.ok()) << snap.error().message;
  return std::move(snap.value());
}

TEST(SnapshotRcuTest, SwapsUnderTrafficNeverMisrouteOrFreeEarly) {
  auto rcu_made = dpdk::SnapshotRcu::create(1, generation(0));
  ASSERT_TRUE(rcu_made.ok());
  dpdk::SnapshotRcu& rcu = *rcu_made.value();
  auto made =
      dpdk::Worker::create({.reader_id = 0, .hash_seed = 7, .flows = {.capacity = 4096}}, rcu);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<dpdk::Worker> worker = std::move(made.value());

  std::vector<Bytes> frames;
  for (uint32_t f = 0; f < kFlows; ++f)
    frames.push_back(PacketBuilder()
                         .eth({})
                         .ipv4({.src = "198.51.100." + std::to_string(1 + f % 250)})
                         .tcp({.sport = static_cast<uint16_t>(1000 + f), .dport = 80})
                         .build());

  std::atomic<uint32_t> published{0};
  std::atomic<bool> stop{false};
  uint64_t bursts = 0, packets = 0, mixed = 0, outside = 0, unknown = 0;
  std::thread traffic([&] {
    uint32_t next = 0;
    while (!stop.load(std::memory_order_acquire)) {
      rte_mbuf* m[kBurst];
      for (uint16_t i = 0; i < kBurst; ++i) m[i] = to_mbuf(frames[next++ % kFlows]);
      const uint32_t before = published.load(std::memory_order_acquire);
      dpdk::Verdicts v;
      worker->process_burst(m, kBurst, v);
      const uint32_t after = published.load(std::memory_order_acquire);
      uint32_t gen_seen = UINT32_MAX;
      for (uint16_t i = 0; i < v.n_tx; ++i) {
        const Bytes out = from_mbuf(v.tx[i]);
        const uint32_t a = get_be32(&out[14 + 16]);
        const uint32_t g = (a >> 8) & 0xffff;
        const uint32_t k = (a & 0xff) - 1;
        if ((a >> 24) != 10 || k >= kBackendsPerGen) ++unknown;
        // The snapshot read was current at some point of the burst: at
        // least `before`, and at most one past `after` (published, swapped,
        // counter not yet stored).
        if (g < before || g > after + 1) ++outside;
        if (gen_seen != UINT32_MAX && g != gen_seen) ++mixed;
        gen_seen = g;
      }
      packets += v.n_tx;
      ++bursts;
      EXPECT_EQ(v.n_tx, kBurst);
      for (auto* x : m) rte_pktmbuf_free(x);
    }
  });
  for (uint32_t g = 1; g <= kGenerations; ++g) {
    rcu.publish(generation(g));
    published.store(g, std::memory_order_release);
  }
  stop.store(true, std::memory_order_release);
  traffic.join();
  worker.reset();  // offline: reclamation no longer waits for it
  rcu.synchronize();
  EXPECT_EQ(rcu.reclaim(), 0u);

  EXPECT_GT(bursts, 0u);
  EXPECT_EQ(unknown, 0u) << "packets sent to an address no snapshot has";
  EXPECT_EQ(outside, 0u) << "packets sent by a snapshot not current during their burst";
  EXPECT_EQ(mixed, 0u) << "bursts split between snapshots";
  std::printf("%u snapshots published during %llu bursts (%llu packets)\n", kGenerations,
              static_cast<unsigned long long>(bursts), static_cast<unsigned long long>(packets));
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
