// SPDX-License-Identifier: BSD-2-Clause
// Maglev table builder: determinism, exact weights, disruption bounds,
// errors, and the population step against a one-offer-at-a-time reference.
#include "dataplane/core/maglev.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace sluice {
namespace {

constexpr uint32_t kM = kMaglevDefaultSize;

enum class Family { kV4, kV6, kMixed };

// A fixed-seed 32-bit generator (std::mt19937's result type is wider on LP64).
struct Rng {
  using result_type = uint32_t;
  explicit Rng(uint32_t seed) : g(seed) {}
  static constexpr uint32_t min() { return 0; }
  static constexpr uint32_t max() { return UINT32_MAX; }
  uint32_t operator()() { return static_cast<uint32_t>(g()); }
  uint32_t below(uint32_t n) { return (*this)() % n; }
  std::mt19937 g;
};

// n distinct random addresses (10/8, 2001:db8::/32, or both).
std::vector<IpAddress> random_addrs(size_t n, Rng& rng, Family f) {
  std::set<IpAddress> seen;
  std::vector<IpAddress> out;
  while (out.size() < n) {
    IpAddress a;
    const bool v6 = f == Family::kV6 || (f == Family::kMixed && (rng() & 1) != 0);
    if (v6) {
      uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8};
      for (int i = 4; i < 16; ++i) b[i] = static_cast<uint8_t>(rng());
      a = IpAddress::v6(b);
    } else {
      a = IpAddress::v4(0x0A000000u | (rng() & 0x00FFFFFFu));
    }
    if (seen.insert(a).second) out.push_back(a);
  }
  return out;
}

std::vector<MaglevBackend> with_weights(const std::vector<IpAddress>& addrs,
                                        const std::vector<uint32_t>& weights) {
  std::vector<MaglevBackend> v;
  for (size_t i = 0; i < addrs.size(); ++i) v.push_back({addrs[i], weights[i]});
  return v;
}

std::vector<IpAddress> addrs_of(const std::vector<MaglevBackend>& v) {
  std::vector<IpAddress> a;
  for (const auto& b : v) a.push_back(b.addr);
  return a;
}

std::vector<uint32_t> weights_of(const std::vector<MaglevBackend>& v) {
  std::vector<uint32_t> w;
  for (const auto& b : v) w.push_back(b.weight);
  return w;
}

std::vector<uint32_t> build_ok(MaglevBuilder& b, const std::vector<MaglevBackend>& v,
                               uint32_t m = kM) {
  auto t = b.build(v, m);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return t.ok() ? std::move(t).value() : std::vector<uint32_t>{};
}

uint32_t moved(const std::vector<uint32_t>& t0, const std::vector<MaglevBackend>& b0,
               const std::vector<uint32_t>& t1, const std::vector<MaglevBackend>& b1) {
  auto d = maglev_disruption(t0, addrs_of(b0), t1, addrs_of(b1));
  EXPECT_TRUE(d.ok());
  return d.ok() ? d.value() : 0;
}

// The fewest entries that must move between two weightings of the same
// address list: M * sum |new share - old share| / 2.
double share_changed(const std::vector<uint32_t>& w0, const std::vector<uint32_t>& w1, uint32_t m) {
  const double s0 = std::accumulate(w0.begin(), w0.end(), 0.0);
  const double s1 = std::accumulate(w1.begin(), w1.end(), 0.0);
  double d = 0;
  for (size_t i = 0; i < w0.size(); ++i) d += std::abs(w1[i] / s1 - w0[i] / s0);
  return m * d / 2;
}

struct Dist {
  double min, median, max;
};

Dist dist(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double med = n % 2 != 0 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {v.front(), med, v.back()};
}

