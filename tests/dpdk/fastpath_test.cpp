// SPDX-License-Identifier: BSD-2-Clause
// DpdkFastpath: the control library's Fastpath over the DPDK path -- a
// FastpathSnapshot published through it steers the workers, an invalid one
// changes nothing, and the counters are the workers' summed; its cache side
// (FastpathCache) takes the workers' hot keys and hands fills to all.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control/dpdk_fastpath.hpp"
#include "tests/dpdk/dpdk_env.hpp"
#include "tests/dpdk/least_conn_weights.hpp"
#include "tests/dpdk/world.hpp"

namespace sluice::test {
namespace {

using control::DpdkFastpath;
using control::FastpathSnapshot;
using control::FastpathVip;

// The standard world as the Balancer hands it over.
struct Converted {
  FastpathSnapshot snap;
  std::vector<std::vector<uint32_t>> tables;  // what the spans point into
};

Converted from_world(const World& w, bool with_gateway = true) {
  const dpdk::SnapshotSpec spec = w.spec();
  Converted c;
  c.tables.reserve(spec.vips.size());
  for (const dpdk::SnapshotVipSpec& v : spec.vips) {
    c.tables.push_back(v.table);
    FastpathVip fv;
    fv.key = v.key;
    fv.meta = v.meta;
    fv.meta.table_size = static_cast<uint32_t>(v.table.size());
    fv.table = c.tables.back();
    c.snap.vips.push_back(fv);
  }
  c.snap.backends = spec.backends;
  c.snap.encap = spec.encap;
  if (with_gateway) c.snap.gateway_mac = spec.next_hop.dst_mac;
  return c;
}

TEST(DpdkFastpathTest, PublishedSnapshotsSteerTheWorkersAndCountersAreSummed) {
  DpdkFastpath::Options o;
  o.interface = "net_null0";
  o.max_workers = 2;
  o.port_mac = {kLbMac[0], kLbMac[1], kLbMac[2], kLbMac[3], kLbMac[4], kLbMac[5]};
  auto made = DpdkFastpath::create(o);
  ASSERT_TRUE(made.ok()) << made.error().message;
  DpdkFastpath& fp = *made.value();
  EXPECT_EQ(fp.info().kind, "dpdk");
  EXPECT_TRUE(fp.initial_state().vips.empty());

  std::vector<std::unique_ptr<dpdk::Worker>> workers;
  for (uint32_t id = 0; id < 2; ++id) {
    auto w = dpdk::Worker::create(
        {.reader_id = id, .hash_seed = kSeed, .flows = {.capacity = 1024}}, fp.rcu());
    ASSERT_TRUE(w.ok());
    workers.push_back(std::move(w.value()));
    fp.attach_worker(workers.back().get(), 5 + id);
  }

  const Bytes in = PacketBuilder()
                       .eth({.dst = kLbMac, .src = kRouterMac})
                       .ipv4({.src = "192.0.2.10", .dst = "10.0.0.1"})
                       .tcp({.sport = 40000, .dport = 80})
                       .build();
  const auto send = [&](dpdk::Worker& w) {
    rte_mbuf* m = to_mbuf(in);
    dpdk::Verdicts v;
    w.process_burst(&m, 1, v);
    const Bytes out = from_mbuf(m);
    rte_pktmbuf_free(m);
    return std::make_pair(v.n_tx == 1 ? 't' : v.n_kernel == 1 ? 'k' : 'd', out);
  };

  // Before any publication nothing is a VIP: to the kernel.
  EXPECT_EQ(send(*workers[0]).first, 'k');

  const World world;
  const Converted c = from_world(world);
  ASSERT_TRUE(fp.publish(c.snap).ok());
  const auto key = flow_key("192.0.2.10", 40000, "10.0.0.1", 80, kTcp);
  const auto [verdict, out] = send(*workers[0]);
  EXPECT_EQ(verdict, 't');
  EXPECT_EQ(out, world.forwarded(in, 0, 1, key));
  EXPECT_EQ(send(*workers[1]).first, 't');

  // An invalid snapshot changes nothing.
  Converted bad = from_world(world);
  bad.snap.vips[1].meta.vip_id = bad.snap.vips[0].meta.vip_id;
  const auto rejected = fp.publish(bad.snap);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().code, -EINVAL);
  EXPECT_EQ(send(*workers[1]).first, 't');

