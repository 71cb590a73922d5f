// SPDX-License-Identifier: BSD-2-Clause
// xdp_bench: per-packet cost of sluice's XDP load balancer, and of Katran's
// balancer beside it when given its object, from BPF_PROG_TEST_RUN's own
// `duration`, net of the same harness around an empty program, scenario by
// scenario, as the median of several runs.
//
// Two methods (../shared/MACHINE.md "XDP and BPF": repeat=N re-runs the
// already rewritten buffer):
//  - harness (primary): one BPF_PROG_TEST_RUN with repeat=N of
//    perf/xdp_bench_harness.bpf.c, which puts the original frame back (and
//    varies its flow) before tail-calling the program under test, minus the
//    same run tail-calling bench_empty. The program runs back to back as it
//    does on a NIC's burst, and the kernel's timer brackets N packets.
//  - loop: N calls with repeat=1 of the program itself, durations summed,
//    minus the same loop over bench_empty. A syscall, a fresh buffer and two
//    clock reads separate every packet, so caches and branch predictors are
//    colder and the harness cost is larger and noisier.
//
// Usage (root): xdp_bench [--katran-obj=PATH] [--sluice-obj=PATH ...] [--runs=9]
//   [--method=harness|loop|both] [--scenario=NAME[,NAME...]] [--cpu=N]
//   [--max-seconds=900] [--verbose]
// --katran-obj: Katran's balancer object, measured beside sluice.
// --sluice-obj: another build of sluice_lb.bpf.o (a candidate change),
//   measured beside the built-in one in the same runs.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/abi/cache.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "dataplane/core/memcached.hpp"
#include "perf/xdp_bench_harness.h"
#include "sluice_lb.skel.h"
#include "tests/common/packet_builder.hpp"
#include "xdp/skeleton.hpp"
#include "xdp/sluice_lb.h"
#include "xdp_bench_harness.skel.h"

namespace sluice::perf {
namespace {

using test::Bytes;
using test::PacketBuilder;

// ---------------------------------------------------------------------------
// The world both balancers are provisioned with.

constexpr uint32_t kSeed = 0x5eed1234;
// Maglev M of every VIP: sluice's default, the same as Katran's ring size.
constexpr uint32_t kTableSize = SLUICE_MAGLEV_DEFAULT_SIZE;
// Flow-table capacity per CPU, entries: room for the 1M-flow scenario (a
// per-CPU LRU gives each CPU max_entries / possible CPUs).
constexpr uint32_t kFlowsPerCpu = (1u << 20) + (1u << 16);
// sluice's probation table per CPU, entries.
constexpr uint32_t kNewFlowsPerCpu = 1u << 18;
// The pre-established flows of the 1M-flow scenario: clients kCycleBase + i.
constexpr uint32_t kCycleFlows = 1u << 20;
constexpr uint32_t kCycleBase = 0x64400000;   // 100.64.0.0/10
constexpr uint32_t kUniqueBase = 0x0b000000;  // 11.0.0.0/8: a new client every packet
constexpr uint32_t kFillBase = 0xac100000;    // 172.16.0.0/12: flows that fill a table
constexpr uint16_t kClientPort = 40000;
constexpr size_t kIpv4SrcOffset = 14 + 12;  // the client address in an untagged IPv4 frame

constexpr const char* kVip4 = "192.0.2.10";
constexpr const char* kVip6 = "2001:db8:f::10";
constexpr const char* kNonVip4 = "192.0.2.99";
constexpr const char* kClient4 = "198.51.100.7";
constexpr const char* kClient6 = "2001:db8:c::7";
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpSyn = 0x02;

const test::Mac kGatewayMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfd};
const test::Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};  // PacketBuilder's default dst

// Backends: four IPv4 and four IPv6. sluice names them by id (slots 1-4 and
// 11-14), Katran by real index (1-4 and 5-8).
const char* const kBackends4[] = {"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"};
const char* const kBackends6[] = {"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3",
                                  "2001:db8:1::4"};

struct Vip {
  const char* addr;
  uint16_t port;
  uint8_t proto;
  uint32_t id;                // sluice vip_id; Katran's vip_num is id - 1
  uint32_t sluice_flags = 0;  // SLUICE_VIP_* for sluice (Katran has no equivalent)
};
const Vip kVips[] = {
    {kVip4, 80, SLUICE_IPPROTO_TCP, 1},
    {kVip4, 53, SLUICE_IPPROTO_UDP, 2},
    {kVip6, 80, SLUICE_IPPROTO_TCP, 3},
    {kVip4, 11211, SLUICE_IPPROTO_UDP, 4, SLUICE_VIP_CACHE},
};
// The key the cache scenario gets, cached with a kCacheValueBytes value.
constexpr const char* kCacheKey = "user:1234567";
constexpr size_t kCacheValueBytes = 100;

// ---------------------------------------------------------------------------
// Small utilities.

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("xdp_bench: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::exit(1);
}

// Aborts the benchmark with what failed unless rc is 0 (libbpf: -errno, or
// -1 with errno set).
void must(int rc, const char* what) {
  if (rc == 0) return;
  const int err = rc == -1 ? errno : -rc;
  die("%s: %s", what, std::strerror(err));
}

IpAddress addr(const char* text) { return test::address(text); }

uint32_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // what bpf_ktime_get_coarse_ns reads
  return static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000 +
                               static_cast<uint64_t>(ts.tv_nsec) / 1000000);
}

double seconds_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 != 0 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int possible_cpus() {
  static const int n = libbpf_num_possible_cpus();
  return n;
}

// A first line of a file (/proc/loadavg), or "".
std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// lscpu's "Model name": the first "model name" line of /proc/cpuinfo.
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

// Writes `count` keys and values (per-CPU maps: values of every possible CPU,
// each rounded up to 8 bytes) in batches.
void update_batch(int fd, const std::vector<uint8_t>& keys, size_t key_size,
                  const std::vector<uint8_t>& values, size_t value_stride, size_t count,
                  const char* what) {
  constexpr size_t kChunk = 1u << 16;
  for (size_t at = 0; at < count; at += kChunk) {
    auto n = static_cast<uint32_t>(std::min(kChunk, count - at));
    must(bpf_map_update_batch(fd, keys.data() + at * key_size, values.data() + at * value_stride,
                              &n, nullptr),
         what);
  }
}

// The u64 words of key's per-CPU value (value_size bytes), each summed over
// all possible CPUs.
std::vector<uint64_t> percpu_sum(int fd, uint32_t key, size_t value_size) {
  const size_t stride = (value_size + 7) / 8;
  std::vector<uint64_t> all(stride * static_cast<size_t>(possible_cpus()));
  must(bpf_map_lookup_elem(fd, &key, all.data()), "reading per-CPU counters");
  std::vector<uint64_t> sum(value_size / 8, 0);
  for (int c = 0; c < possible_cpus(); ++c)
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += all[static_cast<size_t>(c) * stride + i];
  return sum;
}

// One BPF_PROG_TEST_RUN.
struct TestRun {
  int err = 0;          // 0 or errno
  uint32_t retval = 0;  // the XDP action of the last repetition
  uint32_t ns = 0;      // the kernel's duration: average per repetition, ns (truncated)
};

TestRun test_run(int prog_fd, const uint8_t* frame, size_t len, uint32_t repeat) {
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame;
  opts.data_size_in = static_cast<uint32_t>(len);
  opts.repeat = static_cast<int>(repeat);
  TestRun r;
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    r.err = errno;
    return r;
  }
  r.retval = opts.retval;
  r.ns = opts.duration;
  return r;
}