// Measured figures go to stdout (the lead quotes them) and to the XML report.
void report(const std::string& key, const std::string& text) {
  std::cout << "[maglev] " << key << ": " << text << "\n";
  ::testing::Test::RecordProperty(key, text);
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

// The population step's definition, one offer at a time with a priority
// queue: the optimised builder must give exactly this table.
std::vector<uint32_t> reference_populate(const std::vector<MaglevPermutation>& p, uint32_t m) {
  const size_t n = p.size();
  const uint64_t w_total =
      std::accumulate(p.begin(), p.end(), uint64_t{0},
                      [](uint64_t s, const MaglevPermutation& x) { return s + x.weight; });
  std::vector<uint64_t> quota(n), rem(n);
  uint64_t given = 0;
  for (size_t i = 0; i < n; ++i) {
    quota[i] = uint64_t{m} * p[i].weight / w_total;
    rem[i] = uint64_t{m} * p[i].weight % w_total;
    given += quota[i];
  }
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return rem[a] > rem[b]; });
  for (uint64_t k = 0; k < m - given; ++k) ++quota[idx[k]];

  std::vector<uint64_t> j(n, 0);
  auto later = [&](size_t a, size_t b) {
    const uint64_t x = (2 * j[a] + 1) * p[b].weight;
    const uint64_t y = (2 * j[b] + 1) * p[a].weight;
    return x > y || (x == y && a > b);
  };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later)> q(later);
  for (size_t i = 0; i < n; ++i) {
    if (quota[i] != 0) q.push(i);
  }
  std::vector<uint32_t> table(m, SLUICE_BACKEND_NONE);
  for (uint32_t filled = 0; filled < m;) {
    const size_t i = q.top();
    q.pop();
    const auto slot = static_cast<uint32_t>((p[i].offset + j[i] * p[i].skip) % m);
    if (table[slot] == SLUICE_BACKEND_NONE) {
      table[slot] = static_cast<uint32_t>(i);
      ++filled;
      --quota[i];
    }
    ++j[i];
    if (quota[i] != 0) q.push(i);
  }
  return table;
}

TEST(Maglev, Primes) {
  const struct {
    uint32_t n;
    bool prime;
  } cases[] = {{0, false},      {1, false},       {2, true},           {3, true},
               {4, false},      {9, false},       {25, false},         {251, true},
               {253, false},    {65537, true},    {65539, true},       {65541, false},
               {1048573, true}, {1048575, false}, {4294967291u, true}, {4294967295u, false}};
  for (const auto& c : cases) EXPECT_EQ(is_prime(c.n), c.prime) << c.n;

  EXPECT_EQ(next_prime(0), 2u);
  EXPECT_EQ(next_prime(2), 2u);
  EXPECT_EQ(next_prime(250), 251u);
  EXPECT_EQ(next_prime(65536), 65537u);
  EXPECT_EQ(next_prime(1048572), 1048573u);
  EXPECT_EQ(next_prime(4294967291u), 4294967291u);
  EXPECT_EQ(next_prime(4294967292u), 0u);
}

TEST(Maglev, AutoTableSize) {
  static_assert(kMaglevAutoEntriesPerBackend == 1000);
  EXPECT_EQ(maglev_auto_table_size(0), 65537u);
  EXPECT_EQ(maglev_auto_table_size(65), 65537u);
  EXPECT_EQ(maglev_auto_table_size(66), next_prime(66000));
  EXPECT_EQ(maglev_auto_table_size(100), 100003u);
  EXPECT_EQ(maglev_auto_table_size(1000), 1000003u);
  EXPECT_EQ(maglev_auto_table_size(1048), next_prime(1048000));
  EXPECT_EQ(maglev_auto_table_size(1049), kMaglevMaxSize);
  EXPECT_EQ(maglev_auto_table_size(uint64_t{1} << 62), kMaglevMaxSize);
  EXPECT_EQ(maglev_auto_table_size(UINT64_MAX), kMaglevMaxSize);
  for (uint64_t n : {1u, 70u, 500u, 1048u}) {
    const uint32_t m = maglev_auto_table_size(n);
    EXPECT_TRUE(is_prime(m));
    EXPECT_GE(m, std::max<uint64_t>(65537, 1000 * n));
  }
}

TEST(Maglev, SameTableWhateverTheBackendOrder) {
  Rng rng(1);
  MaglevBuilder builder;
  for (const Family f : {Family::kV4, Family::kV6, Family::kMixed}) {
    for (const bool weighted : {false, true}) {
      const auto addrs = random_addrs(64, rng, f);
      std::vector<uint32_t> w(addrs.size(), 1);
      for (size_t i = 0; weighted && i < w.size(); ++i) {
        w[i] = i == 0 ? 7 : rng.below(50);  // zeros included
      }
      auto base = with_weights(addrs, w);
      const auto t0 = build_ok(builder, base);
      for (int shuffle = 0; shuffle < 4; ++shuffle) {
        auto v = base;
        std::shuffle(v.begin(), v.end(), rng);
        const auto t1 = build_ok(builder, v);
        ASSERT_EQ(t1.size(), t0.size());
        // Same address in every slot, though the indices differ.
        size_t differ = 0;
        for (size_t s = 0; s < t0.size(); ++s) differ += base[t0[s]].addr != v[t1[s]].addr;
        EXPECT_EQ(differ, 0u) << "family " << static_cast<int>(f) << " weighted " << weighted;
      }
      // A fresh builder and the free function agree too (no hidden state).
      auto t2 = maglev_build(base, kM);
      ASSERT_TRUE(t2.ok());
      EXPECT_EQ(t2.value(), t0);
    }
  }
}

