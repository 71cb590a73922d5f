// SPDX-License-Identifier: BSD-2-Clause
// FlowTable::count_established: the per-backend counts of live established
// entries that a walk in steps of a few buckets adds up (least-connections
// on the DPDK path), against a model of what was inserted.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/flow_table.hpp"

namespace sluice {
namespace {

constexpr uint32_t kSeed = 7;

sluice_flow_key v4_key(uint32_t src, uint16_t sport, uint8_t proto) {
  sluice_flow_key k{};
  k.family = SLUICE_FAMILY_IPV4;
  k.proto = proto;
  std::memcpy(&k.src.v4, &src, sizeof src);
  const uint32_t dst = 0x0A000001u;
  std::memcpy(&k.dst.v4, &dst, sizeof dst);
  k.sport = sport;
  k.dport = 80;
  return k;
}

FlowTable make_table(uint32_t capacity) {
  auto t = FlowTable::create(
      {.capacity = capacity, .tcp_idle_ms = 10'000, .udp_idle_ms = 1'000, .probation_ms = 500});
  EXPECT_TRUE(t.ok());
  return std::move(t.value());
}

// Walks the whole table `step` buckets at a time, as a worker does.
std::vector<uint32_t> walk(const FlowTable& t, uint32_t step, uint64_t now_ms, size_t ids) {
  std::vector<uint32_t> counts(ids, 0);
  uint32_t cursor = 0;
  uint32_t calls = 0;
  do {
    cursor = t.count_established(cursor, step, now_ms, counts);
    ++calls;
  } while (cursor != 0);
  EXPECT_EQ(calls, (t.bucket_count() + step - 1) / step);
  return counts;
}

TEST(FlowTableCountTest, CountsLiveEstablishedEntriesByBackend) {
  FlowTable t = make_table(4096);
  EXPECT_EQ(t.bucket_count(), 4096u / FlowTable::kSlotsPerBucket);
  // 600 flows over backends 0..5 (TCP), every third left on probation,
  // 100 UDP flows on backend 6 that go idle sooner.
  std::vector<uint32_t> want(8, 0);
  for (uint32_t i = 0; i < 700; ++i) {
    const bool udp = i >= 600;
    const sluice_flow_key k =
        v4_key(0xC0000200u + i, static_cast<uint16_t>(1000 + i), udp ? 17 : 6);
    const uint32_t h = sluice_flow_hash(&k, kSeed);
    const uint32_t backend = udp ? 6 : i % 6;
    ASSERT_EQ(t.insert(k, h, backend, 1'000), FlowInsert::kInserted);
    if (i % 3 == 0) continue;  // one packet: stays on probation
    EXPECT_EQ(t.lookup(k, h, 1'000), backend);
    if (!udp) ++want[backend];
  }
  // At 1 s + 0.8 s: probation entries (0.5 s) have expired, established
  // UDP (1 s) and TCP not.
  std::vector<uint32_t> live = want;
  for (uint32_t i = 600; i < 700; ++i)
    if (i % 3 != 0) ++live[6];
  for (const uint32_t step : {1u, 7u, 64u, 1u << 20})
    EXPECT_EQ(walk(t, step, 1'800, 8), live) << "step " << step;
  // At 1 s + 2 s the UDP entries have expired too.
  EXPECT_EQ(walk(t, 16, 3'000, 8), want);
  // At 1 s + 11 s nothing is live.
  EXPECT_EQ(walk(t, 16, 12'000, 8), std::vector<uint32_t>(8, 0));
}

TEST(FlowTableCountTest, IdsBeyondTheCountsAreIgnoredAndRangesClamp) {
  FlowTable t = make_table(1024);
  std::map<uint32_t, uint32_t> per_bucket;  // bucket -> established entries there
  for (uint32_t i = 0; i < 200; ++i) {
    const sluice_flow_key k = v4_key(0xC6336400u + i, 2000, 6);
    const uint32_t h = sluice_flow_hash(&k, kSeed);
    const uint32_t backend = i % 2 == 0 ? 1 : 5000;  // 5000: beyond the counts
    if (t.insert(k, h, backend, 0) != FlowInsert::kInserted) continue;
    ASSERT_EQ(t.lookup(k, h, 0), backend);
    if (backend == 1) ++per_bucket[t.bucket_index(h)];
  }
  uint32_t total = 0;
  for (const auto& [bucket, n] : per_bucket) total += n;
  EXPECT_EQ(walk(t, 5, 10, 4), (std::vector<uint32_t>{0, total, 0, 0}));

  // One bucket at a time: each call adds exactly that bucket's entries and
  // returns the next bucket; the last returns 0.
  const uint32_t buckets = t.bucket_count();
  for (uint32_t b = 0; b < buckets; ++b) {
    std::vector<uint32_t> counts(2, 0);
    const uint32_t next = t.count_established(b, 1, 10, counts);
    EXPECT_EQ(next, b + 1 == buckets ? 0 : b + 1);
    const auto it = per_bucket.find(b);
    EXPECT_EQ(counts[1], it == per_bucket.end() ? 0u : it->second) << "bucket " << b;
  }
  // A start at or past the end visits nothing; an empty span counts nothing.
  std::vector<uint32_t> counts(2, 0);
  EXPECT_EQ(t.count_established(buckets, 8, 10, counts), 0u);
  EXPECT_EQ(t.count_established(buckets + 100, 8, 10, counts), 0u);
  EXPECT_EQ(counts, (std::vector<uint32_t>{0, 0}));
  EXPECT_EQ(t.count_established(0, buckets, 10, {}), 0u);
  // Counting changes nothing: the entries are still there, established.
  EXPECT_EQ(walk(t, buckets, 10, 4), (std::vector<uint32_t>{0, total, 0, 0}));
}

}  // namespace
}  // namespace sluice
