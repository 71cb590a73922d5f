// SPDX-License-Identifier: BSD-2-Clause
// Benchmarks of the machine's floor under the flow table: the cost of one
// random 64-byte line of a region, by region size, read the way
// lookup_burst() reads its lines (bursts of 32 prefetches, then the reads).
//
// On a virtual machine the cost grows with the region (TLB misses and
// nested page walks, then misses of the shared L3), not with the burst: a
// flow table's lookup cannot beat the figure of the region it touches
// (perf/RESULTS.md, "Flow table").
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr uint32_t kBurst = 32;
constexpr uint32_t kLine = 64;
constexpr uint32_t kPageLines = 4096 / kLine;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr uint32_t kOffsets = 1u << 20;  // random lines drawn up front (4 MiB of indices)

// A region of `mib` MiB, 2 MiB aligned, advised for transparent huge pages
// as the flow table is, and touched so every page is in before timing.
struct Region {
  char* base = nullptr;
  uint32_t lines = 0;
  explicit Region(uint32_t mib) {
    const size_t bytes = size_t{mib} << 20;
    base = static_cast<char*>(std::aligned_alloc(kHugePage, bytes));
    if (base == nullptr) std::abort();
#if defined(MADV_HUGEPAGE)
    (void)madvise(base, bytes, MADV_HUGEPAGE);
#endif
    std::memset(base, 1, bytes);
    lines = static_cast<uint32_t>(bytes / kLine);
  }
  ~Region() { std::free(base); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
};

std::vector<uint32_t> random_lines(uint32_t lines, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> out(kOffsets);
  for (auto& x : out) x = static_cast<uint32_t>(rng() % lines);
  return out;
}

void report(benchmark::State& state, uint64_t lines_read) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurst);
  state.counters["time_per_item"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kBurst,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  benchmark::DoNotOptimize(lines_read);
}

// One random line per item: the floor of a lookup that reads one line.
void BM_Memory_RandomLine(benchmark::State& state) {
  const Region r(static_cast<uint32_t>(state.range(0)));
  const std::vector<uint32_t> at = random_lines(r.lines, 1);
  uint32_t cursor = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    if (cursor + kBurst > kOffsets) cursor = 0;
    const uint32_t* a = &at[cursor];
    for (uint32_t i = 0; i < kBurst; ++i) __builtin_prefetch(r.base + size_t{a[i]} * kLine, 0, 3);
    for (uint32_t i = 0; i < kBurst; ++i) {
      uint64_t v;
      std::memcpy(&v, r.base + size_t{a[i]} * kLine, sizeof v);
      sum += v;
    }
    cursor += kBurst;
  }
  report(state, sum);
}

// Two lines per item, the second a random line of the first one's 4 KiB
// page (as a flow's second-choice line is): what a second line adds when
// its translation is already cached.
void BM_Memory_RandomLineAndPageMate(benchmark::State& state) {
  const Region r(static_cast<uint32_t>(state.range(0)));
  const std::vector<uint32_t> at = random_lines(r.lines, 1);
  std::vector<uint32_t> mate = random_lines(kPageLines, 2);
  for (uint32_t i = 0; i < kOffsets; ++i) mate[i] += at[i] / kPageLines * kPageLines;
  uint32_t cursor = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    if (cursor + kBurst > kOffsets) cursor = 0;
    const uint32_t* a = &at[cursor];
    const uint32_t* b = &mate[cursor];
    for (uint32_t i = 0; i < kBurst; ++i) {
      __builtin_prefetch(r.base + size_t{a[i]} * kLine, 0, 3);
      __builtin_prefetch(r.base + size_t{b[i]} * kLine, 0, 3);
    }
    for (uint32_t i = 0; i < kBurst; ++i) {
      uint64_t v, w;
      std::memcpy(&v, r.base + size_t{a[i]} * kLine, sizeof v);
      std::memcpy(&w, r.base + size_t{b[i]} * kLine, sizeof w);
      sum += v + w;
    }
    cursor += kBurst;
  }
  report(state, sum);
}

// The flow table's hit, memory only: a random 448-byte bucket's header
// line (prefetched in a burst of 32, as lookup_burst's stage 1), then,
// once it has arrived, the 44 bytes of a slot it names (stage 2's prefetch,
// dependent on the header's contents) and their reads (stage 3). Slot 0
// lies in one line, slot 1 straddles two: the floor of a hit by slot kind.
void BM_Memory_BucketHeaderThenSlot(benchmark::State& state) {
  constexpr uint32_t kBucket = 448;
  const Region r(static_cast<uint32_t>(state.range(0)));
  const uint32_t slot = static_cast<uint32_t>(state.range(1));
  const uint32_t buckets = r.lines * kLine / kBucket;
  const std::vector<uint32_t> at = random_lines(buckets, 1);
  uint32_t cursor = 0;
  uint64_t sum = 0;
  const char* header[kBurst];
  const char* key[kBurst];
  for (auto _ : state) {
    if (cursor + kBurst > kOffsets) cursor = 0;
    const uint32_t* a = &at[cursor];
    for (uint32_t i = 0; i < kBurst; ++i) {
      header[i] = r.base + size_t{a[i]} * kBucket;
      __builtin_prefetch(header[i], 1, 3);
    }
    for (uint32_t i = 0; i < kBurst; ++i) {
      // Every byte of the region is 1: the slot offset depends on the
      // header's contents, as the matching slot does.
      const auto one = static_cast<uint32_t>(header[i][0]);
      key[i] = header[i] + kLine + one * slot * 48;
      __builtin_prefetch(key[i], 0, 3);
      __builtin_prefetch(key[i] + 43, 0, 3);
    }
    for (uint32_t i = 0; i < kBurst; ++i) {
      uint64_t v, w;
      std::memcpy(&v, key[i], sizeof v);
      std::memcpy(&w, key[i] + 36, sizeof w);
      sum += v + w;
    }
    cursor += kBurst;
  }
  report(state, sum);
}

// Region sizes in MiB: 28 is the 1M-entry flow table's IPv4 lines at 75%
// load, 44 the same lines at 50%, 112 the 8-slot buckets' table (1M flows
// in 2M slots, as perf/bench_flow_table's fixture).
BENCHMARK(BM_Memory_RandomLine)
    ->ArgName("MiB")
    ->Arg(4)
    ->Arg(16)
    ->Arg(28)
    ->Arg(44)
    ->Arg(64)
    ->Arg(112);
BENCHMARK(BM_Memory_RandomLineAndPageMate)->ArgName("MiB")->Arg(28)->Arg(44);
BENCHMARK(BM_Memory_BucketHeaderThenSlot)
    ->ArgNames({"MiB", "slot"})
    ->Args({8, 0})
    ->Args({8, 1})
    ->Args({112, 0})
    ->Args({112, 1});

}  // namespace

BENCHMARK_MAIN();
