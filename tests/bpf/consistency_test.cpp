// SPDX-License-Identifier: BSD-2-Clause
// The XDP program and the core choose the same backend for every new flow
// (DESIGN.md "One flow hash", "Deterministic Maglev"; issue P2
// "Consistency"): VIPs provisioned through the real loader with weighted
// Maglev tables from the core's builder, 10,000 random flows per family
// and hash mode, each sent through BPF_PROG_TEST_RUN and, independently,
// parsed by the core's parser, hashed with the abi flow hash and looked up
// in the core's table. This is what lets the DPDK path (built on the core)
// and the XDP path sit behind one ECMP group.
#include <gtest/gtest.h>
#include <net/if.h>

#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/maglev.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "tests/bpf/bpf_test_util.hpp"
#include "tests/bpf/test_netns.hpp"
#include "tests/common/consistency_world.hpp"
#include "tests/common/packet_builder.hpp"
#include "xdp/loader.hpp"

namespace sluice::test {
namespace {

using xdp::Loader;
using xdp::LoaderOptions;
using xdp::Snapshot;

using namespace consistency;  // NOLINT: the shared world, tests/common/consistency_world.hpp

class ConsistencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_SKIP_WITHOUT_BPF();
    std::string why;
    auto made = TestNetns::create(&why);
    if (made) ns_.emplace(std::move(*made));
    if (!ns_) {
      if (bpf_required()) FAIL() << "cannot make test namespaces: " << why;
      GTEST_SKIP() << "cannot make test namespaces: " << why;
    }
    enter_.emplace(ns_->lb());
    ASSERT_TRUE(enter_->error().empty()) << enter_->error();

    LoaderOptions o;
    o.ifname = "lb0";
    o.mode = xdp::XdpMode::kGeneric;
    o.hash_seed = kSeed;
    o.flows_per_cpu = 1024;
    o.probation_per_cpu = 1024;
    o.pin_root = pins_.path() + "/lb0";
    auto loaded = Loader::load(o);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    loader_.emplace(std::move(loaded.value()));

    tables_ = world_tables();
    Snapshot s;
    fill_world(s, tables_);
    sluice_next_hop nh{};
    std::memcpy(nh.dst_mac, kRouterMac.data(), 6);
    std::memcpy(nh.src_mac, kLbMac.data(), 6);
    s.next_hop = nh;
    const auto published = loader_->publish(s);
    ASSERT_TRUE(published.ok()) << published.error().message;
  }

  /// The backend id a forwarded frame is addressed to, or SLUICE_BACKEND_NONE.
  static uint32_t backend_of(const XdpRun& r) {
    return r.verdict == XDP_TX ? consistency::backend_of(r.out) : SLUICE_BACKEND_NONE;
  }

  std::optional<TestNetns> ns_;
  std::optional<NetnsEnter> enter_;
  TestPinDir pins_;
  std::optional<Loader> loader_;
  std::vector<std::vector<uint32_t>> tables_;
};

TEST_F(ConsistencyTest, XdpAndCoreChooseTheSameBackendForEveryNewFlow) {
  std::mt19937_64 rng(20261130);
  for (size_t i = 0; i < std::size(kVips); ++i) {
    const VipDef& v = kVips[i];
    const std::vector<uint32_t>& table = tables_[i];
    std::map<uint32_t, int> share;
    int disagreements = 0;
    for (int n = 0; n < kFlowsPerCase; ++n) {
      const std::string client = random_client(rng, v.v6);
      const auto sport = static_cast<uint16_t>(1024 + rng() % 64000);
      const Bytes frame = first_packet(v, client, sport);

      // The core: its parser's key, the abi hash, the core's table.
      const ParseResult parsed = parse_packet(frame.data(), frame.size());
      ASSERT_EQ(parsed.status, ParseStatus::kOk) << v.name << " " << client;
      const uint32_t hash = (v.flags & SLUICE_VIP_HASH_SRC_ONLY) != 0
                                ? sluice_flow_hash_src(&parsed.key, kSeed)
                                : sluice_flow_hash(&parsed.key, kSeed);
      const uint32_t core_choice = table[hash % table.size()];

      const XdpRun r = run_xdp(loader_->prog_fd(), frame);
      ASSERT_EQ(r.err, 0);
      const uint32_t xdp_choice = backend_of(r);
      if (xdp_choice != core_choice && ++disagreements <= 5) {
        ADD_FAILURE() << v.name << ": client " << client << " port " << sport << ": XDP sent it to "
                      << xdp_choice << " (verdict " << r.verdict << "), the core chooses "
                      << core_choice;
      }
      ++share[core_choice];
    }
    EXPECT_EQ(disagreements, 0) << v.name << ": of " << kFlowsPerCase << " flows";
    // The drained backend (weight 0) takes no new flow, and the draw is
    // not degenerate: the flows reached every weighted backend.
    EXPECT_EQ(share.count(6), 0u) << v.name;
    const size_t weighted = v.v6 ? std::size(kBackends6) : std::size(kBackends4) - 2;
    size_t reached = 0;
    for (const auto& [id, count] : share)
      if (id != 5 && count > 0) ++reached;
    EXPECT_EQ(reached, weighted) << v.name;
  }
}