// ---------------------------------------------------------------------------
// Scenarios (ISSUE 4, "Performance").

// What a scenario's tables hold before the first packet.
enum class Fill {
  kNone,   // nothing: flows are created by the warm-up packets
  kCycle,  // kCycleFlows established flows
  kFull,   // kCycleFlows established flows, and every table new flows enter is full
};

// The path every measured packet must take (checked from the counters).
enum class Path {
  kHit,               // a flow-table hit, XDP_TX
  kMiss,              // a flow-table miss, a new flow stored, XDP_TX
  kPass,              // XDP_PASS
  kMissMaybeUnsaved,  // a miss, XDP_TX; the new flow may go unstored (Katran's flood limit)
  kCacheHit,          // answered from the hot-object cache: XDP_TX, no flow-table lookup
  kAsSluice           // (katran_path only) the same as sluice's
};

struct Scenario {
  const char* name;
  const char* what;
  Bytes frame;
  uint32_t vary = BENCH_VARY_NONE;  // BENCH_VARY_*: the client address varies
  uint32_t vary_base = 0;           // first client address, host order
  uint32_t vary_mask = 0;
  Fill fill = Fill::kNone;
  Path path = Path::kHit;
  Path katran_path = Path::kAsSluice;
  uint32_t xdp_action = XDP_TX;
  uint32_t packets = 1u << 20;    // per harness run
  uint32_t loop_packets = 20000;  // per loop run
  uint32_t warmup = 10000;        // harness packets before the measured runs
  double katran_xeon = 0;         // the Katran figure on a Xeon, ns/packet
  double target = 0;              // the target for sluice, ns/packet (0: none)
  // The program grows the frame's tail (a cache reply): the harness cuts
  // the tail back before each run instead of moving the front back.
  bool tail_grows = false;
};

Bytes tcp4_frame(const char* client, const char* vip, uint8_t flags) {
  return PacketBuilder()
      .ipv4({.src = client, .dst = vip})
      .tcp({.sport = kClientPort, .dport = 80, .flags = flags})
      .build();
}

std::vector<Scenario> make_scenarios(uint32_t runs) {
  // New flows must not fill sluice's probation table before the run ends:
  // warm-up and every measured run of every program insert new flows.
  constexpr uint32_t kNewWarmup = 5000;
  const uint32_t room = kNewFlowsPerCpu * 9 / 10 - kNewWarmup;
  const uint32_t new_packets = std::min<uint32_t>(20000, room / runs);
  const uint32_t new_loop = std::min<uint32_t>(20000, room / (runs + 1));

  std::vector<Scenario> s;
  s.push_back({.name = "tcp4_established",
               .what = "IPv4 TCP ACK of one established flow",
               .frame = tcp4_frame(kClient4, kVip4, kTcpAck),
               .katran_xeon = 58,
               .target = 45});
  s.push_back({.name = "tcp6_established",
               .what = "IPv6 TCP ACK of one established flow",
               .frame = PacketBuilder()
                            .ipv6({.src = kClient6, .dst = kVip6})
                            .tcp({.sport = kClientPort, .dport = 80, .flags = kTcpAck})
                            .build(),
               .katran_xeon = 55,
               .target = 45});
  s.push_back({.name = "udp4_established",
               .what = "IPv4 UDP (32-byte payload) of one established flow",
               .frame = PacketBuilder()
                            .ipv4({.src = kClient4, .dst = kVip4})
                            .udp({.sport = kClientPort, .dport = 53})
                            .payload(Bytes(32, 0x5a))
                            .build(),
               .katran_xeon = 80,
               .target = 50});
  s.push_back({.name = "tcp4_syn",
               .what = "IPv4 TCP SYN, a new client every packet (sluice: into probation)",
               .frame = tcp4_frame(kClient4, kVip4, kTcpSyn),
               .vary = BENCH_VARY_FIELD,
               .vary_base = kUniqueBase,
               .vary_mask = 0xffffffff,
               .path = Path::kMiss,
               .packets = new_packets,
               .loop_packets = new_loop,
               .warmup = kNewWarmup,
               .katran_xeon = 142,
               .target = 100});
  s.push_back({.name = "non_vip_pass",
               .what = "IPv4 TCP to an address that is no VIP: XDP_PASS",
               .frame = tcp4_frame(kClient4, kNonVip4, kTcpAck),
               .path = Path::kPass,
               .xdp_action = XDP_PASS,
               .katran_xeon = 19,
               .target = 15});
  s.push_back({.name = "tcp4_new_flow",
               .what = "IPv4 TCP ACK, a new client every packet (flow-table miss + insert)",
               .frame = tcp4_frame(kClient4, kVip4, kTcpAck),
               .vary = BENCH_VARY_FIELD,
               .vary_base = kUniqueBase,
               .vary_mask = 0xffffffff,
               .path = Path::kMiss,
               .packets = new_packets,
               .loop_packets = new_loop,
               .warmup = kNewWarmup,
               .katran_xeon = 425,
               .target = 250});
  s.push_back({.name = "tcp4_1m_flows",
               .what = "IPv4 TCP ACK cycling through 1M pre-established flows",
               .frame = tcp4_frame(kClient4, kVip4, kTcpAck),
               .vary = BENCH_VARY_FIELD,
               .vary_base = kCycleBase,
               .vary_mask = kCycleFlows - 1,
               .fill = Fill::kCycle,
               .packets = kCycleFlows,
               .katran_xeon = 233,
               .target = 170});
  // Katran stops inserting above 125,000 new flows per second per CPU
  // (MAX_CONN_RATE); its rate counter is reset before every run and a run
  // stays below that, so every packet is an insert for Katran too.
  s.push_back({.name = "tcp4_new_flow_full",
               .what = "IPv4 TCP ACK, a new client every packet into full tables (evicts)",
               .frame = tcp4_frame(kClient4, kVip4, kTcpAck),
               .vary = BENCH_VARY_FIELD,
               .vary_base = kUniqueBase,
               .vary_mask = 0xffffffff,
               .fill = Fill::kFull,
               .path = Path::kMiss,
               .packets = 100000,
               .loop_packets = 20000,
               .katran_xeon = 947,
               .target = 400});
  s.push_back({.name = "tcp4_syn_same",
               .what = "extra: the same IPv4 TCP SYN every packet (Katran: no flow lookup, "
                       "re-insert; sluice: the established entry re-placed by Maglev in place; "
                       "older builds hit it: a path MISMATCH for them)",
               .frame = tcp4_frame(kClient4, kVip4, kTcpSyn),
               .path = Path::kMiss,
               .packets = 100000});
  s.push_back({.name = "tcp4_syn_same_flood",
               .what = "extra: as tcp4_syn_same, 1M per run (loop: 200k): above 125,000 new "
                       "flows/s Katran stops storing them (its flood limit)",
               .frame = tcp4_frame(kClient4, kVip4, kTcpSyn),
               .path = Path::kMiss,
               .katran_path = Path::kMissMaybeUnsaved,
               .loop_packets = 200000});
  Bytes get(SLUICE_MC_UDP_HDR_LEN, 0);
  get[5] = 1;  // one datagram
  const std::string line = std::string("get ") + kCacheKey + "\r\n";
  get.insert(get.end(), line.begin(), line.end());
  s.push_back({.name = "udp4_cache_hit",
               .what = "IPv4 UDP memcached get answered from the hot-object cache (100-byte "
                       "value; compare with udp4_established, target 1.5x)",
               .frame = PacketBuilder()
                            .ipv4({.src = kClient4, .dst = kVip4})
                            .udp({.sport = kClientPort, .dport = 11211})
                            .payload(get)
                            .build(),
               .path = Path::kCacheHit,
               .katran_path = Path::kHit,
               .tail_grows = true});
  return s;
}

