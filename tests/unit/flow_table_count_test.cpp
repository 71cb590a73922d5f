// SPDX-License-Identifier: BSD-2-Clause
// FlowTable::count_established(): which entries count (live, established,
// IPv4 and IPv6), by backend, over the whole table or slice by slice.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/flow_table.hpp"

namespace sluice {
namespace {

constexpr uint32_t kSeed = 0x5eed1234;
constexpr uint32_t kUdpIdle = 30'000;

sluice_flow_key flow(uint32_t i) {
  sluice_flow_key k{};
  if (i % 3 == 0) {
    k.family = SLUICE_FAMILY_IPV6;
    k.src.bytes[0] = 0x20;
    k.src.bytes[1] = 0x01;
    std::memcpy(&k.src.bytes[12], &i, sizeof i);
    k.dst.bytes[0] = 0x20;
    k.dst.bytes[15] = 1;
  } else {
    k.family = SLUICE_FAMILY_IPV4;
    k.src.v4 = sl_htonl(0x0A000000u + i);
    k.dst.v4 = sl_htonl(0xC0000201u);
  }
  k.sport = sl_htons(static_cast<uint16_t>(1024 + i));
  k.dport = sl_htons(443);
  k.proto = (i & 1) ? SLUICE_IPPROTO_UDP : SLUICE_IPPROTO_TCP;
  return k;
}

uint32_t hash_of(const sluice_flow_key& k) { return sluice_flow_hash(&k, kSeed); }

struct Table {
  FlowTable t;
  std::vector<uint32_t> want;  // live established entries by backend at kNow
};

constexpr uint32_t kBackends = 5;
constexpr uint64_t kNow = 40'000;

// 600 flows over 5 backends (ids 0..4) plus id 9 (beyond the counts):
// established at 39'000 (counted, unless UDP established at 0: expired by
// 40'000), or left on probation (never counted).
Table make() {
  auto made = FlowTable::create({4800, 300'000, kUdpIdle, 2'000});
  EXPECT_TRUE(made.ok());
  Table out{std::move(made).value(), std::vector<uint32_t>(kBackends, 0)};
  for (uint32_t i = 0; i < 600; ++i) {
    const auto k = flow(i);
    const uint32_t backend = i % 7 == 6 ? 9 : i % kBackends;
    const bool stale_udp = (i & 1) && i % 4 == 1;
    const uint32_t at = stale_udp ? 0 : 39'000;
    EXPECT_EQ(out.t.insert(k, hash_of(k), backend, at), FlowInsert::kInserted) << i;
    if (i % 5 == 4) continue;  // probation
    EXPECT_EQ(out.t.lookup(k, hash_of(k), at), backend);
    if (!stale_udp && backend < kBackends) ++out.want[backend];
  }
  return out;
}

TEST(FlowTableCount, CountsLiveEstablishedEntriesByBackend) {
  Table t = make();
  std::vector<uint32_t> counts(kBackends, 0);
  EXPECT_EQ(t.t.count_established(0, t.t.bucket_count(), kNow, counts), 0u);
  EXPECT_EQ(counts, t.want);
  uint32_t total = 0;
  for (uint32_t c : counts) total += c;
  EXPECT_GT(total, 200u);
  // Counting adds to what is there and changes nothing in the table.
  const uint32_t size = t.t.size();
  EXPECT_EQ(t.t.count_established(0, t.t.bucket_count(), kNow, counts), 0u);
  for (uint32_t b = 0; b < kBackends; ++b) EXPECT_EQ(counts[b], 2 * t.want[b]);
  EXPECT_EQ(t.t.size(), size);
  // An empty span counts nothing and still walks.
  EXPECT_EQ(t.t.count_established(0, 3, kNow, {}), 3u);
}

TEST(FlowTableCount, SlicesAddUpToTheWholeTable) {
  Table t = make();
  for (uint32_t slice : {1u, 7u, 100u, 1000u}) {
    std::vector<uint32_t> counts(kBackends, 0);
    uint32_t next = 0;
    uint32_t calls = 0;
    do {
      const uint32_t after = t.t.count_established(next, slice, kNow, counts);
      const uint32_t want = next + slice >= t.t.bucket_count() ? 0 : next + slice;
      ASSERT_EQ(after, want) << slice;
      next = after;
      ++calls;
    } while (next != 0);
    EXPECT_EQ(calls, (t.t.bucket_count() + slice - 1) / slice) << slice;
    EXPECT_EQ(counts, t.want) << slice;
  }
}

TEST(FlowTableCount, ClampsItsRange) {
  Table t = make();
  std::vector<uint32_t> counts(kBackends, 0);
  EXPECT_EQ(t.t.count_established(t.t.bucket_count(), 10, kNow, counts), 0u);
  EXPECT_EQ(t.t.count_established(~0u, ~0u, kNow, counts), 0u);
  EXPECT_EQ(t.t.count_established(5, 0, kNow, counts), 5u);
  EXPECT_EQ(counts, std::vector<uint32_t>(kBackends, 0));
  EXPECT_EQ(t.t.count_established(0, ~0u, kNow, counts), 0u);
  EXPECT_EQ(counts, t.want);
  // Later, every UDP flow has idled out; TCP ones still count. The clock
  // is 64-bit here; the table compares its low 32 bits (it wraps).
  std::vector<uint32_t> later(kBackends, 0);
  EXPECT_EQ(t.t.count_established(0, ~0u, 39'000 + kUdpIdle, later), 0u);
  std::vector<uint32_t> wrapped(kBackends, 0);
  EXPECT_EQ(t.t.count_established(0, ~0u, (uint64_t{7} << 32) + 39'000 + kUdpIdle, wrapped), 0u);
  EXPECT_EQ(later, wrapped);
  uint32_t tcp = 0;
  for (uint32_t c : later) tcp += c;
  uint32_t all = 0;
  for (uint32_t c : counts) all += c;
  EXPECT_GT(tcp, 0u);
  EXPECT_LT(tcp, all);
}

}  // namespace
}  // namespace sluice
