// SPDX-License-Identifier: BSD-2-Clause
// The hot-object cache store (dataplane/core/hot_cache.hpp) and the miss
// sketch (dataplane/core/count_min_sketch.hpp): bounds, TTL, eviction,
// the fill lease against writes, and the sketch's error bound.
#include "dataplane/core/hot_cache.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/core/count_min_sketch.hpp"

namespace {

// "<prefix><n>" (std::string + to_string trips GCC 12's -Wrestrict at -O3).
std::string numbered(char prefix, uint64_t n) {
  char buf[24];
  const int len = std::snprintf(buf, sizeof buf, "%c%llu", prefix, static_cast<unsigned long long>(n));
  return {buf, static_cast<size_t>(len)};
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

sluice::HotCache make(uint32_t entries, uint64_t max_bytes = 1u << 20, uint32_t ttl_ms = 1000,
                      uint32_t settle_ms = 100) {
  auto c = sluice::HotCache::create({entries, max_bytes, ttl_ms, settle_ms});
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

// Leases and installs `value` for `key` at `now`; the result.
sluice::FillResult fill(sluice::HotCache& c, uint32_t vip, const std::string& key,
                        const std::string& value, uint64_t now) {
  auto lease = c.begin_fill(vip, key, now);
  EXPECT_TRUE(lease.ok()) << key;
  if (!lease.ok()) return sluice::FillResult::kInvalid;
  return c.install(lease.value(), key, {1, 2, bytes(value)}, now);
}

std::string answer(const sluice_cache_entry* e) {
  std::array<uint8_t, 2048> out{};
  const size_t n = sluice::mc::entry_response(out, *e, false);
  return {reinterpret_cast<const char*>(out.data()), n};
}

TEST(HotCache, CreateChecksBounds) {
  EXPECT_EQ(sluice::HotCache::create({0, 1u << 20, 1000, 0}).error().code, -EINVAL);
  EXPECT_EQ(sluice::HotCache::create({sluice::HotCache::kMaxEntries + 1, 1u << 20, 1000, 0})
                .error()
                .code,
            -EINVAL);
  EXPECT_EQ(sluice::HotCache::create({10, 100, 1000, 0}).error().code, -EINVAL);
  EXPECT_EQ(sluice::HotCache::create({10, 1u << 20, 0, 0}).error().code, -EINVAL);
}

TEST(HotCache, FillThenHitPerVip) {
  sluice::HotCache c = make(4);
  EXPECT_EQ(c.lookup(1, "k", 0), nullptr);
  ASSERT_EQ(fill(c, 1, "k", "v1", 0), sluice::FillResult::kInstalled);
  const sluice_cache_entry* e = c.lookup(1, "k", 10);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(answer(e), "VALUE k 1 2\r\nv1\r\nEND\r\n");
  EXPECT_EQ(c.lookup(2, "k", 10), nullptr) << "another VIP's key";
  EXPECT_EQ(c.lookup(1, "kk", 10), nullptr);
  // With the hash handed in (the worker hashes once): the same entry.
  EXPECT_EQ(c.lookup(1, "k", sluice::mc::key_hash("k"), 10), e);
  EXPECT_EQ(c.lookup(2, "k", sluice::mc::key_hash("k"), 10), nullptr);
  const sluice::HotCacheStats s = c.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(s.fills, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, 3u);
}

TEST(HotCache, TtlCountsFromTheLease) {
  sluice::HotCache c = make(4, 1u << 20, 1000);
  auto lease = c.begin_fill(0, "k", 100);
  ASSERT_TRUE(lease.ok());
  // The fetch took 500 ms: the entry still expires 1000 ms after it began.
  ASSERT_EQ(c.install(lease.value(), "k", {0, 0, bytes("v")}, 600),
            sluice::FillResult::kInstalled);
  EXPECT_NE(c.lookup(0, "k", 1099), nullptr);
  EXPECT_EQ(c.lookup(0, "k", 1100), nullptr);
  EXPECT_EQ(c.stats().entries, 0u);
}

TEST(HotCache, WriteInvalidatesAndBlocksAFillInFlight) {
  sluice::HotCache c = make(4);
  ASSERT_EQ(fill(c, 0, "k", "old", 0), sluice::FillResult::kInstalled);
  // A fill begins, a write passes, the fill's (old) value arrives.
  auto lease = c.begin_fill(0, "k", 1000);
  ASSERT_TRUE(lease.ok());
  c.invalidate(0, "k", 1001);
  EXPECT_EQ(c.lookup(0, "k", 1002), nullptr);
  EXPECT_EQ(c.install(lease.value(), "k", {0, 0, bytes("old")}, 1003), sluice::FillResult::kStale);
  EXPECT_EQ(c.lookup(0, "k", 1004), nullptr);
  EXPECT_EQ(c.stats().stale_fills, 1u);
  EXPECT_EQ(c.stats().invalidations, 1u);
}

TEST(HotCache, NoLeaseWhileAWriteMaySettle) {
  sluice::HotCache c = make(4, 1u << 20, 1000, 100);
  c.invalidate(0, "k", 5000);
  // The write may not have reached the backend yet: a fetch now could read
  // the value from before it.
  EXPECT_EQ(c.begin_fill(0, "k", 5000).error().code, -EAGAIN);
  EXPECT_EQ(c.begin_fill(0, "k", 5099).error().code, -EAGAIN);
  EXPECT_TRUE(c.begin_fill(0, "k", 5100).ok());
  EXPECT_EQ(c.begin_fill(0, "bad key", 5100).error().code, -EINVAL);
  EXPECT_EQ(c.begin_fill(SLUICE_MAX_VIPS, "k", 5100).error().code, -EINVAL);
}

// A write held by the core that forwards it (CacheVersions::hold_slot)
// until it has left: no lease while held, however old the write; none for
// write_settle_ms after the release; then one, which installs.
TEST(HotCache, NoLeaseWhileAWriteIsHeldNorWhileItSettles) {
  auto versions = std::make_unique<sluice::CacheVersions>();
  auto made = sluice::HotCache::create({8, 1u << 20, 10'000, 50}, *versions);
  ASSERT_TRUE(made.ok());
  sluice::HotCache& c = made.value();
  const uint32_t slot = sluice_cache_version_slot(3, sluice::mc::key_hash("k"));
  versions->hold_slot(slot);  // before the bump, as a worker does
  c.invalidate(3, "k", 1000);
  EXPECT_EQ(versions->slot_holds(slot), 1u);
  // Long after the bump: the write still waits in a TX buffer.
  EXPECT_EQ(c.begin_fill(3, "k", 1000).error().code, -EAGAIN);
  EXPECT_EQ(c.begin_fill(3, "k", 5000).error().code, -EAGAIN);
  // Other keys of the VIP are not held (unless they share the slot).
  EXPECT_TRUE(c.begin_fill(3, "other", 5000).ok());
  versions->release_slot(slot, 5000);  // sent at 5000
  EXPECT_EQ(versions->slot_holds(slot), 0u);
  EXPECT_EQ(versions->slot_released_ms(slot), 5000u);
  EXPECT_EQ(c.begin_fill(3, "k", 5000).error().code, -EAGAIN) << "settling";
  EXPECT_EQ(c.begin_fill(3, "k", 5049).error().code, -EAGAIN) << "settling";
  // A filler whose clock lags the releasing core's sees a recent release,
  // not one 49 days old.
  EXPECT_EQ(c.begin_fill(3, "k", 4990).error().code, -EAGAIN);
  EXPECT_EQ(fill(c, 3, "k", "new", 5050), sluice::FillResult::kInstalled);
  EXPECT_NE(c.lookup(3, "k", 5051), nullptr);

  // Two holds (two cores' writes): held until both are released, settling
  // from the last release.
  versions->hold_slot(slot);
  versions->hold_slot(slot);
  c.invalidate(3, "k", 6000);
  versions->release_slot(slot, 6001);
  EXPECT_EQ(c.begin_fill(3, "k", 7000).error().code, -EAGAIN);
  versions->release_slot(slot, 7000);
  EXPECT_EQ(c.begin_fill(3, "k", 7049).error().code, -EAGAIN);
  EXPECT_TRUE(c.begin_fill(3, "k", 7050).ok());
}

// A VIP's hold (an unsure request in flight) covers all of its keys and no
// other VIP's; a hold of every key covers all of them; both settle.
TEST(HotCache, VipAndWholeCacheHoldsCoverTheirKeys) {
  auto versions = std::make_unique<sluice::CacheVersions>();
  auto made = sluice::HotCache::create({8, 1u << 20, 10'000, 50}, *versions);
  ASSERT_TRUE(made.ok());
  sluice::HotCache& c = made.value();
  auto leased = c.begin_fill(3, "a", 100);
  ASSERT_TRUE(leased.ok());
  versions->hold_vip(3);
  c.invalidate_vip(3);
  EXPECT_EQ(c.begin_fill(3, "a", 1000).error().code, -EAGAIN);
  EXPECT_EQ(c.begin_fill(3, "b", 1000).error().code, -EAGAIN);
  EXPECT_TRUE(c.begin_fill(4, "a", 1000).ok());
  EXPECT_EQ(c.install(leased.value(), "a", {0, 0, bytes("old")}, 1000), sluice::FillResult::kStale);
  versions->release_vip(3, 1000);
  EXPECT_EQ(c.begin_fill(3, "b", 1049).error().code, -EAGAIN);
  EXPECT_TRUE(c.begin_fill(4, "b", 1049).ok());
  EXPECT_EQ(fill(c, 3, "b", "v", 1050), sluice::FillResult::kInstalled);

  versions->hold_all();
  EXPECT_EQ(c.begin_fill(3, "b", 2000).error().code, -EAGAIN);
  EXPECT_EQ(c.begin_fill(4, "z", 2000).error().code, -EAGAIN);
  versions->release_all(2000);
  EXPECT_EQ(c.begin_fill(4, "z", 2049).error().code, -EAGAIN);
  EXPECT_TRUE(c.begin_fill(4, "z", 2050).ok());
  EXPECT_EQ(versions->all_holds(), 0u);
}

TEST(HotCache, WholeVipInvalidation) {
  sluice::HotCache c = make(8);
  ASSERT_EQ(fill(c, 0, "a", "1", 0), sluice::FillResult::kInstalled);
  ASSERT_EQ(fill(c, 1, "a", "1", 0), sluice::FillResult::kInstalled);
  auto lease = c.begin_fill(0, "b", 0);
  ASSERT_TRUE(lease.ok());
  c.invalidate_vip(0);
  EXPECT_EQ(c.lookup(0, "a", 1), nullptr);
  EXPECT_NE(c.lookup(1, "a", 1), nullptr) << "other VIPs keep their entries";
  EXPECT_EQ(c.install(lease.value(), "b", {0, 0, bytes("x")}, 1), sluice::FillResult::kStale);
  // A lease taken after the invalidation installs.
  EXPECT_EQ(fill(c, 0, "a", "2", 2), sluice::FillResult::kInstalled);
  EXPECT_NE(c.lookup(0, "a", 3), nullptr);
}

TEST(HotCache, VersionSlotCollisionsOnlyCostMisses) {
  // Two keys of the same VIP in the same version slot: a write of one
  // invalidates the other too (a miss), never serves a stale value.
  sluice::HotCache c = make(16);
  const std::string a = "a";
  const uint32_t slot = sluice_cache_version_slot(0, sluice::mc::key_hash(a));
  std::string b;
  for (int i = 0; b.empty(); ++i) {
    const std::string k = numbered('k', i);
    if (sluice_cache_version_slot(0, sluice::mc::key_hash(k)) == slot) b = k;
  }
  ASSERT_EQ(fill(c, 0, a, "1", 0), sluice::FillResult::kInstalled);
  ASSERT_EQ(fill(c, 0, b, "2", 0), sluice::FillResult::kInstalled);
  c.invalidate(0, b, 1);
  EXPECT_EQ(c.lookup(0, a, 200), nullptr);
  EXPECT_EQ(c.lookup(0, b, 200), nullptr);
}

TEST(HotCache, RefillReplacesTheOldEntry) {
  sluice::HotCache c = make(4);
  ASSERT_EQ(fill(c, 0, "k", "one", 0), sluice::FillResult::kInstalled);
  ASSERT_EQ(fill(c, 0, "k", "second", 1), sluice::FillResult::kInstalled);
  EXPECT_EQ(answer(c.lookup(0, "k", 2)), "VALUE k 1 6\r\nsecond\r\nEND\r\n");
  EXPECT_EQ(c.stats().entries, 1u);
  EXPECT_EQ(c.stats().bytes, 7u);
}

TEST(HotCache, EntryBoundEvictsTheColdest) {
  sluice::HotCache c = make(4);
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(fill(c, 0, numbered('k', i), "v", 0), sluice::FillResult::kInstalled);
  // k1 is the cold one.
  for (int round = 0; round < 5; ++round)
    for (int i : {0, 2, 3}) ASSERT_NE(c.lookup(0, numbered('k', i), 1), nullptr);
  ASSERT_EQ(fill(c, 0, "new", "v", 2), sluice::FillResult::kInstalled);
  EXPECT_EQ(c.stats().entries, 4u);
  EXPECT_EQ(c.stats().evictions, 1u);
  EXPECT_EQ(c.lookup(0, "k1", 3), nullptr);
  for (const char* k : {"k0", "k2", "k3", "new"}) EXPECT_NE(c.lookup(0, k, 3), nullptr) << k;
}

TEST(HotCache, ExpiredEntriesGoFirst) {
  sluice::HotCache c = make(2, 1u << 20, 100);
  ASSERT_EQ(fill(c, 0, "old", "v", 0), sluice::FillResult::kInstalled);
  ASSERT_EQ(fill(c, 0, "hot", "v", 150), sluice::FillResult::kInstalled);
  ASSERT_EQ(fill(c, 0, "new", "v", 160), sluice::FillResult::kInstalled);
  EXPECT_NE(c.lookup(0, "hot", 161), nullptr);
  EXPECT_NE(c.lookup(0, "new", 161), nullptr);
  EXPECT_EQ(c.evict_expired(1000), 2u);
  EXPECT_EQ(c.stats().entries, 0u);
  EXPECT_EQ(c.stats().bytes, 0u);
}

TEST(HotCache, ByteBoundHolds) {
  const uint64_t max_bytes = SLUICE_CACHE_KEY_MAX + SLUICE_CACHE_VALUE_MAX;
  sluice::HotCache c = make(100, max_bytes);
  const std::string value(1000, 'v');
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(fill(c, 0, numbered('k', i), value, 0), sluice::FillResult::kInstalled);
    EXPECT_LE(c.stats().bytes, max_bytes);
    EXPECT_EQ(c.stats().entries, 1u);
  }
  EXPECT_NE(c.lookup(0, "k9", 1), nullptr);
  const std::string too_big(SLUICE_CACHE_VALUE_MAX + 1, 'v');
  auto lease = c.begin_fill(0, "big", 1);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(c.install(lease.value(), "big", {0, 0, bytes(too_big)}, 1),
            sluice::FillResult::kTooBig);
  EXPECT_EQ(c.install(lease.value(), "other", {0, 0, bytes("x")}, 1),
            sluice::FillResult::kInvalid);
}

TEST(HotCache, RandomOperationsMatchAModel) {
  // A model of what must never happen: a hit with a value other than the
  // last installed one since the key's last write. Random fills (some with
  // a write between lease and install), writes, lookups and evictions.
  sluice::HotCache c = make(64, 64 * 40, 500, 10);
  std::mt19937 rng(42);
  std::map<std::string, std::string> current;  // key -> value the backend holds
  uint64_t now = 1000;
  for (int step = 0; step < 20000; ++step) {
    now += rng() % 3;
    const std::string key = numbered('k', rng() % 200);
    switch (rng() % 4) {
      case 0: {  // a write through the fast path
        c.invalidate(0, key, now);
        current[key] = numbered('v', step);
        break;
      }
      case 1: {  // a fill, perhaps raced by a write
        auto lease = c.begin_fill(0, key, now);
        if (!lease.ok()) break;
        const std::string fetched = current.count(key) ? current[key] : "none";
        if (rng() % 4 == 0) {
          c.invalidate(0, key, now);
          current[key] = numbered('w', step);
        }
        (void)c.install(lease.value(), key, {0, 0, bytes(fetched)}, now);
        break;
      }
      default: {
        const sluice_cache_entry* e = c.lookup(0, key, now);
        if (e == nullptr) break;
        const std::string want = current.count(key) ? current[key] : "none";
        const std::string got(reinterpret_cast<const char*>(e->text) + e->head_len + 2,
                              e->body_len - 9);  // "\r\n" data "\r\nEND\r\n"
        ASSERT_EQ(got, want) << key << " at step " << step;
      }
    }
    ASSERT_LE(c.stats().entries, 64u);
    ASSERT_LE(c.stats().bytes, 64u * 40);
  }
  EXPECT_GT(c.stats().hits, 0u);
  EXPECT_GT(c.stats().stale_fills, 0u);
}

// key_hits from another thread while the owner refills the one slot over
// and over: a copy it accepts is never torn (the key, its value size and
// its hits all belong to one fill).
TEST(HotCache, KeyHitsReadsOneFillWhileTheOwnerRefills) {
  sluice::HotCache c = make(1, 1u << 20, 1000, 0);
  std::atomic<bool> done{false};
  uint64_t good = 0, torn = 0;
  std::thread reader([&] {
    sluice::CachedKeyHits k;
    while (!done.load(std::memory_order_acquire)) {
      if (!c.key_hits(0, k)) continue;
      // Fill i holds (i % 26 + 1) copies of one letter, as value and key,
      // and is answered that many times.
      const uint16_t len = k.key_len;
      const bool ok = len >= 1 && len <= 26 && k.value_bytes == len && k.hits <= len &&
                      std::all_of(k.key, k.key + len, [len](char ch) {
                        return ch == static_cast<char>('a' + len - 1);
                      });
      ++(ok ? good : torn);
    }
  });
  for (uint32_t i = 0; i < 20'000; ++i) {
    const std::string key(i % 26 + 1, static_cast<char>('a' + i % 26));
    ASSERT_EQ(fill(c, 1, key, key, 0), sluice::FillResult::kInstalled);
    for (size_t n = 0; n < key.size(); ++n) {
      const sluice_cache_entry* e = c.lookup(1, key, 0);
      ASSERT_NE(e, nullptr);
      c.count_answer(*e);
    }
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(torn, 0u);
  EXPECT_GT(good, 0u);
  sluice::CachedKeyHits k;
  ASSERT_TRUE(c.key_hits(0, k));
  EXPECT_EQ(std::string(k.key, k.key_len), "ffffff") << "the last fill, 19,999 % 26 = 5";
  EXPECT_EQ(k.hits, k.key_len);
}

TEST(CountMinSketch, NeverUnderAndWithinItsBound) {
  // Zipf-like stream: key i with weight 1/(i+1), 200,000 adds over 5,000
  // keys. Every estimate >= truth; estimate - truth <= eps * N for all but

  // about delta of the keys.
  sluice::CountMinSketch s;
  std::mt19937 rng(7);
  constexpr int kKeys = 5000;
  std::vector<double> cdf(kKeys);
  double acc = 0;
  for (int i = 0; i < kKeys; ++i) cdf[i] = acc += 1.0 / (i + 1);
  std::vector<uint32_t> truth(kKeys);
  std::vector<uint32_t> hashes(kKeys);
  for (int i = 0; i < kKeys; ++i) hashes[i] = sluice::mc::key_hash(numbered('q', i));
  constexpr uint32_t kAdds = 200000;
  std::uniform_real_distribution<double> u(0, acc);
  for (uint32_t n = 0; n < kAdds; ++n) {
    const auto i = static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) -
                                       cdf.begin());
    ++truth[i];
    const uint32_t est = s.add(hashes[i]);
    ASSERT_GE(est, truth[i]);
  }
  const double bound = sluice::CountMinSketch::kEpsilon * kAdds;
  int over = 0;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_GE(s.estimate(hashes[i]), truth[i]);
    if (s.estimate(hashes[i]) - truth[i] > bound) ++over;
  }
  EXPECT_LE(over, static_cast<int>(std::ceil(sluice::CountMinSketch::kDelta * kKeys)));
  // The hottest key is estimated closely: its error is the same absolute
  // bound, small against its count.
  EXPECT_LE(s.estimate(hashes[0]) - truth[0], bound);
  s.reset();
  EXPECT_EQ(s.estimate(hashes[0]), 0u);
}

TEST(CountMinSketch, IndicesStayInTheirRows) {
  for (uint32_t h : {0u, 1u, 0xffffffffu, 0x12345678u}) {
    for (uint32_t row = 0; row < SLUICE_CACHE_SKETCH_DEPTH; ++row) {
      const uint32_t i = sluice_cache_sketch_index(h, row);
      EXPECT_GE(i, row * SLUICE_CACHE_SKETCH_WIDTH);
      EXPECT_LT(i, (row + 1) * SLUICE_CACHE_SKETCH_WIDTH);
    }
  }
}

// Two cores' caches over one CacheVersions (the DPDK workers): a write seen
// by one stops the other's entry, and a lease from before it fails on both.
TEST(HotCache, SharedVersionsMakeOneCoresWriteStopEveryCoresEntry) {
  auto versions = std::make_unique<sluice::CacheVersions>();
  auto made_a = sluice::HotCache::create({8, 1u << 20, 1000, 100}, *versions);
  auto made_b = sluice::HotCache::create({8, 1u << 20, 1000, 100}, *versions);
  ASSERT_TRUE(made_a.ok() && made_b.ok());
  sluice::HotCache& a = made_a.value();
  sluice::HotCache& b = made_b.value();
  ASSERT_EQ(fill(a, 1, "k", "old", 0), sluice::FillResult::kInstalled);
  ASSERT_EQ(fill(b, 1, "k", "old", 0), sluice::FillResult::kInstalled);
  ASSERT_NE(b.lookup(1, "k", 10), nullptr);

  auto lease = b.begin_fill(1, "other", 10);
  ASSERT_TRUE(lease.ok());
  a.invalidate(1, "k", 20);  // core A forwards a write of k
  EXPECT_EQ(b.lookup(1, "k", 21), nullptr) << "core B must not serve the old value";
  EXPECT_EQ(a.lookup(1, "k", 21), nullptr);
  // A fill on B leased before A's write of k's slot is refused; one leased
  // after it waits out write_settle_ms (the write may still be on its way).
  auto before = b.begin_fill(1, "k", 300);
  ASSERT_TRUE(before.ok());
  a.invalidate(1, "k", 301);
  EXPECT_EQ(b.install(before.value(), "k", {0, 0, bytes("x")}, 302), sluice::FillResult::kStale);
  EXPECT_EQ(b.begin_fill(1, "k", 350).error().code, -EAGAIN);
  EXPECT_EQ(fill(b, 1, "k", "new", 500), sluice::FillResult::kInstalled);
  EXPECT_NE(b.lookup(1, "k", 501), nullptr);

  // A whole-VIP invalidation on A stops B's entries and B's leases.
  a.invalidate_vip(1);
  EXPECT_EQ(b.lookup(1, "k", 502), nullptr);
  EXPECT_EQ(b.install(lease.value(), "other", {0, 0, bytes("y")}, 503),
            sluice::FillResult::kStale);
  EXPECT_EQ(versions->epoch(1), 1u);
  EXPECT_EQ(versions->version(sluice_cache_version_slot(1, sluice::mc::key_hash("k"))), 2u);
  EXPECT_EQ(versions->last_write_ms(sluice_cache_version_slot(1, sluice::mc::key_hash("k"))),
            301u);
  // Another VIP's entries are untouched.
  EXPECT_EQ(fill(b, 2, "k", "v2", 504), sluice::FillResult::kInstalled);
  EXPECT_NE(b.lookup(2, "k", 505), nullptr);
}

}  // namespace
