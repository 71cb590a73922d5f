// SPDX-License-Identifier: BSD-2-Clause
// FlowTable: capacity, admission and eviction order, timeouts across the
// clock's wrap, key families, burst vs single lookups, flood resistance, and
// no allocation after construction (counted by replacing operator new).
#include "dataplane/core/flow_table.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "dataplane/abi/flow.h"

// Every allocation of the test binary goes through these, so a test can
// count the ones made inside a window.
namespace {
uint64_t g_allocations = 0;

void* counted_alloc(std::size_t n, std::size_t align) {
  ++g_allocations;
  const std::size_t size = n == 0 ? 1 : n;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(align, (size + align - 1) / align * align);
}

// Out of line so the compiler does not pair free() with operator new
// (-Wmismatched-new-delete): here both sides are malloc's.
[[gnu::noinline]] void release(void* p) { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n, 0)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counted_alloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = counted_alloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }

namespace sluice {
namespace {

constexpr uint32_t kTcpIdle = 300'000;
constexpr uint32_t kUdpIdle = 30'000;
constexpr uint32_t kProbation = 2'000;
constexpr uint32_t kSeed = 0x5eed1234;

FlowTableConfig config(uint32_t capacity) {
  return FlowTableConfig{capacity, kTcpIdle, kUdpIdle, kProbation};
}

FlowTable make_table(uint32_t capacity) {
  auto t = FlowTable::create(config(capacity));
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(t).value();
}

sluice_flow_key v4_key(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto) {
  sluice_flow_key k{};
  k.src.v4 = sl_htonl(src);
  k.dst.v4 = sl_htonl(dst);
  k.sport = sl_htons(sport);
  k.dport = sl_htons(dport);
  k.proto = proto;
  k.family = SLUICE_FAMILY_IPV4;
  return k;
}

sluice_flow_key v6_key(const uint8_t src[16], const uint8_t dst[16], uint16_t sport, uint16_t dport,
                       uint8_t proto) {
  sluice_flow_key k{};
  std::memcpy(k.src.bytes, src, 16);
  std::memcpy(k.dst.bytes, dst, 16);
  k.sport = sl_htons(sport);
  k.dport = sl_htons(dport);
  k.proto = proto;
  k.family = SLUICE_FAMILY_IPV6;
  return k;
}

// The i-th of a family of distinct client flows to one VIP (TCP for even i).
sluice_flow_key client_flow(uint32_t i, uint32_t salt = 0) {
  return v4_key(0x0A000000u + (i >> 8) + (salt << 20), 0xC0000201u,
                static_cast<uint16_t>(1024 + (i & 0xFF)), 80,
                (i & 1) ? SLUICE_IPPROTO_UDP : SLUICE_IPPROTO_TCP);
}

// mt19937's result_type is wider than 32 bits on LP64.
struct Rng {
  std::mt19937 engine;
  uint32_t operator()() { return static_cast<uint32_t>(engine()); }
};

uint32_t hash_of(const sluice_flow_key& k) { return sluice_flow_hash(&k, kSeed); }

// A hash that selects `bucket`, with signature-bearing low bits `low`
// (< 2^16; buckets of a table under 2^16 buckets span more hashes).
uint32_t hash_in_bucket(const FlowTable& t, uint32_t bucket, uint32_t low) {
  const uint64_t buckets = t.capacity() / FlowTable::kSlotsPerBucket;
  const auto first = static_cast<uint32_t>(((uint64_t{bucket} << 32) + buckets - 1) / buckets);
  const uint32_t h = first + low;
  EXPECT_EQ(t.bucket_index(h), bucket);
  return h;
}

// --- construction -------------------------------------------------------------

TEST(FlowTable, RejectsBadConfig) {
  struct Case {
    const char* what;
    FlowTableConfig cfg;
  };
  const Case cases[] = {
      {"zero capacity", {0, kTcpIdle, kUdpIdle, kProbation}},
      {"capacity over max", {FlowTable::kMaxCapacity + 1, kTcpIdle, kUdpIdle, kProbation}},
      {"zero tcp timeout", {64, 0, kUdpIdle, kProbation}},
      {"zero udp timeout", {64, kTcpIdle, 0, kProbation}},
      {"zero probation", {64, kTcpIdle, kUdpIdle, 0}},
      {"tcp timeout over 2^30", {64, FlowTable::kMaxTimeoutMs + 1, kUdpIdle, kProbation}},
      {"udp timeout over 2^30", {64, kTcpIdle, FlowTable::kMaxTimeoutMs + 1, kProbation}},
      {"probation over udp", {64, kTcpIdle, 1000, 1001}},
      {"probation over tcp", {64, 1000, kUdpIdle, 1001}},
  };
  for (const auto& c : cases) {
    auto t = FlowTable::create(c.cfg);
    ASSERT_FALSE(t.ok()) << c.what;
    EXPECT_EQ(t.error().code, -EINVAL) << c.what;
    EXPECT_FALSE(t.error().message.empty()) << c.what;
  }
  const uint32_t max = FlowTable::kMaxTimeoutMs;
  EXPECT_TRUE(FlowTable::create({64, max, max, max}).ok());
}

TEST(FlowTable, CapacityRoundsUpToWholeBuckets) {
  struct Case {
    uint32_t asked, expected;
  };
  for (const auto& c :
       {Case{1, 8}, Case{8, 8}, Case{9, 16}, Case{65536, 65536}, Case{65537, 65544}}) {
    FlowTable t = make_table(c.asked);
    EXPECT_EQ(t.capacity(), c.expected) << c.asked;
    EXPECT_EQ(t.config().capacity, c.expected) << c.asked;
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(FlowTable::bytes_needed(c.asked), size_t{c.expected} / 8 * 448) << c.asked;
  }
  EXPECT_EQ(FlowTable::bytes_needed(0), 0u);
  EXPECT_EQ(FlowTable::bytes_needed(FlowTable::kMaxCapacity + 1), 0u);
  // The budget: at most 64 bytes per entry, bucket header included.
  EXPECT_LE(FlowTable::bytes_needed(1 << 20) / (1 << 20), 64u);
}

TEST(FlowTable, CreateInUsesCallerMemory) {
  const size_t bytes = FlowTable::bytes_needed(1024);
  std::vector<std::byte> storage(bytes + 128);
  auto* base = storage.data();
  auto* aligned = base + (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  std::memset(aligned, 0xA5, bytes);  // create_in must clear what it is given

  auto misaligned = FlowTable::create_in(config(1024), {aligned + 8, bytes});
  ASSERT_FALSE(misaligned.ok());
  EXPECT_EQ(misaligned.error().code, -EINVAL);
  auto small = FlowTable::create_in(config(1024), {aligned, bytes - 1});
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().code, -EINVAL);

  auto made = FlowTable::create_in(config(1024), {aligned, bytes});
  ASSERT_TRUE(made.ok()) << made.error().message;
  FlowTable t = std::move(made).value();
  EXPECT_EQ(t.size(), 0u);
  const auto k = client_flow(7);
  EXPECT_EQ(t.lookup(k, hash_of(k), 0), SLUICE_BACKEND_NONE);
  EXPECT_EQ(t.insert(k, hash_of(k), 42, 0), FlowInsert::kInserted);
  EXPECT_EQ(t.lookup(k, hash_of(k), 1), 42u);
}

TEST(FlowTable, MoveKeepsEntries) {
  FlowTable a = make_table(64);
  const auto k = client_flow(1);
  ASSERT_EQ(a.insert(k, hash_of(k), 5, 0), FlowInsert::kInserted);
  FlowTable b = std::move(a);
  EXPECT_EQ(b.lookup(k, hash_of(k), 1), 5u);
  FlowTable c = make_table(8);
  c = std::move(b);
  EXPECT_EQ(c.lookup(k, hash_of(k), 2), 5u);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.capacity(), 64u);
}

// --- capacity and signatures ----------------------------------------------------

TEST(FlowTable, FillsEverySlotOfEveryBucket) {
  FlowTable t = make_table(65536);
  const uint32_t buckets = t.capacity() / FlowTable::kSlotsPerBucket;
  uint32_t n = 0;
  for (uint32_t b = 0; b < buckets; ++b) {
    for (uint32_t s = 0; s < FlowTable::kSlotsPerBucket; ++s, ++n) {
      const auto k = client_flow(n);
      ASSERT_EQ(t.insert(k, hash_in_bucket(t, b, s * 7919), n, 0), FlowInsert::kInserted) << n;
    }
  }
  EXPECT_EQ(t.size(), t.capacity());
  EXPECT_EQ(t.stats().inserts, t.capacity());
  n = 0;
  for (uint32_t b = 0; b < buckets; ++b) {
    for (uint32_t s = 0; s < FlowTable::kSlotsPerBucket; ++s, ++n) {
      const auto k = client_flow(n);
      ASSERT_EQ(t.lookup(k, hash_in_bucket(t, b, s * 7919), 1), n) << n;
    }
  }
  // Every entry is established now: a further flow is refused, not stored.
  const auto extra = client_flow(n);
  EXPECT_EQ(t.insert(extra, hash_in_bucket(t, 3, 0), 1, 2), FlowInsert::kFull);
  EXPECT_EQ(t.stats().insert_failed, 1u);
  EXPECT_EQ(t.size(), t.capacity());
}

TEST(FlowTable, SignaturesSelectTheirOwnSlot) {
  FlowTable t = make_table(64);
  // Slots 0..7 of bucket 2, each with its own signature.
  for (uint32_t s = 0; s < 8; ++s) {
    const auto k = client_flow(s);
    ASSERT_EQ(t.insert(k, hash_in_bucket(t, 2, 100 + s), s, 0), FlowInsert::kInserted);
  }
  for (uint32_t s = 0; s < 8; ++s) {
    // Right key, right hash: hit. Right key under another slot's signature,
    // or a signature no slot has: miss.
    EXPECT_EQ(t.lookup(client_flow(s), hash_in_bucket(t, 2, 100 + s), 1, false), s);
    EXPECT_EQ(t.lookup(client_flow(s), hash_in_bucket(t, 2, 100 + (s + 1) % 8), 1, false),
              SLUICE_BACKEND_NONE);
    EXPECT_EQ(t.lookup(client_flow(s), hash_in_bucket(t, 2, 200 + s), 1, false),
              SLUICE_BACKEND_NONE);
    // A different key under the slot's signature: full key compare says no.
    EXPECT_EQ(t.lookup(client_flow(s + 8), hash_in_bucket(t, 2, 100 + s), 1, false),
              SLUICE_BACKEND_NONE);
  }
  // All 8 slots under one signature: only the key decides.
  FlowTable same = make_table(64);
  const uint32_t h = hash_in_bucket(same, 5, 77);
  for (uint32_t s = 0; s < 8; ++s)
    ASSERT_EQ(same.insert(client_flow(s), h, s, 0), FlowInsert::kInserted);
  for (uint32_t s = 0; s < 8; ++s) EXPECT_EQ(same.lookup(client_flow(s), h, 1), s);
}

TEST(FlowTable, Ipv4AndIpv6KeysSharingBytesDoNotCollide) {
  FlowTable t = make_table(64);
  const auto v4 = v4_key(0x0A000001, 0x0A000002, 1000, 80, SLUICE_IPPROTO_TCP);
  // The same leading address bytes (10.0.0.1 / 10.0.0.2, rest zero) as IPv6.
  uint8_t src[16] = {10, 0, 0, 1};
  uint8_t dst[16] = {10, 0, 0, 2};
  const auto v6 = v6_key(src, dst, 1000, 80, SLUICE_IPPROTO_TCP);
  const auto udp = v4_key(0x0A000001, 0x0A000002, 1000, 80, SLUICE_IPPROTO_UDP);
  const auto reversed = v4_key(0x0A000002, 0x0A000001, 80, 1000, SLUICE_IPPROTO_TCP);
  const uint32_t h = hash_in_bucket(t, 1, 9);  // one bucket, one signature for all
  ASSERT_EQ(t.insert(v4, h, 4, 0), FlowInsert::kInserted);
  ASSERT_EQ(t.insert(v6, h, 6, 0), FlowInsert::kInserted);
  ASSERT_EQ(t.insert(udp, h, 17, 0), FlowInsert::kInserted);
  ASSERT_EQ(t.insert(reversed, h, 99, 0), FlowInsert::kInserted);
  EXPECT_EQ(t.lookup(v4, h, 1), 4u);
  EXPECT_EQ(t.lookup(v6, h, 1), 6u);
  EXPECT_EQ(t.lookup(udp, h, 1), 17u);
  EXPECT_EQ(t.lookup(reversed, h, 1), 99u);
  EXPECT_TRUE(t.erase(v6, h));
  EXPECT_EQ(t.lookup(v6, h, 2), SLUICE_BACKEND_NONE);
  EXPECT_EQ(t.lookup(v4, h, 2), 4u);
  // And with their real hashes.
  FlowTable r = make_table(1024);
  ASSERT_EQ(r.insert(v4, hash_of(v4), 4, 0), FlowInsert::kInserted);
  EXPECT_EQ(r.lookup(v6, hash_of(v6), 1), SLUICE_BACKEND_NONE);
  ASSERT_EQ(r.insert(v6, hash_of(v6), 6, 0), FlowInsert::kInserted);
  EXPECT_EQ(r.lookup(v4, hash_of(v4), 1), 4u);
  EXPECT_EQ(r.lookup(v6, hash_of(v6), 1), 6u);
}

// --- entry life ----------------------------------------------------------------

TEST(FlowTable, SecondPacketPromotesUnlessTold) {
  FlowTable t = make_table(64);
  const auto k = client_flow(0);
  const uint32_t h = hash_of(k);
  ASSERT_EQ(t.insert(k, h, 3, 100), FlowInsert::kInserted);
  EXPECT_EQ(t.find(k, h)->state, SLUICE_FLOW_PROBATION);
  EXPECT_EQ(t.lookup(k, h, 150, /*promote=*/false), 3u);  // e.g. a SYN retransmission
  EXPECT_EQ(t.find(k, h)->state, SLUICE_FLOW_PROBATION);
  EXPECT_EQ(t.find(k, h)->last_seen, 150u);
  EXPECT_EQ(t.lookup(k, h, 200), 3u);
  EXPECT_EQ(t.find(k, h)->state, SLUICE_FLOW_ESTABLISHED);
  EXPECT_EQ(t.find(k, h)->last_seen, 200u);
}

TEST(FlowTable, InsertOfLiveKeyReplacesBackendKeepsState) {
  FlowTable t = make_table(64);
  const auto k = client_flow(0);
  const uint32_t h = hash_of(k);
  ASSERT_EQ(t.insert(k, h, 3, 0), FlowInsert::kInserted);
  ASSERT_EQ(t.lookup(k, h, 10), 3u);  // established
  // Backend 3 was removed: the caller picks 8 by Maglev and re-pins.
  EXPECT_EQ(t.insert(k, h, 8, 20), FlowInsert::kReplaced);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.stats().replaced, 1u);
  EXPECT_EQ(t.stats().inserts, 1u);
  const auto e = t.find(k, h);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->backend_id, 8u);
  EXPECT_EQ(e->state, SLUICE_FLOW_ESTABLISHED);
  EXPECT_EQ(e->last_seen, 20u);
  EXPECT_EQ(t.lookup(k, h, 30), 8u);
}