// ---------------------------------------------------------------------------
// Programs under test.

// What a program's own counters say it did, cumulative.
struct PathCounts {
  uint64_t hits = 0;       // flow-table hits
  uint64_t misses = 0;     // flow-table misses (a backend chosen by consistent hashing)
  uint64_t pass = 0;       // XDP_PASS
  uint64_t tx = 0;         // XDP_TX
  uint64_t not_saved = 0;  // new flows not stored (sluice: insert failed; Katran: flood bypass)
};

class Target {
 public:
  virtual ~Target() = default;
  [[nodiscard]] virtual const char* name() const = 0;
  [[nodiscard]] virtual int prog_fd() const = 0;
  // Fills the (fresh) flow tables as the scenario starts.
  virtual void fill(Fill fill) = 0;
  virtual void before_run() {}
  virtual void after_run() {}
  [[nodiscard]] virtual PathCounts counts() = 0;
};

// Sets a `const volatile __u32` load-time constant of an opened object.
void set_rodata_u32(bpf_object* obj, const char* var, uint32_t value) {
  bpf_map* rodata = nullptr;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    const std::string_view n = bpf_map__name(m);
    if (n.size() >= 7 && n.substr(n.size() - 7) == ".rodata") rodata = m;
  }
  const btf* b = bpf_object__btf(obj);
  const int sec_id = b != nullptr ? btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC) : -1;
  size_t size = 0;
  const void* initial = rodata != nullptr ? bpf_map__initial_value(rodata, &size) : nullptr;
  if (sec_id < 0 || initial == nullptr) die("object has no .rodata for %s", var);
  std::vector<uint8_t> bytes(static_cast<const uint8_t*>(initial),
                             static_cast<const uint8_t*>(initial) + size);
  const btf_type* sec = btf__type_by_id(b, static_cast<uint32_t>(sec_id));
  const btf_var_secinfo* vars = btf_var_secinfos(sec);
  for (uint16_t i = 0; i < btf_vlen(sec); ++i) {
    const btf_type* v = btf__type_by_id(b, vars[i].type);
    if (std::string_view(btf__name_by_offset(b, v->name_off)) != var) continue;
    if (vars[i].size != sizeof value || vars[i].offset + sizeof value > size)
      die(".rodata %s is not a u32", var);
    std::memcpy(&bytes[vars[i].offset], &value, sizeof value);
    must(bpf_map__set_initial_value(rodata, bytes.data(), bytes.size()), "setting .rodata");
    return;
  }
  die("object has no .rodata %s", var);
}

// sluice_lb (the one built with this benchmark, or another build of it given
// with --sluice-obj=), provisioned through libbpf as tests/bpf/lb_fixture
// does: VIPs, backends, Maglev tables, encapsulation, next hop.
class SluiceTarget final : public Target {
 public:
  // Takes ownership of `obj` (opened, not loaded).
  SluiceTarget(std::string name, bpf_object* obj) : name_(std::move(name)), obj_(obj) {
    const auto ncpus = static_cast<uint32_t>(possible_cpus());
    set_rodata_u32(obj_, "sluice_hash_seed", kSeed);
    must(bpf_map__set_max_entries(map("sluice_flows"), kFlowsPerCpu * ncpus),
         "sizing sluice_flows");
    // Probation: one array holding each CPU's run of slots in current
    // builds, a per-CPU array of slots before branch xdp5, a per-CPU LRU
    // sized over all CPUs in older ones.
    const bpf_map_type probation = bpf_map__type(map("sluice_newflows"));
    if (probation == BPF_MAP_TYPE_PERCPU_ARRAY) {
      set_rodata_u32(obj_, "sluice_probation_slots", kNewFlowsPerCpu);
      must(bpf_map__set_max_entries(map("sluice_newflows"), kNewFlowsPerCpu),
           "sizing sluice_newflows");
    } else if (probation == BPF_MAP_TYPE_ARRAY) {
      set_rodata_u32(obj_, "sluice_probation_slots", kNewFlowsPerCpu);
      must(bpf_map__set_max_entries(map("sluice_newflows"), kNewFlowsPerCpu * ncpus),
           "sizing sluice_newflows");
    } else {
      must(bpf_map__set_max_entries(map("sluice_newflows"), kNewFlowsPerCpu * ncpus),
           "sizing sluice_newflows");
    }
    must(bpf_object__load(obj_), "loading sluice_lb (verifier log above)");
    prog_ = bpf_object__find_program_by_name(obj_, "sluice_lb");
    if (prog_ == nullptr) die("%s: no program sluice_lb", name_.c_str());
    provision();
  }
  ~SluiceTarget() override { bpf_object__close(obj_); }
  SluiceTarget(const SluiceTarget&) = delete;
  SluiceTarget& operator=(const SluiceTarget&) = delete;

  // The sluice_lb object embedded in its skeleton (built from xdp/).
  static std::unique_ptr<Target> built_in() {
    size_t size = 0;
    const void* elf = sluice_lb_bpf::elf_bytes(&size);
    bpf_object_open_opts opts{};
    opts.sz = sizeof(opts);
    opts.object_name = "sluice_lb_bpf";
    bpf_object* obj = bpf_object__open_mem(elf, size, &opts);
    if (obj == nullptr) die("opening the built-in sluice_lb: %s", std::strerror(errno));
    return std::make_unique<SluiceTarget>("sluice", obj);
  }

  // Another build of sluice_lb.bpf.o, e.g. a candidate optimisation.
  static std::unique_ptr<Target> from_file(const std::string& path) {
    bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
    if (obj == nullptr) die("opening %s: %s", path.c_str(), std::strerror(errno));
    const size_t slash = path.rfind('/');
    std::string stem = path.substr(slash == std::string::npos ? 0 : slash + 1);
    stem = stem.substr(0, stem.find('.'));
    return std::make_unique<SluiceTarget>("sluice:" + stem, obj);
  }

  [[nodiscard]] const char* name() const override { return name_.c_str(); }
  [[nodiscard]] int prog_fd() const override { return bpf_program__fd(prog_); }

  void fill(Fill fill) override {
    if (fill != Fill::kNone) fill_established();
    if (fill != Fill::kFull) return;
    const bpf_map_type probation = bpf_map__type(map("sluice_newflows"));
    if (probation == BPF_MAP_TYPE_PERCPU_ARRAY)
      fill_probation_slots();
    else if (probation == BPF_MAP_TYPE_ARRAY)
      fill_probation_run();
    else if (probation == BPF_MAP_TYPE_LRU_HASH || probation == BPF_MAP_TYPE_HASH)
      fill_probation();
  }

  [[nodiscard]] PathCounts counts() override {
    const auto g = percpu_sum(fd("sluice_stats"), 0, sizeof(sluice_global_stats));
    sluice_global_stats st{};
    std::memcpy(&st, g.data(), sizeof st);
    return {.hits = st.flow_hits,
            .misses = st.flow_misses,
            .pass = st.pass_packets,
            .tx = st.tx_packets,
            .not_saved = st.flow_insert_failed};
  }

 private:
  bpf_map* map(const char* name) const {
    bpf_map* m = bpf_object__find_map_by_name(obj_, name);
    if (m == nullptr) die("%s: no map %s", name_.c_str(), name);
    return m;
  }
  [[nodiscard]] int fd(const char* name) const { return bpf_map__fd(map(name)); }