  // Counters: both workers, summed.
  const auto g = fp.global_stats();
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.value().rx_packets, 4u);
  EXPECT_EQ(g.value().tx_packets, 3u);
  EXPECT_EQ(g.value().pass_packets, 1u);
  EXPECT_EQ(fp.vip_stats(1).value().packets, 3u);
  EXPECT_EQ(fp.backend_stats(world.choice(1, key)).value().packets, 3u);
  EXPECT_FALSE(fp.vip_stats(SLUICE_MAX_VIPS).ok());
  // Per worker: worker 0 took three packets (one to the kernel), worker 1 one.
  const std::vector<control::WorkerStats> per = fp.worker_stats();
  ASSERT_EQ(per.size(), 2u);
  EXPECT_EQ(per[0].lcore, 5u);
  EXPECT_EQ(per[1].lcore, 6u);
  EXPECT_EQ(per[0].global.rx_packets, 2u);
  EXPECT_EQ(per[0].global.tx_packets, 1u);
  EXPECT_EQ(per[1].global.rx_packets, 2u);
  EXPECT_EQ(per[1].global.tx_packets, 2u);
  // The flow table is per worker x workers (1024 entries each).
  EXPECT_EQ(per[0].flow_capacity, 1024u);
  ASSERT_TRUE(fp.flow_table_size().has_value());
  EXPECT_EQ(fp.flow_table_size()->capacity, 2048u);

  // Without a gateway MAC the one published before stays.
  const Converted no_gw = from_world(world, false);
  ASSERT_TRUE(fp.publish(no_gw.snap).ok());
  EXPECT_EQ(send(*workers[0]).first, 't');
  EXPECT_TRUE(fp.refresh_next_hop({}).ok());
  const IpAddress target = address("10.1.0.1");
  EXPECT_EQ(fp.refresh_next_hop({&target, 1}).error().code, -EOPNOTSUPP);

  // frag_unmatched (ctl stats, sluice_frag_unmatched_total) is summed over
  // the workers as well: a later fragment to a port VIP (10.0.0.1:53/udp,
  // no wildcard) whose first fragment neither worker saw.
  const Bytes later = fragment_ipv4(PacketBuilder()
                                        .eth({.dst = kLbMac, .src = kRouterMac})
                                        .ipv4({.src = "192.0.2.10", .dst = "10.0.0.1", .id = 9})
                                        .udp({.sport = 5000, .dport = 53})
                                        .payload(Bytes(3000, 1))
                                        .build(),
                                    14, 1400)
                          .at(1);
  for (auto& w : workers) {
    rte_mbuf* m = to_mbuf(later);
    dpdk::Verdicts v;
    EXPECT_EQ(w->process_burst(&m, 1, v), 1);
    EXPECT_EQ(v.n_kernel, 1);
    rte_pktmbuf_free(m);
  }
  EXPECT_EQ(fp.global_stats().value().frag_unmatched, 2u);

  for (auto& w : workers) fp.detach_worker(w.get());
  workers.clear();
}