TEST(Maglev, EqualWeightsGiveFloorOrCeil) {
  Rng rng(2);
  MaglevBuilder builder;
  const struct {
    uint32_t m;
    size_t n;
  } cases[] = {{kM, 1},    {kM, 2},    {kM, 3},    {kM, 10}, {kM, 100},
               {kM, 1000}, {251, 251}, {251, 250}, {251, 7}};
  for (const auto& c : cases) {
    const auto v =
        with_weights(random_addrs(c.n, rng, Family::kMixed), std::vector<uint32_t>(c.n, 5));
    const auto t = build_ok(builder, v, c.m);
    ASSERT_EQ(t.size(), c.m);
    auto bal = maglev_balance(t, weights_of(v));
    ASSERT_TRUE(bal.ok());
    const uint32_t lo = c.m / static_cast<uint32_t>(c.n);
    const uint32_t hi = lo + (c.m % c.n != 0 ? 1 : 0);
    const auto [mn, mx] =
        std::minmax_element(bal.value().entries.begin(), bal.value().entries.end());
    EXPECT_GE(*mn, lo) << "M " << c.m << " N " << c.n;
    EXPECT_LE(*mx, hi) << "M " << c.m << " N " << c.n;
    report("equal M=" + std::to_string(c.m) + " N=" + std::to_string(c.n),
           fmt("entries min %.0f max %.0f (ideal %.2f)", *mn, *mx, double(c.m) / double(c.n)));
  }
}

TEST(Maglev, AnyWeightsWithinOneEntry) {
  Rng rng(3);
  MaglevBuilder builder;
  double worst = 0;
  int trials = 0;
  auto check = [&](const std::vector<MaglevBackend>& v) {
    const auto t = build_ok(builder, v);
    auto bal = maglev_balance(t, weights_of(v));
    ASSERT_TRUE(bal.ok());
    EXPECT_LE(bal.value().max_abs_dev, 1.0);
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i].weight == 0) {
        EXPECT_EQ(bal.value().entries[i], 0u);
      }
    }
    worst = std::max(worst, bal.value().max_abs_dev);
    ++trials;
  };
  // 1 : 1000, alone and among others.
  auto two = random_addrs(2, rng, Family::kV4);
  check(with_weights(two, {1, 1000}));
  check(with_weights(random_addrs(5, rng, Family::kV6), {1000, 1, 0, 1, 1000}));
  // Extreme weights: no overflow.
  check(with_weights(random_addrs(3, rng, Family::kV4), {0xFFFFFFFFu, 1, 0xFFFFFFFEu}));
  // Random weight vectors, some with many zeros.
  for (int trial = 0; trial < 40; ++trial) {
    const size_t n = 1 + rng.below(trial % 4 == 0 ? 1000 : 100);
    std::vector<uint32_t> w(n);
    for (auto& x : w) {
      x = trial % 3 == 0 ? (rng.below(3) == 0 ? 0 : 1 + rng.below(1000)) : 1 + rng.below(100);
    }
    if (std::all_of(w.begin(), w.end(), [](uint32_t x) { return x == 0; })) w[0] = 1;
    check(with_weights(random_addrs(n, rng, Family::kMixed), w));
  }
  report("any weights",
         fmt("%.0f tables, worst |entries - M*share| = %.3f entries", trials, worst));
}

