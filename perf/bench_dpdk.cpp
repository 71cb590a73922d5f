// SPDX-License-Identifier: BSD-2-Clause
// Packets per second of one DPDK worker lcore: a generator on the same
// lcore (mbufs from the pool, a 64-byte frame template with the flow's
// source address patched in), Worker::process_burst, rte_eth_tx_burst to
// net_null (which frees the mbufs). BM_Dpdk_Generator is the same loop
// without process_burst: the cost of the harness, which testpmd's io mode on
// net_null also pays (its RX allocates, its TX frees). perf/dpdk_bench.sh
// runs this beside testpmd io and macswap on the same lcore.
//
// Flows: established (every flow seen twice before timing; uniform or Zipf
// 1.0 over 1k or 1M flows), all new (every packet a flow never seen), and
// non-VIP (to the kernel list, sent to net_null here).
//
// Cache: memcached gets over UDP to a VIP with the hot-object cache, one of
// `keys` keys per packet, all cached (BM_Dpdk_CacheHit: each answered in
// the mbuf, a 100-byte value) or none (BM_Dpdk_CacheMiss: counted in the
// sketch and forwarded by key). Each key's frame is built once before
// timing and copied per packet; BM_Dpdk_CacheGenerator is that loop
// without process_burst, the cache benchmarks' harness cost.
#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/core/maglev.hpp"
#include "dataplane/core/memcached.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"

namespace sluice::dpdk {
namespace {

constexpr uint16_t kBurst = 32;
constexpr uint32_t kSeed = 0x5eed1234;
constexpr size_t kFrameLen = 64;
constexpr uint32_t kClientBase = 0x64400000;  // 100.64.0.0, host order
constexpr uint32_t kVip = 0x0A000001;         // 10.0.0.1
constexpr uint32_t kNotVip = 0x0A090909;      // 10.9.9.9
constexpr size_t kSeqLen = size_t{1} << 20;   // flow indices walked in a cycle

rte_mempool* g_pool = nullptr;
uint16_t g_null_port = 0;

enum class Mode { kGenerator, kEstablished, kNewFlows, kNonVip };

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Reports `packets` handled in `cpu` seconds of this thread's CPU time: on
// a shared machine the thread is preempted, so cycles are that time at the
// TSC rate.
void report_packets(benchmark::State& state, uint64_t packets, double cpu) {
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["cycles_per_pkt"] =
      cpu * static_cast<double>(rte_get_tsc_hz()) / static_cast<double>(packets);
}

// Writes Ethernet (router -> LB) and an option-less IPv4 header from
// kClientBase to `dst` (host order) at `f`; `ip_len` is the IPv4 total
// length, bytes. Returns where the L4 header goes.
uint8_t* put_eth_ipv4(uint8_t* f, uint16_t ip_len, uint8_t proto, uint32_t dst) {
  const uint8_t eth[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 0x08, 0x00};
  std::memcpy(f, eth, sizeof eth);
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  sluice_put_be16(ip + 2, ip_len);
  ip[8] = 64;
  ip[9] = proto;
  sluice_put_be32(ip + 12, kClientBase);
  sluice_put_be32(ip + 16, dst);
  sluice_ipv4_csum_fill(ip);
  return ip + 20;
}

// Ethernet + IPv4 (total length 50) + TCP ACK + 10 bytes: 64 bytes.
std::array<uint8_t, kFrameLen> make_template(uint32_t dst) {
  std::array<uint8_t, kFrameLen> f{};
  uint8_t* tcp = put_eth_ipv4(f.data(), 50, SLUICE_IPPROTO_TCP, dst);
  sluice_put_be16(tcp, 40000);
  sluice_put_be16(tcp + 2, 80);
  tcp[12] = 0x50;
  tcp[13] = 0x10;
  return f;
}

constexpr uint32_t kCacheVipId = 2;
constexpr size_t kCacheValueLen = 100;
// "get key:NNNNNN\r\n" after the 8-byte frame header.
constexpr size_t kKeyOff = 14 + 20 + 8 + 8 + 4;
constexpr size_t kMcFrameLen = kKeyOff + 10 + 2;

std::string cache_key(uint32_t k) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "key:%06u", k % 1000000);
  return buf;
}

