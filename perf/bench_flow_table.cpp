// SPDX-License-Identifier: BSD-2-Clause
// Benchmarks of the per-core flow table: hits by burst (with prefetch) and
// one by one, and misses followed by inserts, into a table at its working
// size (free slots) and into a full one (eviction of probation entries).
//
// Keys and hashes are computed before timing (the parser computes the hash
// once per packet; that cost belongs to its benchmark). Keys are visited in
// random order of the table but read sequentially from an array, as a fast
// path reads them from packets already in cache. The clock advances 1 ms per
// burst, so every hit writes its deadline as it would under real traffic;
// established flows' idle timeouts are long enough that none expires.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/flow_table.hpp"

namespace sluice {
namespace {

constexpr uint32_t kBurst = 32;
constexpr uint32_t kSeed = 0x5eed1234;

sluice_flow_key flow(uint64_t i) {
  sluice_flow_key k{};
  k.src.v4 = sl_htonl(0x0A000000u + static_cast<uint32_t>(i >> 16));
  k.dst.v4 = sl_htonl(0xC0000201u);
  k.sport = sl_htons(static_cast<uint16_t>(i));
  k.dport = sl_htons(443);
  k.proto = (i & 1) ? SLUICE_IPPROTO_UDP : SLUICE_IPPROTO_TCP;
  k.family = SLUICE_FAMILY_IPV4;
  return k;
}

struct Keys {
  std::vector<sluice_flow_key> keys;
  std::vector<uint32_t> hashes;

  void add(const sluice_flow_key& k) {
    keys.push_back(k);
    hashes.push_back(sluice_flow_hash(&k, kSeed));
  }
  [[nodiscard]] uint32_t size() const { return static_cast<uint32_t>(keys.size()); }
  void shuffle(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (uint32_t i = size() - 1; i > 0; --i) {
      const auto j = static_cast<uint32_t>(rng() % (i + 1));
      std::swap(keys[i], keys[j]);
      std::swap(hashes[i], hashes[j]);
    }
  }
};

// What the table holds besides its established flows.
enum class Fill : uint8_t {
  kEstablished,  // nothing else: hit benchmarks
  kRoom,         // nothing else, plus a pool of new flows: miss + insert with free slots
  kFull,         // every other slot on probation, plus a pool: miss + insert by eviction
};

// A table of twice `entries` slots holding exactly `entries` established
// flows (single-choice buckets refuse some flows above ~50% load; the
// fixture offers more until `entries` are in), plus what `fill` says.
struct Fixture {
  uint32_t entries = 0;
  Fill fill = Fill::kEstablished;
  std::unique_ptr<FlowTable> table;
  Keys stored;
  Keys pool;
  uint32_t cursor = 0;  // next pool key (miss benchmark), next stored key (hit benchmarks)
  uint32_t now = 1;

