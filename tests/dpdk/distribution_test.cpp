// SPDX-License-Identifier: BSD-2-Clause
// Software distribution: a port without RSS (net_ring, one queue) and two
// workers -- worker 0 reads the port and hands each flow to the worker its
// flow hash names, the other worker's output goes back through worker 0 --
// so every packet of a flow meets one worker and one flow table, and
// everything is forwarded exactly as with one worker.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/memcached.hpp"
#include "dataplane/dpdk/lcore_loop.hpp"
#include "dataplane/dpdk/ports.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/dpdk/dpdk_env.hpp"
#include "tests/dpdk/world.hpp"

namespace sluice::test {
namespace {

constexpr uint16_t kFlows = 64;
constexpr unsigned kPacketsPerFlow = 2;
constexpr unsigned kArps = 4;

struct Launch {
  dpdk::LcoreLoop* loop;
  std::atomic<bool>* stop;
};

int run_loop(void* arg) {
  auto* l = static_cast<Launch*>(arg);
  return l->loop->run(*l->stop);
}

// Starts `port` with software distribution (it has no RSS) over two worker
// lcores, one loop per worker of `workers` (two), calls `during` while they
// run, stops them and returns their counters in s0 and s1.
void run_two_loops(uint16_t port, std::vector<std::unique_ptr<dpdk::Worker>>& workers,
                   const std::function<void()>& during, dpdk::LoopStats& s0, dpdk::LoopStats& s1) {
  const unsigned l1 = rte_get_next_lcore(-1, 1, 0);
  const unsigned l2 = rte_get_next_lcore(l1, 1, 0);
  ASSERT_LT(l2, RTE_MAX_LCORE) << "needs two worker lcores";
  dpdk::PortsConfig pc;
  pc.data_ports = {port};
  pc.worker_lcores = {l1, l2};
  pc.pool = test_pool();
  pc.rx_desc = pc.tx_desc = 256;
  auto ports = dpdk::Ports::start(pc);
  ASSERT_TRUE(ports.ok()) << ports.error().message;
  ASSERT_TRUE(ports.value().software(0)) << "net_ring has no RSS";
  std::vector<std::unique_ptr<dpdk::LcoreLoop>> loops;
  for (size_t i = 0; i < 2; ++i) {
    auto loop = dpdk::LcoreLoop::create(ports.value(), ports.value().queues()[i], *workers[i]);
    ASSERT_TRUE(loop.ok()) << loop.error().message;
    loops.push_back(std::move(loop.value()));
  }
  std::atomic<bool> stop{false};
  Launch la[2] = {{loops[0].get(), &stop}, {loops[1].get(), &stop}};
  ASSERT_EQ(rte_eal_remote_launch(run_loop, &la[0], l1), 0);
  ASSERT_EQ(rte_eal_remote_launch(run_loop, &la[1], l2), 0);
  during();
  stop.store(true);
  EXPECT_EQ(rte_eal_wait_lcore(l1), 0);
  EXPECT_EQ(rte_eal_wait_lcore(l2), 0);
  s0 = loops[0]->stats();
  s1 = loops[1]->stats();
}

// A ring in, a ring out, owned by the test (net_ring over them).
struct RingPort {
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
  uint16_t port = 0;
  ~RingPort() {
    for (rte_ring* r : {rx, tx}) {
      void* m = nullptr;
      while (r != nullptr && rte_ring_dequeue(r, &m) == 0)
        rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      rte_ring_free(r);
    }
  }
  // Creates the rings (named after `name`) and the port.
  void open(const std::string& name) {
    rx =
        rte_ring_create((name + "_rx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx =
        rte_ring_create((name + "_tx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(rx, nullptr);
    ASSERT_NE(tx, nullptr);
    const int id = rte_eth_from_rings(("net_ring_" + name).c_str(), &rx, 1, &tx, 1, SOCKET_ID_ANY);
    ASSERT_GE(id, 0);
    port = static_cast<uint16_t>(id);
  }
};

TEST(DistributionTest, FlowsStayOnOneWorkerWithoutRss) {
  RingPort rp;
  ASSERT_NO_FATAL_FAILURE(rp.open("dist"));

  const World w;
  // Two rounds: each flow's first packet (and some ARP), then, once those
  // were all seen, each flow's second packet -- so the second one is a hit
  // on the entry the first made, whatever the batching.
  std::vector<Bytes> rounds[kPacketsPerFlow];
  std::vector<Bytes> expected;
  std::vector<sluice_flow_key> keys;
  for (uint16_t f = 0; f < kFlows; ++f) {
    const auto sport = static_cast<uint16_t>(40000 + f);
    const Bytes in = PacketBuilder()
                         .eth({.dst = kLbMac, .src = kRouterMac})
                         .ipv4({.src = "192.0.2.10", .dst = "10.0.0.1"})
                         .tcp({.sport = sport, .dport = 80, .flags = 0x10})  // ACK: a SYN is placed anew
                         .build();
    const auto key = flow_key("192.0.2.10", sport, "10.0.0.1", 80, kTcp);
    keys.push_back(key);
    for (unsigned k = 0; k < kPacketsPerFlow; ++k) {
      rounds[k].push_back(in);
      expected.push_back(w.forwarded(in, 0, 1, key));
    }
  }
  for (unsigned a = 0; a < kArps; ++a)
    rounds[0].push_back(PacketBuilder()
                            .eth({.dst = kLbMac, .src = kRouterMac})
                            .raw({.bytes = Bytes(28, static_cast<uint8_t>(a)), .ethertype = 0x0806})
                            .build());
  size_t total = 0;
  unsigned for_worker1 = 0;
  for (const auto& round : rounds)
    for (const Bytes& f : round) {
      ++total;
      for_worker1 += dpdk::LcoreLoop::worker_of(f.data(), static_cast<uint32_t>(f.size()), 2) == 1;
    }

  auto rcu = dpdk::SnapshotRcu::create(2, w.snapshot());
  ASSERT_TRUE(rcu.ok());
  std::vector<std::unique_ptr<dpdk::Worker>> workers;
  for (uint32_t r = 0; r < 2; ++r) {
    auto wk = dpdk::Worker::create(
        {.reader_id = r, .hash_seed = kSeed, .flows = {.capacity = 1024}}, *rcu.value());
    ASSERT_TRUE(wk.ok());
    workers.push_back(std::move(wk.value()));
  }
  dpdk::LoopStats s0{}, s1{};
  run_two_loops(
      rp.port, workers,
      [&] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        const auto seen = [&] {
          return workers[0]->global_stats().rx_packets + workers[1]->global_stats().rx_packets;
        };
        size_t sent = 0;
        for (const auto& round : rounds) {
          for (const Bytes& f : round) ASSERT_EQ(rte_ring_enqueue(rp.rx, to_mbuf(f)), 0);
          sent += round.size();
          while (seen() < sent && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        while (rte_ring_count(rp.tx) < expected.size() &&
               std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      },
      s0, s1);

  // Every VIP packet forwarded, as one worker would have.
  std::vector<Bytes> out;
  void* m = nullptr;
  while (rte_ring_dequeue(rp.tx, &m) == 0) {
    out.push_back(from_mbuf(static_cast<rte_mbuf*>(m)));
    rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
  // The same frames, in any order (the workers interleave).
  EXPECT_EQ(out.size(), expected.size());
  for (const Bytes& f : out) {
    const auto at = std::find(expected.begin(), expected.end(), f);
    EXPECT_NE(at, expected.end()) << "a frame nobody expected";
    if (at != expected.end()) expected.erase(at);
  }

  // Worker 0 read everything and passed worker 1 its share.
  EXPECT_GT(for_worker1, 0u);
  EXPECT_LT(for_worker1, total);
  EXPECT_EQ(s0.distributed, for_worker1);
  EXPECT_EQ(s0.distribute_unsent, 0u);
  EXPECT_EQ(s0.tx_unsent + s1.tx_unsent, 0u);
  // ARP is not a flow: worker 0's, and without a kernel port dropped there.
  EXPECT_EQ(s0.kernel_unsent, kArps);
  const sluice_global_stats g0 = workers[0]->global_stats();
  const sluice_global_stats g1 = workers[1]->global_stats();
  EXPECT_EQ(g0.rx_packets + g1.rx_packets, total);
  EXPECT_EQ(g1.rx_packets, for_worker1);
  EXPECT_EQ(g0.tx_packets + g1.tx_packets, kFlows * kPacketsPerFlow);
  // One flow, one worker: its entry is in exactly the table of the worker
  // distribution named, and the second packet was a hit there.
  for (const sluice_flow_key& k : keys) {
    const uint32_t h = sluice_flow_hash(&k, kSeed);
    const bool in0 = workers[0]->flows().find(k, h).has_value();
    const bool in1 = workers[1]->flows().find(k, h).has_value();
    EXPECT_NE(in0, in1);
  }
  EXPECT_EQ(g0.flow_hits + g1.flow_hits, kFlows * (kPacketsPerFlow - 1));
  EXPECT_EQ(g0.flow_misses + g1.flow_misses, kFlows);
}

// Key i of the write test. (snprintf: GCC 12 at -O3 misreads a short
// string concatenation, -Wrestrict.)
std::string key_of(uint16_t i) {
  char buf[16];
  const int len = std::snprintf(buf, sizeof buf, "k%u", unsigned{i});
  return {buf, static_cast<size_t>(len)};
}

// Writes to a cached VIP over software distribution: each worker holds
// the written key until the write has left the port -- worker 1's only once
// worker 0 has taken it from the outbox and flushed it -- and then lets go.
// One key per write, so at no moment may more holds be released than
// frames have left.
TEST(DistributionTest, WritesHoldTheirKeysUntilTheyHaveLeft) {
  // Round 1 and both rounds; the out ring holds them all (1,023 slots).
  constexpr uint16_t kRound1 = 200;
  constexpr uint16_t kWrites = 1000;
  constexpr uint32_t kCacheVip = 30;
  RingPort rp;
  ASSERT_NO_FATAL_FAILURE(rp.open("hold"));
  World w;
  w.add_vip({"10.0.0.12", 11211, kUdp, kCacheVip, SLUICE_VIP_CACHE, {1, 2, 3}});
  // Round 1: writes of worker 1's flows only, so worker 0 has none of its
  // own and flushes what it takes from the outbox on its drain timer alone;
  // round 2: writes of both workers' flows.
  std::vector<Bytes> rounds[2];
  std::vector<uint16_t> keys;  // key_of(i) of every write
  unsigned for_worker1 = 0;
  for (uint16_t i = 0; rounds[0].size() + rounds[1].size() < kWrites; ++i) {
    // The memcached frame header (id i, sequence 0 of 1), then a set.
    std::string text(8, '\0');
    text[1] = static_cast<char>(i);
    text[5] = 1;
    text += "set " + key_of(i) + " 0 0 1\r\nx\r\n";
    const Bytes f = PacketBuilder()
                        .eth({.dst = kLbMac, .src = kRouterMac})
                        .ipv4({.src = "192.0.2.10", .dst = "10.0.0.12"})
                        .udp({.sport = static_cast<uint16_t>(30000 + i), .dport = 11211})
                        .payload(Bytes(text.begin(), text.end()))
                        .build();
    const bool one = dpdk::LcoreLoop::worker_of(f.data(), static_cast<uint32_t>(f.size()), 2) == 1;
    if (rounds[0].size() < kRound1 && !one) continue;
    rounds[rounds[0].size() < kRound1 ? 0 : 1].push_back(f);
    for_worker1 += one;
    keys.push_back(i);
  }
  auto versions = std::make_unique<CacheVersions>();
  auto rcu = dpdk::SnapshotRcu::create(2, w.snapshot());
  ASSERT_TRUE(rcu.ok());
  std::vector<std::unique_ptr<dpdk::Worker>> workers;
  for (uint32_t r = 0; r < 2; ++r) {
    auto wk = dpdk::Worker::create({.reader_id = r,
                                    .hash_seed = kSeed,
                                    .flows = {.capacity = 1024},
                                    .cache = dpdk::WorkerCacheConfig{.store = {.max_entries = 64},
                                                                     .versions = versions.get()}},
                                   *rcu.value());
    ASSERT_TRUE(wk.ok());
    workers.push_back(std::move(wk.value()));
  }
  const auto released = [&] {
    return workers[0]->cache()->hold_stats().released + workers[1]->cache()->hold_stats().released;
  };
  dpdk::LoopStats s0{}, s1{};
  uint64_t samples = 0;
  run_two_loops(
      rp.port, workers,
      [&] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        size_t sent = 0;
        for (const auto& round : rounds) {
          for (const Bytes& f : round) ASSERT_EQ(rte_ring_enqueue(rp.rx, to_mbuf(f)), 0);
          sent += round.size();
          for (;;) {
            // Released first, then what has left: a release that came
            // before its frame left would show as more released than left.
            const uint64_t r = released();
            const unsigned left = rte_ring_count(rp.tx);
            ASSERT_LE(r, left) << "a hold was released before its write left";
            ++samples;
            if (r == sent || std::chrono::steady_clock::now() > deadline) break;
            std::this_thread::yield();
          }
        }
      },
      s0, s1);

  EXPECT_EQ(rte_ring_count(rp.tx), kWrites);
  EXPECT_LT(for_worker1, kWrites) << "round 2 has worker 0's writes too";
  EXPECT_EQ(s0.distributed, for_worker1);
  EXPECT_EQ(s0.tx_unsent + s1.tx_unsent, 0u);
  for (size_t i = 0; i < 2; ++i) {
    const dpdk::WorkerHoldStats h = workers[i]->cache()->hold_stats();
    EXPECT_EQ(h.taken, i == 0 ? kWrites - for_worker1 : for_worker1) << "worker " << i;
    EXPECT_EQ(h.released, h.taken) << "worker " << i;
    EXPECT_EQ(h.overflows, 0u);
    EXPECT_FALSE(workers[i]->cache()->holding());
  }
  for (const uint16_t i : keys) {
    const uint32_t slot = sluice_cache_version_slot(kCacheVip, mc::key_hash(key_of(i)));
    EXPECT_EQ(versions->slot_holds(slot), 0u);
    EXPECT_NE(versions->slot_released_ms(slot), 0u);
  }
  EXPECT_GT(samples, 0u);
}

}  // namespace
}  // namespace sluice::test

// Three lcores on one CPU: the main one and two workers, on any machine.
int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv, {}, "(0-2)@0"); }
