// SPDX-License-Identifier: BSD-2-Clause
// The memcached part of Worker::process_burst: key-affinity routing
// (hash = "key") with exact output frames, against the standard world
// (tests/dpdk/world.hpp) plus memcached VIPs.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/core/memcached.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/dpdk/dpdk_env.hpp"
#include "tests/dpdk/world.hpp"

namespace sluice::test {
namespace {

using dpdk::SnapshotRcu;
using dpdk::Verdicts;
using dpdk::Worker;

constexpr const char* kClient = "198.51.100.20";
constexpr const char* kClient6 = "2001:db8:c::20";
constexpr const char* kMcVip = "10.0.0.11";
constexpr const char* kMcVip6 = "2001:db8::11";
constexpr uint16_t kMcPort = 11211;
constexpr uint32_t kKeyedVip = 20;   // UDP, hash = "key"
constexpr uint32_t kKeyedVip6 = 21;  // the same over IPv6
constexpr uint32_t kTcpTwin = 22;    // TCP on the keyed VIP's address and port

// The memcached frame header (request id, sequence 0 of 1) then `request`.
Bytes mc_payload(const std::string& request, uint16_t request_id = 0x1234) {
  // Built as text: GCC 12 at -O3 misreads byte stores into a short vector
  // (-Warray-bounds, -Wnull-dereference).
  std::string text(SLUICE_MC_UDP_HDR_LEN, '\0');
  text[0] = static_cast<char>(request_id >> 8);
  text[1] = static_cast<char>(request_id & 0xff);
  text[5] = 1;
  text += request;
  return Bytes(text.begin(), text.end());
}
Bytes udp_frame(const char* client, const char* vip, uint16_t sport, const Bytes& payload) {
  PacketBuilder p;
  p.eth({.dst = kLbMac, .src = kRouterMac});
  if (address(vip).is_v6())
    p.ipv6({.src = client, .dst = vip});
  else
    p.ipv4({.src = client, .dst = vip});
  return p.udp({.sport = sport, .dport = kMcPort}).payload(payload).build();
}

class WorkerCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_.add_vip({kMcVip, kMcPort, kUdp, kKeyedVip, SLUICE_VIP_KEY_HASH, {1, 2, 3}});
    world_.add_vip({kMcVip6, kMcPort, kUdp, kKeyedVip6, SLUICE_VIP_KEY_HASH, {11, 12}});
    // The config refuses hash = "key" on TCP; the flag on a TCP VIP (the
    // twin a cached UDP VIP gives its TCP side) must not change placement.
    world_.add_vip({kMcVip, kMcPort, kTcp, kTcpTwin, SLUICE_VIP_KEY_HASH, {1, 2, 3}});
    auto rcu = SnapshotRcu::create(1, world_.snapshot());
    ASSERT_TRUE(rcu.ok()) << rcu.error().message;
    rcu_ = std::move(rcu.value());
    auto w = Worker::create({.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = 4096}},
                            *rcu_);
    ASSERT_TRUE(w.ok()) << w.error().message;
    worker_ = std::move(w.value());
  }

  struct Out {
    uint16_t tx = 0, kernel = 0, dropped = 0;
    Bytes frame;
  };
  Out run(const Bytes& in, uint32_t now = 1000) {
    rte_mbuf* m = to_mbuf(in);
    Verdicts v;
    EXPECT_EQ(worker_->process_burst_at(&m, 1, v, now), 1);
    Out o{v.n_tx, v.n_kernel, v.n_dropped, from_mbuf(m)};
    rte_pktmbuf_free(m);
    return o;
  }
  // The frame forwarded to the owner of `key` on `vip_id`, as XDP places it.
  Bytes keyed(const Bytes& in, uint32_t vip_id, const std::string& key) const {
    const uint32_t h = mc::route_hash(key, kSeed);
    const std::vector<uint32_t>& t = world_.table(vip_id);
    return world_.encapsulated(in, 0, t[h % t.size()], h);
  }

  World world_;
  std::unique_ptr<SnapshotRcu> rcu_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(WorkerCacheTest, OneKeyRequestsArePlacedByTheirKey) {
  const struct {
    const char* what;
    std::string request;
    std::string key;
  } cases[] = {
      {"get", "get user:1\r\n", "user:1"},
      {"gets", "gets user:2\r\n", "user:2"},
      {"set", "set user:3 0 0 5\r\nhello\r\n", "user:3"},
      {"delete", "delete user:4\r\n", "user:4"},
      {"incr", "incr counter 1\r\n", "counter"},
      {"250-byte key", "get " + std::string(250, 'k') + "\r\n", std::string(250, 'k')},
  };
  for (const auto& c : cases) {
    // Every client, from every port, reaches the key's owner.
    for (const uint16_t sport : {uint16_t{40000}, uint16_t{40001}, uint16_t{52000}}) {
      const Bytes in = udp_frame(kClient, kMcVip, sport, mc_payload(c.request));
      const Out o = run(in);
      ASSERT_EQ(o.tx, 1) << c.what;
      EXPECT_EQ(o.frame, keyed(in, kKeyedVip, c.key)) << c.what << " from port " << sport;
      const Bytes in6 = udp_frame(kClient6, kMcVip6, sport, mc_payload(c.request));
      const Out o6 = run(in6);
      ASSERT_EQ(o6.tx, 1) << c.what;
      EXPECT_EQ(o6.frame, keyed(in6, kKeyedVip6, c.key)) << c.what << " v6 from port " << sport;
    }
  }
  // Placed by key, never through the flow table: no flow hit, miss or entry.
  const sluice_global_stats g = worker_->global_stats();
  EXPECT_EQ(g.flow_hits + g.flow_misses, 0u);
  EXPECT_EQ(worker_->flows().size(), 0u);
  EXPECT_EQ(worker_->vip_stats(kKeyedVip).packets, std::size(cases) * 3);
  EXPECT_EQ(worker_->vip_stats(kKeyedVip).new_flows, 0u);
}