using GetFrame = std::array<uint8_t, kMcFrameLen>;

// Ethernet + IPv4 + UDP to kVip:11211 + frame header + "get <key>\r\n",
// one frame per key k in [0, keys): built once, so the timed loop copies
// a frame instead of formatting its key.
std::vector<GetFrame> make_get_frames(uint32_t keys) {
  GetFrame t{};
  uint8_t* udp =
      put_eth_ipv4(t.data(), static_cast<uint16_t>(kMcFrameLen - 14), SLUICE_IPPROTO_UDP, kVip);
  sluice_put_be16(udp, 40000);
  sluice_put_be16(udp + 2, 11211);
  sluice_put_be16(udp + 4, static_cast<uint16_t>(kMcFrameLen - 34));
  udp[8 + 5] = 1;  // frame header: sequence 0 of 1
  std::memcpy(udp + 16, "get ", 4);
  std::vector<GetFrame> frames(keys, t);
  for (uint32_t k = 0; k < keys; ++k) {
    const std::string key = cache_key(k);
    std::memcpy(frames[k].data() + kKeyOff, key.data(), key.size());
    std::memcpy(frames[k].data() + kKeyOff + key.size(), "\r\n", 2);
  }
  return frames;
}

// Fills a burst with the get frames of the next keys of `seq`.
void generate_gets(rte_mbuf** m, const std::vector<GetFrame>& frames, const uint32_t* seq,
                   size_t& at) {
  if (rte_pktmbuf_alloc_bulk(g_pool, m, kBurst) != 0) std::abort();
  for (uint16_t i = 0; i < kBurst; ++i) {
    std::memcpy(rte_pktmbuf_mtod(m[i], uint8_t*), frames[seq[at++ & (kSeqLen - 1)]].data(),
                kMcFrameLen);
    m[i]->data_len = kMcFrameLen;
    m[i]->pkt_len = kMcFrameLen;
  }
}

std::unique_ptr<const Snapshot> make_snapshot() {
  SnapshotSpec s;
  std::vector<MaglevBackend> in;
  for (uint32_t i = 0; i < 8; ++i) {
    sluice_backend b{};
    b.addr.v4 = sl_htonl(0x0A010001 + i);
    b.id = i + 1;
    b.family = SLUICE_FAMILY_IPV4;
    s.backends.push_back(b);
    in.push_back({IpAddress::v4(0x0A010001 + i), 1});
  }
  SnapshotVipSpec v;
  v.key.addr.v4 = sl_htonl(kVip);
  v.key.port = sl_htons(80);
  v.key.proto = SLUICE_IPPROTO_TCP;
  v.key.family = SLUICE_FAMILY_IPV4;
  v.meta.vip_id = 1;
  auto table = maglev_build(in, SLUICE_MAGLEV_DEFAULT_SIZE);
  for (uint32_t i : table.value()) v.table.push_back(i + 1);
  s.vips.push_back(v);
  SnapshotVipSpec mc = v;
  mc.key.port = sl_htons(11211);
  mc.key.proto = SLUICE_IPPROTO_UDP;
  mc.meta.vip_id = kCacheVipId;
  mc.meta.flags = SLUICE_VIP_CACHE | SLUICE_VIP_KEY_HASH;
  s.vips.push_back(mc);
  s.encap.src_v4.v4 = sl_htonl(0x0AFF0001);
  s.encap.mtu = 1500;
  s.encap.entropy_bits = 8;
  s.next_hop.dst_mac = {2, 0, 0, 0, 0, 0xfd};
  s.next_hop.src_mac = {2, 0, 0, 0, 0, 1};
  auto snap = Snapshot::create(s);
  return std::move(snap.value());
}

