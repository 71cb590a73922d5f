// SPDX-License-Identifier: BSD-2-Clause
// The memcached part of Worker::process_burst: key-affinity routing
// (hash = "key") and the hot-object cache (hits answered in the mbuf,
// writes invalidating on every worker) with exact output frames, against
// the standard world (tests/dpdk/world.hpp) plus memcached VIPs; the cache
// cases mirror tests/bpf/cache_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
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
using sluice::CachedKeyHits;
using sluice::CacheVersions;
using sluice::FillResult;
using sluice::HotCache;

constexpr const char* kClient = "198.51.100.20";
constexpr const char* kClient6 = "2001:db8:c::20";
constexpr const char* kMcVip = "10.0.0.11";
constexpr const char* kMcVip6 = "2001:db8::11";
constexpr uint16_t kMcPort = 11211;
constexpr uint32_t kKeyedVip = 20;   // UDP, hash = "key"
constexpr uint32_t kKeyedVip6 = 21;  // the same over IPv6
constexpr uint32_t kTcpTwin = 22;    // TCP on the keyed VIP's address and port
constexpr const char* kCacheVip = "10.0.0.12";
constexpr const char* kCacheVip6 = "2001:db8::12";
constexpr uint32_t kCached = 30;      // UDP, cache = true, hash = "key"
constexpr uint32_t kCached6 = 31;     // UDP over IPv6, cache = true, 5-tuple
constexpr uint32_t kCachedTwin = 32;  // TCP on kCached's address and port

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
    world_.add_vip(
        {kCacheVip, kMcPort, kUdp, kCached, SLUICE_VIP_CACHE | SLUICE_VIP_KEY_HASH, {1, 2, 3}});
    world_.add_vip({kCacheVip6, kMcPort, kUdp, kCached6, SLUICE_VIP_CACHE, {11, 12}});
    world_.add_vip({kCacheVip, kMcPort, kTcp, kCachedTwin, SLUICE_VIP_CACHE, {1, 2, 3}});
    auto rcu = SnapshotRcu::create(2, world_.snapshot());
    ASSERT_TRUE(rcu.ok()) << rcu.error().message;
    rcu_ = std::move(rcu.value());
    // Two workers, one set of versions: a client's TCP write and its UDP
    // read may land on different lcores.
    for (uint32_t id : {0u, 1u}) {
      auto w = Worker::create(
          {.reader_id = id,
           .hash_seed = kSeed,
           .flows = {.capacity = 4096},
           .cache = dpdk::WorkerCacheConfig{.store = {.max_entries = 64, .max_bytes = 1u << 20},
                                            .versions = versions_.get()}},
          *rcu_);
      ASSERT_TRUE(w.ok()) << w.error().message;
      (id == 0 ? worker_ : worker_b_) = std::move(w.value());
    }
  }

  struct Out {
    uint16_t tx = 0, kernel = 0, dropped = 0;
    Bytes frame;
  };
  Out run(const Bytes& in, uint32_t now = 1000) { return run_on(*worker_, in, now); }
  Out run_on(Worker& w, const Bytes& in, uint32_t now = 1000) {
    rte_mbuf* m = to_mbuf(in);
    Verdicts v;
    EXPECT_EQ(w.process_burst_at(&m, 1, v, now), 1);
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

  // Fills `key` of `vip_id` in worker w's cache at `now` (as the filler
  // does: lease, then install on the worker's lcore).
  FillResult fill(Worker& w, uint32_t vip_id, const std::string& key, const std::string& value,
                  uint32_t flags = 7, uint64_t cas = 42, uint32_t now = 1000) {
    const uint64_t at = w.cache()->clock(now);
    auto lease = w.cache()->store().begin_fill(vip_id, key, at);
    EXPECT_TRUE(lease.ok()) << key;
    if (!lease.ok()) return FillResult::kInvalid;
    const auto* data = reinterpret_cast<const uint8_t*>(value.data());
    return w.cache()->store().install(lease.value(), key, {flags, cas, {data, value.size()}}, at);
  }
  // The response memcached sends for `text` (VALUE ... END), as the
  // request `in` (client -> vip, from `sport`) answered: MACs, addresses
  // and ports swapped, TTL 64, frame header echoed.
  static Bytes answer(const char* client, const char* vip, uint16_t sport, uint16_t request_id,
                      const std::string& text) {
    PacketBuilder p;
    p.eth({.dst = kRouterMac, .src = kLbMac});
    if (address(vip).is_v6())
      p.ipv6({.src = vip, .dst = client});
    else
      p.ipv4({.src = vip, .dst = client});
    return p.udp({.sport = kMcPort, .dport = sport}).payload(mc_payload(text, request_id)).build();
  }
  Bytes get(const std::string& key, uint16_t request_id = 0xbeef, const char* cmd = "get") const {
    return udp_frame(kClient, kCacheVip, 40000,
                     mc_payload(std::string(cmd) + " " + key + "\r\n", request_id));
  }
  Bytes tcp_segment(const std::string& text, uint16_t sport = 41000) const {
    return PacketBuilder()
        .eth({.dst = kLbMac, .src = kRouterMac})
        .ipv4({.src = kClient, .dst = kCacheVip})
        .tcp({.sport = sport, .dport = kMcPort, .flags = 0x18})
        .payload(Bytes(text.begin(), text.end()))
        .build();
  }

  World world_;
  std::unique_ptr<CacheVersions> versions_ = std::make_unique<CacheVersions>();
  std::unique_ptr<SnapshotRcu> rcu_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Worker> worker_b_;
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

TEST_F(WorkerCacheTest, CachedGetIsAnsweredByteExactBackOutOfItsPort) {
  ASSERT_EQ(fill(*worker_, kCached, "user:1", "hello", 7, 42), FillResult::kInstalled);
  const Out o = run(get("user:1", 0xbeef));
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame,
            answer(kClient, kCacheVip, 40000, 0xbeef, "VALUE user:1 7 5\r\nhello\r\nEND\r\n"));
  // gets carries the cas unique.
  const Out g = run(get("user:1", 0x0102, "gets"));
  ASSERT_EQ(g.tx, 1);
  EXPECT_EQ(g.frame,
            answer(kClient, kCacheVip, 40000, 0x0102, "VALUE user:1 7 5 42\r\nhello\r\nEND\r\n"));
  const sluice_cache_stats cs = worker_->cache()->stats(kCached);
  EXPECT_EQ(cs.hits, 2u);
  EXPECT_EQ(cs.misses, 0u);
  // Counted as the VIP's packets sent, to no backend.
  EXPECT_EQ(worker_->vip_stats(kCached).packets, 2u);
  EXPECT_EQ(worker_->global_stats().tx_packets, 2u);
  for (const World::Known& k : World::kKnown) EXPECT_EQ(worker_->backend_stats(k.id).packets, 0u);
}