TEST_F(WorkerCacheTest, KeysSpreadOverTheShards) {
  std::vector<int> per_backend(4, 0);
  for (int i = 0; i < 300; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const Bytes in = udp_frame(kClient, kMcVip, 40000, mc_payload("get " + key + "\r\n"));
    const Out o = run(in);
    ASSERT_EQ(o.tx, 1);
    ASSERT_EQ(o.frame, keyed(in, kKeyedVip, key)) << key;
    const uint32_t h = mc::route_hash(key, kSeed);
    ++per_backend.at(world_.table(kKeyedVip)[h % kTableSize]);
  }
  // One client socket, three shards: the key, not the 5-tuple, decides.
  for (uint32_t id : {1u, 2u, 3u}) EXPECT_GT(per_backend[id], 50) << "backend " << id;
}

TEST_F(WorkerCacheTest, WhatNamesNoOneKeyIsPlacedByItsFlow) {
  const struct {
    const char* what;
    Bytes payload;
  } cases[] = {
      {"multi-key get", mc_payload("get a b\r\n")},
      {"pipeline", mc_payload("get a\r\nget b\r\n")},
      {"version", mc_payload("version\r\n")},
      {"flush_all", mc_payload("flush_all\r\n")},
      {"binary protocol", cat({mc_payload(""), Bytes{0x80, 0x00, 0x00, 0x01}})},
      {"no line end", mc_payload("get a")},
      {"short of a frame header", Bytes{0x12, 0x34, 0x00}},
      {"empty", Bytes{}},
      {"garbage", cat({mc_payload(""), pattern(64)})},
  };
  for (const auto& c : cases) {
    const Bytes in = udp_frame(kClient, kMcVip, 40000, c.payload);
    const Out o = run(in);
    ASSERT_EQ(o.tx, 1) << c.what;
    const sluice_flow_key k = flow_key(kClient, 40000, kMcVip, kMcPort, kUdp);
    EXPECT_EQ(o.frame, world_.forwarded(in, 0, kKeyedVip, k)) << c.what;
  }
}

TEST_F(WorkerCacheTest, TcpWritesKeepTheirFlow) {
  // A memcached connection carries many keys and one backend takes it
  // whole: placed by its 5-tuple and pinned in the flow table.
  const sluice_flow_key k = flow_key(kClient, 41000, kMcVip, kMcPort, kTcp);
  const Bytes syn = PacketBuilder()
                        .eth({.dst = kLbMac, .src = kRouterMac})
                        .ipv4({.src = kClient, .dst = kMcVip})
                        .tcp({.sport = 41000, .dport = kMcPort, .flags = 0x02})
                        .build();
  const Out s = run(syn);
  ASSERT_EQ(s.tx, 1);
  EXPECT_EQ(s.frame, world_.forwarded(syn, 0, kTcpTwin, k));
  for (const char* req : {"set a 0 0 1\r\nx\r\n", "set b 0 0 1\r\ny\r\n", "delete c\r\n"}) {
    const std::string text = req;
    const Bytes seg = PacketBuilder()
                          .eth({.dst = kLbMac, .src = kRouterMac})
                          .ipv4({.src = kClient, .dst = kMcVip})
                          .tcp({.sport = 41000, .dport = kMcPort, .flags = 0x18})
                          .payload(Bytes(text.begin(), text.end()))
                          .build();
    const Out o = run(seg);
    ASSERT_EQ(o.tx, 1) << req;
    EXPECT_EQ(o.frame, world_.forwarded(seg, 0, kTcpTwin, k)) << req;
  }
  EXPECT_EQ(worker_->global_stats().flow_hits, 3u);
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