// Flow indices: uniform, or Zipf with exponent 1.0 (rank r drawn with
// probability proportional to 1/r; ranks shuffled over the flows so the hot
// ones are not neighbours in the table).
std::vector<uint32_t> flow_sequence(uint32_t flows, bool zipf) {
  std::mt19937_64 rng(42);
  std::vector<uint32_t> seq(kSeqLen);
  if (!zipf) {
    for (uint32_t& x : seq) x = static_cast<uint32_t>(rng() % flows);
    return seq;
  }
  std::vector<double> cdf(flows);
  double sum = 0;
  for (uint32_t r = 0; r < flows; ++r) cdf[r] = (sum += 1.0 / (r + 1));
  std::vector<uint32_t> perm(flows);
  for (uint32_t i = 0; i < flows; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  std::uniform_real_distribution<double> u(0, sum);
  for (uint32_t& x : seq) {
    const auto r =
        static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    x = perm[std::min(r, flows - 1)];
  }
  return seq;
}

// Fills a burst: mbufs from the pool, the template, the flow's source.
void generate(rte_mbuf** m, const std::array<uint8_t, kFrameLen>& tmpl, const uint32_t* seq,
              size_t& at, uint32_t& next_new, Mode mode) {
  if (rte_pktmbuf_alloc_bulk(g_pool, m, kBurst) != 0) std::abort();
  for (uint16_t i = 0; i < kBurst; ++i) {
    auto* p = rte_pktmbuf_mtod(m[i], uint8_t*);
    std::memcpy(p, tmpl.data(), kFrameLen);
    const uint32_t flow = mode == Mode::kNewFlows ? next_new++ : seq[at++ & (kSeqLen - 1)];
    sluice_put_be32(p + 14 + 12, kClientBase + flow);
    m[i]->data_len = kFrameLen;
    m[i]->pkt_len = kFrameLen;
  }
}

void send_all(rte_mbuf** m, uint16_t n) {
  uint16_t sent = 0;
  while (sent < n) sent += rte_eth_tx_burst(g_null_port, 0, m + sent, n - sent);
}

// A burst through the worker, and its verdicts to net_null (or freed).
void process_and_send(Worker& w, rte_mbuf** m, Verdicts& v) {
  w.process_burst(m, kBurst, v);
  send_all(v.tx, v.n_tx);
  send_all(v.kernel, v.n_kernel);
  if (v.n_dropped != 0) rte_pktmbuf_free_bulk(v.dropped, v.n_dropped);
}

void run(benchmark::State& state, Mode mode, bool zipf) {
  const auto flows = static_cast<uint32_t>(state.range(0));
  auto rcu = SnapshotRcu::create(1, make_snapshot());
  // Four slots per established flow (flow_table.hpp's sizing advice).
  const uint32_t capacity = std::max<uint32_t>(4096, flows * 4);
  auto worker = Worker::create(
      {.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = capacity}}, *rcu.value());
  if (!worker.ok()) {
    state.SkipWithError(worker.error().message.c_str());
    return;
  }
  Worker& w = *worker.value();
  const auto tmpl = make_template(mode == Mode::kNonVip ? kNotVip : kVip);
  const std::vector<uint32_t> seq = flow_sequence(flows, zipf);
  size_t at = 0;
  uint32_t next_new = flows;
  rte_mbuf* m[kBurst];
  Verdicts v;

  if (mode == Mode::kEstablished) {
    // Every flow twice: established before timing.
    for (int pass = 0; pass < 2; ++pass) {
      for (uint32_t f = 0; f < flows; f += kBurst) {
        if (rte_pktmbuf_alloc_bulk(g_pool, m, kBurst) != 0) std::abort();
        for (uint16_t i = 0; i < kBurst; ++i) {
          auto* p = rte_pktmbuf_mtod(m[i], uint8_t*);
          std::memcpy(p, tmpl.data(), kFrameLen);
          sluice_put_be32(p + 26, kClientBase + (f + i) % flows);
          m[i]->data_len = kFrameLen;
          m[i]->pkt_len = kFrameLen;
        }
        w.process_burst(m, kBurst, v);
        rte_pktmbuf_free_bulk(m, kBurst);
      }
    }
  }

  const sluice_global_stats before = w.global_stats();
  uint64_t packets = 0;
  const uint64_t t0 = rte_rdtsc();
  const double cpu0 = thread_cpu_seconds();
  for (auto _ : state) {
    generate(m, tmpl, seq.data(), at, next_new, mode);
    if (mode == Mode::kGenerator) {
      send_all(m, kBurst);
    } else {
      process_and_send(w, m, v);
    }
    packets += kBurst;
  }
  const double cpu = thread_cpu_seconds() - cpu0;
  const double wall = static_cast<double>(rte_rdtsc() - t0) / static_cast<double>(rte_get_tsc_hz());
  const sluice_global_stats after = w.global_stats();
  const auto n = static_cast<double>(packets);
  report_packets(state, packets, cpu);
  // What testpmd's own figure (packets over wall time) compares with.
  state.counters["Mpps_wall"] = n / wall / 1e6;
  if (mode != Mode::kGenerator) {
    state.counters["hit_ratio"] =
        static_cast<double>(after.flow_hits - before.flow_hits) / static_cast<double>(packets);
  }
}