// Least-connections on the DPDK path: each worker counts its own table in
// steps (Worker::count_step), DpdkFastpath::active_flows sums the last
// complete walks, and least-conn's weights follow those counts.
TEST(DpdkFastpathTest, LeastConnWeightsFollowTheWorkersFlowCounts) {
  DpdkFastpath::Options o;
  o.interface = "net_null0";
  o.max_workers = 2;
  auto made = DpdkFastpath::create(o);
  ASSERT_TRUE(made.ok()) << made.error().message;
  DpdkFastpath& fp = *made.value();
  std::vector<std::unique_ptr<dpdk::Worker>> workers;
  for (uint32_t id = 0; id < 2; ++id) {
    auto w = dpdk::Worker::create(
        {.reader_id = id, .hash_seed = kSeed, .flows = {.capacity = 4096}}, fp.rcu());
    ASSERT_TRUE(w.ok());
    workers.push_back(std::move(w.value()));
    fp.attach_worker(workers.back().get(), id);
  }
  const World world;
  const Converted c = from_world(world);
  ASSERT_TRUE(fp.publish(c.snap).ok());

  // Flow i of VIP 10.0.0.1:80 (backends 1, 2, 3) from its own client port,
  // on worker i % 2; `packets` packets (one: on probation, not counted).
  std::map<uint32_t, uint64_t> want;
  const auto send_flow = [&](uint32_t i, int packets) {
    const auto sport = static_cast<uint16_t>(20000 + i);
    const Bytes in = PacketBuilder()
                         .eth({.dst = kLbMac, .src = kRouterMac})
                         .ipv4({.src = "192.0.2.77", .dst = "10.0.0.1"})
                         .tcp({.sport = sport, .dport = 80})
                         .build();
    for (int n = 0; n < packets; ++n) {
      rte_mbuf* m = to_mbuf(in);
      dpdk::Verdicts v;
      workers[i % 2]->process_burst(&m, 1, v);
      ASSERT_EQ(v.n_tx, 1u);
      rte_pktmbuf_free(m);
    }
    if (packets >= 2) ++want[world.choice(1, flow_key("192.0.2.77", sport, "10.0.0.1", 80, kTcp))];
  };
  // Steps until every worker has completed `walks` walks.
  const auto walk = [&](uint64_t walks) {
    for (auto& w : workers) {
      int steps = 0;
      while (w->add_active_flows({}, {}) < walks && steps < 100'000) {
        w->count_step();
        ++steps;
      }
      EXPECT_EQ(w->add_active_flows({}, {}), walks);
    }
  };
  // The policy's weights over backends 1, 2, 3 (capacity 200 each).
  const auto weights = [&]() {
    const auto counts = fp.active_flows();
    EXPECT_TRUE(counts.ok());
    return least_conn_weights(counts.value(), {1, 2, 3}, 200);
  };
  const auto expected = [&]() {
    std::vector<double> w;
    for (uint32_t id : {1u, 2u, 3u}) w.push_back(200.0 - static_cast<double>(want[id]));
    return w;
  };

  // Before any walk: nothing counted, every backend has its capacity.
  EXPECT_TRUE(fp.active_flows().value().empty());
  EXPECT_EQ(weights(), (std::vector<double>{200, 200, 200}));

  for (uint32_t i = 0; i < 150; ++i) send_flow(i, i % 5 == 0 ? 1 : 2);
  walk(1);
  const control::ActiveFlowCounts got = fp.active_flows().value();
  EXPECT_EQ(got, want);
  uint64_t total = 0;
  for (const auto& [id, n] : got) total += n;
  EXPECT_EQ(total, 120u);  // 150 flows, 30 of them on probation
  EXPECT_EQ(weights(), expected());

  // More flows, established: the counts move only when a walk completes.
  for (uint32_t i = 150; i < 300; ++i) send_flow(i, 2);
  EXPECT_EQ(fp.active_flows().value(), got);
  walk(2);
  EXPECT_EQ(fp.active_flows().value(), want);
  EXPECT_EQ(weights(), expected());
  // The backend with the most flows gets the least weight.
  const auto most = std::max_element(want.begin(), want.end(), [](const auto& a, const auto& b) {
                      return a.second < b.second;
                    })->first;
  const std::vector<double> w = weights();
  EXPECT_EQ(*std::min_element(w.begin(), w.end()), w[most - 1]);

  for (auto& wk : workers) fp.detach_worker(wk.get());
  workers.clear();
}