  void provision() {
    const uint32_t zero = 0;
    sluice_encap_config cfg{};
    cfg.src_v4 = addr("10.255.0.0").ip;
    cfg.src_v6 = addr("2001:db8:ffff::").ip;
    cfg.mtu = 1500;
    cfg.entropy_bits = 8;
    must(bpf_map_update_elem(fd("sluice_encap"), &zero, &cfg, BPF_ANY), "sluice: encap config");
    sluice_next_hop nh{};
    std::memcpy(nh.dst_mac, kGatewayMac.data(), 6);
    std::memcpy(nh.src_mac, kLbMac.data(), 6);
    must(bpf_map_update_elem(fd("sluice_next_hop"), &zero, &nh, BPF_ANY), "sluice: next hop");

    std::vector<uint32_t> ids4, ids6;
    for (uint32_t i = 0; i < 4; ++i) {
      ids4.push_back(1 + i);
      ids6.push_back(11 + i);
      add_backend(1 + i, kBackends4[i]);
      add_backend(11 + i, kBackends6[i]);
    }
    for (const Vip& v : kVips) add_vip(v, std::string_view(v.addr) == kVip6 ? ids6 : ids4);
    cache_key();
  }

  // The cache scenario's entry, in builds that have the cache.
  void cache_key() {
    if (bpf_object__find_map_by_name(obj_, "sluice_cache_entries") == nullptr) return;
    const Bytes value(kCacheValueBytes, 'v');
    sluice_cache_entry e{};
    if (mc::fill_entry(e, 4, kCacheKey, {0, 1, value}, 0, 0, ~uint64_t{0}) != 0)
      die("sluice: cache entry");
    const uint32_t slot = 0;
    must(bpf_map_update_elem(fd("sluice_cache_entries"), &slot, &e, BPF_ANY),
         "sluice: cache entry");
    const uint32_t vslot = sluice_cache_version_slot(4, e.key_hash);
    const sluice_cache_slot named{0, 0, slot + 1, 0};
    must(bpf_map_update_elem(fd("sluice_cache_slots"), &vslot, &named, BPF_ANY),
         "sluice: cache index");
  }

  void add_backend(uint32_t id, const char* text) {
    const IpAddress a = addr(text);
    sluice_backend b{};
    b.addr = a.ip;
    b.id = id;
    b.family = a.family;
    b.flags = SLUICE_BACKEND_VALID;
    const uint32_t slot = id & (SLUICE_MAX_BACKENDS - 1);
    must(bpf_map_update_elem(fd("sluice_backends"), &slot, &b, BPF_ANY), "sluice: backend");
    // Builds with a next hop per backend take it from there, as the
    // daemon's resolved next hops are (the static one is their fallback).
    if (bpf_object__find_map_by_name(obj_, "sluice_backend_hops") == nullptr) return;
    sluice_backend_hop h{};
    std::memcpy(h.hop.dst_mac, kGatewayMac.data(), 6);
    std::memcpy(h.hop.src_mac, kLbMac.data(), 6);
    h.backend_id = id;
    must(bpf_map_update_elem(fd("sluice_backend_hops"), &slot, &h, BPF_ANY),
         "sluice: backend next hop");
  }

  // The Maglev table spreads the backends round robin: what it holds does
  // not change the cost of reading one slot.
  void add_vip(const Vip& v, const std::vector<uint32_t>& backends) {
    bpf_map_create_opts opts{};
    opts.sz = sizeof(opts);
    opts.map_flags = BPF_F_INNER_MAP;
    const int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_mgl_tbl", 4, 4, kTableSize, &opts);
    if (inner < 0) die("sluice: Maglev table: %s", std::strerror(errno));
    std::vector<uint32_t> keys(kTableSize), ids(kTableSize);
    for (uint32_t i = 0; i < kTableSize; ++i) {
      keys[i] = i;
      ids[i] = backends[i % backends.size()];
    }
    uint32_t count = kTableSize;
    must(bpf_map_update_batch(inner, keys.data(), ids.data(), &count, nullptr),
         "sluice: Maglev table fill");
    must(bpf_map_update_elem(fd("sluice_maglev"), &v.id, &inner, BPF_ANY),
         "sluice: Maglev table swap");
    close(inner);  // the outer map holds it

    const IpAddress a = addr(v.addr);
    sluice_vip_key k{};
    k.addr = a.ip;
    k.port = sl_htons(v.port);
    k.proto = v.proto;
    k.family = a.family;
    sluice_vip_meta m{};
    m.vip_id = v.id;
    m.flags = v.sluice_flags;
    m.table_size = kTableSize;
    must(bpf_map_update_elem(fd("sluice_vips"), &k, &m, BPF_ANY), "sluice: VIP");
    // The direct-mapped VIP slot, in builds that have them; the VIPs here
    // have a slot each (a shared one would defer to sluice_vips).
    if (bpf_map* slots = bpf_object__find_map_by_name(obj_, "sluice_vip_slots")) {
      const uint32_t index = sluice_vip_slot_index(&k.addr, k.port, k.proto);
      sluice_vip_slot slot{};
      must(bpf_map_lookup_elem(bpf_map__fd(slots), &index, &slot), "sluice: VIP slot");
      if (slot.family != 0) die("sluice: two VIPs share VIP slot %u", index);
      slot.addr = k.addr;
      slot.port = k.port;
      slot.proto = k.proto;
      slot.family = k.family;
      slot.meta = m;
      must(bpf_map_update_elem(bpf_map__fd(slots), &index, &slot, BPF_ANY), "sluice: VIP slot");
    }
  }

  static sluice_flow_key client_key(uint32_t client) {
    sluice_flow_key k{};
    k.src.v4 = sl_htonl(client);
    k.dst = addr(kVip4).ip;
    k.sport = sl_htons(kClientPort);
    k.dport = sl_htons(80);
    k.proto = SLUICE_IPPROTO_TCP;
    k.family = SLUICE_FAMILY_IPV4;
    return k;
  }

  // kCycleFlows established flows for this CPU (in a per-CPU table of an
  // older build the others' values are zero: not their flow). Runs on the
  // pinned CPU, so the entries sit in its LRU.
  void fill_established() {
    const bool percpu = bpf_map__type(map("sluice_flows")) == BPF_MAP_TYPE_LRU_PERCPU_HASH;
    const auto ncpus = percpu ? static_cast<size_t>(possible_cpus()) : size_t{1};
    const size_t stride = percpu ? 16 * ncpus : sizeof(sluice_flow_value);  // per CPU: 8-aligned
    const auto cpu = percpu ? static_cast<size_t>(sched_getcpu()) : size_t{0};
    std::vector<uint8_t> keys(sizeof(sluice_flow_key) * kCycleFlows);
    std::vector<uint8_t> values(stride * kCycleFlows, 0);
    const uint32_t now = now_ms();
    for (uint32_t i = 0; i < kCycleFlows; ++i) {
      const sluice_flow_key k = client_key(kCycleBase + i);
      std::memcpy(&keys[i * sizeof k], &k, sizeof k);
      sluice_flow_value v{};
      v.backend_id = 1 + i % 4;
      v.last_seen = now;
      v.state = SLUICE_FLOW_ESTABLISHED;
      std::memcpy(&values[i * stride + 16 * cpu], &v, sizeof v);
    }
    update_batch(fd("sluice_flows"), keys, sizeof(sluice_flow_key), values, stride, kCycleFlows,
                 "sluice: pre-established flows");
  }