enum class CacheMode { kGenerator, kHit, kMiss };

void run_cache(benchmark::State& state, CacheMode mode) {
  const auto keys = static_cast<uint32_t>(state.range(0));
  const std::vector<GetFrame> frames = make_get_frames(keys);
  const std::vector<uint32_t> seq = flow_sequence(keys, false);
  size_t at = 0;
  rte_mbuf* m[kBurst];
  uint64_t packets = 0;
  if (mode == CacheMode::kGenerator) {
    const double cpu0 = thread_cpu_seconds();
    for (auto _ : state) {
      generate_gets(m, frames, seq.data(), at);
      send_all(m, kBurst);
      packets += kBurst;
    }
    report_packets(state, packets, thread_cpu_seconds() - cpu0);
    return;
  }
  auto rcu = SnapshotRcu::create(1, make_snapshot());
  auto versions = std::make_unique<CacheVersions>();
  auto worker =
      Worker::create({.reader_id = 0,
                      .hash_seed = kSeed,
                      .flows = {.capacity = 4096},
                      .cache = WorkerCacheConfig{.store = {.max_entries = keys,
                                                           .max_bytes = uint64_t{keys} * 128,
                                                           .ttl_ms = 3'600'000},
                                                 .versions = versions.get(),
                                                 .hot_threshold = UINT32_MAX}},
                     *rcu.value());
  if (!worker.ok()) {
    state.SkipWithError(worker.error().message.c_str());
    return;
  }
  Worker& w = *worker.value();
  WorkerCache& c = *w.cache();
  const std::string value(kCacheValueLen, 'v');
  if (mode == CacheMode::kHit) {
    for (uint32_t k = 0; k < keys; ++k) {
      const std::string key = cache_key(k);
      auto lease = c.store().begin_fill(kCacheVipId, key, c.clock(w.now_ms()));
      if (!lease.ok() ||
          c.store().install(lease.value(), key,
                            {0, 0, {reinterpret_cast<const uint8_t*>(value.data()), value.size()}},
                            c.clock(w.now_ms())) != FillResult::kInstalled) {
        state.SkipWithError("cannot fill the cache");
        return;
      }
    }
  }
  Verdicts v;
  const double cpu0 = thread_cpu_seconds();
  const uint64_t hits0 = c.stats(kCacheVipId).hits;
  for (auto _ : state) {
    generate_gets(m, frames, seq.data(), at);
    process_and_send(w, m, v);
    packets += kBurst;
  }
  report_packets(state, packets, thread_cpu_seconds() - cpu0);
  state.counters["hit_ratio"] =
      static_cast<double>(c.stats(kCacheVipId).hits - hits0) / static_cast<double>(packets);
}