TEST(Maglev, WeightChangeMovesLittleMoreThanTheShareThatChanged) {
  // 20 single-backend changes in a row at N = 100: each sets one random
  // backend to a new random weight in [1, 100].
  Rng rng(4);
  MaglevBuilder builder;
  const uint32_t n = 100;
  std::vector<uint32_t> w(n);
  for (auto& x : w) x = 1 + rng.below(100);
  auto cur = with_weights(random_addrs(n, rng, Family::kMixed), w);
  auto t_cur = build_ok(builder, cur);
  std::vector<double> ratios;
  while (ratios.size() < 20) {
    auto next = cur;
    auto& b = next[rng.below(n)];
    const uint32_t nw = 1 + rng.below(100);
    if (nw == b.weight) continue;
    b.weight = nw;
    const auto t_next = build_ok(builder, next);
    const double minimum = share_changed(weights_of(cur), weights_of(next), kM);
    const double ratio = moved(t_cur, cur, t_next, next) / minimum;
    EXPECT_LE(ratio, 4.0) << "minimum " << minimum;
    ratios.push_back(ratio);
    cur = next;
    t_cur = t_next;
  }
  const Dist d = dist(ratios);
  EXPECT_LE(d.median, 2.5);
  report("weight change N=100 moved/minimum",
         fmt("min %.2f median %.2f max %.2f", d.min, d.median, d.max));

  // Small steps (+-1 to +-5 on weights of 1-100) cost relatively more: the
  // few backends whose rounded quota moves by one entry must be reached
  // through chains of displaced slots. Reported, not bounded.
  std::vector<double> small;
  while (small.size() < 20) {
    auto next = cur;
    auto& b = next[rng.below(n)];
    const auto step = static_cast<int>(rng.below(11)) - 5;
    if (step == 0 || static_cast<int>(b.weight) + step < 1) continue;
    b.weight = static_cast<uint32_t>(static_cast<int>(b.weight) + step);
    const auto t_next = build_ok(builder, next);
    small.push_back(moved(t_cur, cur, t_next, next) /
                    share_changed(weights_of(cur), weights_of(next), kM));
    cur = next;
    t_cur = t_next;
  }
  const Dist ds = dist(small);
  report("small weight change (+-1..5) N=100 moved/minimum",
         fmt("min %.2f median %.2f max %.2f", ds.min, ds.median, ds.max));
}

TEST(Maglev, RemovingABackendMovesAboutItsShare) {
  Rng rng(5);
  MaglevBuilder builder;
  for (const uint32_t n : {10u, 100u, 1000u}) {
    std::vector<uint32_t> sizes = {kM};
    if (maglev_auto_table_size(n) != kM) sizes.push_back(maglev_auto_table_size(n));
    for (const uint32_t m : sizes) {
      const auto base =
          with_weights(random_addrs(n, rng, Family::kMixed), std::vector<uint32_t>(n, 1));
      const auto t0 = build_ok(builder, base, m);
      const int picks = n == 1000 ? 3 : 6;
      std::vector<double> ratios;
      for (int k = 0; k < picks; ++k) {
        auto less = base;
        less.erase(less.begin() + static_cast<ptrdiff_t>(rng.below(n)));
        const auto t1 = build_ok(builder, less, m);
        const double ratio = moved(t0, base, t1, less) / (double(m) / double(n));
        ratios.push_back(ratio);
        if (n == 100 && m == kM) {
          EXPECT_LE(ratio, 1.6);
        }
        // The automatic size keeps it near 2x the ideal (1.9x measured at
        // N = 1,000, where a 65,537 table moves 4x).
        if (m == maglev_auto_table_size(n)) {
          EXPECT_LE(ratio, 2.2) << "N=" << n << " M=" << m;
        }
        // Adding it back restores the old table exactly.
        if (k == 0) {
          EXPECT_EQ(build_ok(builder, base, m), t0);
        }
      }
      const Dist d = dist(ratios);
      const double avg =
          std::accumulate(ratios.begin(), ratios.end(), 0.0) / static_cast<double>(ratios.size());
      report("remove one of N=" + std::to_string(n) + " M=" + std::to_string(m) + " moved/(M/N)",
             fmt("avg %.3f min %.3f max %.3f", avg, d.min, d.max));
    }
  }
}