  // This CPU's whole share of the probation table.
  void fill_probation() {
    std::vector<uint8_t> keys(sizeof(sluice_flow_key) * kNewFlowsPerCpu);
    std::vector<uint8_t> values(sizeof(sluice_flow_value) * kNewFlowsPerCpu);
    const uint32_t now = now_ms();
    for (uint32_t i = 0; i < kNewFlowsPerCpu; ++i) {
      const sluice_flow_key k = client_key(kFillBase + i);
      std::memcpy(&keys[i * sizeof k], &k, sizeof k);
      sluice_flow_value v{};
      v.backend_id = 1 + i % 4;
      v.last_seen = now;
      v.state = SLUICE_FLOW_PROBATION;
      std::memcpy(&values[i * sizeof v], &v, sizeof v);
    }
    update_batch(fd("sluice_newflows"), keys, sizeof(sluice_flow_key), values,
                 sizeof(sluice_flow_value), kNewFlowsPerCpu, "sluice: probation fill");
  }

  // Every probation slot of this CPU holding another flow, so that each
  // new flow overwrites one (the direct-mapped table's "full").
  void fill_probation_slots() {
    const auto ncpus = static_cast<size_t>(possible_cpus());
    const size_t stride = (sizeof(sluice_probation_slot) + 7) / 8 * 8 * ncpus;
    const auto cpu = static_cast<size_t>(sched_getcpu());
    std::vector<uint8_t> keys(sizeof(uint32_t) * kNewFlowsPerCpu);
    std::vector<uint8_t> values(stride * kNewFlowsPerCpu, 0);
    const uint32_t now = now_ms();
    for (uint32_t i = 0; i < kNewFlowsPerCpu; ++i) {
      std::memcpy(&keys[i * sizeof i], &i, sizeof i);
      sluice_probation_slot slot{};
      slot.key = client_key(kFillBase + i);
      slot.value.backend_id = 1 + i % 4;
      slot.value.last_seen = now;
      slot.value.state = SLUICE_FLOW_PROBATION;
      std::memcpy(&values[i * stride + stride / ncpus * cpu], &slot, sizeof slot);
    }
    update_batch(fd("sluice_newflows"), keys, sizeof(uint32_t), values, stride, kNewFlowsPerCpu,
                 "sluice: probation slots fill");
  }

  // The same where one array holds every CPU's run of slots: this CPU's
  // run, each slot holding another flow.
  void fill_probation_run() {
    const auto first = static_cast<uint32_t>(sched_getcpu()) * kNewFlowsPerCpu;
    std::vector<uint8_t> keys(sizeof(uint32_t) * kNewFlowsPerCpu);
    std::vector<uint8_t> values(sizeof(sluice_probation_slot) * kNewFlowsPerCpu, 0);
    const uint32_t now = now_ms();
    for (uint32_t i = 0; i < kNewFlowsPerCpu; ++i) {
      const uint32_t index = first + i;
      std::memcpy(&keys[i * sizeof index], &index, sizeof index);
      sluice_probation_slot slot{};
      slot.key = client_key(kFillBase + i);
      slot.value.backend_id = 1 + i % 4;
      slot.value.last_seen = now;
      slot.value.state = SLUICE_FLOW_PROBATION;
      std::memcpy(&values[i * sizeof slot], &slot, sizeof slot);
    }
    update_batch(fd("sluice_newflows"), keys, sizeof(uint32_t), values,
                 sizeof(sluice_probation_slot), kNewFlowsPerCpu, "sluice: probation run fill");
  }

  std::string name_;
  bpf_object* obj_;
  bpf_program* prog_ = nullptr;
};

// Katran's map layouts (katran/lib/bpf/balancer_structs.h) as the bytes its
// maps hold; checked against the loaded object's key and value sizes.
struct KatranFlowKey {
  uint8_t src[16];  // IPv4 in the first 4 bytes, network order
  uint8_t dst[16];
  uint16_t sport;  // network order
  uint16_t dport;
  uint8_t proto;
  uint8_t pad[3];
};
struct KatranLruValue {
  uint32_t real;  // real index
  uint32_t pad;
  uint64_t atime;  // ns (UDP only)
};
struct KatranVipKey {
  uint8_t addr[16];
  uint16_t port;  // network order
  uint8_t proto;
  uint8_t pad;
};
struct KatranVipMeta {
  uint32_t flags;
  uint32_t vip_num;
};
struct KatranReal {
  uint8_t addr[16];
  uint8_t flags;  // kKatranRealV6
  uint8_t pad[3];
};
struct KatranCtl {
  uint8_t mac[6];
  uint8_t pad[2];
};
static_assert(sizeof(KatranFlowKey) == 40 && sizeof(KatranLruValue) == 16 &&
              sizeof(KatranVipKey) == 20 && sizeof(KatranReal) == 20 && sizeof(KatranCtl) == 8);

// Katran's constants (katran/lib/bpf/balancer_consts.h).
constexpr uint32_t kKatranMaxVips = 512;
constexpr uint32_t kKatranRingSize = 65537;
constexpr uint32_t kKatranLruCntrs = kKatranMaxVips + 0;  // v1 VIP packets, v2 LRU misses
constexpr uint32_t kKatranConnRate = kKatranMaxVips + 2;  // v1 new flows this second
constexpr uint32_t kKatranTxCntr = kKatranMaxVips + 17;
constexpr uint32_t kKatranPassCntr = kKatranMaxVips + 19;
constexpr uint64_t kKatranMaxConnRate = 125000;
constexpr uint8_t kKatranRealV6 = 1;

// Katran's balancer object, opened and provisioned through libbpf as its
// own tests do (vip_map, reals, ch_rings, ctl_array, a per-CPU LRU).
class KatranTarget final : public Target {
 public:
  explicit KatranTarget(const std::string& path) {
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (obj_ == nullptr) die("opening %s: %s", path.c_str(), std::strerror(errno));
    // Only the rings of our VIPs, and no QUIC server ids: the defaults
    // preallocate 130 MB and 64 MB of arrays nothing here reads.
    must(bpf_map__set_max_entries(map("ch_rings"),
                                  kKatranRingSize * static_cast<uint32_t>(std::size(kVips))),
         "sizing Katran ch_rings");
    must(bpf_map__set_max_entries(map("server_id_map"), 1), "sizing Katran server_id_map");
    check_size("vip_map", sizeof(KatranVipKey), sizeof(KatranVipMeta));
    check_size("reals", 4, sizeof(KatranReal));
    check_size("ctl_array", 4, sizeof(KatranCtl));
    check_size("fallback_cache", sizeof(KatranFlowKey), sizeof(KatranLruValue));
    must(bpf_object__load(obj_), "loading Katran's balancer (verifier log above)");
    prog_ = bpf_object__find_program_by_name(obj_, "balancer_ingress");
    if (prog_ == nullptr) die("%s has no balancer_ingress", path.c_str());
    provision();
  }

  ~KatranTarget() override {
    for (int f : lru_fds_) close(f);
    bpf_object__close(obj_);
  }
  KatranTarget(const KatranTarget&) = delete;
  KatranTarget& operator=(const KatranTarget&) = delete;

  [[nodiscard]] const char* name() const override { return "katran"; }
  [[nodiscard]] int prog_fd() const override { return bpf_program__fd(prog_); }

  void fill(Fill fill) override {
    if (fill != Fill::kNone) fill_flows(fill == Fill::kFull ? kFlowsPerCpu : kCycleFlows);
  }

  // A new one-second window of Katran's new-flow rate limit.
  void before_run() override {
    std::vector<uint64_t> zero(2 * static_cast<size_t>(possible_cpus()), 0);
    must(bpf_map_update_elem(fd("stats"), &kKatranConnRate, zero.data(), BPF_ANY),
         "resetting Katran's new-flow rate");
  }

  void after_run() override {
    if (percpu_sum(fd("stats"), kKatranConnRate, 16)[0] > kKatranMaxConnRate) ++flood_runs_;
  }