TEST_F(WorkerCacheTest, LargestValueIsAnsweredOverIpv6) {
  std::string value(SLUICE_CACHE_VALUE_MAX, 'v');
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(fill(*worker_, kCached6, "big", value, 0, 1), FillResult::kInstalled);
  const Bytes in = udp_frame(kClient6, kCacheVip6, 40123, mc_payload("get big\r\n", 7));
  const Out o = run(in);
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame,
            answer(kClient6, kCacheVip6, 40123, 7, "VALUE big 0 1024\r\n" + value + "\r\nEND\r\n"));
  // Over the largest value: not cached, so forwarded.
  EXPECT_EQ(fill(*worker_, kCached6, "bigger", value + "x"), FillResult::kTooBig);
  const Bytes miss = udp_frame(kClient6, kCacheVip6, 40123, mc_payload("get bigger\r\n", 8));
  const Out f = run(miss);
  ASSERT_EQ(f.tx, 1);
  EXPECT_EQ(f.frame, world_.forwarded(miss, 0, kCached6,
                                      flow_key(kClient6, 40123, kCacheVip6, kMcPort, kUdp)));
}

TEST_F(WorkerCacheTest, MissIsForwardedToTheKeysOwner) {
  const Bytes in = get("absent");
  const Out o = run(in);
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame, keyed(in, kCached, "absent"));
  EXPECT_EQ(worker_->cache()->stats(kCached).misses, 1u);
  EXPECT_EQ(worker_->cache()->stats(kCached).hits, 0u);
}

