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
#include "tests/common/packet_builder.hpp"
#include "xdp/loader.hpp"

namespace sluice::test {
namespace {

using xdp::Loader;
using xdp::LoaderOptions;
using xdp::Snapshot;
using xdp::SnapshotVip;

constexpr uint32_t kSeed = 0x0c0ffee5;
constexpr int kFlowsPerCase = 10000;
constexpr Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr Mac kRouterMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};

struct BackendDef {
  uint32_t id;
  const char* addr;
  uint32_t weight;
};

// Unequal weights (one tiny, one zero: drained), so a disagreement in the
// weighted population would show, not only one in the hash.
constexpr BackendDef kBackends4[] = {
    {1, "10.1.0.1", 100}, {2, "10.1.0.2", 100}, {3, "10.1.0.3", 50},
    {4, "10.1.0.4", 200}, {5, "10.1.0.5", 1},   {6, "10.1.0.6", 0},
};
constexpr BackendDef kBackends6[] = {
    {11, "2001:db8:1::1", 1},
    {12, "2001:db8:1::2", 2},
    {13, "2001:db8:1::3", 3},
    {14, "2001:db8:1::4", 4},
};

struct VipDef {
  const char* name;
  const char* addr;
  uint16_t port;
  uint8_t proto;
  uint32_t vip_id;
  uint32_t flags;
  uint32_t table_size;
  bool v6;
};

constexpr VipDef kVips[] = {
    {"v4 tcp 5-tuple", "192.0.2.10", 80, SLUICE_IPPROTO_TCP, 1, 0, 65537, false},
    {"v4 udp 5-tuple", "192.0.2.10", 53, SLUICE_IPPROTO_UDP, 2, 0, 4099, false},
    {"v4 tcp source", "192.0.2.11", 443, SLUICE_IPPROTO_TCP, 3, SLUICE_VIP_HASH_SRC_ONLY, 65537,
     false},
    {"v6 tcp 5-tuple", "2001:db8:f::10", 80, SLUICE_IPPROTO_TCP, 4, 0, 65537, true},
    {"v6 udp 5-tuple", "2001:db8:f::10", 53, SLUICE_IPPROTO_UDP, 5, 0, 4099, true},
    {"v6 tcp source", "2001:db8:f::11", 443, SLUICE_IPPROTO_TCP, 6, SLUICE_VIP_HASH_SRC_ONLY, 65537,
     true},
};

/// The core's Maglev table for a VIP, mapped to backend ids.
std::vector<uint32_t> core_table(const VipDef& v) {
  std::vector<MaglevBackend> in;
  std::vector<uint32_t> ids;
  const auto add = [&](const auto& list) {
    for (const BackendDef& b : list) {
      in.push_back({address(b.addr), b.weight});
      ids.push_back(b.id);
    }
  };
  if (v.v6)
    add(kBackends6);
  else
    add(kBackends4);
  MaglevBuilder builder;
  auto built = builder.build(in, v.table_size);
  EXPECT_TRUE(built.ok()) << built.error().message;
  std::vector<uint32_t> table;
  if (!built.ok()) return table;
  table.reserve(built.value().size());
  for (uint32_t index : built.value()) table.push_back(ids[index]);
  return table;
}

sluice_backend backend(const BackendDef& d) {
  const IpAddress ip = address(d.addr);
  sluice_backend b{};
  b.addr = ip.ip;
  b.id = d.id;
  b.family = ip.family;
  return b;
}

/// A random client address of the VIP's family.
std::string random_client(std::mt19937_64& rng, bool v6) {
  char text[64];
  if (v6) {
    std::snprintf(text, sizeof text, "2001:db8:c:%x:%x:%x:%x:%x",
                  static_cast<unsigned>(rng() & 0xffff), static_cast<unsigned>(rng() & 0xffff),
                  static_cast<unsigned>(rng() & 0xffff), static_cast<unsigned>(rng() & 0xffff),
                  static_cast<unsigned>(rng() & 0xffff));
  } else {
    const uint64_t r = rng();
    std::snprintf(text, sizeof text, "100.%u.%u.%u", static_cast<unsigned>(64 + (r & 63)),
                  static_cast<unsigned>((r >> 8) & 0xff),
                  static_cast<unsigned>(1 + (r >> 16) % 254));
  }
  return text;
}

Bytes first_packet(const VipDef& v, const std::string& client, uint16_t sport) {
  PacketBuilder p;
  p.eth({.dst = kLbMac, .src = kRouterMac});
  if (v.v6)
    p.ipv6({.src = client, .dst = v.addr});
  else
    p.ipv4({.src = client, .dst = v.addr});
  if (v.proto == SLUICE_IPPROTO_TCP)
    return p.tcp({.sport = sport, .dport = v.port, .flags = 0x02}).build();
  return p.udp({.sport = sport, .dport = v.port}).payload(Bytes(32, 0x5a)).build();
}

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

    Snapshot s;
    for (const BackendDef& b : kBackends4) s.backends.push_back(backend(b));
    for (const BackendDef& b : kBackends6) s.backends.push_back(backend(b));
    for (const VipDef& v : kVips) {
      tables_.push_back(core_table(v));
      ASSERT_EQ(tables_.back().size(), v.table_size);
    }
    for (size_t i = 0; i < std::size(kVips); ++i) {
      const VipDef& v = kVips[i];
      SnapshotVip sv;
      const IpAddress a = address(v.addr);
      sv.key.addr = a.ip;
      sv.key.port = sl_htons(v.port);
      sv.key.proto = v.proto;
      sv.key.family = a.family;
      sv.meta.vip_id = v.vip_id;
      sv.meta.flags = v.flags;
      sv.table = tables_[i];
      s.vips.push_back(sv);
    }
    s.encap.src_v4 = address("10.255.0.1").ip;
    s.encap.src_v6 = address("2001:db8:ffff::1").ip;
    s.encap.mtu = 1500;
    s.encap.entropy_bits = 8;
    sluice_next_hop nh{};
    std::memcpy(nh.dst_mac, kRouterMac.data(), 6);
    std::memcpy(nh.src_mac, kLbMac.data(), 6);
    s.next_hop = nh;
    const auto published = loader_->publish(s);
    ASSERT_TRUE(published.ok()) << published.error().message;
  }

  /// The backend id an encapsulated frame is addressed to (outer IPv4 or
  /// IPv6 destination), or SLUICE_BACKEND_NONE.
  static uint32_t backend_of(const XdpRun& r) {
    if (r.verdict != XDP_TX || r.out.size() < 14 + 40) return SLUICE_BACKEND_NONE;
    const auto match = [&](const auto& list) -> uint32_t {
      for (const BackendDef& d : list) {
        const IpAddress a = address(d.addr);
        if (!a.is_v6() && r.out[12] == 0x08 && r.out[13] == 0x00 &&
            std::memcmp(&r.out[14 + 16], a.ip.bytes, 4) == 0)
          return d.id;
        if (a.is_v6() && r.out[12] == 0x86 && r.out[13] == 0xdd &&
            std::memcmp(&r.out[14 + 24], a.ip.bytes, 16) == 0)
          return d.id;
      }
      return SLUICE_BACKEND_NONE;
    };
    const uint32_t id = match(kBackends4);
    return id != SLUICE_BACKEND_NONE ? id : match(kBackends6);
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

}  // namespace
}  // namespace sluice::test