  [[nodiscard]] PathCounts counts() override {
    const auto lru = percpu_sum(fd("stats"), kKatranLruCntrs, 16);
    return {.hits = lru[0] - lru[1],
            .misses = lru[1],
            .pass = percpu_sum(fd("stats"), kKatranPassCntr, 16)[0],
            .tx = percpu_sum(fd("stats"), kKatranTxCntr, 16)[0],
            .not_saved = flood_runs_};
  }

 private:
  bpf_map* map(const char* name) const {
    bpf_map* m = bpf_object__find_map_by_name(obj_, name);
    if (m == nullptr) die("Katran object has no map %s", name);
    return m;
  }
  [[nodiscard]] int fd(const char* name) const { return bpf_map__fd(map(name)); }

  void check_size(const char* name, size_t key, size_t value) const {
    bpf_map* m = map(name);
    if (bpf_map__key_size(m) != key || bpf_map__value_size(m) != value)
      die("Katran map %s is %u/%u bytes, expected %zu/%zu: another Katran version?", name,
          bpf_map__key_size(m), bpf_map__value_size(m), key, value);
  }

  void provision() {
    const uint32_t zero = 0;
    KatranCtl ctl{};
    std::memcpy(ctl.mac, kGatewayMac.data(), 6);
    must(bpf_map_update_elem(fd("ctl_array"), &zero, &ctl, BPF_ANY), "Katran: gateway MAC");

    for (uint32_t i = 0; i < 4; ++i) {
      KatranReal r4{}, r6{};
      std::memcpy(r4.addr, addr(kBackends4[i]).ip.bytes, 16);
      std::memcpy(r6.addr, addr(kBackends6[i]).ip.bytes, 16);
      r6.flags = kKatranRealV6;
      const uint32_t k4 = 1 + i, k6 = 5 + i;
      must(bpf_map_update_elem(fd("reals"), &k4, &r4, BPF_ANY), "Katran: real");
      must(bpf_map_update_elem(fd("reals"), &k6, &r6, BPF_ANY), "Katran: real");
    }
    for (const Vip& v : kVips) {
      const uint32_t vip_num = v.id - 1;
      const uint32_t first_real = std::string_view(v.addr) == kVip6 ? 5 : 1;
      std::vector<uint32_t> keys(kKatranRingSize), reals(kKatranRingSize);
      for (uint32_t i = 0; i < kKatranRingSize; ++i) {
        keys[i] = vip_num * kKatranRingSize + i;
        reals[i] = first_real + i % 4;
      }
      uint32_t count = kKatranRingSize;
      must(bpf_map_update_batch(fd("ch_rings"), keys.data(), reals.data(), &count, nullptr),
           "Katran: ch ring");
      KatranVipKey k{};
      std::memcpy(k.addr, addr(v.addr).ip.bytes, 16);
      k.port = sl_htons(v.port);
      k.proto = v.proto;
      const KatranVipMeta m{.flags = 0, .vip_num = vip_num};
      must(bpf_map_update_elem(fd("vip_map"), &k, &m, BPF_ANY), "Katran: VIP");
    }
    // One connection table per CPU, as Katran's loader makes them (the
    // object's inner map is only the template).
    for (int cpu = 0; cpu < possible_cpus(); ++cpu) {
      const int lru = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "katran_lru", sizeof(KatranFlowKey),
                                     sizeof(KatranLruValue), kFlowsPerCpu, nullptr);
      if (lru < 0) die("Katran: creating an LRU: %s", std::strerror(errno));
      lru_fds_.push_back(lru);
      const auto key = static_cast<uint32_t>(cpu);
      must(bpf_map_update_elem(fd("lru_mapping"), &key, &lru, BPF_ANY), "Katran: lru_mapping");
    }
  }

  // `count` flows in this CPU's table: the kCycleFlows established clients
  // first, then filler.
  void fill_flows(uint32_t count) {
    std::vector<uint8_t> keys(sizeof(KatranFlowKey) * count);
    std::vector<uint8_t> values(sizeof(KatranLruValue) * count);
    const IpAddress vip = addr(kVip4);
    for (uint32_t i = 0; i < count; ++i) {
      KatranFlowKey k{};
      put_be32(k.src, i < kCycleFlows ? kCycleBase + i : kFillBase + (i - kCycleFlows));
      std::memcpy(k.dst, vip.ip.bytes, 4);
      k.sport = sl_htons(kClientPort);
      k.dport = sl_htons(80);
      k.proto = SLUICE_IPPROTO_TCP;
      std::memcpy(&keys[i * sizeof k], &k, sizeof k);
      const KatranLruValue v{.real = 1 + i % 4, .pad = 0, .atime = 0};
      std::memcpy(&values[i * sizeof v], &v, sizeof v);
    }
    update_batch(lru_fds_.at(static_cast<size_t>(sched_getcpu())), keys, sizeof(KatranFlowKey),
                 values, sizeof(KatranLruValue), count, "Katran: flow fill");
  }

  bpf_object* obj_ = nullptr;
  bpf_program* prog_ = nullptr;
  std::vector<int> lru_fds_;
  uint64_t flood_runs_ = 0;
};

// ---------------------------------------------------------------------------
// The two ways of measuring.

using HarnessSkeleton = Skeleton<xdp_bench_harness_bpf>;

class Harness {
 public:
  Harness() : skel_(open()) {}

  [[nodiscard]] int empty_fd() const { return bpf_program__fd(skel_->progs.bench_empty); }

  // The frame (and how it varies) every following run restores.
  void set_frame(const Scenario& s) {
    if (s.frame.size() > BENCH_MAX_FRAME) die("%s: frame too long", s.name);
    bench_frame f{};
    std::memcpy(f.bytes, s.frame.data(), s.frame.size());
    f.len = static_cast<uint32_t>(s.frame.size());
    f.vary = s.vary;
    f.vary_off = static_cast<uint32_t>(kIpv4SrcOffset);
    f.vary_base = s.vary_base;
    f.vary_mask = s.vary_mask;
    f.tail_grows = s.tail_grows ? 1 : 0;
    const uint32_t zero = 0;
    must(bpf_map_update_elem(bpf_map__fd(skel_->maps.bench_frames), &zero, &f, BPF_ANY),
         "harness: frame");
    frame_ = s.frame;
  }

  // repeat=n of the harness around prog_fd: ns per packet, harness included.
  TestRun run(int prog_fd, uint32_t n) {
    const uint32_t zero = 0;
    must(bpf_map_update_elem(bpf_map__fd(skel_->maps.bench_target), &zero, &prog_fd, BPF_ANY),
         "harness: target");
    return test_run(bpf_program__fd(skel_->progs.bench_wrap), frame_.data(), frame_.size(), n);
  }

  // Drops the reference to the last target (before it is destroyed).
  void clear_target() {
    const uint32_t zero = 0;
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.bench_target), &zero);
  }

 private:
  static HarnessSkeleton open() {
    auto opened = HarnessSkeleton::open("xdp_bench_harness");
    if (!opened.ok()) die("%s", opened.error().message.c_str());
    must(opened.value().load(), "loading the harness");
    return std::move(opened.value());
  }

  HarnessSkeleton skel_;
  Bytes frame_;
};

// One measured run: ns per packet (the loop's mean keeps its fraction) and
// the last packet's verdict.
struct Sample {
  double ns = 0;
  uint32_t retval = 0;
};