void BM_Dpdk_Generator(benchmark::State& s) { run(s, Mode::kGenerator, false); }
void BM_Dpdk_CacheGenerator(benchmark::State& s) { run_cache(s, CacheMode::kGenerator); }
void BM_Dpdk_CacheHit(benchmark::State& s) { run_cache(s, CacheMode::kHit); }
void BM_Dpdk_CacheMiss(benchmark::State& s) { run_cache(s, CacheMode::kMiss); }
void BM_Dpdk_Established(benchmark::State& s) { run(s, Mode::kEstablished, false); }
void BM_Dpdk_EstablishedZipf(benchmark::State& s) { run(s, Mode::kEstablished, true); }
void BM_Dpdk_NewFlows(benchmark::State& s) { run(s, Mode::kNewFlows, false); }
void BM_Dpdk_NonVip(benchmark::State& s) { run(s, Mode::kNonVip, false); }

BENCHMARK(BM_Dpdk_Generator)->ArgName("flows")->Arg(1000);
BENCHMARK(BM_Dpdk_Established)->ArgName("flows")->Arg(1000)->Arg(1000000);
BENCHMARK(BM_Dpdk_EstablishedZipf)->ArgName("flows")->Arg(1000)->Arg(1000000);
BENCHMARK(BM_Dpdk_NewFlows)->ArgName("flows")->Arg(1000000);
BENCHMARK(BM_Dpdk_NonVip)->ArgName("flows")->Arg(1000);
BENCHMARK(BM_Dpdk_CacheGenerator)->ArgName("keys")->Arg(1000)->Arg(10000);
BENCHMARK(BM_Dpdk_CacheHit)->ArgName("keys")->Arg(1000)->Arg(10000);
BENCHMARK(BM_Dpdk_CacheMiss)->ArgName("keys")->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace sluice::dpdk

// EAL first (no PCI, no hugepages, one net_null port, the main lcore given
// by SLUICE_BENCH_LCORE, default 1), then the benchmarks.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const char* lcore = std::getenv("SLUICE_BENCH_LCORE");
  const std::string prefix = "sluice-bench-" + std::to_string(getpid());
  std::vector<std::string> args = {"bench_dpdk",   "--no-pci",  "--no-huge",
                                   "-m",           "512",       "--file-prefix",
                                   prefix,         "-l",        lcore != nullptr ? lcore : "1",
                                   "--vdev",       "net_null0", "--log-level",
                                   "lib.eal:error"};
  std::vector<char*> eal;
  for (std::string& a : args) eal.push_back(a.data());
  const std::filesystem::path run_dir = std::filesystem::path("/var/run/dpdk") / prefix;
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) {
    std::fprintf(stderr, "bench_dpdk: rte_eal_init failed: %s (root needed)\n",
                 rte_strerror(rte_errno));
    std::filesystem::remove_all(run_dir);
    return 1;
  }
  using sluice::dpdk::g_null_port;
  using sluice::dpdk::g_pool;
  g_pool = rte_pktmbuf_pool_create("bench", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  rte_eth_conf conf{};
  if (g_pool == nullptr || rte_eth_dev_get_port_by_name("net_null0", &g_null_port) != 0 ||
      rte_eth_dev_configure(g_null_port, 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(g_null_port, 0, 512, 0, nullptr, g_pool) != 0 ||
      rte_eth_tx_queue_setup(g_null_port, 0, 512, 0, nullptr) != 0 ||
      rte_eth_dev_start(g_null_port) != 0) {
    std::fprintf(stderr, "bench_dpdk: cannot set up the pool or net_null0\n");
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  (void)rte_eth_dev_stop(g_null_port);
  (void)rte_eth_dev_close(g_null_port);
  rte_mempool_free(g_pool);
  rte_eal_cleanup();
  std::filesystem::remove_all(run_dir);
  return 0;
}