TEST(FlowTable, EraseRemovesOnlyTheKey) {
  FlowTable t = make_table(64);
  const auto a = client_flow(0);
  const auto b = client_flow(1);
  ASSERT_EQ(t.insert(a, hash_of(a), 1, 0), FlowInsert::kInserted);
  ASSERT_EQ(t.insert(b, hash_of(b), 2, 0), FlowInsert::kInserted);
  EXPECT_TRUE(t.erase(a, hash_of(a)));
  EXPECT_FALSE(t.erase(a, hash_of(a)));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.lookup(a, hash_of(a), 1), SLUICE_BACKEND_NONE);
  EXPECT_EQ(t.lookup(b, hash_of(b), 1), 2u);
}

// One bucket, filled with chosen states and ages, then new flows: expired
// entries go first (longest expired first), then probation ones (stalest first),
// never a live established one.
TEST(FlowTable, EvictionOrderInAFullBucket) {
  FlowTable t = make_table(1024);
  const uint32_t bucket = 17;
  auto h = [&](uint32_t i) { return hash_in_bucket(t, bucket, 1000 + i); };
  auto k = [](uint32_t i) { return client_flow(2 * i + 1); };  // UDP: 30 s idle
  auto present = [&](uint32_t i) { return t.find(k(i), h(i)).has_value(); };

  // Slot plan at now = 40000 (UDP idle 30000, probation 2000):
  //  0: established, last seen 100     -> expired 9900 ms ago, the longest
  //  1: established, last seen 39000   -> live
  //     (slots by insertion order, one-line slots 0, 3, 4, 7 first:
  //     k(0) slot 0, k(1) 3, k(4) 4, k(2) 7, k(3) 1, k(5..7) 2, 5, 6)
  //  2: probation, inserted 38500      -> live, age 1500
  //  3: probation, inserted 39000      -> live, age 1000
  //  4: probation, inserted 37000      -> expired 1000 ms ago
  //  5..7: established, last seen 39500 -> live
  // (The clock only moves forward.)
  ASSERT_EQ(t.insert(k(0), h(0), 0, 0), FlowInsert::kInserted);
  ASSERT_EQ(t.lookup(k(0), h(0), 100), 0u);
  ASSERT_EQ(t.insert(k(1), h(1), 1, 10000), FlowInsert::kInserted);
  ASSERT_EQ(t.lookup(k(1), h(1), 10100), 1u);
  ASSERT_EQ(t.insert(k(4), h(4), 4, 37000), FlowInsert::kInserted);
  ASSERT_EQ(t.insert(k(2), h(2), 2, 38500), FlowInsert::kInserted);
  ASSERT_EQ(t.insert(k(3), h(3), 3, 39000), FlowInsert::kInserted);
  ASSERT_EQ(t.lookup(k(1), h(1), 39000), 1u);
  for (uint32_t i = 5; i < 8; ++i) ASSERT_EQ(t.insert(k(i), h(i), i, 39000), FlowInsert::kInserted);
  for (uint32_t i = 5; i < 8; ++i) ASSERT_EQ(t.lookup(k(i), h(i), 39500), i);
  ASSERT_EQ(t.size(), 8u);

  const uint32_t now = 40000;
  struct Step {
    uint32_t newcomer;
    uint32_t evicted;  // which of the plan's flows (or earlier newcomers) goes
  };
  // Newcomers 100.. are on probation with age 0 once in.
  const Step steps[] = {
      {100, 0},    // expired established, the longest expired
      {101, 4},    // the other expired one
      {102, 2},    // no expired left: stalest probation (age 1500)
      {103, 3},    // next stalest probation (age 1000)
      {104, 100},  // the newcomers tie at age 0: the lowest slot (0, k(100)) goes
  };
  for (const auto& s : steps) {
    ASSERT_TRUE(present(s.evicted)) << s.newcomer;
    EXPECT_EQ(t.insert(k(s.newcomer), h(s.newcomer), s.newcomer, now), FlowInsert::kInserted);
    EXPECT_FALSE(present(s.evicted)) << "newcomer " << s.newcomer << " should evict " << s.evicted;
    EXPECT_TRUE(present(s.newcomer));
    EXPECT_EQ(t.size(), 8u);
  }
  EXPECT_EQ(t.stats().evicted_expired, 2u);
  EXPECT_EQ(t.stats().evicted_probation, 3u);
  for (uint32_t i : {1u, 5u, 6u, 7u}) EXPECT_TRUE(present(i)) << i;

  // Promote the probation newcomers: all 8 live and established now.
  for (uint32_t i : {101u, 102u, 103u, 104u}) ASSERT_EQ(t.lookup(k(i), h(i), now + 1), i);
  EXPECT_EQ(t.insert(k(200), h(200), 200, now + 2), FlowInsert::kFull);
  EXPECT_EQ(t.stats().insert_failed, 1u);
  for (uint32_t i : {5u, 6u, 7u, 101u, 102u, 103u, 104u}) {
    EXPECT_EQ(t.lookup(k(i), h(i), now + 3), i);
  }
  EXPECT_TRUE(present(1));
  // Once flow 1 (last seen 39000) idles out, it is the one that goes.
  const uint32_t later = 39000 + kUdpIdle;
  for (uint32_t i : {5u, 6u, 7u, 101u, 102u, 103u, 104u})
    ASSERT_EQ(t.lookup(k(i), h(i), later - 1), i);
  EXPECT_EQ(t.insert(k(201), h(201), 201, later), FlowInsert::kInserted);
  EXPECT_FALSE(present(1));
  EXPECT_EQ(t.stats().evicted_expired, 3u);
}