// Fragments: every fragment of a datagram to a port VIP, first and later,
// reaches the backend the core's rule gives the datagram (consistency::
// fragment_choice); tests/dpdk/consistency_test.cpp holds the DPDK worker
// to the same datagrams. Two datagrams' fragments interleaved.
TEST_F(ConsistencyTest, XdpAndCorePlaceEveryFragmentAlike) {
  std::mt19937_64 rng(20261202);  // the dpdk test's seed: the same datagrams
  for (size_t i = 0; i < std::size(kVips); ++i) {
    const VipDef& v = kVips[i];
    int disagreements = 0;
    size_t fragments = 0;
    for (int n = 0; n < kDatagramsPerCase; n += 2) {
      const FragmentRun run = random_fragment_run(rng, v);
      for (size_t j = 0; j < run.frames.size(); ++j) {
        const uint32_t want = fragment_choice(v, tables_[i], run.firsts[run.datagram[j]]);
        const XdpRun r = run_xdp(loader_->prog_fd(), run.frames[j]);
        ASSERT_EQ(r.err, 0);
        const uint32_t got = backend_of(r);
        if (got != want && ++disagreements <= 5)
          ADD_FAILURE() << v.name << ": fragment " << j << ": XDP sent it to " << got
                        << " (verdict " << r.verdict << "), the core chooses " << want;
      }
      fragments += run.frames.size();
    }
    EXPECT_EQ(disagreements, 0) << v.name << ": of " << fragments << " fragments";
  }
}

// Key-affinity routing: XDP places a request of one key where the core's
// route hash and table say (tests/dpdk/consistency_test.cpp checks the
// DPDK worker against the same keys), whoever sends it.
TEST_F(ConsistencyTest, XdpAndCorePlaceEveryKeyOnTheSameBackend) {
  std::mt19937_64 rng(20261201);  // the dpdk test's seed: the same keys
  for (size_t i = 0; i < std::size(kKeyedVips); ++i) {
    const VipDef& v = kKeyedVips[i];
    std::map<uint32_t, int> share;
    int disagreements = 0;
    for (int n = 0; n < kKeysPerCase; ++n) {
      const std::string key = random_key(rng);
      const std::string client = random_client(rng, v.v6);
      const auto sport = static_cast<uint16_t>(1024 + rng() % 64000);
      const uint32_t core_choice = keyed_choice(tables_[std::size(kVips) + i], key);
      const XdpRun r = run_xdp(
          loader_->prog_fd(),
          memcached_datagram(v, client, sport, static_cast<uint16_t>(n), keyed_request(n, key)));
      ASSERT_EQ(r.err, 0);
      const uint32_t xdp_choice = backend_of(r);
      if (xdp_choice != core_choice && ++disagreements <= 5)
        ADD_FAILURE() << v.name << ": " << keyed_request(n, key) << " from " << client
                      << ": XDP sent it to " << xdp_choice << " (verdict " << r.verdict
                      << "), the core places it on " << core_choice;
      ++share[core_choice];
    }
    EXPECT_EQ(disagreements, 0) << v.name << ": of " << kKeysPerCase << " keys";
    EXPECT_EQ(share.count(6), 0u) << v.name;
    EXPECT_GE(share.size(), 3u) << v.name;
  }
}

}  // namespace
}  // namespace sluice::test