// n calls with repeat=1 of prog_fd on the scenario's frame, varied as the
// harness varies it (counter: the running count of varied packets). Dies on
// a failed call.
Sample loop_run(int prog_fd, const Scenario& s, uint32_t n, uint64_t* counter) {
  Bytes frame = s.frame;
  uint64_t total = 0;
  Sample r;
  for (uint32_t i = 0; i < n; ++i) {
    if (s.vary == BENCH_VARY_FIELD) {
      put_be32(&frame[kIpv4SrcOffset],
               s.vary_base + (static_cast<uint32_t>(*counter) & s.vary_mask));
      ++*counter;
    }
    const TestRun one = test_run(prog_fd, frame.data(), frame.size(), 1);
    if (one.err != 0) die("%s: BPF_PROG_TEST_RUN: %s", s.name, std::strerror(one.err));
    total += one.ns;
    r.retval = one.retval;
  }
  r.ns = n != 0 ? static_cast<double>(total) / n : 0;
  return r;
}

// ---------------------------------------------------------------------------
// Driving one scenario with one method.

enum class Method { kHarness, kLoop };

struct Options {
  std::string katran_obj;
  std::vector<std::string> sluice_objs;  // other builds of sluice_lb.bpf.o, measured beside
  uint32_t runs = 9;
  bool harness = true;
  bool loop = true;
  std::vector<std::string> only;
  int cpu = -1;
  double max_seconds = 900;
  bool verbose = false;
};

// One row of the report.
struct Row {
  const Scenario* s = nullptr;
  uint32_t packets = 0;
  double empty_direct = 0;         // the empty program alone (harness method: repeat=n)
  double empty = 0;                // the baseline: harness + empty, or the loop over empty
  std::vector<std::string> names;  // per target
  std::vector<double> net;         // per target: median of (target - baseline) per run
  std::vector<double> ratio;       // per target: median of its net / Katran's net per run
  std::vector<std::string> path;   // per target: "ok" or what the counters said
};

const char* action_name(uint32_t a) {
  switch (a) {
    case XDP_ABORTED:
      return "ABORTED";
    case XDP_DROP:
      return "DROP";
    case XDP_PASS:
      return "PASS";
    case XDP_TX:
      return "TX";
    case XDP_REDIRECT:
      return "REDIRECT";
    default:
      return "?";
  }
}

std::string check_path(Path path, const PathCounts& before, const PathCounts& after,
                       uint64_t packets) {
  const uint64_t hits = after.hits - before.hits, misses = after.misses - before.misses;
  const uint64_t pass = after.pass - before.pass, tx = after.tx - before.tx;
  const uint64_t not_saved = after.not_saved - before.not_saved;
  bool ok = false;
  switch (path) {
    case Path::kHit:
      ok = hits == packets && tx == packets;
      break;
    case Path::kMiss:
      ok = misses == packets && tx == packets && not_saved == 0;
      break;
    case Path::kPass:
      ok = pass == packets;
      break;
    case Path::kMissMaybeUnsaved:
      ok = misses == packets && tx == packets;
      break;
    case Path::kCacheHit:
      ok = hits == 0 && misses == 0 && tx == packets;
      break;
    case Path::kAsSluice:
      break;
  }
  if (ok) return "ok";
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "MISMATCH of %" PRIu64 ": hits %" PRIu64 " misses %" PRIu64 " pass %" PRIu64
                " tx %" PRIu64 " not-saved %" PRIu64,
                packets, hits, misses, pass, tx, not_saved);
  return buf;
}

Sample measure(Method m, Harness& h, int prog_fd, const Scenario& s, uint32_t n,
               uint64_t* loop_counter) {
  if (m == Method::kLoop) return loop_run(prog_fd, s, n, loop_counter);
  const TestRun r = h.run(prog_fd, n);
  if (r.err != 0) die("%s: BPF_PROG_TEST_RUN: %s", s.name, std::strerror(r.err));
  return {static_cast<double>(r.ns), r.retval};
}