// Idle timeouts by protocol and state, at clock values around the wrap.
TEST(FlowTable, TimeoutsPerProtocolAcrossClockWrap) {
  struct Case {
    const char* what;
    uint8_t proto;
    bool establish;
    uint32_t timeout;
  };
  const Case cases[] = {
      {"tcp established", SLUICE_IPPROTO_TCP, true, kTcpIdle},
      {"udp established", SLUICE_IPPROTO_UDP, true, kUdpIdle},
      {"tcp probation", SLUICE_IPPROTO_TCP, false, kProbation},
      {"udp probation", SLUICE_IPPROTO_UDP, false, kProbation},
  };
  const uint32_t bases[] = {0, 0xFFFFFFFFu - kProbation / 2, 0xFFFFFFFFu - kTcpIdle / 2,
                            0xFFFFFFFFu};
  for (uint32_t base : bases) {
    FlowTable t = make_table(1024);
    uint32_t n = 0;
    for (const auto& c : cases) {
      // Two flows per case: one looked at just before its timeout, one at it.
      const auto before = v4_key(0x0A000000u + n, 0xC0000201u, 1000, 80, c.proto);
      const auto at = v4_key(0x0A000000u + n + 1, 0xC0000201u, 1000, 80, c.proto);
      n += 2;
      for (const auto& k : {before, at}) {
        ASSERT_EQ(t.insert(k, hash_of(k), 7, base - 5), FlowInsert::kInserted);
        ASSERT_EQ(t.lookup(k, hash_of(k), base, c.establish), 7u);  // last seen = base
      }
      EXPECT_EQ(t.lookup(before, hash_of(before), base + c.timeout - 1, false), 7u)
          << c.what << " base " << base;
      EXPECT_EQ(t.lookup(at, hash_of(at), base + c.timeout, false), SLUICE_BACKEND_NONE)
          << c.what << " base " << base;
      EXPECT_FALSE(t.find(at, hash_of(at)).has_value()) << "an expired hit frees the entry";
      // The expired key starts over as a new flow (not a replacement).
      EXPECT_EQ(t.insert(at, hash_of(at), 9, base + c.timeout), FlowInsert::kInserted);
      EXPECT_EQ(t.find(at, hash_of(at))->state, SLUICE_FLOW_PROBATION);
    }
    EXPECT_EQ(t.stats().expired, 4u);
    EXPECT_EQ(t.stats().replaced, 0u);
  }
}

