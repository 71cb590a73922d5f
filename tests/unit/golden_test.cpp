// SPDX-License-Identifier: BSD-2-Clause
// Golden values: fixed inputs -> fixed outputs, hard-coded. scripts/test runs
// this file natively (x86-64) and under qemu-aarch64, so a pass on both is
// the proof that sluice makes the same choices on every architecture (and
// any change to a value here is a change of behaviour for a running
// cluster: flows would move).
//
// The constants were computed once on x86-64 by a separate MurmurHash3
// implementation (a short Python script written from the algorithm's
// description, checked against the published vectors) and are what
// sluice_flow_hash gives there; flow_hash_test.cpp checks flow.h against a
// third, C++ reference on random keys.
#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/maglev.hpp"

namespace {

using sluice::IpAddress;

sluice_flow_key make_key(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                         uint8_t proto) {
  const IpAddress s = IpAddress::parse(src).value();
  const IpAddress d = IpAddress::parse(dst).value();
  sluice_flow_key k{};
  k.src = s.ip;
  k.dst = d.ip;
  k.sport = sl_htons(sport);
  k.dport = sl_htons(dport);
  k.proto = proto;
  k.family = s.family;
  return k;
}

constexpr uint8_t kTcp = SLUICE_IPPROTO_TCP;
constexpr uint8_t kUdp = SLUICE_IPPROTO_UDP;

// ---------------------------------------------------------------------------
// Flow hash (5-tuple) and source-only hash.

struct FlowGolden {
  const char* src;
  uint16_t sport;
  const char* dst;
  uint16_t dport;
  uint8_t proto;
  uint32_t seed;
  uint32_t flow_hash;  // sluice_flow_hash
  uint32_t src_hash;   // sluice_flow_hash_src
};

// clang-format off
const FlowGolden kFlows[] = {
  // src              sport  dst              dport  proto seed        flow        src
  {"198.51.100.7",    40000, "192.0.2.10",    80,    kTcp, 0,          0x292DE1D3, 0x50CF2338},
  {"198.51.100.7",    40000, "192.0.2.10",    80,    kTcp, 0xDEADBEEF, 0x1E5B4AFA, 0xCAD142BC},
  {"198.51.100.7",    40001, "192.0.2.10",    80,    kTcp, 0,          0x1744977D, 0x50CF2338},
  {"203.0.113.200",   53000, "192.0.2.10",    11211, kUdp, 0x5A1CE000, 0x1B6873CC, 0x361B518B},
  {"10.1.2.3",        0,     "192.0.2.10",    0,     kUdp, 0,          0xE392A0FC, 0x798222F0},  // fragment: ports 0
  // src hash: the published MurmurHash3_x86_32 vector for 4 zero bytes, seed 0.
  {"0.0.0.0",         0,     "0.0.0.0",       0,     kTcp, 0,          0x6AF72109, 0x2362F9DE},
  {"255.255.255.255", 65535, "255.255.255.255", 65535, kUdp, 0xFFFFFFFF, 0x13DA555C, 0xA5FE21D3},
  {"2001:db8:1::7",   40000, "2001:db8::10",  443,   kTcp, 0,          0x5FB34C5D, 0x915E716E},
  {"2001:db8:1::7",   40000, "2001:db8::10",  443,   kTcp, 0xDEADBEEF, 0xD95B4FED, 0xAA284F13},
  {"2001:db8:ffff:1:2:3:4:5", 61000, "2001:db8::10", 11211, kUdp, 0x5A1CE000, 0x6AE10506, 0xB957BACD},
  {"::ffff:198.51.100.7", 40000, "::ffff:192.0.2.10", 80, kTcp, 0,     0xE962D526, 0x08FBCE1A},
  {"::",              0,     "::",            0,     kTcp, 0,          0xFA236D3B, 0x8134CDF8},
};
// clang-format on

TEST(Golden, FlowHashes) {
  for (const auto& g : kFlows) {
    const sluice_flow_key k = make_key(g.src, g.sport, g.dst, g.dport, g.proto);
    EXPECT_EQ(sluice_flow_hash(&k, g.seed), g.flow_hash)
        << g.src << ":" << g.sport << " -> " << g.dst << ":" << g.dport << " proto " << int{g.proto}
        << " seed 0x" << std::hex << g.seed;
    EXPECT_EQ(sluice_flow_hash_src(&k, g.seed), g.src_hash)
        << g.src << " seed 0x" << std::hex << g.seed;
  }
}

// ---------------------------------------------------------------------------
// Backend address hashes with the Maglev seeds: the inputs of every
// backend's permutation (offset, skip), hence of every Maglev table.

struct AddrGolden {
  const char* addr;
  uint32_t offset_hash;  // sluice_addr_hash(addr, SLUICE_MAGLEV_OFFSET_SEED)
  uint32_t skip_hash;    // sluice_addr_hash(addr, SLUICE_MAGLEV_SKIP_SEED)
};

// clang-format off
const AddrGolden kBackends[] = {
  {"10.0.0.1",          0x4CE01DB8, 0xB9B99A02},
  {"10.0.0.2",          0xDF2B2C44, 0xA780E744},
  {"10.0.0.3",          0x6D9EF4E3, 0x7B89D620},
  {"192.168.100.254",   0xBB0BE83C, 0xF1E337B7},
  {"2001:db8::1",       0x6D97EF7E, 0xF5C79ADE},
  {"2001:db8::2",       0x4250C91D, 0x39E905B5},
  {"fd00:5a1c:e::beef", 0x7C7F866A, 0x7403227D},
};
// clang-format on

TEST(Golden, MaglevAddressHashes) {
  for (const auto& g : kBackends) {
    const IpAddress a = IpAddress::parse(g.addr).value();
    EXPECT_EQ(sluice_addr_hash(&a.ip, a.family, SLUICE_MAGLEV_OFFSET_SEED), g.offset_hash)
        << g.addr;
    EXPECT_EQ(sluice_addr_hash(&a.ip, a.family, SLUICE_MAGLEV_SKIP_SEED), g.skip_hash) << g.addr;
  }
}

// ---------------------------------------------------------------------------
// Maglev tables: fixed backends -> fixed table slots -> fixed backends for
// the golden flows above. Same rule: constants computed once on x86-64 with
// the builder, reviewed (entry counts are the exact weight shares), asserted
// on every architecture. A change here moves flows between backends on a
// running cluster of mixed old and new instances.

// The backends of kBackends with weights (one drained), in list order.
const uint32_t kWeights[] = {1, 1, 1, 3, 2, 0, 5};

std::vector<uint32_t> golden_table(uint32_t table_size) {
  std::vector<sluice::MaglevBackend> backends;
  for (size_t i = 0; i < std::size(kBackends); ++i) {
    backends.push_back({IpAddress::parse(kBackends[i].addr).value(), kWeights[i]});
  }
  auto table = sluice::maglev_build(backends, table_size);
  EXPECT_TRUE(table.ok());
  return table.ok() ? table.value() : std::vector<uint32_t>{};
}

// FNV-1a (32-bit) over the backend index of every slot: one number that
// covers the whole table.
uint32_t fnv1a(const std::vector<uint32_t>& table) {
  uint32_t h = 2166136261u;
  for (const uint32_t x : table) {
    h ^= x;
    h *= 16777619u;
  }
  return h;
}

struct TableGolden {
  uint32_t table_size;
  uint32_t fnv;
  uint32_t first[16];  // backend index of slots 0..15
  uint32_t counts[7];  // entries per backend (weight share of M, exactly)
};

// clang-format off
const TableGolden kTables[] = {
  {251,   0xF09EB692, {4, 3, 3, 3, 6, 6, 1, 4, 0, 4, 6, 3, 3, 2, 2, 2},
          {19, 19, 19, 58, 39, 0, 97}},
  {65537, 0xEEB07F1E, {4, 3, 2, 4, 6, 6, 6, 6, 2, 1, 3, 6, 3, 4, 3, 6},
          {5041, 5041, 5041, 15124, 10083, 0, 25207}},
};
// clang-format on

TEST(Golden, MaglevTables) {
  for (const auto& g : kTables) {
    const std::vector<uint32_t> table = golden_table(g.table_size);
    ASSERT_EQ(table.size(), g.table_size);
    EXPECT_EQ(fnv1a(table), g.fnv) << "M = " << g.table_size;
    for (size_t i = 0; i < std::size(g.first); ++i) {
      EXPECT_EQ(table[i], g.first[i]) << "M = " << g.table_size << " slot " << i;
    }
    uint32_t counts[std::size(kBackends)] = {};
    for (const uint32_t b : table) ++counts[b];
    for (size_t i = 0; i < std::size(kBackends); ++i) {
      EXPECT_EQ(counts[i], g.counts[i]) << kBackends[i].addr;
    }
  }
}

// The whole decision for the golden flows: flow hash -> slot -> backend.
TEST(Golden, FlowsToBackends) {
  // clang-format off
  const char* const kExpected[std::size(kFlows)] = {
    "fd00:5a1c:e::beef", "fd00:5a1c:e::beef", "fd00:5a1c:e::beef", "fd00:5a1c:e::beef",
    "192.168.100.254",   "10.0.0.1",          "fd00:5a1c:e::beef", "2001:db8::1",
    "fd00:5a1c:e::beef", "fd00:5a1c:e::beef", "2001:db8::1",       "2001:db8::1",
  };
  // clang-format on
  const std::vector<uint32_t> table = golden_table(SLUICE_MAGLEV_DEFAULT_SIZE);
  ASSERT_EQ(table.size(), SLUICE_MAGLEV_DEFAULT_SIZE);
  for (size_t i = 0; i < std::size(kFlows); ++i) {
    const FlowGolden& g = kFlows[i];
    const sluice_flow_key k = make_key(g.src, g.sport, g.dst, g.dport, g.proto);
    const uint32_t slot = sluice_flow_hash(&k, g.seed) % SLUICE_MAGLEV_DEFAULT_SIZE;
    EXPECT_STREQ(kBackends[table[slot]].addr, kExpected[i]) << g.src << ":" << g.sport;
  }
}

}  // namespace