TEST(Maglev, RejectsBadInput) {
  Rng rng(6);
  MaglevBuilder builder;
  const auto three = with_weights(random_addrs(3, rng, Family::kV4), {1, 2, 3});
  for (const uint32_t m : {0u, 1u, 7u, 250u, 65536u, 65535u, 1048575u, 1048583u, 4294967291u}) {
    auto t = builder.build(three, m);
    ASSERT_FALSE(t.ok()) << m;
    EXPECT_EQ(t.error().code, -EINVAL);
    EXPECT_NE(t.error().message.find(std::to_string(m)), std::string::npos) << t.error().message;
  }
  auto dup = three;
  dup[2].addr = dup[0].addr;
  auto t = builder.build(dup, kM);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, -EINVAL);
  EXPECT_NE(t.error().message.find(dup[0].addr.to_string()), std::string::npos);

  // The same address parsed twice is a duplicate too.
  const std::vector<MaglevBackend> parsed = {{IpAddress::parse("192.0.2.7").value(), 1},
                                             {IpAddress::parse("2001:db8::7").value(), 1},
                                             {IpAddress::parse("192.0.2.7").value(), 1}};
  t = builder.build(parsed, kM);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, -EINVAL);

  auto zeros = three;
  for (auto& b : zeros) b.weight = 0;
  t = builder.build(zeros, kM);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, -ENOENT);

  t = builder.build({}, kM);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, -ENOENT);

  const auto many =
      with_weights(random_addrs(252, rng, Family::kV4), std::vector<uint32_t>(252, 1));
  t = builder.build(many, 251);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, -EINVAL);

  // The population step checks its own input.
  const std::vector<MaglevPermutation> p = {{3, 4, 1}, {0, 2, 1}, {3, 1, 1}};
  EXPECT_EQ(builder.populate(p, {}, 8).error().code, -EINVAL);  // not prime
  EXPECT_EQ(builder.populate(p, {}, 2).error().code, -EINVAL);  // more backends than slots
  EXPECT_EQ(builder.populate({}, {}, 7).error().code, -ENOENT);
  std::vector<MaglevPermutation> bad = p;
  bad[1].skip = 0;
  EXPECT_EQ(builder.populate(bad, {}, 7).error().code, -EINVAL);
  bad = p;
  bad[1].skip = 7;
  EXPECT_EQ(builder.populate(bad, {}, 7).error().code, -EINVAL);
  bad = p;
  bad[2].offset = 7;
  EXPECT_EQ(builder.populate(bad, {}, 7).error().code, -EINVAL);
  const std::vector<uint32_t> not_perm = {0, 0, 1};
  const std::vector<uint32_t> short_order = {0, 1};
  const std::vector<uint32_t> out_of_range = {0, 1, 3};
  EXPECT_EQ(builder.populate(p, not_perm, 7).error().code, -EINVAL);
  EXPECT_EQ(builder.populate(p, short_order, 7).error().code, -EINVAL);
  EXPECT_EQ(builder.populate(p, out_of_range, 7).error().code, -EINVAL);
  const std::vector<MaglevPermutation> idle = {{3, 4, 0}, {0, 2, 0}};
  EXPECT_EQ(builder.populate(idle, {}, 7).error().code, -ENOENT);
}

TEST(Maglev, PopulationStepByHand) {
  // The permutations of the paper's Table 1 (M = 7): B0 offset 3 skip 4
  // (3 0 4 1 5 2 6), B1 offset 0 skip 2 (0 2 4 6 1 3 5), B2 offset 3 skip 1
  // (3 4 5 6 0 1 2).
  MaglevBuilder builder;
  std::vector<MaglevPermutation> p = {{3, 4, 1}, {0, 2, 1}, {3, 1, 1}};
  const struct {
    std::vector<uint32_t> weights;
    std::vector<uint32_t> order;
    std::vector<uint32_t> table;
  } cases[] = {
      // Equal weights: quotas 3 2 2 (B0 first in tie order). Offers at
      // j = 0: B0 takes 3, B1 takes 0, B2 finds 3 full; j = 1: B0 finds 0
      // full, B1 takes 2 (done), B2 takes 4; j = 2: B0 finds 4 full, B2
      // takes 5 (done); B0 then takes 1 (j = 3) and 6 (j = 6). The paper's
      // table.
      {{1, 1, 1}, {}, {1, 0, 1, 0, 2, 2, 0}},
      // Tie order B2 B1 B0: quotas 2 2 3. B2 takes 3 4 5, B1 takes 0 2,
      // B0 finds 3 0 4 full and takes 1 then 6.
      {{1, 1, 1}, {2, 1, 0}, {1, 0, 1, 2, 2, 2, 0}},
      // Weights 1 2 4 (quotas 1 2 4): B2 offers at 1/8, 3/8, 5/8, 7/8 take
      // 3 4 5 6; B1 at 1/4, 3/4 takes 0 2; B0 at 1/2 (3 full), 3/2 (0
      // full), 5/2 (4 full), 7/2 takes 1.
      {{1, 2, 4}, {}, {1, 0, 1, 2, 2, 2, 2}},
      // Weight 0 for B1: quotas 4 0 3. Offers at 1/2: B0 takes 3, B2 finds
      // it full; 3/2: B0 takes 0, B2 takes 4; 5/2: B0 finds 4 full, B2
      // takes 5; 7/2: B0 takes 1, B2 takes 6 (done); 11/2: B0 takes 2.
      {{1, 0, 1}, {}, {0, 0, 0, 0, 2, 2, 2}},
  };
  for (const auto& c : cases) {
    for (size_t i = 0; i < p.size(); ++i) p[i].weight = c.weights[i];
    auto t = builder.populate(p, c.order, 7);
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(t.value(), c.table);
    if (c.order.empty()) {
      EXPECT_EQ(t.value(), reference_populate(p, 7));
    }
  }
}

