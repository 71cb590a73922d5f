// SPDX-License-Identifier: BSD-2-Clause
// Benchmarks of a weight change through the control library: set_weight +
// Balancer::publish (Maglev rebuild, snapshot, fast-path write), over the
// test fake and, as root, over the real XDP loader in a namespace of its own;
// and the cost of counting active flows (Loader::active_flows).
#include <benchmark/benchmark.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/balancer.hpp"
#include "control/xdp_fastpath.hpp"
#include "tests/unit/fake_fastpath.hpp"

namespace sluice {
namespace {

using control::Balancer;

// Set by main: the process is in network and mount namespaces of its own
// (root), where generic XDP on `lo` and a private bpffs touch nothing of
// the machine's.
bool g_own_netns = false;
std::string g_bpffs;

// One VIP "v" of `n` IPv4 backends (weight 100), table size `m` (0: auto).
std::string config_text(int64_t n, int64_t m) {
  std::string t =
      "[xdp]\ninterfaces = [\"lo\"]\nmode = \"generic\"\nencap_source_v4 = \"192.0.2.10\"\n"
      "[[vips]]\nname = \"v\"\naddress = \"198.51.100.1\"\nport = 80\n";
  t += m == 0 ? "table_size = \"auto\"\n" : "table_size = " + std::to_string(m) + "\n";
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t a = 0x0A000001u + static_cast<uint32_t>(i);
    t += "[[vips.backends]]\naddress = \"" + std::to_string(a >> 24) + "." +
         std::to_string((a >> 16) & 0xff) + "." + std::to_string((a >> 8) & 0xff) + "." +
         std::to_string(a & 0xff) + "\"\n";
  }
  return t;
}

// Halves the first backend's weight and restores it, one publish each;
// reports mean entries moved per publish and the table size.
void run(benchmark::State& state, std::unique_ptr<control::Fastpath> fp) {
  ConfigReport cfg = parse_config(config_text(state.range(0), state.range(1)), "bench.toml");
  if (!cfg.ok()) {
    state.SkipWithError(cfg.errors.empty() ? "config" : cfg.errors[0].to_string().c_str());
    return;
  }
  std::vector<std::unique_ptr<control::Fastpath>> fps;
  fps.push_back(std::move(fp));
  auto b = Balancer::create(*cfg.config, std::move(fps));
  if (!b.ok() || !b.value().publish().ok()) {
    state.SkipWithError("create/first publish failed");
    return;
  }
  Balancer& bal = b.value();
  const IpAddress first = IpAddress::v4(0x0A000001u);
  uint64_t moved = 0;
  uint32_t weight = 100;
  for (auto _ : state) {
    weight = weight == 100 ? 50 : 100;
    if (!bal.set_weight("v", first, weight).ok()) {
      state.SkipWithError("set_weight failed");
      break;
    }
    auto r = bal.publish();
    if (!r.ok()) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
    moved += r.value().moved("v");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["moved"] =
      static_cast<double>(moved) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.counters["table_size"] = bal.vips()[0].table_size;
  for (const auto& f : bal.fastpaths()) {
    if (auto* x = dynamic_cast<control::XdpFastpath*>(f.get())) {
      (void)x->loader().detach();
      (void)x->loader().unpin();
    }
  }
}

void BM_Balancer_WeightChangeFake(benchmark::State& state) {
  run(state, std::make_unique<test::FakeFastpath>(std::make_shared<test::FakeHeld>()));
}

void BM_Balancer_WeightChangeXdp(benchmark::State& state) {
  if (!g_own_netns) {
    state.SkipWithError("needs root (a network namespace of its own)");
    return;
  }
  xdp::LoaderOptions o;
  o.ifname = "lo";
  o.mode = xdp::XdpMode::kGeneric;
  o.flows_per_cpu = 1024;
  o.probation_per_cpu = 256;
  o.bpffs_root = g_bpffs;
  auto fp = control::XdpFastpath::open(o);
  if (!fp.ok()) {
    state.SkipWithError(fp.error().message.c_str());
    return;
  }
  run(state, std::move(fp.value()));
}

// Loader::active_flows over a flow map holding range(0) established flows
// (live on every CPU, over 100 backends): items are flow keys read.
void BM_Loader_ActiveFlows(benchmark::State& state) {
  if (!g_own_netns) {
    state.SkipWithError("needs root (a network namespace of its own)");
    return;
  }
  const auto flows = static_cast<uint32_t>(state.range(0));
  xdp::LoaderOptions o;
  o.ifname = "lo";
  o.mode = xdp::XdpMode::kGeneric;
  o.flows_per_cpu = flows;
  o.probation_per_cpu = 256;
  o.bpffs_root = g_bpffs;
  auto l = xdp::Loader::load(o);
  if (!l.ok()) {
    state.SkipWithError(l.error().message.c_str());
    return;
  }
  const int fd = bpf_map__fd(l.value().skeleton()->maps.sluice_flows);
  const auto ncpus = static_cast<size_t>(libbpf_num_possible_cpus());
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const auto now = static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000 +
                                         static_cast<uint64_t>(ts.tv_nsec) / 1000000);
  std::vector<uint8_t> values(ncpus * 16);
  for (uint32_t i = 0; i < flows; ++i) {
    sluice_flow_key k{};
    k.family = SLUICE_FAMILY_IPV4;
    k.proto = SLUICE_IPPROTO_TCP;
    std::memcpy(k.src.bytes, &i, sizeof i);
    for (size_t c = 0; c < ncpus; ++c) {
      sluice_flow_value v{};
      v.backend_id = SLUICE_MAX_BACKENDS + i % 100;
      v.last_seen = now;
      v.state = SLUICE_FLOW_ESTABLISHED;
      std::memcpy(values.data() + c * 16, &v, sizeof v);
    }
    if (bpf_map_update_elem(fd, &k, values.data(), BPF_ANY) != 0) {
      state.SkipWithError("filling sluice_flows failed");
      return;
    }
  }
  uint64_t keys = 0;
  for (auto _ : state) {
    auto a = l.value().active_flows();
    if (!a.ok()) {
      state.SkipWithError(a.error().message.c_str());
      break;
    }
    keys += a.value().keys_read;
  }
  state.SetItemsProcessed(static_cast<int64_t>(keys));
  state.counters["cpus"] = static_cast<double>(ncpus);
  (void)l.value().unpin();
}
BENCHMARK(BM_Loader_ActiveFlows)->Arg(1024)->Arg(65536)->Unit(benchmark::kMillisecond);

// N backends x M (0: auto size).
void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {3, 100, 1000})
    for (int64_t m : {65537, 0}) b->Args({n, m});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Balancer_WeightChangeFake)->Apply(sizes);
BENCHMARK(BM_Balancer_WeightChangeXdp)->Apply(sizes);

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  char dir[] = "/tmp/sluice-bench-bpffs-XXXXXX";
  sluice::g_own_netns = geteuid() == 0 && unshare(CLONE_NEWNET | CLONE_NEWNS) == 0 &&
                        mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                        mkdtemp(dir) != nullptr;
  if (sluice::g_own_netns) sluice::g_bpffs = dir;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (sluice::g_own_netns) {
    umount2(dir, MNT_DETACH);
    rmdir(dir);
  }
  return 0;
}
