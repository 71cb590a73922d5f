// SPDX-License-Identifier: BSD-2-Clause
// Benchmarks of the Maglev table build (control plane) at the default size,
// and at the automatic size for the pool (maglev_auto_table_size).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "dataplane/core/maglev.hpp"

namespace sluice {
namespace {

// n backends 10.0.0.1, 10.0.0.2, ...; equal weights, or 1..100 at random
// (fixed seed) when `weighted`.
std::vector<MaglevBackend> make_backends(int64_t n, bool weighted) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint32_t> w(1, 100);
  std::vector<MaglevBackend> v;
  for (int64_t i = 0; i < n; ++i) {
    v.push_back({IpAddress::v4(0x0A000001u + static_cast<uint32_t>(i)), weighted ? w(rng) : 1u});
  }
  return v;
}

void run(benchmark::State& state, bool weighted, uint32_t table_size) {
  const auto backends = make_backends(state.range(0), weighted);
  MaglevBuilder builder;
  for (auto _ : state) {
    auto table = builder.build(backends, table_size);
    if (!table.ok()) {
      state.SkipWithError(table.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(table.value().data());
  }
  // Items are table entries filled.
  state.SetItemsProcessed(state.iterations() * int64_t{table_size});
  state.counters["table_size"] = table_size;
}

void BM_Maglev_Build(benchmark::State& state) { run(state, false, kMaglevDefaultSize); }
void BM_Maglev_BuildWeighted(benchmark::State& state) { run(state, true, kMaglevDefaultSize); }
void BM_Maglev_BuildAuto(benchmark::State& state) {
  run(state, false, maglev_auto_table_size(static_cast<uint64_t>(state.range(0))));
}

BENCHMARK(BM_Maglev_Build)
    ->ArgName("backends")
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Maglev_BuildAuto)
    ->ArgName("backends")
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Maglev_BuildWeighted)
    ->ArgName("backends")
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