TEST(Maglev, PopulationStepMatchesReference) {
  // The builder takes offers in windows and finishes with a direct search;
  // both must give exactly the one-offer-at-a-time table.
  Rng rng(7);
  MaglevBuilder builder;
  int tables = 0;
  for (const uint32_t m : {251u, 1009u, 8191u, 65537u}) {
    for (const size_t n : {1u, 2u, 10u, 100u, 250u}) {
      for (int kind = 0; kind < 3; ++kind) {
        if (n > m || (m == 65537 && n > 10)) continue;
        std::vector<MaglevPermutation> p(n);
        for (auto& x : p) {
          x.offset = rng.below(m);
          x.skip = 1 + rng.below(m - 1);
          x.weight = kind == 0   ? 1
                     : kind == 1 ? 1 + rng.below(100)
                                 : (rng.below(3) == 0 ? 0 : 1 + rng());
        }
        if (std::all_of(p.begin(), p.end(), [](auto& x) { return x.weight == 0; })) {
          p[0].weight = 1;
        }
        auto t = builder.populate(p, {}, m);
        ASSERT_TRUE(t.ok()) << t.error().message;
        EXPECT_EQ(t.value(), reference_populate(p, m)) << "M " << m << " N " << n;
        ++tables;
      }
    }
  }
  report("reference", std::to_string(tables) + " tables identical");
}

TEST(Maglev, BalanceAndDisruptionHelpers) {
  const std::vector<uint32_t> table = {0, 1, 1, 0, 1, 1, 2};
  auto b = maglev_balance(table, std::vector<uint32_t>{1, 2, 1});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value().entries, (std::vector<uint32_t>{2, 4, 1}));
  // Ideal 1.75, 3.5, 1.75: worst |dev| 0.75 entries, relative 0.75 / 1.75.
  EXPECT_DOUBLE_EQ(b.value().max_abs_dev, 0.75);
  EXPECT_DOUBLE_EQ(b.value().max_rel_dev, 0.75 / 1.75);
  EXPECT_EQ(maglev_balance(table, std::vector<uint32_t>{1, 1}).error().code, -EINVAL);
  EXPECT_EQ(maglev_balance(table, std::vector<uint32_t>{0, 0, 0}).error().code, -ENOENT);
  EXPECT_EQ(maglev_balance({}, std::vector<uint32_t>{1}).error().code, -EINVAL);

  const IpAddress a = IpAddress::v4(0x0A000001), bb = IpAddress::v4(0x0A000002),
                  c = IpAddress::v4(0x0A000003);
  // Same backends, other indices: nothing moved.
  const std::vector<IpAddress> old_addrs = {a, bb, c};
  const std::vector<IpAddress> new_addrs = {c, a, bb};
  const std::vector<uint32_t> same = {1, 2, 2, 1, 2, 2, 0};
  EXPECT_EQ(maglev_disruption(table, old_addrs, same, new_addrs).value(), 0u);
  const std::vector<uint32_t> other = {1, 2, 2, 1, 2, 0, 0};
  EXPECT_EQ(maglev_disruption(table, old_addrs, other, new_addrs).value(), 1u);
  EXPECT_EQ(maglev_disruption(table, old_addrs, {}, new_addrs).error().code, -EINVAL);
  const std::vector<uint32_t> bad = {1, 2, 2, 1, 2, 3, 0};
  EXPECT_EQ(maglev_disruption(table, old_addrs, bad, new_addrs).error().code, -EINVAL);
}

}  // namespace
}  // namespace sluice
