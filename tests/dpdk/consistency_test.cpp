// SPDX-License-Identifier: BSD-2-Clause
// The DPDK worker and the core choose the same backend for every new flow:
// the VIPs, backends, weights, seed and random flows of
// tests/bpf/consistency_test.cpp (which proves XDP == core on the same
// flows), so XDP == core == DPDK and the two fast paths can sit behind one
// ECMP group.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/maglev.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/common/consistency_world.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/dpdk/dpdk_env.hpp"

namespace sluice::test {
namespace {

using namespace consistency;  // NOLINT: the shared world, tests/common/consistency_world.hpp

// A worker over the consistency world's snapshot.
class DpdkConsistencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tables_ = world_tables();
    dpdk::SnapshotSpec spec;
    fill_world(spec, tables_);
    std::copy(kRouterMac.begin(), kRouterMac.end(), spec.next_hop.dst_mac.begin());
    std::copy(kLbMac.begin(), kLbMac.end(), spec.next_hop.src_mac.begin());
    auto snap = dpdk::Snapshot::create(spec);
    ASSERT_TRUE(snap.ok()) << snap.error().message;
    auto rcu = dpdk::SnapshotRcu::create(1, std::move(snap.value()));
    ASSERT_TRUE(rcu.ok());
    rcu_ = std::move(rcu.value());
    auto worker = dpdk::Worker::create(
        {.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = 1 << 17}}, *rcu_);
    ASSERT_TRUE(worker.ok()) << worker.error().message;
    worker_ = std::move(worker.value());
  }

  std::vector<std::vector<uint32_t>> tables_;
  std::unique_ptr<dpdk::SnapshotRcu> rcu_;
  std::unique_ptr<dpdk::Worker> worker_;
};

TEST_F(DpdkConsistencyTest, WorkerAndCoreChooseTheSameBackendForEveryNewFlow) {
  const std::vector<std::vector<uint32_t>>& tables = tables_;
  dpdk::Worker& w = *worker_;

  std::mt19937_64 rng(20261130);  // the bpf test's seed: the same flows
  for (size_t i = 0; i < std::size(kVips); ++i) {
    const VipDef& v = kVips[i];
    const std::vector<uint32_t>& table = tables[i];
    std::map<uint32_t, int> share;
    int disagreements = 0;
    // Bursts of 32 flows, as a real rx_burst delivers them.
    for (int n = 0; n < kFlowsPerCase; n += 32) {
      rte_mbuf* burst[32];
      uint32_t want[32];
      std::string clients[32];
      uint16_t ports[32];
      const int k = std::min(32, kFlowsPerCase - n);
      for (int j = 0; j < k; ++j) {
        clients[j] = random_client(rng, v.v6);
        ports[j] = static_cast<uint16_t>(1024 + rng() % 64000);
        const Bytes frame = first_packet(v, clients[j], ports[j]);
        const ParseResult parsed = parse_packet(frame.data(), frame.size());
        ASSERT_EQ(parsed.status, ParseStatus::kOk);
        const uint32_t hash = (v.flags & SLUICE_VIP_HASH_SRC_ONLY) != 0
                                  ? sluice_flow_hash_src(&parsed.key, kSeed)
                                  : sluice_flow_hash(&parsed.key, kSeed);
        want[j] = table[hash % table.size()];
        burst[j] = to_mbuf(frame);
      }
      dpdk::Verdicts out;
      ASSERT_EQ(w.process_burst(burst, static_cast<uint16_t>(k), out), k);
      ASSERT_EQ(out.n_tx, k) << v.name;
      for (int j = 0; j < k; ++j) {
        const uint32_t got = backend_of(from_mbuf(burst[j]));
        if (got != want[j] && ++disagreements <= 5)
          ADD_FAILURE() << v.name << ": client " << clients[j] << " port " << ports[j]
                        << ": DPDK sent it to " << got << ", the core chooses " << want[j];
        ++share[want[j]];
        rte_pktmbuf_free(burst[j]);
      }
    }
    EXPECT_EQ(disagreements, 0) << v.name << ": of " << kFlowsPerCase << " flows";
    EXPECT_EQ(share.count(6), 0u) << v.name;
  }

  // Key-affinity routing: the worker places a request of one key where the
  // core's route hash and table say (tests/bpf/consistency_test.cpp holds
  // XDP to the same keys), whoever sends it.
  std::mt19937_64 keys(20261201);  // the bpf test's seed: the same keys
  for (size_t i = 0; i < std::size(kKeyedVips); ++i) {
    const VipDef& v = kKeyedVips[i];
    std::map<uint32_t, int> share;
    int disagreements = 0;
    for (int n = 0; n < kKeysPerCase; n += 32) {
      rte_mbuf* burst[32];
      uint32_t want[32];
      std::string requests[32];
      const int k = std::min(32, kKeysPerCase - n);
      for (int j = 0; j < k; ++j) {
        const std::string key = random_key(keys);
        const std::string client = random_client(keys, v.v6);
        const auto sport = static_cast<uint16_t>(1024 + keys() % 64000);
        requests[j] = keyed_request(n + j, key);
        want[j] = keyed_choice(tables[std::size(kVips) + i], key);
        burst[j] = to_mbuf(
            memcached_datagram(v, client, sport, static_cast<uint16_t>(n + j), requests[j]));
      }
      dpdk::Verdicts out;
      ASSERT_EQ(w.process_burst(burst, static_cast<uint16_t>(k), out), k);
      ASSERT_EQ(out.n_tx, k) << v.name;
      for (int j = 0; j < k; ++j) {
        const uint32_t got = backend_of(from_mbuf(burst[j]));
        if (got != want[j] && ++disagreements <= 5)
          ADD_FAILURE() << v.name << ": " << requests[j] << ": DPDK sent it to " << got
                        << ", the core places it on " << want[j];
        ++share[want[j]];
        rte_pktmbuf_free(burst[j]);
      }
    }
    EXPECT_EQ(disagreements, 0) << v.name << ": of " << kKeysPerCase << " keys";
    EXPECT_EQ(share.count(6), 0u) << v.name;
    EXPECT_GE(share.size(), 3u) << v.name;
  }
}