TEST_F(WorkerCacheTest, ReadsTheCacheCannotAnswerAreCountedBypassed) {
  // Each is forwarded; only reads count as bypassed, and none as a lookup.
  ASSERT_EQ(fill(*worker_, kCached, "a", "v"), FillResult::kInstalled);
  Bytes second = mc_payload("get a\r\n");
  second[3] = 1;  // sequence 1 of total 2
  second[5] = 2;
  const struct {
    const char* what;
    Bytes payload;
    uint64_t bypassed;
  } cases[] = {
      {"multi-key get", mc_payload("get a b\r\n"), 1},
      {"version", mc_payload("version\r\n"), 1},
      {"a get in the second datagram of two", second, 0},
      {"a write", mc_payload("delete b\r\n"), 0},
  };
  for (const auto& c : cases) {
    const sluice_cache_stats before = worker_->cache()->stats(kCached);
    const Out o = run(udp_frame(kClient, kCacheVip, 40000, c.payload));
    EXPECT_EQ(o.tx, 1) << c.what;
    const sluice_cache_stats after = worker_->cache()->stats(kCached);
    EXPECT_EQ(after.bypassed - before.bypassed, c.bypassed) << c.what;
    EXPECT_EQ(after.hits + after.misses, before.hits + before.misses) << c.what;
  }
}

TEST_F(WorkerCacheTest, WriteInvalidatesBeforeItIsForwarded) {
  ASSERT_EQ(fill(*worker_, kCached, "user:1", "old"), FillResult::kInstalled);
  const Bytes set = udp_frame(kClient, kCacheVip, 40000, mc_payload("set user:1 0 0 3\r\nnew\r\n"));
  const Out w = run(set);
  ASSERT_EQ(w.tx, 1);
  EXPECT_EQ(w.frame, keyed(set, kCached, "user:1"));
  // The get that follows meets the backend, which has the new value.
  const Bytes in = get("user:1");
  const Out o = run(in);
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame, keyed(in, kCached, "user:1"));
  const sluice_cache_stats cs = worker_->cache()->stats(kCached);
  EXPECT_EQ(cs.invalidations, 1u);
  EXPECT_EQ(cs.hits, 0u);
  EXPECT_EQ(versions_->version(sluice_cache_version_slot(kCached, mc::key_hash("user:1"))), 1u);
  // The write holds its key until the caller says it has left.
  dpdk::WorkerCache& c = *worker_->cache();
  EXPECT_TRUE(c.holds_unsealed());
  c.seal_holds(0);
  EXPECT_EQ(c.release_holds(0, 1000), 1u);
  // A fill leased before that write would be refused; one after it is in.
  ASSERT_EQ(fill(*worker_, kCached, "user:1", "new", 0, 0, 2000), FillResult::kInstalled);
  EXPECT_EQ(run(get("user:1"), 2001).tx, 1);
  EXPECT_EQ(worker_->cache()->stats(kCached).hits, 1u);
}

