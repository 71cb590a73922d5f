// SPDX-License-Identifier: BSD-2-Clause
// cache_sim: the hot-object cache's hit ratio and the backends' load
// balance under a Zipf workload, simulated over the core's own parts -- the
// count-min sketch of misses, HotCache and its leases, the key-affinity
// route hash and Maglev tables -- as one fast-path core and its filler see
// it (ISSUE 8, "Performance"). Not a timing: a deterministic figure.
//
//   ./build/perf/cache_sim [--keys=N] [--zipf=S] [--requests=N] [--entries=N]
//                          [--threshold=N] [--period=N] [--fills=N] [--ttl-ms=N]
//                          [--backends=A,B,...] [--seed=N]
//
// Model: requests arrive at 1 Mreq/s (the clock the TTL runs on); key k
// (rank k, from 0) is asked with probability proportional to 1/(k+1)^S. A
// request the cache answers never reaches a backend; a miss reaches the
// key's owner (table[route_hash % M] of a Maglev table over the backends)
// and is counted in the sketch, which is reset every `period` requests. A
// miss whose estimate reaches `threshold` is a hot report; at most `fills`
// reports per period are fetched, each a get at the owner, and installed
// at the end of the period (the fetch's delay) under its lease. Figures
// are taken after a warm-up of the first quarter of the requests.
#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/core/count_min_sketch.hpp"
#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/maglev.hpp"
#include "dataplane/core/memcached.hpp"

namespace {

using sluice::CountMinSketch;
using sluice::FillLease;
using sluice::HotCache;

struct Options {
  uint32_t keys = 1'000'000;
  double zipf = 0.99;
  uint64_t requests = 20'000'000;
  uint32_t entries = 10'000;
  uint32_t threshold = 3;
  uint64_t period = 10'000;  // requests: 10 ms at 1 Mreq/s
  uint32_t fills = 64;       // hot reports fetched per period (the daemon's bound)
  uint32_t ttl_ms = 10'000;  // [cache] ttl_ms's default
  std::vector<uint32_t> backends = {10, 32};
  uint32_t seed = 1;
};

constexpr uint32_t kVip = 0;
constexpr uint32_t kHashSeed = 0x5eed1234;
constexpr uint32_t kTableSize = 65537;
constexpr uint64_t kRequestsPerMs = 1000;  // 1 Mreq/s

bool flag(std::string_view arg, std::string_view name, std::string_view& value) {
  if (arg.substr(0, name.size()) != name || arg.size() <= name.size() || arg[name.size()] != '=')
    return false;
  value = arg.substr(name.size() + 1);
  return true;
}

template <class T>
T number(std::string_view v) {
  T out{};
  const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc{} || r.ptr != v.data() + v.size()) {
    std::fprintf(stderr, "cache_sim: not a number: %.*s\n", static_cast<int>(v.size()), v.data());
    std::exit(2);
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    std::string_view v;
    if (flag(a, "--keys", v)) {
      o.keys = number<uint32_t>(v);
    } else if (flag(a, "--zipf", v)) {
      o.zipf = std::strtod(std::string(v).c_str(), nullptr);
    } else if (flag(a, "--requests", v)) {
      o.requests = number<uint64_t>(v);
    } else if (flag(a, "--entries", v)) {
      o.entries = number<uint32_t>(v);
    } else if (flag(a, "--threshold", v)) {
      o.threshold = number<uint32_t>(v);
    } else if (flag(a, "--period", v)) {
      o.period = number<uint64_t>(v);
    } else if (flag(a, "--fills", v)) {
      o.fills = number<uint32_t>(v);
    } else if (flag(a, "--ttl-ms", v)) {
      o.ttl_ms = number<uint32_t>(v);
    } else if (flag(a, "--seed", v)) {
      o.seed = number<uint32_t>(v);
    } else if (flag(a, "--backends", v)) {
      o.backends.clear();
      while (!v.empty()) {
        const size_t comma = std::min(v.find(','), v.size());
        o.backends.push_back(number<uint32_t>(v.substr(0, comma)));
        v.remove_prefix(std::min(comma + 1, v.size()));
      }
    } else {
      std::fprintf(stderr, "cache_sim: unknown argument %s\n", argv[i]);
      std::exit(2);
    }
  }
  if (o.keys == 0 || o.requests < 4 || o.entries == 0 || o.threshold == 0 || o.period == 0 ||
      o.ttl_ms == 0 || o.backends.empty()) {
    std::fprintf(stderr, "cache_sim: keys, requests, entries, threshold, period, ttl > 0\n");
    std::exit(2);
  }
  return o;
}

// "key:<rank>" into buf; returns the view.
std::string_view key_of(uint32_t k, char (&buf)[24]) {
  std::memcpy(buf, "key:", 4);
  const auto r = std::to_chars(buf + 4, buf + sizeof(buf), k);
  return {buf, static_cast<size_t>(r.ptr - buf)};
}