// Fragments: every fragment of a datagram to a port VIP, first and later,
// reaches the backend the core's rule gives the datagram (consistency::
// fragment_choice); tests/bpf/consistency_test.cpp holds XDP to the same
// datagrams. Two datagrams' fragments interleaved per burst.
TEST_F(DpdkConsistencyTest, WorkerAndCorePlaceEveryFragmentAlike) {
  std::mt19937_64 rng(20261202);  // the bpf test's seed: the same datagrams
  for (size_t i = 0; i < std::size(kVips); ++i) {
    const VipDef& v = kVips[i];
    int disagreements = 0;
    size_t fragments = 0;
    for (int n = 0; n < kDatagramsPerCase; n += 2) {
      const FragmentRun run = random_fragment_run(rng, v);
      std::vector<rte_mbuf*> burst;
      for (const Bytes& b : run.frames) burst.push_back(to_mbuf(b));
      dpdk::Verdicts out;
      const auto k = static_cast<uint16_t>(burst.size());
      ASSERT_EQ(worker_->process_burst(burst.data(), k, out), k);
      EXPECT_EQ(out.n_tx, k) << v.name;
      for (size_t j = 0; j < burst.size(); ++j) {
        const uint32_t want = fragment_choice(v, tables_[i], run.firsts[run.datagram[j]]);
        const uint32_t got = backend_of(from_mbuf(burst[j]));
        if (got != want && ++disagreements <= 5)
          ADD_FAILURE() << v.name << ": fragment " << j << " of a burst: DPDK sent it to " << got
                        << ", the core chooses " << want;
        rte_pktmbuf_free(burst[j]);
      }
      fragments += burst.size();
    }
    EXPECT_EQ(disagreements, 0) << v.name << ": of " << fragments << " fragments";
  }
  EXPECT_EQ(worker_->global_stats().frag_unmatched, 0u);
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