  Fixture(uint32_t n, Fill how) : entries(n), fill(how) {
    FlowTableConfig cfg;
    cfg.capacity = 2 * n;
    cfg.tcp_idle_ms = FlowTable::kMaxTimeoutMs;
    cfg.udp_idle_ms = FlowTable::kMaxTimeoutMs;
    cfg.probation_ms = 2'000;
    auto made = FlowTable::create(cfg);
    if (!made) std::abort();
    table = std::make_unique<FlowTable>(std::move(made).value());

    uint64_t next = 0;
    while (table->size() < n) {
      const sluice_flow_key k = flow(next++);
      const uint32_t h = sluice_flow_hash(&k, kSeed);
      if (table->insert(k, h, static_cast<uint32_t>(next % 4096), now) != FlowInsert::kInserted) {
        continue;
      }
      (void)table->lookup(k, h, now);  // second packet: established
      stored.add(k);
    }
    stored.shuffle(1);
    if (fill == Fill::kEstablished) return;

    // kFull: the rest of the table on probation. The pool of new flows is
    // twice the capacity, so that (kRoom) a window of them is erased long
    // before it comes round again, and (kFull) about 16 inserts have hit
    // a flow's bucket since, displacing it: every offer is a miss.
    if (fill == Fill::kFull) {
      for (uint32_t i = 0; i < table->capacity() - n; ++i) {
        const sluice_flow_key k = flow(next++);
        (void)table->insert(k, sluice_flow_hash(&k, kSeed), 1, now);
      }
    }
    for (uint32_t i = 0; i < 2 * table->capacity(); ++i) pool.add(flow(next++));
  }
};

Fixture& fixture(uint32_t entries, Fill fill) {
  static std::unique_ptr<Fixture> current;
  if (!current || current->entries != entries || current->fill != fill) {
    current.reset();
    current = std::make_unique<Fixture>(entries, fill);
  }
  return *current;
}

void report(benchmark::State& state, const Fixture& f, uint64_t items) {
  state.SetItemsProcessed(static_cast<int64_t>(items));
  // Seconds per item, shown with an SI prefix (e.g. "18.5n").
  state.counters["time_per_item"] = benchmark::Counter(
      static_cast<double>(items), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["table_MiB"] =
      static_cast<double>(FlowTable::bytes_needed(f.table->capacity())) / (1 << 20);
}

void BM_FlowTable_BurstLookupHit(benchmark::State& state) {
  Fixture& f = fixture(static_cast<uint32_t>(state.range(0)), Fill::kEstablished);
  const uint32_t n = f.stored.size() / kBurst * kBurst;
  const sluice_flow_key* keys[kBurst];
  uint32_t out[kBurst];
  uint64_t hits = 0;
  for (auto _ : state) {
    if (f.cursor >= n) f.cursor = 0;
    for (uint32_t i = 0; i < kBurst; ++i) keys[i] = &f.stored.keys[f.cursor + i];
    const uint64_t mask =
        f.table->lookup_burst(keys, &f.stored.hashes[f.cursor], kBurst, f.now++, out);
    hits += static_cast<uint64_t>(__builtin_popcountll(mask));
    benchmark::DoNotOptimize(out);
    f.cursor += kBurst;
  }
  report(state, f, state.iterations() * kBurst);
  state.counters["hit_ratio"] =
      static_cast<double>(hits) / static_cast<double>(state.iterations() * kBurst);
}

void BM_FlowTable_SingleLookupHit(benchmark::State& state) {
  Fixture& f = fixture(static_cast<uint32_t>(state.range(0)), Fill::kEstablished);
  const uint32_t n = f.stored.size();
  uint64_t hits = 0;
  for (auto _ : state) {
    if (f.cursor >= n) f.cursor = 0;
    const uint32_t backend =
        f.table->lookup(f.stored.keys[f.cursor], f.stored.hashes[f.cursor], f.now);
    hits += backend != SLUICE_BACKEND_NONE;
    benchmark::DoNotOptimize(backend);
    if (++f.cursor % kBurst == 0) ++f.now;
  }
  report(state, f, state.iterations());
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}

// One burst of new flows as the fast path handles it: lookup_burst (all
// miss; it prefetches the slots the inserts will take and hints them), then
// one hinted insert per packet after Maglev. Returns the flows stored.
uint32_t miss_and_insert(Fixture& f, uint64_t& misses) {
  const sluice_flow_key* keys[kBurst];
  uint32_t out[kBurst];
  FlowInsertHint hints[kBurst];
  const uint32_t* hashes = &f.pool.hashes[f.cursor];
  for (uint32_t i = 0; i < kBurst; ++i) keys[i] = &f.pool.keys[f.cursor + i];
  const uint64_t hits = f.table->lookup_burst(keys, hashes, kBurst, f.now, out, ~0ull, hints);
  uint32_t stored = 0;
  for (uint32_t i = 0; i < kBurst; ++i) {
    if ((hits >> i) & 1) continue;
    ++misses;
    stored += f.table->insert(hints[i], *keys[i], hashes[i], i, f.now) == FlowInsert::kInserted;
  }
  ++f.now;
  f.cursor += kBurst;
  return stored;
}

void report_misses(benchmark::State& state, const Fixture& f, uint64_t misses, uint64_t stored) {
  const uint64_t offered = static_cast<uint64_t>(state.iterations()) * kBurst;
  report(state, f, offered);
  state.counters["miss_ratio"] = static_cast<double>(misses) / static_cast<double>(offered);
  state.counters["stored_ratio"] = static_cast<double>(stored) / static_cast<double>(offered);
}

// New flows into a table at its working size: `entries` established flows
// in twice as many slots. Each window of 1024 bursts is erased again,
// untimed, so the table never fills: inserts take free slots (or fail on
// the ~5% of buckets already full of established flows).
void BM_FlowTable_BurstMissInsert(benchmark::State& state) {
  Fixture& f = fixture(static_cast<uint32_t>(state.range(0)), Fill::kRoom);
  constexpr uint32_t kWindow = 1024 * kBurst;
  const uint32_t n = f.pool.size() / kWindow * kWindow;
  uint64_t misses = 0;
  uint64_t stored = 0;
  for (auto _ : state) {
    if (f.cursor % kWindow == 0 && f.cursor != 0) {
      state.PauseTiming();
      for (uint32_t i = f.cursor - kWindow; i < f.cursor; ++i) {
        (void)f.table->erase(f.pool.keys[i], f.pool.hashes[i]);
      }
      if (f.cursor >= n) f.cursor = 0;
      state.ResumeTiming();
    }
    stored += miss_and_insert(f, misses);
  }
  report_misses(state, f, misses, stored);
}

// New flows into a full table (a flood's steady state): each insert
// displaces the stalest probation entry (or, once entries are 2 s old, the
// longest-expired one); established flows stay.
void BM_FlowTable_BurstMissInsertFull(benchmark::State& state) {
  Fixture& f = fixture(static_cast<uint32_t>(state.range(0)), Fill::kFull);
  const uint32_t n = f.pool.size() / kBurst * kBurst;
  uint64_t misses = 0;
  uint64_t stored = 0;
  for (auto _ : state) {
    if (f.cursor >= n) f.cursor = 0;
    stored += miss_and_insert(f, misses);
  }
  report_misses(state, f, misses, stored);
}

BENCHMARK(BM_FlowTable_BurstLookupHit)->ArgName("entries")->Arg(65536)->Arg(1 << 20);
BENCHMARK(BM_FlowTable_SingleLookupHit)->ArgName("entries")->Arg(65536)->Arg(1 << 20);
BENCHMARK(BM_FlowTable_BurstMissInsert)->ArgName("entries")->Arg(65536)->Arg(1 << 20);
BENCHMARK(BM_FlowTable_BurstMissInsertFull)->ArgName("entries")->Arg(65536)->Arg(1 << 20);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