// Largest load over the mean, for the per-key loads `per_key` placed by
// key-affinity routing over `n` backends.
double max_over_mean(const std::vector<uint64_t>& per_key, uint32_t n) {
  std::vector<sluice::MaglevBackend> in;
  for (uint32_t i = 0; i < n; ++i) {
    sluice::IpAddress a;
    a.family = SLUICE_FAMILY_IPV4;
    const uint32_t host = 0x0a020000u + i + 1;  // 10.2.0.0/16
    for (int b = 0; b < 4; ++b) a.ip.bytes[b] = static_cast<uint8_t>(host >> (24 - 8 * b));
    in.push_back({a, 1});
  }
  sluice::MaglevBuilder builder;
  auto table = builder.build(in, kTableSize);
  if (!table.ok()) {
    std::fprintf(stderr, "cache_sim: maglev: %s\n", table.error().message.c_str());
    std::exit(1);
  }
  std::vector<uint64_t> load(n, 0);
  char buf[24];
  uint64_t total = 0;
  for (uint32_t k = 0; k < per_key.size(); ++k) {
    if (per_key[k] == 0) continue;
    load[table.value()[sluice::mc::route_hash(key_of(k, buf), kHashSeed) % kTableSize]] +=
        per_key[k];
    total += per_key[k];
  }
  const double mean = static_cast<double>(total) / n;
  return static_cast<double>(*std::max_element(load.begin(), load.end())) / mean;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);

  // The Zipf CDF over ranks.
  std::vector<double> cdf(o.keys);
  double acc = 0;
  for (uint32_t k = 0; k < o.keys; ++k) {
    acc += 1.0 / std::pow(static_cast<double>(k) + 1.0, o.zipf);
    cdf[k] = acc;
  }
  for (double& c : cdf) c /= acc;

  auto cache = HotCache::create({o.entries, uint64_t{o.entries} * 64, o.ttl_ms, 0});
  if (!cache.ok()) {
    std::fprintf(stderr, "cache_sim: %s\n", cache.error().message.c_str());
    return 1;
  }
  HotCache& c = cache.value();
  CountMinSketch sketch;
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);

  struct Pending {
    uint32_t key;
    FillLease lease;
  };
  std::vector<Pending> pending;
  const uint64_t warmup = o.requests / 4;
  std::vector<uint64_t> asked(o.keys, 0);    // requests per key, after warm-up
  std::vector<uint64_t> reached(o.keys, 0);  // gets at its owner (misses and fills)
  uint64_t hits = 0;
  const uint8_t value[16] = {'v'};
  char buf[24];

  for (uint64_t i = 0; i < o.requests; ++i) {
    const uint64_t now = i / kRequestsPerMs;
    if (i % o.period == 0) {
      sketch.reset();
      for (const Pending& p : pending) {
        (void)c.install(p.lease, key_of(p.key, buf), {0, 0, value}, now);
        if (i >= warmup) ++reached[p.key];
      }
      pending.clear();
    }
    const auto k =
        static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    const uint32_t key = std::min(k, o.keys - 1);
    const std::string_view name = key_of(key, buf);
    const bool counted = i >= warmup;
    if (counted) ++asked[key];
    if (c.lookup(kVip, name, now) != nullptr) {
      hits += counted;
      continue;
    }
    if (counted) ++reached[key];
    if (sketch.add(sluice::mc::key_hash(name)) != o.threshold || pending.size() >= o.fills)
      continue;
    auto lease = c.begin_fill(kVip, name, now);
    if (lease.ok()) pending.push_back({key, lease.value()});
  }

  const uint64_t measured = o.requests - warmup;
  // The best any cache of this size can do: the `entries` most asked keys.
  std::vector<uint64_t> sorted = asked;
  std::nth_element(sorted.begin(), sorted.begin() + std::min<size_t>(o.entries, sorted.size() - 1),
                   sorted.end(), std::greater<>());
  uint64_t top = 0;
  for (size_t j = 0; j < std::min<size_t>(o.entries, sorted.size()); ++j) top += sorted[j];

  const sluice::HotCacheStats st = c.stats();
  std::printf("zipf %.2f over %" PRIu32 " keys, %" PRIu64 " requests (%" PRIu64
              " after warm-up), cache of %" PRIu32 " entries\n",
              o.zipf, o.keys, o.requests, measured, o.entries);
  std::printf("sketch period %" PRIu64 " requests, threshold %" PRIu32 ", at most %" PRIu32
              " fills per period, ttl %" PRIu32 " ms (at 1 Mreq/s)\n",
              o.period, o.threshold, o.fills, o.ttl_ms);
  std::printf("hit ratio %.1f%% (the %" PRIu32 " most asked keys: %.1f%%); fills %" PRIu64
              ", evictions %" PRIu64 ", entries %" PRIu64 "\n",
              100.0 * static_cast<double>(hits) / static_cast<double>(measured), o.entries,
              100.0 * static_cast<double>(top) / static_cast<double>(measured), st.fills,
              st.evictions, st.entries);
  for (uint32_t n : o.backends)
    std::printf("%3" PRIu32 " backends: most loaded / mean  without cache %.3f  with cache %.3f\n",
                n, max_over_mean(asked, n), max_over_mean(reached, n));
  return 0;
}
