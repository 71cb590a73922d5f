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
#include "tests/common/packet_builder.hpp"
#include "tests/dpdk/dpdk_env.hpp"

namespace sluice::test {
namespace {

// Everything below up to random_client() is the bpf test's world, value for
// value.
constexpr uint32_t kSeed = 0x0c0ffee5;
constexpr int kFlowsPerCase = 10000;
constexpr Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr Mac kRouterMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};

struct BackendDef {
  uint32_t id;
  const char* addr;
  uint32_t weight;
};

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
  auto built = maglev_build(in, v.table_size);
  EXPECT_TRUE(built.ok()) << built.error().message;
  std::vector<uint32_t> table;
  if (!built.ok()) return table;
  for (uint32_t index : built.value()) table.push_back(ids[index]);
  return table;
}

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

// The backend an encapsulated frame is addressed to.
uint32_t backend_of(const Bytes& out) {
  const auto match = [&](const auto& list) -> uint32_t {
    for (const BackendDef& d : list) {
      const IpAddress a = address(d.addr);
      if (!a.is_v6() && out.size() >= 34 && out[12] == 0x08 && out[13] == 0x00 &&
          std::memcmp(&out[14 + 16], a.ip.bytes, 4) == 0)
        return d.id;
      if (a.is_v6() && out.size() >= 54 && out[12] == 0x86 && out[13] == 0xdd &&
          std::memcmp(&out[14 + 24], a.ip.bytes, 16) == 0)
        return d.id;
    }
    return SLUICE_BACKEND_NONE;
  };
  const uint32_t id = match(kBackends4);
  return id != SLUICE_BACKEND_NONE ? id : match(kBackends6);
}

TEST(DpdkConsistencyTest, WorkerAndCoreChooseTheSameBackendForEveryNewFlow) {
  dpdk::SnapshotSpec spec;
  std::vector<std::vector<uint32_t>> tables;
  const auto backend = [](const BackendDef& d) {
    const IpAddress ip = address(d.addr);
    sluice_backend b{};
    b.addr = ip.ip;
    b.id = d.id;
    b.family = ip.family;
    return b;
  };
  for (const BackendDef& b : kBackends4) spec.backends.push_back(backend(b));
  for (const BackendDef& b : kBackends6) spec.backends.push_back(backend(b));
  for (const VipDef& v : kVips) {
    tables.push_back(core_table(v));
    ASSERT_EQ(tables.back().size(), v.table_size);
    dpdk::SnapshotVipSpec sv;
    const IpAddress a = address(v.addr);
    sv.key.addr = a.ip;
    sv.key.port = sl_htons(v.port);
    sv.key.proto = v.proto;
    sv.key.family = a.family;
    sv.meta.vip_id = v.vip_id;
    sv.meta.flags = v.flags;
    sv.table = tables.back();
    spec.vips.push_back(sv);
  }
  spec.encap.src_v4 = address("10.255.0.1").ip;
  spec.encap.src_v6 = address("2001:db8:ffff::1").ip;
  spec.encap.mtu = 1500;
  spec.encap.entropy_bits = 8;
  std::copy(kRouterMac.begin(), kRouterMac.end(), spec.next_hop.dst_mac.begin());
  std::copy(kLbMac.begin(), kLbMac.end(), spec.next_hop.src_mac.begin());
  auto snap = dpdk::Snapshot::create(spec);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  auto rcu = dpdk::SnapshotRcu::create(1, std::move(snap.value()));
  ASSERT_TRUE(rcu.ok());
  auto worker = dpdk::Worker::create(
      {.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = 1 << 17}}, *rcu.value());
  ASSERT_TRUE(worker.ok()) << worker.error().message;
  dpdk::Worker& w = *worker.value();

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
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