TEST(FlowTable, SweepFreesExpiredEntries) {
  FlowTable t = make_table(4096);
  const uint32_t buckets = t.capacity() / FlowTable::kSlotsPerBucket;
  for (uint32_t i = 0; i < 1000; ++i) {
    const auto k = client_flow(i);
    ASSERT_NE(t.insert(k, hash_of(k), i, 0), FlowInsert::kFull);
    // 500 established: 250 TCP (i % 4 == 0), 250 UDP (i % 4 == 1).
    if (i % 4 < 2) {
      ASSERT_EQ(t.lookup(k, hash_of(k), 0), i);
    }
  }
  ASSERT_EQ(t.size(), 1000u);
  // At 3000 ms the 500 probation entries are expired; established ones live.
  EXPECT_EQ(t.sweep(3000, buckets / 2) + t.sweep(3000, buckets / 2), 500u);
  EXPECT_EQ(t.size(), 500u);
  EXPECT_EQ(t.stats().expired, 500u);
  EXPECT_EQ(t.sweep(3000, buckets), 0u);
  // Past the UDP idle timeout only the TCP half stays.
  EXPECT_EQ(t.sweep(kUdpIdle, buckets * 3), 250u);
  EXPECT_EQ(t.size(), 250u);
}

// --- bursts ---------------------------------------------------------------------