TEST(DpdkFastpathTest, CacheTakesHotKeysFromEveryWorkerAndFillsThemAll) {
  DpdkFastpath::Options o;
  o.interface = "net_null0";
  o.max_workers = 2;
  auto made = DpdkFastpath::create(o);
  ASSERT_TRUE(made.ok()) << made.error().message;
  DpdkFastpath& fp = *made.value();
  EXPECT_EQ(fp.cache(), nullptr) << "no worker cache attached yet";

  auto versions = std::make_unique<CacheVersions>();
  std::vector<std::unique_ptr<dpdk::Worker>> workers;
  for (uint32_t id = 0; id < 2; ++id) {
    auto w = dpdk::Worker::create(
        {.reader_id = id,
         .hash_seed = kSeed,
         .flows = {.capacity = 1024},
         .cache = dpdk::WorkerCacheConfig{.store = {.max_entries = 16, .max_bytes = 1u << 20},
                                          .versions = versions.get(),
                                          .hot_threshold = 3}},
        fp.rcu());
    ASSERT_TRUE(w.ok()) << w.error().message;
    workers.push_back(std::move(w.value()));
    fp.attach_worker(workers.back().get());
    fp.attach_cache(workers.back()->cache());
  }
  ASSERT_EQ(fp.cache(), &fp);

  World world;
  world.add_vip({"10.0.0.12", 11211, kUdp, 30, SLUICE_VIP_CACHE, {1, 2, 3}});
  const Converted c = from_world(world);
  ASSERT_TRUE(fp.publish(c.snap).ok());
  const auto get = [&](dpdk::Worker& w, const std::string& key) {
    const std::string text =
        std::string("\x00\x07\x00\x00\x00\x01\x00\x00", 8) + "get " + key + "\r\n";
    rte_mbuf* m = to_mbuf(PacketBuilder()
                              .eth({.dst = kLbMac, .src = kRouterMac})
                              .ipv4({.src = "192.0.2.10", .dst = "10.0.0.12"})
                              .udp({.sport = 40000, .dport = 11211})
                              .payload(Bytes(text.begin(), text.end()))
                              .build());
    dpdk::Verdicts v;
    EXPECT_EQ(w.process_burst(&m, 1, v), 1);
    const Bytes out = from_mbuf(m);
    rte_pktmbuf_free(m);
    return out;
  };
  // Both workers find the key hot; the control thread sees it once.
  for (int i = 0; i < 3; ++i)
    for (auto& w : workers) (void)get(*w, "hot");
  const std::vector<control::FastpathHotKey> hot = fp.poll_hot(8);
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].vip_id, 30u);
  EXPECT_EQ(hot[0].key, "hot");
  EXPECT_TRUE(fp.poll_hot(8).empty());

  auto lease = fp.begin_fill(30, "hot");
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  const std::string value = "v1";
  EXPECT_EQ(fp.install(lease.value(), "hot",
                       {0, 0, {reinterpret_cast<const uint8_t*>(value.data()), value.size()}}),
            2u);
  // Each worker installs at its next burst and answers from its own copy.
  for (auto& w : workers) {
    const Bytes out = get(*w, "hot");
    const std::string tail = "VALUE hot 0 2\r\nv1\r\nEND\r\n";
    ASSERT_GE(out.size(), tail.size());
    EXPECT_EQ(std::string(out.end() - static_cast<ptrdiff_t>(tail.size()), out.end()), tail);
  }
  const control::FastpathCacheCounters n = fp.counters(30);
  EXPECT_EQ(n.fast_path.hits, 2u);
  EXPECT_EQ(n.fast_path.misses, 6u);
  EXPECT_EQ(n.fast_path.hot_reports, 2u);
  EXPECT_EQ(n.fills, 1u) << "one value, installed on both workers";
  EXPECT_EQ(n.entries, 2u);
  EXPECT_EQ(n.bytes, 2u * (3u + value.size()));

  // One key, cached and answered on both workers: one row, hits summed.
  for (int i = 0; i < 2; ++i) (void)get(*workers[0], "hot");
  std::vector<control::FastpathCachedKey> top = fp.hottest(10);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].vip_id, 30u);
  EXPECT_EQ(top[0].key, "hot");
  EXPECT_EQ(top[0].hits, 4u) << "3 on worker 0 + 1 on worker 1";
  EXPECT_EQ(top[0].value_bytes, value.size());
  EXPECT_GT(top[0].ttl_ms, 0u);
  EXPECT_LE(top[0].ttl_ms, dpdk::WorkerCacheConfig{}.store.ttl_ms);
  // A second key, on worker 1 only, hit more: first; n bounds the list.
  lease = fp.begin_fill(30, "hotter");
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(fp.install(lease.value(), "hotter",
                       {0, 0, {reinterpret_cast<const uint8_t*>(value.data()), value.size()}}),
            2u);
  for (int i = 0; i < 5; ++i) (void)get(*workers[1], "hotter");
  top = fp.hottest(10);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].key, "hotter");
  EXPECT_EQ(top[0].hits, 5u);
  EXPECT_EQ(top[1].key, "hot");
  EXPECT_EQ(top[1].hits, 4u);
  top = fp.hottest(1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, "hotter");

  for (auto& w : workers) {
    fp.detach_cache(w->cache());
    fp.detach_worker(w.get());
  }
  EXPECT_EQ(fp.cache(), nullptr);
  workers.clear();
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