// A burst's gets are looked up together (WorkerCache::stage_get, then
// answered in packet order): a write in the burst -- UDP, or TCP on the
// twin VIP -- invalidates its key after the gets before it are answered
// from the old value and before a get after it, which goes to the backend.
TEST_F(WorkerCacheTest, AWriteInABurstInvalidatesBeforeTheGetsAfterIt) {
  const struct {
    const char* what;
    Bytes write;
  } cases[] = {
      {"UDP set", udp_frame(kClient, kCacheVip, 40000, mc_payload("set user:1 0 0 3\r\nnew\r\n"))},
      {"TCP delete on the twin", tcp_segment("delete user:1\r\n")},
  };
  uint32_t now = 1000;
  for (const auto& c : cases) {
    ASSERT_EQ(fill(*worker_, kCached, "user:1", "old", 7, 42, now), FillResult::kInstalled)
        << c.what;
    ASSERT_EQ(fill(*worker_, kCached, "other", "o", 7, 42, now), FillResult::kInstalled) << c.what;
    const sluice_cache_stats before = worker_->cache()->stats(kCached);
    const Bytes in[] = {get("user:1", 1), c.write, get("user:1", 2), get("other", 3)};
    rte_mbuf* m[4];
    for (size_t i = 0; i < 4; ++i) m[i] = to_mbuf(in[i]);
    Verdicts v;
    EXPECT_EQ(worker_->process_burst_at(m, 4, v, now), 4);
    EXPECT_EQ(v.n_tx, 4) << c.what;
    Bytes out[4];
    for (size_t i = 0; i < 4; ++i) {
      out[i] = from_mbuf(m[i]);
      rte_pktmbuf_free(m[i]);
    }
    EXPECT_EQ(out[0], answer(kClient, kCacheVip, 40000, 1, "VALUE user:1 7 3\r\nold\r\nEND\r\n"))
        << c.what << ": the get before the write is answered";
    EXPECT_EQ(get_be16(&out[1][12]), SLUICE_ETH_P_IP) << c.what;
    EXPECT_EQ(out[1][14 + 9], SLUICE_IPPROTO_IPIP) << c.what << ": the write to a backend";
    EXPECT_EQ(out[2], keyed(in[2], kCached, "user:1"))
        << c.what << ": the get after the write goes to the key's owner";
    EXPECT_EQ(out[3], answer(kClient, kCacheVip, 40000, 3, "VALUE other 7 1\r\no\r\nEND\r\n"))
        << c.what << ": another key's entry stays";
    const sluice_cache_stats after = worker_->cache()->stats(kCached);
    EXPECT_EQ(after.hits - before.hits, 2u) << c.what;
    EXPECT_EQ(after.misses - before.misses, 1u) << c.what;
    EXPECT_EQ(after.invalidations - before.invalidations, 1u) << c.what;
    EXPECT_EQ(after.vip_invalidations, 0u) << c.what;
    // The write's hold ends; the next case fills a second later, past
    // the settle time.
    dpdk::WorkerCache& wc = *worker_->cache();
    wc.seal_holds(0);
    EXPECT_EQ(wc.release_holds(0, now), 1u) << c.what;
    now += 1000;
  }
}