// lookup_burst must answer, and change the table, exactly as lookup() in
// packet order would: hits, misses, expired entries, duplicates in a burst;
// and its insert hints must change nothing either (run with and without;
// the small table's buckets are full most of the time, so inserts evict
// there).
class FlowTableBurst : public ::testing::TestWithParam<std::tuple<bool, uint32_t>> {};

TEST_P(FlowTableBurst, GivesTheSameAnswersAsSingleLookups) {
  const auto [hinted, capacity] = GetParam();
  FlowTable burst = make_table(capacity);
  FlowTable single = make_table(capacity);
  Rng rng{std::mt19937(12345)};
  constexpr uint32_t kPool = 3000;
  std::vector<sluice_flow_key> pool(kPool);
  std::vector<uint32_t> hashes(kPool);
  for (uint32_t i = 0; i < kPool; ++i) {
    pool[i] = client_flow(i, 1);
    hashes[i] = hash_of(pool[i]);
  }
  uint32_t now = 0xFFFF0000u;  // crosses the wrap during the run
  for (int round = 0; round < 3000; ++round) {
    const uint32_t n = 1 + rng() % FlowTable::kMaxBurst;
    const sluice_flow_key* keys[FlowTable::kMaxBurst];
    uint32_t h[FlowTable::kMaxBurst];
    uint32_t idx[FlowTable::kMaxBurst];
    for (uint32_t i = 0; i < n; ++i) {
      // Repeat an earlier packet of the burst now and then.
      idx[i] = (i > 0 && rng() % 8 == 0) ? idx[rng() % i] : rng() % kPool;
      keys[i] = &pool[idx[i]];
      h[i] = hashes[idx[i]];
    }
    const uint64_t promote = (uint64_t{rng()} << 32) | rng();
    uint32_t out[FlowTable::kMaxBurst];
    FlowInsertHint hints[FlowTable::kMaxBurst];
    const uint64_t hits = hinted ? burst.lookup_burst(keys, h, n, now, out, promote, hints)
                                 : burst.lookup_burst(keys, h, n, now, out, promote);
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t want = single.lookup(*keys[i], h[i], now, (promote >> i) & 1);
      ASSERT_EQ(out[i], want) << "round " << round << " packet " << i;
      ASSERT_EQ((hits >> i) & 1, want != SLUICE_BACKEND_NONE ? 1u : 0u);
    }
    // Misses get inserted in both, as the fast path does.
    for (uint32_t i = 0; i < n; ++i) {
      if ((hits >> i) & 1) continue;
      const uint32_t backend = idx[i] % 97;
      const FlowInsert got = hinted ? burst.insert(hints[i], *keys[i], h[i], backend, now)
                                    : burst.insert(*keys[i], h[i], backend, now);
      ASSERT_EQ(got, single.insert(*keys[i], h[i], backend, now)) << "round " << round;
    }
    // 0-3 s per round: probation entries expire, busy flows stay.
    now += rng() % 3000;
  }
  EXPECT_EQ(burst.size(), single.size());
  EXPECT_EQ(burst.stats().inserts, single.stats().inserts);
  EXPECT_EQ(burst.stats().expired, single.stats().expired);
  EXPECT_EQ(burst.stats().evicted_probation, single.stats().evicted_probation);
  EXPECT_EQ(burst.stats().evicted_expired, single.stats().evicted_expired);
  EXPECT_EQ(burst.stats().insert_failed, single.stats().insert_failed);
  EXPECT_EQ(burst.stats().replaced, single.stats().replaced);
  EXPECT_GT(burst.stats().expired + burst.stats().evicted_expired, 0u);
  if (capacity < kPool / 4) {
    EXPECT_GT(burst.stats().evicted_probation, 0u);
  }
  for (uint32_t i = 0; i < kPool; ++i) {
    const auto a = burst.find(pool[i], hashes[i]);
    const auto b = single.find(pool[i], hashes[i]);
    ASSERT_EQ(a.has_value(), b.has_value()) << i;
    if (a) {
      EXPECT_EQ(a->backend_id, b->backend_id);
      EXPECT_EQ(a->last_seen, b->last_seen);
      EXPECT_EQ(a->state, b->state);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(FlowTable, FlowTableBurst,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(2048u, 256u)),
                         [](const ::testing::TestParamInfo<std::tuple<bool, uint32_t>>& p) {
                           return std::string(std::get<0>(p.param) ? "Hinted" : "Plain") +
                                  std::to_string(std::get<1>(p.param));
                         });

// A hint goes stale when its bucket changes after the lookup that made it.
// Here a full bucket's only probation entry is the hinted victim of a new
// flow, and a later packet of the same burst promotes it: the hinted insert
// must not evict what is now an established flow (it searches again and
// finds the bucket full).
TEST(FlowTable, HintDoesNotEvictAnEntryPromotedSinceTheLookup) {
  const uint32_t bucket = 9;
  // Bucket 9 full: flow 0 on probation (inserted at 10, deadline 2010),
  // flows 1..7 established.
  auto fill = [&](FlowTable& t) {
    for (uint32_t i = 0; i < 8; ++i) {
      ASSERT_EQ(t.insert(client_flow(i), hash_in_bucket(t, bucket, 500 + i), i, 10),
                FlowInsert::kInserted);
    }
    for (uint32_t i = 1; i < 8; ++i)
      ASSERT_EQ(t.lookup(client_flow(i), hash_in_bucket(t, bucket, 500 + i), 20), i);
  };
  const sluice_flow_key newcomer = client_flow(100);
  const sluice_flow_key victim = client_flow(0);
  uint32_t out[2];
  FlowInsertHint hints[2];

  // The newcomer's hint names flow 0; the next packet promotes flow 0.
  FlowTable t = make_table(1024);
  fill(t);
  const sluice_flow_key* keys[] = {&newcomer, &victim};
  const uint32_t hashes[] = {hash_in_bucket(t, bucket, 600), hash_in_bucket(t, bucket, 500)};
  ASSERT_EQ(t.lookup_burst(keys, hashes, 2, 30, out, ~0ull, hints), 0b10u);
  EXPECT_EQ(t.insert(hints[0], newcomer, hashes[0], 100, 30), FlowInsert::kFull);
  ASSERT_TRUE(t.find(victim, hashes[1]).has_value());
  EXPECT_EQ(t.find(victim, hashes[1])->state, SLUICE_FLOW_ESTABLISHED);
  EXPECT_FALSE(t.find(newcomer, hashes[0]).has_value());
  EXPECT_EQ(t.stats().evicted_probation, 0u);
  EXPECT_EQ(t.stats().insert_failed, 1u);

  // Nothing in between: the hint holds and evicts the probation entry.
  FlowTable u = make_table(1024);
  fill(u);
  ASSERT_EQ(u.lookup_burst(keys, hashes, 1, 30, out, ~0ull, hints), 0u);
  EXPECT_EQ(u.insert(hints[0], newcomer, hashes[0], 100, 30), FlowInsert::kInserted);
  EXPECT_FALSE(u.find(victim, hashes[1]).has_value());
  EXPECT_EQ(u.stats().evicted_probation, 1u);

  // A hint used on a later clock searches again: by 3000 flow 0 has
  // expired, so it goes as an expired entry, not as a probation one.
  FlowTable v = make_table(1024);
  fill(v);
  ASSERT_EQ(v.lookup_burst(keys, hashes, 1, 30, out, ~0ull, hints), 0u);
  EXPECT_EQ(v.insert(hints[0], newcomer, hashes[0], 100, 3000), FlowInsert::kInserted);
  EXPECT_EQ(v.stats().evicted_expired, 1u);
  EXPECT_EQ(v.stats().evicted_probation, 0u);
}

// The signature compare's vector code (SSE2, NEON) agrees with the portable
// one on every pattern of equal lanes, and on near misses (one bit off).
TEST(FlowTable, SignatureMaskMatchesPortableCode) {
  Rng rng{std::mt19937(99)};
  for (uint32_t pattern = 0; pattern < 256; ++pattern) {
    for (int round = 0; round < 20; ++round) {
      const auto sig = static_cast<uint16_t>(rng());
      uint16_t sigs[8];
      for (uint32_t i = 0; i < 8; ++i) {
        const auto other = static_cast<uint16_t>(sig ^ (1u << (rng() % 16)));
        sigs[i] = ((pattern >> i) & 1) ? sig : (round % 2 ? other : static_cast<uint16_t>(rng()));
      }
      uint32_t want = 0;
      for (uint32_t i = 0; i < 8; ++i) want |= static_cast<uint32_t>(sigs[i] == sig) << i;
      ASSERT_EQ(flow_table_detail::match_mask_portable(sigs, sig), want) << pattern;
      ASSERT_EQ(flow_table_detail::match_mask(sigs, sig), want) << pattern;
    }
  }
}

// --- flood ----------------------------------------------------------------------

// 80% of the table offered as established flows (two packets each), then ten
// times the capacity in one-packet flows: every stored established flow keeps
// its entry and backend, and afterwards new flows are admitted exactly as in
// a table that never saw the flood.
TEST(FlowTable, FloodOfOnePacketFlowsNeverEvictsEstablished) {
  constexpr uint32_t kCapacity = 65536;
  FlowTable t = make_table(kCapacity);
  FlowTable control = make_table(kCapacity);
  uint32_t now = 1000;

  std::vector<uint32_t> stored;
  for (uint32_t i = 0; i < kCapacity * 8 / 10; ++i) {
    const auto k = client_flow(i, 1);
    const uint32_t h = hash_of(k);
    const FlowInsert r = t.insert(k, h, i % 1000, now);
    ASSERT_EQ(control.insert(k, h, i % 1000, now), r);
    if (r == FlowInsert::kFull) continue;
    ASSERT_EQ(t.lookup(k, h, now), i % 1000);
    ASSERT_EQ(control.lookup(k, h, now), i % 1000);
    stored.push_back(i);
  }
  // Single-choice buckets of 8 refuse some flows at 80% (about 6%).
  EXPECT_GT(stored.size(), kCapacity * 7 / 10);
  const uint32_t established = t.size();

  // The flood: spoofed SYNs / UDP probes, each tuple seen once, 1 ms per
  // 100 packets (6.5 s: longer than probation, shorter than idle timeouts).
  for (uint32_t i = 0; i < kCapacity * 10; ++i) {
    const sluice_flow_key k = v4_key(0xC6120000u + i, 0xC0000201u, static_cast<uint16_t>(i), 80,
                                     (i & 1) ? SLUICE_IPPROTO_UDP : SLUICE_IPPROTO_TCP);
    (void)t.insert(k, hash_of(k), 1, now + i / 100);
  }
  now += kCapacity * 10 / 100;
  EXPECT_GT(t.stats().evicted_probation, kCapacity);
  for (uint32_t i : stored) {
    const auto k = client_flow(i, 1);
    const auto e = t.find(k, hash_of(k));
    ASSERT_TRUE(e.has_value()) << "established flow " << i << " was evicted";
    EXPECT_EQ(e->backend_id, i % 1000);
    EXPECT_EQ(e->state, SLUICE_FLOW_ESTABLISHED);
  }

  // New legitimate flows after the flood: admitted wherever the control
  // table admits them, and they establish.
  uint32_t admitted = 0;
  const uint32_t kLegit = kCapacity / 10;
  for (uint32_t i = 0; i < kLegit; ++i) {
    const auto k = client_flow(i, 2);
    const uint32_t h = hash_of(k);
    const FlowInsert r = t.insert(k, h, 7, now);
    ASSERT_EQ(r, control.insert(k, h, 7, now)) << i;
    if (r == FlowInsert::kInserted) {
      ++admitted;
      EXPECT_EQ(t.lookup(k, h, now), 7u);
      EXPECT_EQ(control.lookup(k, h, now), 7u);
    }
  }
  EXPECT_GT(admitted, kLegit / 2);

  // The flood's leftovers expire on probation: a sweep leaves only real flows.
  t.sweep(now + kProbation, kCapacity);
  EXPECT_EQ(t.size(), established + admitted);
  EXPECT_EQ(t.size(), control.size());
}

// --- allocation -------------------------------------------------------------------

TEST(FlowTable, NoAllocationAfterConstruction) {
  FlowTable t = make_table(65536);
  constexpr uint32_t kPool = 20000;
  std::vector<sluice_flow_key> pool(kPool);
  std::vector<uint32_t> hashes(kPool);
  for (uint32_t i = 0; i < kPool; ++i) {
    pool[i] = client_flow(i, 3);
    hashes[i] = hash_of(pool[i]);
  }
  Rng rng{std::mt19937(7)};
  uint64_t sink = 0;

  // The counting operator new is the one in use (a direct call cannot be
  // elided, unlike a new-expression).
  const uint64_t probe = g_allocations;
  ::operator delete(::operator new(16));
  ASSERT_EQ(g_allocations, probe + 1);

  const uint64_t before = g_allocations;
  uint32_t now = 0xFFFFF000u;
  for (int round = 0; round < 20000; ++round) {
    const uint32_t i = rng() % kPool;
    switch (rng() % 5) {
      case 0:
        sink += t.lookup(pool[i], hashes[i], now);
        break;
      case 1:
        sink += static_cast<uint64_t>(t.insert(pool[i], hashes[i], i, now));
        break;
      case 2:
        sink += t.erase(pool[i], hashes[i]);
        break;
      case 3: {
        const sluice_flow_key* keys[32];
        uint32_t h[32];
        uint32_t out[32];
        for (uint32_t j = 0; j < 32; ++j) {
          keys[j] = &pool[(i + j) % kPool];
          h[j] = hashes[(i + j) % kPool];
        }
        sink += t.lookup_burst(keys, h, 32, now, out);
        break;
      }
      default:
        sink += t.sweep(now, 64);
        sink += t.find(pool[i], hashes[i]).has_value();
        break;
    }
    now += rng() % 4;
  }
  const uint64_t after = g_allocations;
  EXPECT_EQ(after, before);
  EXPECT_GT(sink, 0u);
  EXPECT_GT(t.stats().inserts, 0u);
}

}  // namespace
}  // namespace sluice
