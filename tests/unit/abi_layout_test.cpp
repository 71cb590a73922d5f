// SPDX-License-Identifier: BSD-2-Clause
// Sizes and field offsets of every dataplane/abi struct: the layout BPF,
// DPDK and the control plane share. A change here is an ABI change (pinned
// maps of a running daemon hold these layouts).
#include <gtest/gtest.h>

#include <cstddef>

#include "dataplane/abi/cache.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"

namespace {

struct Field {
  const char* name;
  size_t offset;
  size_t expected;
};

void expect_fields(const char* type, size_t size, size_t expected_size,
                   std::initializer_list<Field> fields) {
  EXPECT_EQ(size, expected_size) << type;
  for (const auto& f : fields) EXPECT_EQ(f.offset, f.expected) << type << "." << f.name;
}

#define F(T, m, off) \
  Field { #m, offsetof(T, m), off }

TEST(AbiLayout, FlowKey) {
  using T = sluice_flow_key;
  expect_fields("sluice_flow_key", sizeof(T), 40,
                {F(T, src, 0), F(T, dst, 16), F(T, sport, 32), F(T, dport, 34), F(T, proto, 36),
                 F(T, family, 37), F(T, pad, 38)});
  EXPECT_EQ(alignof(T), 4u);
}

TEST(AbiLayout, VipKeyAndMeta) {
  using K = sluice_vip_key;
  expect_fields("sluice_vip_key", sizeof(K), 24,
                {F(K, addr, 0), F(K, port, 16), F(K, proto, 18), F(K, family, 19), F(K, pad, 20)});
  using M = sluice_vip_meta;
  expect_fields("sluice_vip_meta", sizeof(M), 16,
                {F(M, vip_id, 0), F(M, flags, 4), F(M, table_size, 8), F(M, pad, 12)});
}

TEST(AbiLayout, Backend) {
  using T = sluice_backend;
  expect_fields("sluice_backend", sizeof(T), 24,
                {F(T, addr, 0), F(T, id, 16), F(T, family, 20), F(T, flags, 21), F(T, pad, 22)});
}

TEST(AbiLayout, VipSlot) {
  using T = sluice_vip_slot;
  expect_fields("sluice_vip_slot", sizeof(T), 40,
                {F(T, addr, 0), F(T, port, 16), F(T, proto, 18), F(T, family, 19), F(T, flags, 20),
                 F(T, meta, 24)});
}

TEST(AbiLayout, ProbationSlot) {
  using T = sluice_probation_slot;
  expect_fields("sluice_probation_slot", sizeof(T), 52, {F(T, key, 0), F(T, value, 40)});
}

TEST(AbiLayout, FlowValue) {
  using T = sluice_flow_value;
  expect_fields("sluice_flow_value", sizeof(T), 12,
                {F(T, backend_id, 0), F(T, last_seen, 4), F(T, state, 8), F(T, hash_hi, 9),
                 F(T, hash_lo, 10)});
}

TEST(AbiLayout, EncapConfig) {
  using T = sluice_encap_config;
  expect_fields(
      "sluice_encap_config", sizeof(T), 40,
      {F(T, src_v4, 0), F(T, src_v6, 16), F(T, mtu, 32), F(T, entropy_bits, 34), F(T, pad, 35)});
}

TEST(AbiLayout, Stats) {
  using G = sluice_global_stats;
  EXPECT_EQ(sizeof(G), 8u * (9 + SLUICE_DROP_MAX));
  expect_fields("sluice_global_stats", sizeof(G), sizeof(G),
                {F(G, rx_packets, 0), F(G, rx_bytes, 8), F(G, tx_packets, 16),
                 F(G, pass_packets, 24), F(G, flow_hits, 32), F(G, flow_misses, 40),
                 F(G, flow_insert_failed, 48), F(G, icmp_too_big_sent, 56), F(G, drops, 64),
                 F(G, frag_unmatched, 64 + 8 * SLUICE_DROP_MAX)});
  using V = sluice_vip_stats;
  expect_fields("sluice_vip_stats", sizeof(V), 32,
                {F(V, packets, 0), F(V, bytes, 8), F(V, new_flows, 16), F(V, drops, 24)});
  using B = sluice_backend_stats;
  expect_fields("sluice_backend_stats", sizeof(B), 32,
                {F(B, packets, 0), F(B, bytes, 8), F(B, new_flows, 16), F(B, pad, 24)});
}

TEST(AbiLayout, Cache) {
  using E = sluice_cache_entry;
  expect_fields("sluice_cache_entry", sizeof(E), 1680,
                {F(E, vip_id, 0), F(E, key_hash, 4), F(E, version, 8), F(E, epoch, 12),
                 F(E, expires_ns, 16), F(E, key_len, 24), F(E, head_len, 26), F(E, cas_len, 28),
                 F(E, body_len, 30), F(E, sum_get, 32), F(E, sum_gets, 34), F(E, pad, 36),
                 F(E, key, 40), F(E, cas, 296), F(E, text, 320)});
  using H = sluice_cache_hot;
  expect_fields("sluice_cache_hot", sizeof(H), 272,
                {F(H, vip_id, 0), F(H, key_hash, 4), F(H, key_len, 8), F(H, pad, 10), F(H, key, 16)});
  using C = sluice_cache_slot;
  expect_fields("sluice_cache_slot", sizeof(C), 16,
                {F(C, version, 0), F(C, last_write_ms, 4), F(C, entry, 8), F(C, pad, 12)});
  using V = sluice_cache_version;
  expect_fields("sluice_cache_version", sizeof(V), 8, {F(V, version, 0), F(V, last_write_ms, 4)});
  using S = sluice_cache_stats;
  expect_fields("sluice_cache_stats", sizeof(S), 48,
                {F(S, hits, 0), F(S, misses, 8), F(S, invalidations, 16), F(S, vip_invalidations, 24),
                 F(S, hot_reports, 32), F(S, bypassed, 40)});
}

}  // namespace