// A write holds its key on every worker until the caller has transmitted
// it (the lcore loop: TX buffers flushed, or worker 0 has flushed the
// outbox up to the ticket), then write_settle_ms (100 ms) more.
TEST_F(WorkerCacheTest, AWriteHoldsItsKeyUntilItHasLeftThenSettles) {
  dpdk::WorkerCache& a = *worker_->cache();
  dpdk::WorkerCache& b = *worker_b_->cache();
  EXPECT_FALSE(a.holding());
  ASSERT_EQ(
      run(udp_frame(kClient, kCacheVip, 40000, mc_payload("set k 0 0 3\r\nnew\r\n")), 1000).tx, 1);
  EXPECT_TRUE(a.holds_unsealed());
  EXPECT_TRUE(a.holding());
  EXPECT_EQ(a.hold_stats().taken, 1u);
  // Worker B's filler is refused too, however long the write waits.
  EXPECT_EQ(b.store().begin_fill(kCached, "k", b.clock(1000)).error().code, -EAGAIN);
  EXPECT_EQ(b.store().begin_fill(kCached, "k", b.clock(9000)).error().code, -EAGAIN);
  EXPECT_TRUE(b.store().begin_fill(kCached, "other", b.clock(9000)).ok());
  // In an outbox, behind 7 packets: not left until 7 are flushed.
  a.seal_holds(7);
  EXPECT_FALSE(a.holds_unsealed());
  EXPECT_EQ(a.release_holds(6, 9000), 0u);
  EXPECT_EQ(b.store().begin_fill(kCached, "k", b.clock(9000)).error().code, -EAGAIN);
  EXPECT_EQ(a.release_holds(7, 9000), 1u);
  EXPECT_FALSE(a.holding());
  EXPECT_EQ(a.hold_stats().released, 1u);
  EXPECT_EQ(b.store().begin_fill(kCached, "k", b.clock(9099)).error().code, -EAGAIN) << "settling";
  EXPECT_EQ(fill(*worker_b_, kCached, "k", "new", 0, 0, 9100), FillResult::kInstalled);

  // Something the worker cannot follow holds the VIP: every key of it.
  ASSERT_EQ(run(udp_frame(kClient, kCacheVip, 40000, Bytes{1, 2, 3}), 10'000).tx, 1);
  EXPECT_EQ(b.store().begin_fill(kCached, "x", b.clock(10'000)).error().code, -EAGAIN);
  a.seal_holds(7);
  EXPECT_EQ(a.release_holds(7, 10'000), 1u);
  EXPECT_TRUE(b.store().begin_fill(kCached, "x", b.clock(10'100)).ok());
}

// More writes in flight than a worker tracks one by one: it holds every
// key until they have left.
TEST_F(WorkerCacheTest, TooManyWritesInFlightHoldEveryKey) {
  dpdk::WorkerCache& a = *worker_->cache();
  std::string deletes;
  uint32_t n = 0;
  for (uint32_t p = 0; n <= dpdk::WorkerCache::kMaxHolds; ++p) {
    deletes.clear();
    for (int i = 0; i < 8; ++i) deletes += "delete k" + std::to_string(n++) + "\r\n";
    ASSERT_EQ(run(tcp_segment(deletes), 1000).tx, 1);
  }
  EXPECT_EQ(a.hold_stats().overflows, 1u);
  EXPECT_EQ(versions_->all_holds(), 1u);
  EXPECT_EQ(a.store().begin_fill(kCached6, "unrelated", a.clock(1000)).error().code, -EAGAIN);
  a.seal_holds(3);
  EXPECT_EQ(a.release_holds(3, 1000), dpdk::WorkerCache::kMaxHolds + 1);
  EXPECT_EQ(versions_->all_holds(), 0u);
  EXPECT_FALSE(a.holding());
  EXPECT_TRUE(a.store().begin_fill(kCached6, "unrelated", a.clock(1100)).ok());
}

TEST_F(WorkerCacheTest, AWriteOnOneWorkerStopsEveryWorkersEntry) {
  for (Worker* w : {worker_.get(), worker_b_.get()}) {
    ASSERT_EQ(fill(*w, kCached, "a", "1"), FillResult::kInstalled);
    ASSERT_EQ(fill(*w, kCached, "b", "2"), FillResult::kInstalled);
  }
  ASSERT_EQ(run_on(*worker_b_, get("a")).frame,
            answer(kClient, kCacheVip, 40000, 0xbeef, "VALUE a 7 1\r\n1\r\nEND\r\n"));
  // A TCP write of `a` (the twin VIP) through worker A, forwarded by its flow ...
  const Bytes seg = tcp_segment("set a 0 0 1\r\n9\r\n");
  const Out w = run_on(*worker_, seg);
  ASSERT_EQ(w.tx, 1);
  EXPECT_EQ(w.frame, world_.forwarded(seg, 0, kCachedTwin,
                                      flow_key(kClient, 41000, kCacheVip, kMcPort, kTcp)));
  // ... and worker B no longer answers `a`, but still answers `b`.
  const Bytes in = get("a");
  const Out o = run_on(*worker_b_, in);
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame, keyed(in, kCached, "a"));
  EXPECT_EQ(run_on(*worker_b_, get("b")).frame,
            answer(kClient, kCacheVip, 40000, 0xbeef, "VALUE b 7 1\r\n2\r\nEND\r\n"));
  EXPECT_EQ(worker_->cache()->stats(kCached).invalidations, 1u);
  // The same the other way, over UDP: a delete through B stops A's `b`.
  EXPECT_EQ(run_on(*worker_b_, udp_frame(kClient, kCacheVip, 40001, mc_payload("delete b\r\n"))).tx,
            1);
  const Bytes in_b = get("b");
  EXPECT_EQ(run_on(*worker_, in_b).frame, keyed(in_b, kCached, "b"));
}

TEST_F(WorkerCacheTest, WhatCannotBeFollowedInvalidatesTheVip) {
  const struct {
    const char* what;
    Bytes in;
  } cases[] = {
      // A segment that starts in the middle of a data block.
      {"mid-request TCP segment", tcp_segment("lue-continues\r\n")},
      {"binary protocol over TCP", tcp_segment(std::string("\x80\x01\x00\x01", 4))},
      {"flush_all over UDP", udp_frame(kClient, kCacheVip, 40000, mc_payload("flush_all\r\n"))},
      {"garbage over UDP",
       udp_frame(kClient, kCacheVip, 40000, cat({mc_payload(""), pattern(40)}))},
      {"short of a frame header", udp_frame(kClient, kCacheVip, 40000, Bytes{1, 2, 3})},
  };
  uint64_t expected = 0;
  // A second per case: each case's VIP hold, released when its packet was
  // sent, has settled by the next one's fills.
  uint32_t now = 1000;
  for (const auto& c : cases) {
    for (Worker* w : {worker_.get(), worker_b_.get()})
      ASSERT_EQ(fill(*w, kCached, "k", "v", 7, 42, now), FillResult::kInstalled) << c.what;
    ASSERT_EQ(run_on(*worker_b_, get("k"), now).tx, 1);
    ASSERT_EQ(worker_b_->cache()->stats(kCached).hits, expected + 1) << c.what;
    const Out f = run_on(*worker_, c.in, now);
    EXPECT_EQ(f.tx, 1) << c.what << ": forwarded";
    EXPECT_EQ(worker_->cache()->stats(kCached).vip_invalidations, ++expected) << c.what;
    // Neither worker serves what it filled before.
    const Bytes in = get("k");
    EXPECT_EQ(run_on(*worker_b_, in, now).frame, keyed(in, kCached, "k")) << c.what;
    EXPECT_EQ(run_on(*worker_, in, now).frame, keyed(in, kCached, "k")) << c.what;
    // Nor fills it again until the packet has left.
    EXPECT_EQ(worker_b_->cache()->store().begin_fill(kCached, "k", now).error().code, -EAGAIN)
        << c.what;
    worker_->cache()->seal_holds(0);
    EXPECT_EQ(worker_->cache()->release_holds(0, now), 1u) << c.what;
    now += 1000;
  }
  EXPECT_EQ(versions_->epoch(kCached), expected);
  EXPECT_EQ(versions_->epoch(kCached6), 0u);
}

TEST_F(WorkerCacheTest, ReadsThatAreNotOneGetAreForwardedAndKeepTheEntry) {
  ASSERT_EQ(fill(*worker_, kCached, "a", "1"), FillResult::kInstalled);
  const struct {
    const char* what;
    Bytes in;
  } cases[] = {
      {"multi-key get", udp_frame(kClient, kCacheVip, 40000, mc_payload("get a b\r\n"))},
      {"version", udp_frame(kClient, kCacheVip, 40000, mc_payload("version\r\n"))},
      // One datagram of a message of two: the response could not be one.
      {"second datagram", udp_frame(kClient, kCacheVip, 40000,
                                    cat({Bytes{0x12, 0x34, 0, 0, 0, 2, 0, 0},
                                         Bytes{'g', 'e', 't', ' ', 'a', '\r', '\n'}}))},
      {"IPv4 options", PacketBuilder()
                           .eth({.dst = kLbMac, .src = kRouterMac})
                           .ipv4({.src = kClient, .dst = kCacheVip, .options = {1, 1, 1, 1}})
                           .udp({.sport = 40000, .dport = kMcPort})
                           .payload(mc_payload("get a\r\n"))
                           .build()},
  };
  for (const auto& c : cases) {
    const Out o = run(c.in);
    ASSERT_EQ(o.tx, 1) << c.what;
    EXPECT_NE(o.frame.size(), 0u);
    EXPECT_EQ(get_be16(&o.frame[12]), SLUICE_ETH_P_IP) << c.what;
    EXPECT_EQ(o.frame[14 + 9], SLUICE_IPPROTO_IPIP) << c.what << ": encapsulated to a backend";
  }
  EXPECT_EQ(worker_->cache()->stats(kCached).vip_invalidations, 0u);
  EXPECT_EQ(worker_->cache()->stats(kCached).invalidations, 0u);
  EXPECT_EQ(run(get("a")).frame,
            answer(kClient, kCacheVip, 40000, 0xbeef, "VALUE a 7 1\r\n1\r\nEND\r\n"));
}

// The control thread's side: hot keys off the ring, a lease, the fetched
// value back through the install ring, applied at the next burst.
TEST_F(WorkerCacheTest, MissesMakeAKeyHotAndTheFillIsAnswered) {
  std::array<sluice_cache_hot, 8> hot{};
  dpdk::WorkerCache& c = *worker_->cache();
  for (int i = 1; i < 32; ++i) ASSERT_EQ(run(get("hot")).tx, 1);
  EXPECT_EQ(c.poll_hot(hot), 0u) << "31 misses: not hot yet (threshold 32)";
  ASSERT_EQ(run(get("hot")).tx, 1);
  ASSERT_EQ(c.poll_hot(hot), 1u);
  EXPECT_EQ(hot[0].vip_id, kCached);
  EXPECT_EQ(hot[0].key_hash, mc::key_hash("hot"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hot[0].key), hot[0].key_len), "hot");
  for (int i = 0; i < 10; ++i) ASSERT_EQ(run(get("hot")).tx, 1);
  EXPECT_EQ(c.poll_hot(hot), 0u) << "reported once per period";
  EXPECT_EQ(c.stats(kCached).hot_reports, 1u);

  auto lease = c.store().begin_fill(kCached, "hot", c.last_clock());
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  const std::string value = "from-the-owner";
  ASSERT_TRUE(
      c.post_install(lease.value(), "hot",
                     {3, 77, {reinterpret_cast<const uint8_t*>(value.data()), value.size()}}));
  // Applied at the top of the next burst, which it then answers.
  const Out o = run(get("hot", 0x4242, "gets"));
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame, answer(kClient, kCacheVip, 40000, 0x4242,
                            "VALUE hot 3 14 77\r\nfrom-the-owner\r\nEND\r\n"));
  const dpdk::WorkerCacheCounters n = c.counters(kCached);
  EXPECT_EQ(n.store.fills, 1u);
  EXPECT_EQ(n.store.entries, 1u);
  EXPECT_EQ(n.store.bytes, 3u + value.size());
  EXPECT_EQ(n.fast_path.hits, 1u);
  EXPECT_EQ(n.fast_path.misses, 42u);

  // A new period counts afresh.
  for (int i = 0; i < 32; ++i) ASSERT_EQ(run(get("other"), 2500).tx, 1);
  ASSERT_EQ(c.poll_hot(hot), 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hot[0].key), hot[0].key_len), "other");
}

// The cached keys of a worker's store by slot: {slot, key, hits} of every
// live slot, as the control thread reads them.
struct SlotHits {
  uint32_t slot;
  std::string key;
  uint64_t hits;
};
std::vector<SlotHits> cached_keys(Worker& w) {
  std::vector<SlotHits> out;
  const HotCache& store = w.cache()->store();
  CachedKeyHits k;
  for (uint32_t s = 0; s < store.config().max_entries; ++s)
    if (store.key_hits(s, k)) out.push_back({s, std::string(k.key, k.key_len), k.hits});
  return out;
}
uint64_t hits_of(Worker& w, const std::string& key) {
  for (const SlotHits& s : cached_keys(w))
    if (s.key == key) return s.hits;
  ADD_FAILURE() << key << " is not cached";
  return 0;
}

TEST_F(WorkerCacheTest, EachAnsweredGetCountsAgainstItsKey) {
  ASSERT_EQ(fill(*worker_, kCached, "key:a", "alpha"), FillResult::kInstalled);
  ASSERT_EQ(fill(*worker_, kCached, "key:b", "beta"), FillResult::kInstalled);
  EXPECT_EQ(hits_of(*worker_, "key:a"), 0u);
  EXPECT_EQ(hits_of(*worker_, "key:b"), 0u);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run(get("key:a")).tx, 1);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(run(get("key:b", 0x0101, "gets")).tx, 1);
  EXPECT_EQ(hits_of(*worker_, "key:a"), 3u);
  EXPECT_EQ(hits_of(*worker_, "key:b"), 5u);
  // A miss of an uncached key and a multi-key get (forwarded) count nowhere.
  ASSERT_EQ(run(get("key:c")).tx, 1);
  ASSERT_EQ(run(udp_frame(kClient, kCacheVip, 40000, mc_payload("get key:a key:b\r\n"))).tx, 1);
  EXPECT_EQ(hits_of(*worker_, "key:a"), 3u);
  EXPECT_EQ(hits_of(*worker_, "key:b"), 5u);
  EXPECT_EQ(cached_keys(*worker_).size(), 2u);
  // Only the worker that answered counts.
  EXPECT_TRUE(cached_keys(*worker_b_).empty());
  EXPECT_EQ(worker_->cache()->stats(kCached).hits, 8u);
  // The rest of what key_hits reads.
  CachedKeyHits k;
  const HotCache& store = worker_->cache()->store();
  bool found = false;
  for (uint32_t s = 0; s < store.config().max_entries && !found; ++s)
    found = store.key_hits(s, k) && std::string(k.key, k.key_len) == "key:a";
  ASSERT_TRUE(found);
  EXPECT_EQ(k.vip_id, kCached);
  EXPECT_EQ(k.value_bytes, 5u);
  EXPECT_EQ(k.expires_ms, worker_->cache()->clock(1000) + store.config().ttl_ms);
  EXPECT_FALSE(store.key_hits(store.config().max_entries, k)) << "slot out of range";
}

TEST_F(WorkerCacheTest, ASlotRefilledWithAnotherKeyRestartsItsHits) {
  ASSERT_EQ(fill(*worker_, kCached, "old", "value"), FillResult::kInstalled);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(run(get("old")).tx, 1);
  std::vector<SlotHits> before = cached_keys(*worker_);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].hits, 4u);
  // A write drops the entry: its slot is free, and no longer listed.
  ASSERT_EQ(run(tcp_segment("delete old\r\n")).tx, 1);
  EXPECT_TRUE(cached_keys(*worker_).empty());
  // Past the write's settle time (and its hold's release), another key
  // takes the freed slot and starts at 0.
  worker_->cache()->seal_holds(1);
  ASSERT_EQ(worker_->cache()->release_holds(1, 1000), 1u);
  ASSERT_EQ(fill(*worker_, kCached, "new", "value", 7, 42, 2000), FillResult::kInstalled);
  std::vector<SlotHits> after = cached_keys(*worker_);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].slot, before[0].slot) << "the freed slot is reused first";
  EXPECT_EQ(after[0].key, "new");
  EXPECT_EQ(after[0].hits, 0u);
  ASSERT_EQ(run(get("new"), 2000).tx, 1);
  EXPECT_EQ(hits_of(*worker_, "new"), 1u);
}