// Waits (at most 30 s) until the kernel has freed the maps of the programs
// destroyed last: freeing a flow table of millions of per-CPU values takes
// kernel workers about a second, which would otherwise run beside the
// next measurement on these two CPUs.
void wait_for_map_frees() {
  auto percpu_kb = [] {
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("Percpu:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 10);
    return 0ull;
  };
  unsigned long long last = percpu_kb();
  int steady = 0;
  for (int i = 0; i < 300 && steady < 5; ++i) {
    const timespec tick{.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    nanosleep(&tick, nullptr);
    const unsigned long long now = percpu_kb();
    steady = now == last ? steady + 1 : 0;
    last = now;
  }
}

// Fresh programs and tables for every scenario: an LRU's free list that
// earlier runs have scrambled makes inserts up to 2.5x dearer, so no
// scenario inherits another's tables.
std::vector<std::unique_ptr<Target>> load_targets(const Options& o, Fill fill) {
  std::vector<std::unique_ptr<Target>> targets;
  targets.push_back(SluiceTarget::built_in());
  for (const std::string& path : o.sluice_objs) targets.push_back(SluiceTarget::from_file(path));
  if (!o.katran_obj.empty()) targets.push_back(std::make_unique<KatranTarget>(o.katran_obj));
  for (const auto& t : targets) t->fill(fill);
  return targets;
}

Row run_scenario(Method m, Harness& h, const Scenario& s, const Options& o) {
  const uint32_t n = m == Method::kHarness ? s.packets : s.loop_packets;
  const uint32_t warmup = m == Method::kHarness ? s.warmup : 2000;
  wait_for_map_frees();
  const std::vector<std::unique_ptr<Target>> targets = load_targets(o, s.fill);
  h.set_frame(s);
  uint64_t loop_counter = 0;

  // The first packet straight into each program: the verdict this scenario
  // is about (a miss-path verdict: the flow is new).
  for (auto& t : targets) {
    const TestRun r = test_run(t->prog_fd(), s.frame.data(), s.frame.size(), 1);
    if (r.err != 0 || r.retval != s.xdp_action)
      die("%s: %s returned %s (err %d), expected %s", s.name, t->name(), action_name(r.retval),
          r.err, action_name(s.xdp_action));
  }
  for (auto& t : targets) {
    t->before_run();
    (void)measure(m, h, t->prog_fd(), s, warmup, &loop_counter);
  }

  std::vector<PathCounts> before;
  for (auto& t : targets) before.push_back(t->counts());
  std::vector<double> empty, empty_direct;
  std::vector<std::vector<double>> net(targets.size());
  for (uint32_t r = 0; r < o.runs; ++r) {
    const Sample e = measure(m, h, h.empty_fd(), s, n, &loop_counter);
    empty.push_back(e.ns);
    if (m == Method::kHarness) {
      const TestRun d = test_run(h.empty_fd(), s.frame.data(), s.frame.size(), n);
      if (d.err != 0) die("empty program: %s", std::strerror(d.err));
      empty_direct.push_back(d.ns);
    }
    // Each run starts with another target, so that none is always the one
    // measured right after the baseline (the first scenario's first
    // measurements ran 10-14 ns slower here).
    for (size_t k = 0; k < targets.size(); ++k) {
      const size_t i = (k + r) % targets.size();
      targets[i]->before_run();
      const Sample x = measure(m, h, targets[i]->prog_fd(), s, n, &loop_counter);
      targets[i]->after_run();
      if (x.retval != s.xdp_action)
        die("%s: %s returned %s in a measured run", s.name, targets[i]->name(),
            action_name(x.retval));
      net[i].push_back(x.ns - e.ns);
      if (o.verbose)
        std::fprintf(stderr, "  %s %s run %u: %s %.0f ns, baseline %.0f ns\n",
                     m == Method::kHarness ? "harness" : "loop", s.name, r, targets[i]->name(),
                     x.ns, e.ns);
    }
  }

  const bool with_katran = !o.katran_obj.empty();  // then it is the last target
  Row row;
  row.s = &s;
  row.packets = n;
  row.empty = median(empty);
  row.empty_direct = median(empty_direct);
  for (size_t i = 0; i < targets.size(); ++i) {
    row.names.emplace_back(targets[i]->name());
    row.net.push_back(median(net[i]));
    std::vector<double> ratios;
    for (size_t r = 0; with_katran && r < net[i].size(); ++r)
      if (net.back()[r] > 0) ratios.push_back(net[i][r] / net.back()[r]);
    row.ratio.push_back(median(ratios));
    const bool katran = std::string_view(targets[i]->name()) == "katran";
    const Path want = katran && s.katran_path != Path::kAsSluice ? s.katran_path : s.path;
    row.path.push_back(
        check_path(want, before[i], targets[i]->counts(), static_cast<uint64_t>(n) * o.runs));
  }
  h.clear_target();  // the prog array must not keep the last target alive
  return row;
}

void print_table(Method m, const std::vector<Row>& rows) {
  if (rows.empty()) return;
  const std::vector<std::string>& names = rows[0].names;
  const auto katran =
      static_cast<size_t>(std::find(names.begin(), names.end(), "katran") - names.begin());
  std::printf("\n### Method: %s\n\n",
              m == Method::kHarness
                  ? "harness (repeat=N through perf/xdp_bench_harness.bpf.c; primary)"
                  : "loop (repeat=1 calls, durations summed)");
  std::printf("| scenario | packets/run |%s",
              m == Method::kHarness ? " empty alone | harness+empty |" : " empty (loop) |");
  for (const std::string& n : names) std::printf(" %s net |", n.c_str());
  for (size_t i = 0; i < names.size() && katran < names.size(); ++i)
    if (i != katran) std::printf(" %s/katran |", names[i].c_str());
  std::printf(" issue: Katran Xeon / target | path check |\n|---|---:|%s",
              m == Method::kHarness ? "---:|---:|" : "---:|");
  for (size_t i = 0; i < names.size(); ++i) std::printf("---:|");
  for (size_t i = 0; i + 1 < names.size() && katran < names.size(); ++i) std::printf("---:|");
  std::printf("---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %u |", r.s->name, r.packets);
    if (m == Method::kHarness) std::printf(" %.1f |", r.empty_direct);
    std::printf(" %.1f |", r.empty);
    for (double n : r.net) std::printf(" %.1f |", n);
    for (size_t i = 0; i < r.net.size() && katran < r.net.size(); ++i)
      if (i != katran) std::printf(" %.2f |", r.ratio[i]);
    if (r.s->target > 0)
      std::printf(" %.0f / %.0f |", r.s->katran_xeon, r.s->target);
    else
      std::printf(" - |");
    std::string path;
    for (size_t i = 0; i < r.path.size(); ++i)
      path += (i != 0 ? ", " : "") + r.names[i] + " " + r.path[i];
    std::printf(" %s |\n", path.c_str());
  }
  std::printf(
      "\n(ns per packet, medians over runs; \"net\": minus the baseline measured in the same "
      "run; x/katran: the median of the per-run ratios, both measured back to back)\n");
  std::fflush(stdout);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string_view flag) -> const char* {
      return a.substr(0, flag.size()) == flag ? argv[i] + flag.size() : nullptr;
    };
    if (const char* v = value("--katran-obj=")) {
      o.katran_obj = v;
    } else if (const char* so = value("--sluice-obj=")) {
      o.sluice_objs.emplace_back(so);
    } else if (const char* r = value("--runs=")) {
      o.runs = static_cast<uint32_t>(std::strtoul(r, nullptr, 10));
    } else if (const char* me = value("--method=")) {
      const std::string_view mv = me;
      o.harness = mv == "harness" || mv == "both";
      o.loop = mv == "loop" || mv == "both";
      if (!o.harness && !o.loop) die("--method= harness, loop or both");
    } else if (const char* sc = value("--scenario=")) {
      std::string list = sc;
      for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        o.only.push_back(list.substr(at, comma - at));
        at = comma + 1;
      }
    } else if (const char* c = value("--cpu=")) {
      o.cpu = std::atoi(c);
    } else if (const char* t = value("--max-seconds=")) {
      o.max_seconds = std::atof(t);
    } else if (a == "--verbose") {
      o.verbose = true;
    } else {
      die("unknown argument %s (see the comment at the top of perf/xdp_bench.cpp)", argv[i]);
    }
  }
  if (o.runs < 5 || o.runs > 101) die("--runs= must be 5..101 (medians of at least 5 runs)");
  return o;
}

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  return std::vfprintf(stderr, fmt, ap);
}

int bench_main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  if (geteuid() != 0) {
    std::printf("xdp_bench: skipped: needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)\n");
    return 0;
  }
  libbpf_set_print(libbpf_print);

  const int cpu = o.cpu >= 0 ? o.cpu : sched_getcpu();
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(static_cast<size_t>(cpu), &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0)
    die("pinning to CPU %d: %s", cpu, std::strerror(errno));

  const double start = seconds_now();
  std::printf("## xdp_bench\n\n");
  std::printf("- CPU (lscpu Model name): %s; %d possible CPUs; pinned to CPU %d\n",
              cpu_model().c_str(), possible_cpus(), cpu);
  std::printf("- kernel %s; load average at start: %s\n",
              first_line("/proc/sys/kernel/osrelease").c_str(),
              first_line("/proc/loadavg").c_str());
  std::printf("- %u runs per figure, medians; ns per packet from BPF_PROG_TEST_RUN duration\n",
              o.runs);
  std::printf("- Katran: %s\n",
              o.katran_obj.empty() ? "not measured (no --katran-obj=)" : o.katran_obj.c_str());
  for (const std::string& path : o.sluice_objs)
    std::printf("- another sluice_lb build: %s\n", path.c_str());
  std::fflush(stdout);

  Harness harness;
  const std::vector<Scenario> all = make_scenarios(o.runs);
  std::vector<const Scenario*> chosen;
  for (const Scenario& s : all)
    if (o.only.empty() || std::find(o.only.begin(), o.only.end(), s.name) != o.only.end())
      chosen.push_back(&s);
  for (const std::string& name : o.only)
    if (std::none_of(all.begin(), all.end(), [&](const Scenario& s) { return s.name == name; }))
      die("no scenario %s", name.c_str());

  bool cut = false;
  for (const Method m : {Method::kHarness, Method::kLoop}) {
    if ((m == Method::kHarness && !o.harness) || (m == Method::kLoop && !o.loop)) continue;
    std::vector<Row> rows;
    for (const Scenario* s : chosen) {
      if (seconds_now() - start > o.max_seconds) {
        std::printf("\n(time limit of %.0f s reached: %s and later scenarios not measured)\n",
                    o.max_seconds, s->name);
        cut = true;
        break;
      }
      if (o.verbose) std::fprintf(stderr, "%s ...\n", s->name);
      rows.push_back(run_scenario(m, harness, *s, o));
    }
    print_table(m, rows);
    if (cut) break;
  }
  std::printf("\n- load average at end: %s; %.0f s\n", first_line("/proc/loadavg").c_str(),
              seconds_now() - start);
  std::printf("\nScenarios:\n");
  for (const Scenario* s : chosen) std::printf("- %s: %s\n", s->name, s->what);
  return 0;
}

}  // namespace
}  // namespace sluice::perf

int main(int argc, char** argv) { return sluice::perf::bench_main(argc, argv); }