TEST_F(WorkerCacheTest, AFillLeasedBeforeAnotherWorkersWriteIsRefused) {
  dpdk::WorkerCache& c = *worker_->cache();
  auto lease = c.store().begin_fill(kCached, "k", c.last_clock());
  ASSERT_TRUE(lease.ok());
  // While the value is being fetched, a client writes k through worker B.
  ASSERT_EQ(run_on(*worker_b_, tcp_segment("set k 0 0 3\r\nnew\r\n")).tx, 1);
  const std::string old = "old";
  ASSERT_TRUE(c.post_install(lease.value(), "k",
                             {0, 0, {reinterpret_cast<const uint8_t*>(old.data()), 3}}));
  const Bytes in = get("k");
  const Out o = run(in);
  ASSERT_EQ(o.tx, 1);
  EXPECT_EQ(o.frame, keyed(in, kCached, "k")) << "the old value must not be served";
  EXPECT_EQ(c.counters(kCached).store.stale_fills, 1u);
  EXPECT_EQ(c.counters(kCached).store.fills, 0u);
  // Too big for an entry: refused at the ring.
  const std::string big(SLUICE_CACHE_VALUE_MAX + 1, 'x');
  EXPECT_FALSE(c.post_install(lease.value(), "k",
                              {0, 0, {reinterpret_cast<const uint8_t*>(big.data()), big.size()}}));
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
