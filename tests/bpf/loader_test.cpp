// SPDX-License-Identifier: BSD-2-Clause
// The XDP loader on veths in namespaces of the test's own: attach and
// detach in both modes, load errors, pinned maps that outlive the loader
// with their flows, hitless snapshot publication, counters summed over CPUs,
// next hops from the kernel's route and neighbour tables, bpffs mounting.
#include "xdp/loader.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/abi/flow.h"
#include "tests/bpf/bpf_test_util.hpp"
#include "tests/bpf/test_netns.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/common/vip_spec.hpp"
#include "xdp/decap.hpp"
#include "xdp/decap_skeleton.hpp"
#include "xdp/netlink.hpp"
#include "xdp/unique_fd.hpp"

namespace sluice::test {
namespace {

using xdp::Loader;
using xdp::LoaderOptions;
using xdp::Snapshot;
using xdp::SnapshotVip;
using xdp::UniqueFd;
using xdp::XdpMode;

constexpr uint32_t kSeed = 0x5eed1234;
constexpr Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr Mac kRouterMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};
constexpr Mac kGatewayMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfd};
constexpr const char* kVip = "10.0.0.1";
constexpr uint32_t kVipId = 1;
constexpr uint8_t kTcp = SLUICE_IPPROTO_TCP;
constexpr uint8_t kAck = 0x10;
constexpr std::chrono::milliseconds kResolveWait{5000};

IpAddress addr(const std::string& text) { return address(text); }

sluice_backend backend(uint32_t id, const std::string& a, uint8_t flags = 0) {
  const IpAddress ip = addr(a);
  sluice_backend b{};
  b.addr = ip.ip;
  b.id = id;
  b.family = ip.family;
  b.flags = flags;
  return b;
}

/// M slots spread over `ids` (slot i -> ids[i % n]); an empty list leaves
/// every slot empty.
std::vector<uint32_t> spread(uint32_t m, const std::vector<uint32_t>& ids) {
  std::vector<uint32_t> t(m, SLUICE_BACKEND_NONE);
  for (uint32_t i = 0; i < m && !ids.empty(); ++i) t[i] = ids[i % ids.size()];
  return t;
}

struct VipDef {
  std::string addr;
  uint16_t port;
  uint8_t proto;
  uint32_t vip_id;
  std::vector<uint32_t> table;
  uint32_t flags = 0;
};

/// A snapshot and the storage its table spans point into.
struct World {
  std::vector<VipDef> vips;
  std::vector<sluice_backend> backends;
  std::optional<sluice_next_hop> next_hop = static_next_hop();

  static sluice_next_hop static_next_hop() {
    sluice_next_hop nh{};
    std::copy(kGatewayMac.begin(), kGatewayMac.end(), nh.dst_mac);
    std::copy(kLbMac.begin(), kLbMac.end(), nh.src_mac);
    return nh;
  }

  [[nodiscard]] Snapshot snapshot() const {
    Snapshot s;
    for (const VipDef& v : vips) {
      s.vips.push_back(
          vip_spec<SnapshotVip>(v.addr, v.port, v.proto, v.vip_id, v.flags, v.table));
    }
    s.backends = backends;
    s.encap.src_v4 = addr("10.255.0.0").ip;
    s.encap.src_v6 = addr("2001:db8:ffff::").ip;
    s.encap.mtu = 1500;
    s.encap.entropy_bits = 8;
    s.next_hop = next_hop;
    return s;
  }

  /// The backend the VIP's table gives a new flow.
  [[nodiscard]] uint32_t choice(uint32_t vip_id, const sluice_flow_key& key) const {
    for (const VipDef& v : vips)
      if (v.vip_id == vip_id) {
        const uint32_t h = (v.flags & SLUICE_VIP_HASH_SRC_ONLY) != 0
                               ? sluice_flow_hash_src(&key, kSeed)
                               : sluice_flow_hash(&key, kSeed);
        return v.table[h % v.table.size()];
      }
    return SLUICE_BACKEND_NONE;
  }

  /// The backend id an encapsulated frame is addressed to.
  [[nodiscard]] uint32_t backend_of(const XdpRun& r) const {
    if (r.verdict != XDP_TX || r.out.size() < 14 + 40) return SLUICE_BACKEND_NONE;
    for (const sluice_backend& b : backends) {
      if (b.family == SLUICE_FAMILY_IPV4 && r.out[12] == 0x08 && r.out[13] == 0x00 &&
          std::memcmp(&r.out[14 + 16], b.addr.bytes, 4) == 0)
        return b.id;
      if (b.family == SLUICE_FAMILY_IPV6 && r.out[12] == 0x86 && r.out[13] == 0xdd &&
          std::memcmp(&r.out[14 + 24], b.addr.bytes, 16) == 0)
        return b.id;
    }
    return SLUICE_BACKEND_NONE;
  }
};

/// Three IPv4 backends and one TCP VIP (vip_id 1) over them, M = 251.
World basic_world() {
  World w;
  w.backends = {backend(1, "10.1.0.1"), backend(2, "10.1.0.2"), backend(3, "10.1.0.3")};
  w.vips.push_back({kVip, 80, kTcp, kVipId, spread(251, {1, 2, 3})});
  return w;
}

Bytes tcp_frame(const std::string& client, uint16_t cport, const std::string& vip = kVip,
                uint8_t flags = kAck) {
  PacketBuilder p;
  p.eth({.dst = kLbMac, .src = kRouterMac});
  if (addr(client).is_v6())
    p.ipv6({.src = client, .dst = vip});
  else
    p.ipv4({.src = client, .dst = vip});
  return p.tcp({.sport = cport, .dport = 80, .flags = flags}).build();
}

sluice_flow_key tcp_key(const std::string& client, uint16_t cport, const std::string& vip = kVip) {
  sluice_flow_key k{};
  const IpAddress c = addr(client);
  k.src = c.ip;
  k.dst = addr(vip).ip;
  k.sport = sl_htons(cport);
  k.dport = sl_htons(80);
  k.proto = kTcp;
  k.family = c.family;
  return k;
}

std::string client(int i) { return "192.168.0." + std::to_string(1 + i % 250); }
uint16_t cport(int i) { return static_cast<uint16_t>(10000 + i); }

/// The XDP program ids attached to an interface, by mode.
bpf_xdp_query_opts attached(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  EXPECT_EQ(bpf_xdp_query(ifindex, 0, &q), 0);
  return q;
}

/// The MAC of an interface in a namespace, from `ip -n NS link show DEV`.
Mac mac_of(const std::string& ns, const std::string& dev) {
  std::string out;
  EXPECT_EQ(run_command({"ip", "-n", ns, "link", "show", dev}, &out), 0) << out;
  Mac m{};
  const size_t at = out.find("link/ether ");
  if (at == std::string::npos) return m;
  unsigned v[6] = {};
  if (std::sscanf(out.c_str() + at + 11, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5]) == 6)
    for (size_t i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

/// The ifindexes sluice_tx_ports holds, sorted.
std::vector<uint32_t> tx_ports(const xdp::Loader& l) {
  const int fd = bpf_map__fd(l.skeleton()->maps.sluice_tx_ports);
  std::vector<uint32_t> out;
  uint32_t key = 0;
  const uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &key) == 0 && out.size() < SLUICE_MAX_TX_PORTS) {
    out.push_back(key);
    prev = &key;
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// An AF_PACKET socket bound to `ifname` (of the calling thread's
/// namespace), all EtherTypes; invalid on failure (errno says why).
UniqueFd packet_socket(const char* ifname) {
  UniqueFd fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL)));
  if (!fd.valid()) return fd;
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname));
  if (sll.sll_ifindex == 0 ||
      bind(fd.get(), reinterpret_cast<const sockaddr*>(&sll), sizeof sll) != 0)
    return UniqueFd();
  return fd;
}

/// The first frame on `fd` that `match` accepts within 5 s, else empty.
template <class Match>
Bytes receive_matching(int fd, Match match) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  Bytes buf(2048);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) continue;
    Bytes f(buf.begin(), buf.begin() + n);
    if (match(f)) return f;
  }
  return {};
}

/// Runs the calling thread on one CPU for its lifetime.
class OnCpu {
 public:
  explicit OnCpu(int cpu) {
    sched_getaffinity(0, sizeof saved_, &saved_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(static_cast<size_t>(cpu), &one);
    ok_ = sched_setaffinity(0, sizeof one, &one) == 0 && sched_getcpu() == cpu;
  }
  ~OnCpu() { sched_setaffinity(0, sizeof saved_, &saved_); }
  OnCpu(const OnCpu&) = delete;
  OnCpu& operator=(const OnCpu&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  cpu_set_t saved_{};
  bool ok_ = false;
};

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_SKIP_WITHOUT_BPF();
    std::string why;
    auto made = TestNetns::create(&why);
    if (made) ns_.emplace(std::move(*made));
    if (!ns_) {
      if (bpf_required()) FAIL() << "cannot make test namespaces: " << why;
      GTEST_SKIP() << "cannot make test namespaces: " << why;
    }
    enter_.emplace(ns_->lb());
    ASSERT_TRUE(enter_->error().empty()) << enter_->error();
    ifindex_ = static_cast<int>(if_nametoindex("lb0"));
    ASSERT_GT(ifindex_, 0);
  }

  [[nodiscard]] LoaderOptions options(XdpMode mode = XdpMode::kGeneric) const {
    LoaderOptions o;
    o.ifname = "lb0";
    o.mode = mode;
    o.hash_seed = kSeed;
    o.flows_per_cpu = 1024;
    o.probation_per_cpu = 256;
    o.pin_root = pin_root();
    return o;
  }
  [[nodiscard]] std::string pin_root() const { return pins_.path() + "/lb0"; }

  /// Loads with `o`, or fails the test (the Optional is then empty).
  static std::optional<Loader> load(const LoaderOptions& o) {
    auto r = Loader::load(o);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) return std::nullopt;
    return std::optional<Loader>(std::move(r.value()));
  }

  static XdpRun run(const Loader& l, const Bytes& frame) {
    XdpRun r = run_xdp(l.prog_fd(), frame);
    EXPECT_EQ(r.err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-r.err);
    return r;
  }

  std::optional<TestNetns> ns_;
  std::optional<NetnsEnter> enter_;
  TestPinDir pins_;
  int ifindex_ = 0;
};

#define ASSERT_OK(expr)                                          \
  do {                                                           \
    const auto& r_ = (expr);                                     \
    ASSERT_TRUE(r_.ok()) << #expr << ": " << r_.error().message; \
  } while (0)

TEST_F(LoaderTest, AttachesAndDetachesInBothModes) {
  for (XdpMode mode : {XdpMode::kGeneric, XdpMode::kNative}) {
    SCOPED_TRACE(xdp::to_string(mode));
    auto l = load(options(mode));
    ASSERT_TRUE(l);
    EXPECT_EQ(l->ifindex(), ifindex_);
    ASSERT_OK(l->attach());
    bpf_xdp_query_opts q = attached(ifindex_);
    EXPECT_EQ(mode == XdpMode::kNative ? q.drv_prog_id : q.skb_prog_id, l->prog_id());
    EXPECT_EQ(mode == XdpMode::kNative ? q.skb_prog_id : q.drv_prog_id, 0u);
    ASSERT_OK(l->attach());  // again: nothing to do
    {
      // A second instance (a restarted daemon) replaces the first in place.
      auto next = load(options(mode));
      ASSERT_TRUE(next);
      ASSERT_OK(next->attach());
      q = attached(ifindex_);
      EXPECT_EQ(mode == XdpMode::kNative ? q.drv_prog_id : q.skb_prog_id, next->prog_id());
      EXPECT_NE(next->prog_id(), l->prog_id());
    }
    ASSERT_OK(l->detach());
    q = attached(ifindex_);
    EXPECT_EQ(q.prog_id, 0u);
    EXPECT_EQ(q.drv_prog_id | q.skb_prog_id, 0u);
    const xdp::Status again = l->detach();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, -ENOENT);
    EXPECT_NE(again.error().message.find("no XDP program is attached to lb0"), std::string::npos)
        << again.error().message;
    ASSERT_OK(l->unpin());
    EXPECT_NE(access(pin_root().c_str(), F_OK), 0) << "pin folder still there";
  }
}

// The default layout pins in <bpffs>/sluice/<ifname>: unpinning the last
// interface's folder takes the shared "sluice" folder too (review7: detach
// left an empty /sys/fs/bpf/sluice), and one with another interface's
// folder still in it stays.
TEST_F(LoaderTest, UnpinRemovesTheSharedSluiceFolderOnceEmpty) {
  const std::string shared = xdp::default_pin_root(pins_.path(), "lb0");
  const std::string parent = pins_.path() + "/sluice";
  ASSERT_EQ(shared, parent + "/lb0");
  const std::string other = parent + "/other0";
  LoaderOptions o = options();
  o.pin_root = shared;
  {
    auto l = load(o);
    ASSERT_TRUE(l);
    ASSERT_EQ(l->pin_root(), shared);
    ASSERT_EQ(mkdir(other.c_str(), 0700), 0) << std::strerror(errno);
    ASSERT_OK(l->unpin());
  }
  EXPECT_NE(access(shared.c_str(), F_OK), 0) << "pin folder still there";
  EXPECT_EQ(access(parent.c_str(), F_OK), 0) << "another interface's folder is in it";
  ASSERT_EQ(rmdir(other.c_str()), 0) << std::strerror(errno);
  {
    auto l = load(o);
    ASSERT_TRUE(l);
    ASSERT_OK(l->unpin());
  }
  EXPECT_NE(access(parent.c_str(), F_OK), 0) << "empty sluice folder left behind";
}

TEST_F(LoaderTest, LeavesOtherProgramsAloneAndRefusesAModeSwitch) {
  // Someone else's XDP program on the interface.
  auto foreign = Skeleton<sluice_decap_bpf>::open("sluice_decap");
  ASSERT_OK(foreign);
  ASSERT_EQ(foreign.value().load(), 0);
  const int foreign_fd = bpf_program__fd(foreign.value()->progs.sluice_decap);
  ASSERT_EQ(bpf_xdp_attach(ifindex_, foreign_fd, XDP_FLAGS_SKB_MODE, nullptr), 0);
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(foreign_fd, &info, &len), 0);

  auto l = load(options(XdpMode::kGeneric));
  ASSERT_TRUE(l);
  xdp::Status s = l->attach();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EBUSY);
  EXPECT_NE(s.error().message.find("sluice_decap"), std::string::npos) << s.error().message;
  s = xdp::detach_interface(ifindex_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EBUSY);
  EXPECT_EQ(attached(ifindex_).skb_prog_id, info.id) << "the foreign program was touched";
  ASSERT_EQ(bpf_xdp_detach(ifindex_, XDP_FLAGS_SKB_MODE, nullptr), 0);

  // sluice in generic mode; a native-mode instance must not switch it.
  ASSERT_OK(l->attach());
  auto native = load(options(XdpMode::kNative));
  ASSERT_TRUE(native);
  s = native->attach();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EEXIST);
  EXPECT_NE(s.error().message.find("generic mode"), std::string::npos) << s.error().message;
  EXPECT_EQ(attached(ifindex_).skb_prog_id, l->prog_id());
  ASSERT_OK(l->detach());
}

TEST_F(LoaderTest, LoadFailuresSayWhatWasBeingDoneAndWhy) {
  // A flow table the kernel refuses to make (2^30 buckets): E2BIG from map
  // creation, reported with the sizes asked for.
  LoaderOptions o = options();
  const int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  o.flows_per_cpu = (1u << 30) / static_cast<uint32_t>(ncpus);
  auto r = Loader::load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.error().code, 0);
  EXPECT_NE(r.error().message.find("loading sluice_lb (sluice_flows"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find(std::strerror(-r.error().code)), std::string::npos)
      << r.error().message;
  // Nothing stays pinned from a failed load.
  auto empty = xdp::unpin_maps(pin_root());
  EXPECT_TRUE(empty.ok()) << empty.error().message;

  // Options checked before anything is made.
  o = options();
  o.ifname = "sluice-none0";
  r = Loader::load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -ENODEV) << r.error().message;
  EXPECT_NE(r.error().message.find("sluice-none0"), std::string::npos) << r.error().message;
  o = options();
  o.probation_per_cpu = 0;
  r = Loader::load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -EINVAL) << r.error().message;
  // Every CPU's run of probation slots shares one array of at most 2^32.
  if (ncpus > 1) {
    o = options();
    o.probation_per_cpu = UINT32_MAX / static_cast<uint32_t>(ncpus) + 1;
    r = Loader::load(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, -EINVAL) << r.error().message;
    EXPECT_NE(r.error().message.find("probation_per_cpu"), std::string::npos)
        << r.error().message;
  }

  // A verifier log that does not fit its buffer fails the load (-ENOSPC)
  // and what there is of it comes back in the error.
  o = options();
  o.verifier_log_level = 1;
  o.verifier_log_size = 512;
  r = Loader::load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -ENOSPC) << r.error().message;
  EXPECT_NE(r.error().message.find("verifier log:\n"), std::string::npos) << r.error().message;

  // With room, the log of a successful load is kept when asked for.
  o.verifier_log_size = 64u << 20;
  auto ok = load(o);
  ASSERT_TRUE(ok);
  EXPECT_NE(ok->verifier_log().find("processed"), std::string::npos);
}

TEST_F(LoaderTest, PinnedMapsMadeWithOtherSizesAreNamed) {
  { ASSERT_TRUE(load(options())); }
  LoaderOptions o = options();
  o.flows_per_cpu *= 2;
  auto r = Loader::load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -EINVAL);
  EXPECT_NE(r.error().message.find("sluice_flows"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("max_entries"), std::string::npos) << r.error().message;
}

// An upgrade over maps pinned by a sluice whose probation map was a
// PERCPU_ARRAY: that map is made afresh, the others are re-used.
TEST_F(LoaderTest, APinnedProbationMapOfAnOlderTypeIsReplaced) {
  { ASSERT_TRUE(load(options())); }
  const std::string path = pin_root() + "/sluice_newflows";
  ASSERT_EQ(unlink(path.c_str()), 0) << std::strerror(errno);
  UniqueFd old(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "sluice_newflows", 4,
                              sizeof(sluice_probation_slot), 16384, nullptr));
  ASSERT_GE(old.get(), 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(old.get(), path.c_str()), 0) << std::strerror(errno);

  auto l = load(options());
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->reused_pinned_maps());
  EXPECT_EQ(bpf_map__type(l->skeleton()->maps.sluice_newflows), BPF_MAP_TYPE_ARRAY);
  bpf_map_info info{};
  uint32_t len = sizeof info;
  UniqueFd pinned(bpf_obj_get(path.c_str()));
  ASSERT_GE(pinned.get(), 0);
  ASSERT_EQ(bpf_obj_get_info_by_fd(pinned.get(), &info, &len), 0);
  EXPECT_EQ(info.type, static_cast<uint32_t>(BPF_MAP_TYPE_ARRAY));
  ASSERT_EQ(l->replaced_pinned_maps().size(), 1u);
  EXPECT_NE(l->replaced_pinned_maps()[0].find("sluice_newflows"), std::string::npos);
}

// An upgrade over the global counters of a build with fewer drop reasons
// (two fewer: before too_big_df_clear and frag_of_dropped): sluice_stats
// is made afresh at this build's size, its counters start from zero, the
// others are re-used, and the replacement is reported for the log.
TEST_F(LoaderTest, APinnedStatsMapOfAnOlderSizeIsReplaced) {
  { ASSERT_TRUE(load(options())); }
  const std::string path = pin_root() + "/sluice_stats";
  ASSERT_EQ(unlink(path.c_str()), 0) << std::strerror(errno);
  const uint32_t old_size = sizeof(sluice_global_stats) - 2 * sizeof(sl_u64);
  UniqueFd old(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "sluice_stats", 4, old_size, 1, nullptr));
  ASSERT_GE(old.get(), 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(old.get(), path.c_str()), 0) << std::strerror(errno);

  auto l = load(options());
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->reused_pinned_maps());
  ASSERT_EQ(l->replaced_pinned_maps().size(), 1u);
  EXPECT_NE(l->replaced_pinned_maps()[0].find(path), std::string::npos)
      << l->replaced_pinned_maps()[0];
  EXPECT_NE(l->replaced_pinned_maps()[0].find("value size " + std::to_string(old_size)),
            std::string::npos)
      << l->replaced_pinned_maps()[0];
  bpf_map_info info{};
  uint32_t len = sizeof info;
  UniqueFd pinned(bpf_obj_get(path.c_str()));
  ASSERT_GE(pinned.get(), 0);
  ASSERT_EQ(bpf_obj_get_info_by_fd(pinned.get(), &info, &len), 0);
  EXPECT_EQ(info.value_size, sizeof(sluice_global_stats));
  EXPECT_EQ(info.type, static_cast<uint32_t>(BPF_MAP_TYPE_PERCPU_ARRAY));
  auto g = l->global_stats();
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g.value().rx_packets, 0u);

  // Loaded again, the pin (now this build's) is re-used, not replaced.
  l.reset();
  auto again = load(options());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->replaced_pinned_maps().empty());
}

// An upgrade over maps pinned by a build with the hash-map cache index:
// the maps this program no longer has are unpinned, the rest re-used.
TEST_F(LoaderTest, PinnedMapsThisBuildNoLongerHasAreUnpinned) {
  { ASSERT_TRUE(load(options())); }
  std::vector<std::string> retired;
  for (const char* name : {"sluice_cache_index", "sluice_cache_versions"}) {
    UniqueFd old(bpf_map_create(BPF_MAP_TYPE_ARRAY, name, 4, 8, 16, nullptr));
    ASSERT_GE(old.get(), 0) << std::strerror(errno);
    retired.push_back(pin_root() + "/" + name);
    ASSERT_EQ(bpf_obj_pin(old.get(), retired.back().c_str()), 0) << std::strerror(errno);
  }
  auto l = load(options());
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->reused_pinned_maps());
  for (const std::string& path : retired) EXPECT_NE(access(path.c_str(), F_OK), 0) << path;
}

TEST_F(LoaderTest, ARestartKeepsEstablishedFlowsOnTheirBackends) {
  CpuPin pin;
  ASSERT_GE(pin.cpu(), 0);
  const World before = basic_world();
  // The same VIP with every slot moved to the next backend: every flow's
  // Maglev choice differs from before.
  World after = before;
  after.vips[0].table = spread(251, {2, 3, 1});
  constexpr int kFlows = 24;
  std::vector<uint32_t> chosen(kFlows);
  uint32_t first_prog = 0;
  {
    auto a = load(options());
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->reused_pinned_maps());
    ASSERT_OK(a->attach());
    ASSERT_OK(a->publish(before.snapshot()));
    for (int i = 0; i < kFlows; ++i) {
      const Bytes f = tcp_frame(client(i), cport(i));
      ASSERT_EQ(before.backend_of(run(*a, f)), before.choice(kVipId, tcp_key(client(i), cport(i))));
      chosen[i] = before.backend_of(run(*a, f));  // the second packet: established
    }
    first_prog = a->prog_id();
  }  // destroyed: neither detached nor unpinned
  EXPECT_EQ(attached(ifindex_).skb_prog_id, first_prog) << "the program must keep running";

  auto b = load(options());
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->reused_pinned_maps());
  sluice_flow_value v{};
  const sluice_flow_key k0 = tcp_key(client(0), cport(0));
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(b->skeleton()->maps.sluice_flows), &k0, &v), 0);
  EXPECT_EQ(v.state, SLUICE_FLOW_ESTABLISHED);
  EXPECT_EQ(v.backend_id, chosen[0]);

  ASSERT_OK(b->attach());  // replaces the first program in place
  EXPECT_EQ(attached(ifindex_).skb_prog_id, b->prog_id());
  EXPECT_NE(b->prog_id(), first_prog);
  ASSERT_OK(b->publish(after.snapshot()));
  for (int i = 0; i < kFlows; ++i) {
    const sluice_flow_key k = tcp_key(client(i), cport(i));
    ASSERT_NE(after.choice(kVipId, k), chosen[i]);
    EXPECT_EQ(after.backend_of(run(*b, tcp_frame(client(i), cport(i)))), chosen[i]) << "flow " << i;
  }
  // A new flow follows the new table.
  const int n = kFlows + 1;
  EXPECT_EQ(after.backend_of(run(*b, tcp_frame(client(n), cport(n)))),
            after.choice(kVipId, tcp_key(client(n), cport(n))));

  ASSERT_OK(b->detach());
  ASSERT_OK(b->unpin());
  EXPECT_LT(bpf_obj_get((pin_root() + "/sluice_flows").c_str()), 0);
  EXPECT_NE(access(pin_root().c_str(), F_OK), 0);
}

// Established flows per backend, from flow entries written as the packet
// path writes them: ESTABLISHED and within the idle timeout count; expired
// and probation values do not.
TEST_F(LoaderTest, ActiveFlowsCountsLiveEstablishedEntriesPerBackend) {
  LoaderOptions o = options();
  o.tcp_idle_ms = 60 * 1000;
  o.udp_idle_ms = 5 * 1000;
  auto l = load(o);
  ASSERT_TRUE(l);
  const int fd = bpf_map__fd(l->skeleton()->maps.sluice_flows);
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // the packet path's clock
  const uint32_t now = static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000 +
                                             static_cast<uint64_t>(ts.tv_nsec) / 1000000);

  uint16_t port = 1000;
  auto put = [&](uint8_t proto, uint32_t backend, uint32_t last_seen, uint8_t state) {
    sluice_flow_key k = tcp_key(client(1), port++);
    k.proto = proto;
    sluice_flow_value v{};
    v.backend_id = backend;
    v.last_seen = last_seen;
    v.state = state;
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0) << std::strerror(errno);
  };
  constexpr uint8_t kEst = SLUICE_FLOW_ESTABLISHED;
  constexpr uint8_t kUdp = SLUICE_IPPROTO_UDP;
  // Backend 100: three live TCP flows.
  put(kTcp, 100, now, kEst);
  put(kTcp, 100, now - 59 * 1000, kEst);
  put(kTcp, 100, now - 1000, kEst);
  // Backend 200: one live UDP flow; one UDP flow past the UDP timeout that
  // a TCP flow would still be within; one TCP flow past the TCP timeout.
  put(kUdp, 200, now - 1000, kEst);
  put(kUdp, 200, now - 6000, kEst);
  put(kTcp, 200, now - 61 * 1000, kEst);
  // Backend 300: a stamp a tick ahead of now is fresh (signed difference);
  // a PROBATION value is not an established flow.
  put(kTcp, 300, now + 4, kEst);
  put(kTcp, 300, now, SLUICE_FLOW_PROBATION);
  // Backend 400: only expired.
  put(kUdp, 400, now - 3600 * 1000, kEst);
  constexpr uint64_t kKeys = 9;

  auto a = l->active_flows();
  ASSERT_OK(a);
  const std::map<uint32_t, uint64_t> want = {{100, 3}, {200, 1}, {300, 1}};
  EXPECT_EQ(a.value().by_backend, want);
  EXPECT_EQ(a.value().keys_read, kKeys);
  EXPECT_TRUE(a.value().complete);

  // A bounded walk stops where it is told.
  auto part = l->active_flows(4);
  ASSERT_OK(part);
  EXPECT_FALSE(part.value().complete);
  EXPECT_LE(part.value().keys_read, 4u);
  uint64_t counted = 0;
  for (const auto& [id, n] : part.value().by_backend) counted += n;
  EXPECT_LE(counted, 4u);

  // Published and forwarded flows count too: two packets establish a flow.
  const World w = basic_world();
  ASSERT_OK(l->publish(w.snapshot()));
  {
    CpuPin pin;
    ASSERT_GE(pin.cpu(), 0);
    const Bytes f = tcp_frame(client(7), cport(7));
    const uint32_t b = w.backend_of(run(*l, f));
    ASSERT_EQ(w.backend_of(run(*l, f)), b);
    auto after = l->active_flows();
    ASSERT_OK(after);
    EXPECT_EQ(after.value().by_backend.count(b), 1u);
    EXPECT_EQ(after.value().keys_read, kKeys + 1);
  }
  ASSERT_OK(l->unpin());
}

/// The CPUs whose sluice_flow_cache holds `key` (the first 40 bytes of a
/// slot are its flow key; any slot, whatever its age).
std::vector<size_t> cpus_caching(const Loader& l, const sluice_flow_key& key) {
  bpf_map* m = l.skeleton()->maps.sluice_flow_cache;
  const size_t value = bpf_map__value_size(m);
  const auto ncpus = static_cast<size_t>(libbpf_num_possible_cpus());
  std::vector<uint8_t> all(value * ncpus);
  std::vector<size_t> out;
  for (uint32_t i = 0; i < bpf_map__max_entries(m); ++i) {
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(m), &i, all.data()), 0);
    for (size_t c = 0; c < ncpus; ++c)
      if (std::memcmp(all.data() + c * value, &key, sizeof key) == 0) out.push_back(c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The per-CPU established-flow cache in front of the shared table: a flow
// seen twice within a millisecond gets a slot on that CPU, which keeps
// its backend through a table change like the shared entry; a SYN that
// re-places the reused 4-tuple empties the flow's slot on every CPU before
// it is sent on, so the new connection's next packet, on whichever CPU,
// follows the SYN's backend.
TEST_F(LoaderTest, ASynReplacingAFlowEmptiesItsCachedSlotOnEveryCpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(static_cast<size_t>(c), &allowed)) cpus.push_back(c);
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs to run on";
  auto l = load(options());
  ASSERT_TRUE(l);
  ASSERT_EQ(l->skeleton()->rodata->sluice_flow_cache_jiffies, SLUICE_FLOW_CACHE_JIFFIES);
  World w = basic_world();
  w.vips[0].table = spread(251, {1});
  ASSERT_OK(l->publish(w.snapshot()));
  const Bytes ack = tcp_frame(client(9), cport(9));
  const sluice_flow_key key = tcp_key(client(9), cport(9));
  w.vips[0].table = spread(251, {2});
  {
    OnCpu on(cpus[0]);
    ASSERT_TRUE(on.ok());
    ASSERT_EQ(w.backend_of(run(*l, ack)), 1u);
    ASSERT_EQ(w.backend_of(run(*l, ack)), 1u);  // established
    ASSERT_OK(l->publish(w.snapshot()));        // new flows go to 2 now
  }
  // A burst on each CPU: two of its packets meet within a millisecond.
  for (int cpu : cpus) {
    OnCpu on(cpu);
    ASSERT_TRUE(on.ok());
    for (int i = 0; i < 50; ++i) ASSERT_EQ(w.backend_of(run(*l, ack)), 1u) << "CPU " << cpu;
  }
  const std::vector<size_t> both = {static_cast<size_t>(cpus[0]), static_cast<size_t>(cpus[1])};
  ASSERT_EQ(cpus_caching(*l, key), both);

  {
    OnCpu on(cpus[0]);
    ASSERT_TRUE(on.ok());
    const XdpRun syn = run(*l, tcp_frame(client(9), cport(9), kVip, 0x02));
    EXPECT_EQ(w.backend_of(syn), 2u) << "a SYN is placed by the current table";
  }
  EXPECT_TRUE(cpus_caching(*l, key).empty()) << "the SYN emptied every CPU's slot";
  OnCpu on(cpus[1]);
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(w.backend_of(run(*l, ack)), 2u) << "the new connection, on the other CPU";
}

// Idle timeouts under a second turn the cache off: a slot answers for up
// to SLUICE_FLOW_CACHE_JIFFIES (160 ms at HZ=100) without refreshing the
// shared entry's last_seen.
TEST_F(LoaderTest, ShortIdleTimeoutsTurnTheFlowCacheOff) {
  LoaderOptions o = options();
  o.udp_idle_ms = SLUICE_FLOW_CACHE_MIN_IDLE_MS - 1;
  auto l = load(o);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->skeleton()->rodata->sluice_flow_cache_jiffies, 0u);
  CpuPin pin;
  World w = basic_world();
  ASSERT_OK(l->publish(w.snapshot()));
  const Bytes f = tcp_frame(client(3), cport(3));
  for (int i = 0; i < 20; ++i) ASSERT_EQ(run(*l, f).verdict, XDP_TX);
  EXPECT_TRUE(cpus_caching(*l, tcp_key(client(3), cport(3))).empty());
}

TEST_F(LoaderTest, ASwappedTableIsSeenByTheNextPacketAndARemovedVipPasses) {
  CpuPin pin;
  auto l = load(options());
  ASSERT_TRUE(l);
  World w = basic_world();
  w.vips[0].table = spread(251, {1});
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame(client(1), cport(1)))), 1u);

  w.vips[0].table = spread(251, {2});
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame(client(2), cport(2)))), 2u) << "a new flow";
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame(client(1), cport(1)))), 1u) << "a known flow stays";

  // An IPv6 VIP over IPv6 backends beside it.
  w.backends.push_back(backend(11, "2001:db8:1::1"));
  w.backends.push_back(backend(12, "2001:db8:1::2"));
  w.vips.push_back({"2001:db8::1", 80, kTcp, 5, spread(251, {12})});
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame("2001:db8:c::7", 4000, "2001:db8::1"))), 12u);
  w.vips.back().table = spread(251, {11});
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame("2001:db8:c::8", 4000, "2001:db8::1"))), 11u);

  // VIP 10.0.0.1 removed and its vip_id given to a new VIP in one publish:
  // the old address passes, the new one is balanced with its own table.
  const auto before = l->global_stats();
  ASSERT_OK(before);
  w.vips[0] = {"10.0.0.9", 80, kTcp, kVipId, spread(251, {3})};
  ASSERT_OK(l->publish(w.snapshot()));
  const XdpRun r = run(*l, tcp_frame(client(3), cport(3)));
  EXPECT_EQ(r.verdict, XDP_PASS);
  const auto after = l->global_stats();
  ASSERT_OK(after);
  EXPECT_EQ(after.value().pass_packets - before.value().pass_packets, 1u);
  EXPECT_EQ(after.value().tx_packets - before.value().tx_packets, 0u);
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame(client(4), cport(4), "10.0.0.9"))), 3u);
  const auto vs = l->vip_stats(kVipId);
  ASSERT_OK(vs);
  EXPECT_EQ(vs.value().packets, 1u) << "the reused vip_id's counters start from zero";

  // Every VIP removed: their tables go too.
  w.vips.clear();
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(run(*l, tcp_frame(client(5), cport(5), "10.0.0.9")).verdict, XDP_PASS);
  const int maglev_fd = bpf_map__fd(l->skeleton()->maps.sluice_maglev);
  for (uint32_t id : {kVipId, 5u}) {
    uint32_t inner = 0;
    EXPECT_NE(bpf_map_lookup_elem(maglev_fd, &id, &inner), 0) << "table of vip_id " << id;
  }
}

TEST_F(LoaderTest, ATableOfAnotherSizeIsUsedWithItsOwnSize) {
  CpuPin pin;
  auto l = load(options());
  ASSERT_TRUE(l);
  World w = basic_world();
  int flow = 0;
  for (uint32_t m : {251u, 1031u, 257u, 65537u, 251u}) {
    SCOPED_TRACE("M = " + std::to_string(m));
    // Slot i -> backend 1 + (i * 7 / m) % 3: neighbouring M give different
    // answers for most flows.
    std::vector<uint32_t> t(m);
    for (uint32_t i = 0; i < m; ++i) t[i] = 1 + static_cast<uint32_t>((uint64_t{i} * 7 / m) % 3);
    w.vips[0].table = t;
    ASSERT_OK(l->publish(w.snapshot()));
    for (int i = 0; i < 40; ++i, ++flow) {
      const Bytes f = tcp_frame(client(flow), cport(flow), kVip, 0x02);
      ASSERT_EQ(w.backend_of(run(*l, f)), w.choice(kVipId, tcp_key(client(flow), cport(flow))))
          << "flow " << flow;
    }
  }
}

// Packets run on one CPU while snapshots that resize the table, remove a
// backend and add another are published from this thread: with the
// publication order of publish.cpp, every packet is forwarded to a backend
// of the old or the new snapshot; none reads past a table or meets a
// backend that is not VALID yet (both would be NO_BACKEND drops).
TEST_F(LoaderTest, PacketsInFlightDuringPublicationAreAllForwarded) {
  auto l = load(options());
  ASSERT_TRUE(l);
  World a = basic_world();  // {1, 2, 3}, M = 251
  World b = a;              // {1, 2, 4}, M = 1031
  b.backends[2] = backend(4, "10.1.0.4");
  b.vips[0].table = spread(1031, {4, 2, 1});
  World c = a;  // {1, 3}, M = 257
  c.backends.erase(c.backends.begin() + 1);
  c.vips[0].table = spread(257, {3, 1});
  const World* const cycle[] = {&b, &c, &a};
  ASSERT_OK(l->publish(a.snapshot()));

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::atomic<int> not_forwarded{0};
  std::atomic<int> unknown_backend{0};
  std::thread packets([&] {
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      // A new flow every packet, so each one consults the VIP's table.
      const XdpRun r = run_xdp(l->prog_fd(), tcp_frame(client(i), cport(i % 50000), kVip, 0x02));
      ++sent;
      if (r.err != 0 || r.verdict != XDP_TX) {
        ++not_forwarded;
        continue;
      }
      const uint32_t id =
          a.backend_of(r) != SLUICE_BACKEND_NONE ? a.backend_of(r) : b.backend_of(r);
      if (id == SLUICE_BACKEND_NONE) ++unknown_backend;
    }
  });
  constexpr int kPublishes = 30;
  for (int i = 0; i < kPublishes; ++i) {
    const auto s = l->publish(cycle[i % 3]->snapshot());
    EXPECT_TRUE(s.ok()) << s.error().message;
  }
  stop = true;
  packets.join();
  EXPECT_GT(sent.load(), kPublishes);
  EXPECT_EQ(not_forwarded.load(), 0) << "of " << sent.load() << " packets";
  EXPECT_EQ(unknown_backend.load(), 0);
  const auto g = l->global_stats();
  ASSERT_OK(g);
  EXPECT_EQ(g.value().drops[SLUICE_DROP_NO_BACKEND], 0u);
}

TEST_F(LoaderTest, ARemovedBackendIsAMissAndItsSlotGoesOnlyToANewId) {
  CpuPin pin;
  auto l = load(options());
  ASSERT_TRUE(l);
  const int backends_fd = bpf_map__fd(l->skeleton()->maps.sluice_backends);
  World w = basic_world();
  ASSERT_OK(l->publish(w.snapshot()));
  const Bytes f = tcp_frame(client(7), cport(7));
  const uint32_t b = w.backend_of(run(*l, f));
  ASSERT_EQ(w.backend_of(run(*l, f)), b);  // established

  // Drained: the flow stays.
  for (auto& x : w.backends)
    if (x.id == b) x.flags = SLUICE_BACKEND_DRAINING;
  std::vector<uint32_t> others;
  for (uint32_t id : {1u, 2u, 3u})
    if (id != b) others.push_back(id);
  w.vips[0].table = spread(251, others);
  ASSERT_OK(l->publish(w.snapshot()));
  sluice_backend slot{};
  ASSERT_EQ(bpf_map_lookup_elem(backends_fd, &b, &slot), 0);
  EXPECT_EQ(slot.flags, SLUICE_BACKEND_VALID | SLUICE_BACKEND_DRAINING);
  EXPECT_EQ(w.backend_of(run(*l, f)), b);

  // Removed: the slot keeps the id but is not VALID; the flow moves.
  std::erase_if(w.backends, [&](const sluice_backend& x) { return x.id == b; });
  ASSERT_OK(l->publish(w.snapshot()));
  ASSERT_EQ(bpf_map_lookup_elem(backends_fd, &b, &slot), 0);
  EXPECT_EQ(slot.flags, 0u);
  EXPECT_EQ(slot.id, b);
  const uint32_t moved = w.backend_of(run(*l, f));
  EXPECT_NE(moved, b);
  EXPECT_NE(moved, SLUICE_BACKEND_NONE);

  // The slot to a new id, in a later publish.
  const uint32_t reused = b + SLUICE_MAX_BACKENDS;
  w.backends.push_back(backend(reused, "10.1.0.9"));
  w.vips[0].table = spread(251, {reused});
  ASSERT_OK(l->publish(w.snapshot()));
  ASSERT_EQ(bpf_map_lookup_elem(backends_fd, &b, &slot), 0);
  EXPECT_EQ(slot.id, reused);
  EXPECT_EQ(slot.flags, SLUICE_BACKEND_VALID);
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame(client(8), cport(8)))), reused);

  // Removing an id and giving its slot to another in the same publish is
  // refused, and nothing changes.
  World busy = w;
  busy.backends.back() = backend(reused + SLUICE_MAX_BACKENDS, "10.1.0.10");
  busy.vips[0].table = spread(251, {reused + SLUICE_MAX_BACKENDS});
  xdp::Status s = l->publish(busy.snapshot());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EBUSY) << s.error().message;
  ASSERT_EQ(bpf_map_lookup_elem(backends_fd, &b, &slot), 0);
  EXPECT_EQ(slot.id, reused);
  EXPECT_EQ(w.backend_of(run(*l, tcp_frame(client(9), cport(9)))), reused);
}

TEST_F(LoaderTest, InvalidSnapshotsAreRefusedWhole) {
  auto l = load(options());
  ASSERT_TRUE(l);
  const World good = basic_world();
  ASSERT_OK(l->publish(good.snapshot()));
  uint32_t inner_before = 0;
  const int maglev_fd = bpf_map__fd(l->skeleton()->maps.sluice_maglev);
  ASSERT_EQ(bpf_map_lookup_elem(maglev_fd, &kVipId, &inner_before), 0);

  struct Case {
    const char* what;
    World world;
    const char* says;
  };
  std::vector<Case> cases;
  {
    World w = good;
    w.vips[0].table[5] = 99;
    cases.push_back({"table names an unknown backend", w, "backend id 99"});
  }
  {
    World w = good;
    w.vips[0].table.resize(250);
    cases.push_back({"table size not prime", w, "not a prime"});
  }
  {
    World w = good;
    w.vips.push_back({"10.0.0.2", 80, kTcp, kVipId, spread(251, {1})});
    cases.push_back({"vip_id twice", w, "taken twice"});
  }
  {
    World w = good;
    w.vips[0].vip_id = 2;
    cases.push_back({"vip_id of an existing VIP changed", w, "vip_id changed"});
  }
  {
    World w = good;
    w.backends[0] = backend(1, "10.1.0.99");
    cases.push_back({"backend id changed its address", w, "new address needs a new id"});
  }
  {
    World w = good;
    w.backends.push_back(backend(1 + SLUICE_MAX_BACKENDS, "10.1.0.50"));
    cases.push_back({"two ids in one slot", w, "same slot"});
  }
  {
    World w = good;
    w.vips[0].proto = 47;
    cases.push_back({"protocol neither TCP nor UDP", w, "TCP or UDP"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const xdp::Status s = l->publish(c.world.snapshot());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, -EINVAL);
    EXPECT_NE(s.error().message.find(c.says), std::string::npos) << s.error().message;
  }
  uint32_t inner_after = 0;
  ASSERT_EQ(bpf_map_lookup_elem(maglev_fd, &kVipId, &inner_after), 0);
  EXPECT_EQ(inner_after, inner_before) << "a refused snapshot wrote a table";
}

TEST_F(LoaderTest, ARestartedLoaderKnowsWhatIsPublished) {
  const World w = basic_world();
  uint32_t inner_before = 0;
  {
    auto a = load(options());
    ASSERT_TRUE(a);
    ASSERT_OK(a->publish(w.snapshot()));
    ASSERT_EQ(
        bpf_map_lookup_elem(bpf_map__fd(a->skeleton()->maps.sluice_maglev), &kVipId, &inner_before),
        0);
  }
  auto b = load(options());
  ASSERT_TRUE(b);
  const int maglev_fd = bpf_map__fd(b->skeleton()->maps.sluice_maglev);
  ASSERT_OK(b->publish(w.snapshot()));
  uint32_t inner = 0;
  ASSERT_EQ(bpf_map_lookup_elem(maglev_fd, &kVipId, &inner), 0);
  EXPECT_EQ(inner, inner_before) << "an unchanged table was rewritten";
  World changed = w;
  changed.vips[0].table = spread(251, {3, 2, 1});
  ASSERT_OK(b->publish(changed.snapshot()));
  ASSERT_EQ(bpf_map_lookup_elem(maglev_fd, &kVipId, &inner), 0);
  EXPECT_NE(inner, inner_before);
}

// The direct-mapped VIP slots hold each published VIP (and nothing once it
// is removed); a loader that finds them out of line with sluice_vips (pins
// of a version without them, or a publish that failed half-way) rewrites
// them before it returns.
TEST_F(LoaderTest, VipSlotsFollowThePublishedVips) {
  CpuPin pin;
  const World w = basic_world();
  const sluice_flow_key k = tcp_key(client(0), cport(0));
  const uint32_t index = sluice_vip_slot_index(&k.dst, k.dport, k.proto);
  sluice_vip_slot slot{};
  {
    auto a = load(options());
    ASSERT_TRUE(a);
    ASSERT_OK(a->publish(w.snapshot()));
    const int slots = bpf_map__fd(a->skeleton()->maps.sluice_vip_slots);
    ASSERT_EQ(bpf_map_lookup_elem(slots, &index, &slot), 0);
    EXPECT_EQ(slot.flags, 0u);
    EXPECT_EQ(slot.family, SLUICE_FAMILY_IPV4);
    EXPECT_EQ(slot.port, k.dport);
    EXPECT_EQ(slot.addr.v4, k.dst.v4);
    EXPECT_EQ(slot.meta.vip_id, kVipId);
    EXPECT_EQ(slot.meta.table_size, 251u);
    const sluice_vip_slot empty{};
    ASSERT_EQ(bpf_map_update_elem(slots, &index, &empty, BPF_ANY), 0);
    EXPECT_EQ(run(*a, tcp_frame(client(0), cport(0))).verdict, XDP_PASS)
        << "an empty slot must mean: no VIP";
  }
  auto b = load(options());
  ASSERT_TRUE(b);
  const int slots = bpf_map__fd(b->skeleton()->maps.sluice_vip_slots);
  ASSERT_EQ(bpf_map_lookup_elem(slots, &index, &slot), 0);
  EXPECT_EQ(slot.meta.vip_id, kVipId) << "load() must restore the slot from sluice_vips";
  EXPECT_EQ(slot.flags, 0u);
  EXPECT_EQ(run(*b, tcp_frame(client(0), cport(0))).verdict, XDP_TX);

  World none = w;
  none.vips.clear();
  ASSERT_OK(b->publish(none.snapshot()));
  ASSERT_EQ(bpf_map_lookup_elem(slots, &index, &slot), 0);
  EXPECT_EQ(slot.family, 0u);
  EXPECT_EQ(slot.flags, 0u);
}

TEST_F(LoaderTest, CountersAreSummedOverCpus) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(static_cast<size_t>(c), &allowed)) cpus.push_back(c);
  auto l = load(options());
  ASSERT_TRUE(l);
  World w = basic_world();
  w.vips[0].table = spread(251, {2});
  ASSERT_OK(l->publish(w.snapshot()));
  const auto g0 = l->global_stats_per_cpu();
  ASSERT_OK(g0);
  const int sends[2] = {3, 5};
  int total = 0;
  for (size_t i = 0; i < cpus.size(); ++i) {
    OnCpu on(cpus[i]);
    ASSERT_TRUE(on.ok()) << "cannot run on CPU " << cpus[i];
    for (int n = 0; n < sends[i]; ++n, ++total)
      ASSERT_EQ(run(*l, tcp_frame(client(total), cport(total))).verdict, XDP_TX);
  }
  const auto g = l->global_stats();
  const auto per = l->global_stats_per_cpu();
  ASSERT_OK(g);
  ASSERT_OK(per);
  uint64_t before = 0;
  for (const auto& s : g0.value()) before += s.rx_packets;
  EXPECT_EQ(g.value().rx_packets - before, static_cast<uint64_t>(total));
  EXPECT_EQ(g.value().tx_packets, static_cast<uint64_t>(total));
  for (size_t i = 0; i < cpus.size(); ++i) {
    const auto c = static_cast<size_t>(cpus[i]);
    EXPECT_EQ(per.value()[c].rx_packets - g0.value()[c].rx_packets, static_cast<uint64_t>(sends[i]))
        << "CPU " << c;
  }
  const auto vs = l->vip_stats(kVipId);
  ASSERT_OK(vs);
  EXPECT_EQ(vs.value().packets, static_cast<uint64_t>(total));
  EXPECT_EQ(vs.value().new_flows, static_cast<uint64_t>(total));
  const auto bs = l->backend_stats(2);
  ASSERT_OK(bs);
  EXPECT_EQ(bs.value().packets, static_cast<uint64_t>(total));
  const auto bs1 = l->backend_stats(1);
  ASSERT_OK(bs1);
  EXPECT_EQ(bs1.value().packets, 0u);
  const auto bad = l->vip_stats(SLUICE_MAX_VIPS);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, -EINVAL);
  RecordProperty("cpus_used", static_cast<int>(cpus.size()));
}

TEST_F(LoaderTest, TheResolverFindsNextHopsInTheKernelsTables) {
  auto r = xdp::NextHopResolver::open();
  ASSERT_OK(r);
  auto& res = r.value();
  const Mac peer0 = mac_of(ns_->peer(), "peer0");
  const Mac lb0 = mac_of(ns_->lb(), "lb0");
  const int lb1 = static_cast<int>(if_nametoindex("lb1"));

  struct Case {
    const char* dst;
    int ifindex;
    bool via_gateway;
    const char* neighbour;
  };
  const Case cases[] = {
      {"10.200.0.2", ifindex_, false, "10.200.0.2"},    // on-link
      {"10.250.3.4", ifindex_, true, "10.200.0.2"},     // through a gateway
      {"fd00:200::2", ifindex_, false, "fd00:200::2"},  // IPv6 on-link
      {"fd00:250::9", ifindex_, true, "fd00:200::2"},   // IPv6 through a gateway
      {"10.201.0.2", lb1, false, "10.201.0.2"},         // another interface
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dst);
    auto hop = res.resolve(addr(c.dst), kResolveWait);
    ASSERT_OK(hop);
    EXPECT_EQ(hop.value().ifindex, c.ifindex);
    EXPECT_EQ(hop.value().via_gateway, c.via_gateway);
    EXPECT_EQ(hop.value().neighbour, addr(c.neighbour));
    if (c.ifindex == ifindex_) {
      EXPECT_EQ(hop.value().dst_mac, peer0);
      EXPECT_EQ(hop.value().src_mac, lb0);
    }
  }

  struct Bad {
    const char* dst;
    int code;
  };
  const Bad bad[] = {
      {"10.200.0.1", -EADDRNOTAVAIL},  // this host
      {"192.0.2.1", -ENETUNREACH},     // no route (no default route in the namespace)
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.dst);
    auto hop = res.resolve(addr(b.dst), kResolveWait);
    ASSERT_FALSE(hop.ok());
    EXPECT_EQ(hop.error().code, b.code) << hop.error().message;
    EXPECT_NE(hop.error().message.find(b.dst), std::string::npos) << hop.error().message;
  }
  // On-link, but nobody answers: not resolved within the wait.
  auto silent = res.resolve(addr("10.200.0.77"), std::chrono::milliseconds(300));
  ASSERT_FALSE(silent.ok());
  EXPECT_TRUE(silent.error().code == -ETIMEDOUT || silent.error().code == -EHOSTUNREACH)
      << silent.error().message;
}

/// Backends in two subnets behind two interfaces, and one without a route:
/// 10.250.1.1 through the gateway 10.200.0.2 on lb0, 10.201.0.2 on-link
/// on lb1, 192.0.2.1 unreachable. One TCP VIP (vip_id 1) over them.
World split_world() {
  World w;
  w.backends = {backend(1, "10.250.1.1"), backend(2, "10.201.0.2"), backend(3, "192.0.2.1")};
  w.vips.push_back({kVip, 80, kTcp, kVipId, spread(251, {1, 2, 3})});
  w.next_hop.reset();
  return w;
}

/// The first `n` client indexes i whose flow (client(i), cport(i)) Maglev
/// gives to backend `id` of `w`.
std::vector<int> clients_of(const World& w, uint32_t id, size_t n) {
  std::vector<int> out;
  for (int i = 0; i < 5000 && out.size() < n; ++i)
    if (w.choice(kVipId, tcp_key(client(i), cport(i))) == id) out.push_back(i);
  EXPECT_EQ(out.size(), n) << "too few clients reach backend " << id;
  return out;
}

// Each backend gets the next hop the kernel's tables give for its own
// address: one through the gateway behind lb0 (XDP_TX to peer0), one
// on-link behind lb1 (XDP_REDIRECT to peer1). One that cannot be resolved
// is a counted drop, never sent to another backend's neighbour, until a
// static next hop gives it a fallback.
TEST_F(LoaderTest, EachBackendGetsTheNextHopOfItsOwnAddress) {
  CpuPin pin;
  auto l = load(options());
  ASSERT_TRUE(l);
  const World w = split_world();
  ASSERT_OK(l->publish(w.snapshot()));
  std::map<uint32_t, std::vector<int>> cl;
  for (uint32_t id : {1u, 2u, 3u}) cl[id] = clients_of(w, id, 4);
  // The k-th flow of backend `id`.
  const auto frame_to = [&](uint32_t id, size_t k = 0) {
    const int i = cl.at(id).at(k);
    return tcp_frame(client(i), cport(i));
  };
  const auto dropped = [&](const Bytes& frame) {
    const auto g0 = l->global_stats();
    EXPECT_EQ(run(*l, frame).verdict, XDP_DROP);
    const auto g1 = l->global_stats();
    return g1.value().drops[SLUICE_DROP_TX_FAILED] - g0.value().drops[SLUICE_DROP_TX_FAILED];
  };
  // Nothing resolved, no static next hop: every backend's packets drop.
  for (uint32_t id : {1u, 2u, 3u}) EXPECT_EQ(dropped(frame_to(id)), 1u) << "backend " << id;

  auto res = xdp::NextHopResolver::open();
  ASSERT_OK(res);
  const IpAddress targets[] = {addr("10.250.1.1"), addr("10.201.0.2"), addr("192.0.2.1")};
  const auto partial = l->refresh_next_hops(res.value(), targets, kResolveWait);
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.error().code, -ENETUNREACH) << partial.error().message;
  EXPECT_NE(partial.error().message.find("192.0.2.1"), std::string::npos)
      << partial.error().message;

  const Mac peer0 = mac_of(ns_->peer(), "peer0");
  const Mac peer1 = mac_of(ns_->peer(), "peer1");
  const Mac lb0 = mac_of(ns_->lb(), "lb0");
  const Mac lb1_mac = mac_of(ns_->lb(), "lb1");
  const auto lb1 = static_cast<uint32_t>(if_nametoindex("lb1"));
  struct Want {
    uint32_t id;
    uint32_t verdict;
    Mac dst, src;
  };
  const Want want[] = {{1, XDP_TX, peer0, lb0}, {2, XDP_REDIRECT, peer1, lb1_mac}};
  for (int round = 1; round <= 2; ++round) {  // a new flow, then its second packet
    for (const Want& x : want) {
      SCOPED_TRACE("backend " + std::to_string(x.id) + ", packet " + std::to_string(round));
      const XdpRun r = run(*l, frame_to(x.id, 1));
      ASSERT_EQ(r.verdict, x.verdict);
      ASSERT_GE(r.out.size(), 14u + 20u);
      EXPECT_TRUE(std::equal(x.dst.begin(), x.dst.end(), r.out.begin())) << "destination MAC";
      EXPECT_TRUE(std::equal(x.src.begin(), x.src.end(), r.out.begin() + 6)) << "source MAC";
      const IpAddress b = addr(x.id == 1 ? "10.250.1.1" : "10.201.0.2");
      EXPECT_TRUE(std::equal(b.ip.bytes, b.ip.bytes + 4, r.out.begin() + 14 + 16))
          << "outer destination";
    }
  }
  EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{lb1});
  EXPECT_EQ(dropped(frame_to(3, 1)), 1u) << "the unresolved backend";

  // A static next hop: the fallback of the unresolved backend only.
  ASSERT_OK(l->set_next_hop(World::static_next_hop()));
  XdpRun r = run(*l, frame_to(3, 2));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_TRUE(std::equal(kGatewayMac.begin(), kGatewayMac.end(), r.out.begin()));
  r = run(*l, frame_to(1, 2));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_TRUE(std::equal(peer0.begin(), peer0.end(), r.out.begin()));
  EXPECT_EQ(run(*l, frame_to(2, 2)).verdict, XDP_REDIRECT);
  EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{lb1});

  // A refresh that no longer resolves backend 2 (here: not asked for it)
  // takes its own next hop away: the static one, and lb1 leaves the devmap.
  const IpAddress only_first[] = {addr("10.250.1.1")};
  ASSERT_OK(l->refresh_next_hops(res.value(), only_first, kResolveWait));
  r = run(*l, frame_to(2, 3));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_TRUE(std::equal(kGatewayMac.begin(), kGatewayMac.end(), r.out.begin()));
  EXPECT_TRUE(tx_ports(*l).empty());
}

// A backend's own next hop answers only for its id: a backend published
// after the resolution takes its address's next hop before its first
// packet, a restarted loader keeps them, and a slot reused by a new id
// does not inherit its predecessor's neighbour.
TEST_F(LoaderTest, BackendNextHopsFollowPublicationAndRestarts) {
  CpuPin pin;
  World w = split_world();
  w.backends.resize(1);  // 10.250.1.1 only
  w.vips[0].table = spread(251, {1});
  const Mac peer0 = mac_of(ns_->peer(), "peer0");
  const auto lb1 = static_cast<uint32_t>(if_nametoindex("lb1"));
  {
    auto l = load(options());
    ASSERT_TRUE(l);
    auto res = xdp::NextHopResolver::open();
    ASSERT_OK(res);
    // Resolved before the backends are published (the daemon's start).
    const IpAddress targets[] = {addr("10.250.1.1"), addr("10.201.0.2")};
    ASSERT_OK(l->refresh_next_hops(res.value(), targets, kResolveWait));
    ASSERT_OK(l->publish(w.snapshot()));
    XdpRun r = run(*l, tcp_frame(client(1), cport(1)));
    ASSERT_EQ(r.verdict, XDP_TX);
    EXPECT_TRUE(std::equal(peer0.begin(), peer0.end(), r.out.begin()));
    // 10.201.0.2 joins as id 2: its next hop is there with it.
    w.backends.push_back(backend(2, "10.201.0.2"));
    w.vips[0].table = spread(251, {2});
    ASSERT_OK(l->publish(w.snapshot()));
    EXPECT_EQ(run(*l, tcp_frame(client(2), cport(2))).verdict, XDP_REDIRECT);
    EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{lb1});
  }
  // A new loader on the pinned maps: the same next hops, before any
  // refresh of its own.
  auto l = load(options());
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->reused_pinned_maps());
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(run(*l, tcp_frame(client(3), cport(3))).verdict, XDP_REDIRECT);
  // Backend 2 removed: its next hop (and lb1 in the devmap) goes with the
  // next refresh.
  w.backends.pop_back();
  w.vips[0].table = spread(251, {1});
  ASSERT_OK(l->publish(w.snapshot()));
  EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{lb1});
  auto res = xdp::NextHopResolver::open();
  ASSERT_OK(res);
  const IpAddress first[] = {addr("10.250.1.1")};
  ASSERT_OK(l->refresh_next_hops(res.value(), first, kResolveWait));
  EXPECT_TRUE(tx_ports(*l).empty());
  // id 2 + SLUICE_MAX_BACKENDS takes its slot at an address nobody
  // resolved: dropped, not sent to peer1.
  w.backends.push_back(backend(2 + SLUICE_MAX_BACKENDS, "10.201.0.9"));
  w.vips[0].table = spread(251, {2 + SLUICE_MAX_BACKENDS});
  ASSERT_OK(l->publish(w.snapshot()));
  const auto g0 = l->global_stats();
  ASSERT_OK(g0);
  EXPECT_EQ(run(*l, tcp_frame(client(4), cport(4))).verdict, XDP_DROP);
  const auto g1 = l->global_stats();
  ASSERT_OK(g1);
  EXPECT_EQ(g1.value().drops[SLUICE_DROP_TX_FAILED] - g0.value().drops[SLUICE_DROP_TX_FAILED], 1u);
}

// The program's side of a next hop behind another interface, through the
// loader's set_next_hop: the devmap holds exactly the interface the next
// hop names, a frame goes out with XDP_REDIRECT rewritten exactly as with
// XDP_TX, and a next hop the devmap lacks is a counted drop, never a
// misforward.
TEST_F(LoaderTest, ANextHopBehindAnotherInterfaceIsAnXdpRedirect) {
  CpuPin pin;
  auto l = load(options());
  ASSERT_TRUE(l);
  World w = basic_world();
  ASSERT_OK(l->publish(w.snapshot()));
  const Bytes frame = tcp_frame(client(1), cport(1));
  const XdpRun tx = run(*l, frame);
  ASSERT_EQ(tx.verdict, XDP_TX);
  EXPECT_TRUE(tx_ports(*l).empty());

  const auto lb1 = static_cast<uint32_t>(if_nametoindex("lb1"));
  ASSERT_GT(lb1, 0u);
  sluice_next_hop nh = World::static_next_hop();
  nh.ifindex = lb1;
  ASSERT_OK(l->set_next_hop(nh));
  EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{lb1});
  const XdpRun redirected = run(*l, frame);
  EXPECT_EQ(redirected.verdict, XDP_REDIRECT);
  EXPECT_EQ(redirected.out, tx.out) << "the same frame, only the action differs";

  // This Loader's own interface by its ifindex: stored as 0, XDP_TX.
  nh.ifindex = static_cast<uint32_t>(ifindex_);
  ASSERT_OK(l->set_next_hop(nh));
  EXPECT_TRUE(tx_ports(*l).empty());
  sluice_next_hop stored{};
  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(l->skeleton()->maps.sluice_next_hop), &zero, &stored),
            0);
  EXPECT_EQ(stored.ifindex, 0u);
  EXPECT_EQ(run(*l, frame).verdict, XDP_TX);

  // An interface that does not exist is refused before anything changes.
  nh.ifindex = 0x7fff0000;
  auto refused = l->set_next_hop(nh);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, -EINVAL) << refused.error().message;
  EXPECT_EQ(run(*l, frame).verdict, XDP_TX);

  // A next hop written behind the loader's back, naming an interface the
  // devmap lacks: dropped and counted as tx_failed.
  const auto g0 = l->global_stats();
  ASSERT_OK(g0);
  stored.ifindex = lb1;
  ASSERT_EQ(
      bpf_map_update_elem(bpf_map__fd(l->skeleton()->maps.sluice_next_hop), &zero, &stored, 0), 0);
  EXPECT_EQ(run(*l, frame).verdict, XDP_DROP);
  const auto g1 = l->global_stats();
  ASSERT_OK(g1);
  EXPECT_EQ(g1.value().drops[SLUICE_DROP_TX_FAILED] - g0.value().drops[SLUICE_DROP_TX_FAILED], 1u);
  EXPECT_EQ(g1.value().tx_packets, g0.value().tx_packets);
}

// Native-mode XDP_REDIRECT needs an egress that can transmit XDP frames
// (ndo_xdp_xmit; a veth only while its peer has an XDP program or GRO): a
// next hop through one that cannot is refused like an unresolved one (the
// backend falls back to the static next hop, or is dropped as tx_failed)
// and reported, instead of its frames being counted sent and lost.
TEST_F(LoaderTest, ANativeNextHopThroughAnEgressThatCannotTransmitXdpIsNotUsed) {
  const auto lb1 = static_cast<int>(if_nametoindex("lb1"));
  ASSERT_GT(lb1, 0);
  auto features = xdp::xdp_features(lb1);
  if (!features.ok() && features.error().code == -EOPNOTSUPP && !bpf_required())
    GTEST_SKIP() << features.error().message;
  ASSERT_OK(features);
  EXPECT_EQ(features.value() & xdp::kXdpActNdoXmit, 0u) << "peer1 has no XDP program, no GRO";

  const Mac peer1 = mac_of(ns_->peer(), "peer1");
  const Mac lb1_mac = mac_of(ns_->lb(), "lb1");
  xdp::NextHops hops;
  xdp::NextHop hop;
  hop.ifindex = lb1;
  hop.neighbour = addr("10.1.0.2");
  std::copy(peer1.begin(), peer1.end(), hop.dst_mac.begin());
  std::copy(lb1_mac.begin(), lb1_mac.end(), hop.src_mac.begin());
  hops.entries.push_back({addr("10.1.0.2"), hop, {}});
  const uint32_t slot = 2;  // backend id 2
  const auto own_hop = [&](const Loader& l) {
    sluice_backend_hop h{};
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(l.skeleton()->maps.sluice_backend_hops), &slot, &h),
              0);
    return h;
  };

  {
    auto l = load(options(XdpMode::kNative));
    ASSERT_TRUE(l);
    ASSERT_OK(l->publish(basic_world().snapshot()));
    const xdp::Status s = l->apply_next_hops(hops);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, -EOPNOTSUPP);
    EXPECT_NE(s.error().message.find("backend 10.1.0.2: egress lb1 cannot transmit XDP frames"),
              std::string::npos)
        << s.error().message;
    EXPECT_TRUE(tx_ports(*l).empty()) << "lb1 must not enter the devmap";
    EXPECT_EQ(own_hop(*l).hop.ifindex, 0u) << "backend 2 keeps the static next hop";
    ASSERT_OK(l->unpin());
  }
  {
    // Generic mode sends redirected frames as skbs: any interface will do.
    auto l = load(options(XdpMode::kGeneric));
    ASSERT_TRUE(l);
    ASSERT_OK(l->publish(basic_world().snapshot()));
    ASSERT_OK(l->apply_next_hops(hops));
    EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{static_cast<uint32_t>(lb1)});
    ASSERT_OK(l->unpin());
  }
  {
    // With a program on peer1, lb1 can transmit, and the next hop is used.
    NetnsEnter peer(ns_->peer());
    ASSERT_TRUE(peer.error().empty()) << peer.error();
    const IpAddress pass_only[] = {addr("192.0.2.1")};
    auto decap = xdp::attach_decap("peer1", XdpMode::kNative, pass_only);
    ASSERT_OK(decap);
  }
  features = xdp::xdp_features(lb1);
  ASSERT_OK(features);
  EXPECT_NE(features.value() & xdp::kXdpActNdoXmit, 0u);
  auto l = load(options(XdpMode::kNative));
  ASSERT_TRUE(l);
  ASSERT_OK(l->publish(basic_world().snapshot()));
  ASSERT_OK(l->apply_next_hops(hops));
  EXPECT_EQ(tx_ports(*l), std::vector<uint32_t>{static_cast<uint32_t>(lb1)});
  EXPECT_EQ(own_hop(*l).hop.ifindex, static_cast<uint32_t>(lb1));
  ASSERT_OK(l->unpin());
}

// A failed attach (native mode where the driver has none: lo) takes back
// the pins its load made, and only those: maps an earlier instance pinned
// stay for it.
TEST_F(LoaderTest, AFailedAttachUnpinsOnlyWhatItsLoadPinned) {
  LoaderOptions o = options(XdpMode::kNative);
  o.ifname = "lo";
  {
    auto l = load(o);
    ASSERT_TRUE(l);
    EXPECT_FALSE(l->reused_pinned_maps());
    const xdp::Status a = l->attach();
    ASSERT_FALSE(a.ok()) << "native XDP on lo";
    ASSERT_OK(l->unpin_created());
    EXPECT_NE(access(pin_root().c_str(), F_OK), 0) << "pin folder still there";
  }
  auto first = load(options());
  ASSERT_TRUE(first);
  {
    auto l = load(o);  // the same pin folder: re-uses first's maps
    ASSERT_TRUE(l);
    EXPECT_TRUE(l->reused_pinned_maps());
    ASSERT_FALSE(l->attach().ok());
    ASSERT_OK(l->unpin_created());
  }
  EXPECT_EQ(access((pin_root() + "/sluice_flows").c_str(), F_OK), 0) << "first's maps unpinned";
  ASSERT_OK(first->unpin());
}

// Multi-armed end to end: clients' frames come in on lb0, the next hop is
// behind lb1, and the encapsulated frames come out of peer1 (the router's
// second arm), in both XDP modes. In native mode a veth only takes
// redirected frames while its peer has an XDP program: peer1 gets the
// decapsulator serving a VIP no frame carries, which passes everything.
TEST_F(LoaderTest, FramesLeaveThroughTheOtherInterfaceWhenTheNextHopIsThere) {
  const Mac peer1 = mac_of(ns_->peer(), "peer1");
  const Mac lb1_mac = mac_of(ns_->lb(), "lb1");
  const auto lb1 = static_cast<uint32_t>(if_nametoindex("lb1"));
  UniqueFd tx_sock, rx_sock;
  {
    NetnsEnter peer(ns_->peer());
    ASSERT_TRUE(peer.error().empty()) << peer.error();
    const IpAddress pass_only[] = {addr("192.0.2.1")};
    auto decap = xdp::attach_decap("peer1", XdpMode::kNative, pass_only);
    ASSERT_OK(decap);
    tx_sock = packet_socket("peer0");
    rx_sock = packet_socket("peer1");
    ASSERT_TRUE(tx_sock.valid() && rx_sock.valid()) << std::strerror(errno);
  }
  World w = basic_world();
  w.next_hop->ifindex = lb1;
  std::copy(peer1.begin(), peer1.end(), w.next_hop->dst_mac);
  std::copy(lb1_mac.begin(), lb1_mac.end(), w.next_hop->src_mac);
  int sent = 0;
  for (XdpMode mode : {XdpMode::kGeneric, XdpMode::kNative}) {
    SCOPED_TRACE(xdp::to_string(mode));
    auto l = load(options(mode));
    ASSERT_TRUE(l);
    ASSERT_OK(l->publish(w.snapshot()));
    ASSERT_OK(l->attach());
    const Bytes frame = tcp_frame(client(sent), cport(sent));
    ++sent;
    ASSERT_EQ(send(tx_sock.get(), frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()))
        << std::strerror(errno);
    // The client's packet inside IPv4-in-IPv4 toward one of 10.1.0.1-3,
    // addressed to peer1 from lb1.
    const Bytes out = receive_matching(rx_sock.get(), [&](const Bytes& f) {
      return f.size() == frame.size() + 20 && f[12] == 0x08 && f[13] == 0x00 && f[14 + 9] == 4 &&
             std::equal(frame.begin() + 14, frame.end(), f.begin() + 34);
    });
    ASSERT_FALSE(out.empty()) << "no encapsulated frame on peer1 within the deadline";
    EXPECT_TRUE(std::equal(peer1.begin(), peer1.end(), out.begin())) << "destination MAC";
    EXPECT_TRUE(std::equal(lb1_mac.begin(), lb1_mac.end(), out.begin() + 6)) << "source MAC";
    EXPECT_EQ(out[14 + 16], 10);
    EXPECT_EQ(out[14 + 17], 1);
    ASSERT_OK(l->detach());
    ASSERT_OK(l->unpin());
  }
}

// Backends in two subnets behind two interfaces, end to end: frames come
// in on lb0; those of the backend behind the gateway on lb0 go back out of
// lb0 to peer0, those of the backend on-link behind lb1 out of lb1 to
// peer1, each with its own neighbour's and interface's MACs, in both XDP
// modes. Both peers carry the pass-only decapsulator (native-mode veths
// take XDP frames only then).
TEST_F(LoaderTest, EachBackendsFramesLeaveThroughItsOwnInterface) {
  const Mac peer0 = mac_of(ns_->peer(), "peer0");
  const Mac peer1 = mac_of(ns_->peer(), "peer1");
  const Mac lb0 = mac_of(ns_->lb(), "lb0");
  const Mac lb1_mac = mac_of(ns_->lb(), "lb1");
  UniqueFd tx_sock, rx0, rx1;
  {
    NetnsEnter peer(ns_->peer());
    ASSERT_TRUE(peer.error().empty()) << peer.error();
    const IpAddress pass_only[] = {addr("192.0.2.1")};
    ASSERT_OK(xdp::attach_decap("peer0", XdpMode::kNative, pass_only));
    ASSERT_OK(xdp::attach_decap("peer1", XdpMode::kNative, pass_only));
    tx_sock = packet_socket("peer0");
    rx0 = packet_socket("peer0");
    rx1 = packet_socket("peer1");
    ASSERT_TRUE(tx_sock.valid() && rx0.valid() && rx1.valid()) << std::strerror(errno);
  }
  World w = split_world();
  w.backends.resize(2);
  w.vips[0].table = spread(251, {1, 2});
  const std::vector<int> to1 = clients_of(w, 1, 2);
  const std::vector<int> to2 = clients_of(w, 2, 2);
  auto res = xdp::NextHopResolver::open();
  ASSERT_OK(res);
  const IpAddress targets[] = {addr("10.250.1.1"), addr("10.201.0.2")};
  struct Way {
    const std::vector<int>& clients;
    int rx;
    IpAddress backend;
    Mac dst, src;
  };
  const Way ways[] = {{to1, rx0.get(), targets[0], peer0, lb0},
                      {to2, rx1.get(), targets[1], peer1, lb1_mac}};
  size_t run = 0;
  for (XdpMode mode : {XdpMode::kGeneric, XdpMode::kNative}) {
    SCOPED_TRACE(xdp::to_string(mode));
    auto l = load(options(mode));
    ASSERT_TRUE(l);
    ASSERT_OK(l->refresh_next_hops(res.value(), targets, kResolveWait));
    ASSERT_OK(l->publish(w.snapshot()));
    ASSERT_OK(l->attach());
    for (const Way& way : ways) {
      SCOPED_TRACE("backend " + way.backend.to_string());
      const int i = way.clients.at(run);
      const Bytes frame = tcp_frame(client(i), cport(i));
      ASSERT_EQ(send(tx_sock.get(), frame.data(), frame.size(), 0),
                static_cast<ssize_t>(frame.size()))
          << std::strerror(errno);
      const Bytes out = receive_matching(way.rx, [&](const Bytes& f) {
        return f.size() == frame.size() + 20 && f[12] == 0x08 && f[13] == 0x00 &&
               f[14 + 9] == 4 &&
               std::equal(way.backend.ip.bytes, way.backend.ip.bytes + 4, f.begin() + 14 + 16) &&
               std::equal(frame.begin() + 14, frame.end(), f.begin() + 34);
      });
      ASSERT_FALSE(out.empty()) << "no encapsulated frame on its interface within the deadline";
      EXPECT_TRUE(std::equal(way.dst.begin(), way.dst.end(), out.begin())) << "destination MAC";
      EXPECT_TRUE(std::equal(way.src.begin(), way.src.end(), out.begin() + 6)) << "source MAC";
    }
    ++run;
    ASSERT_OK(l->detach());
    ASSERT_OK(l->unpin());
  }
}

// bpffs: detection on a path that is not one, and mounting on a folder of
// the test's own (never the machine's /sys/fs/bpf).
TEST(Bpffs, IsDetectedAndMountedWhereMissing) {
  SLUICE_SKIP_WITHOUT_BPF();
  char tmpl[] = "/tmp/sluice-bpffs-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    bool mounted = false;
    ~Cleanup() {
      if (mounted) umount2(dir.c_str(), MNT_DETACH);
      rmdir(dir.c_str());
    }
  } cleanup{dir};

  auto on = xdp::is_bpffs(dir);
  ASSERT_OK(on);
  EXPECT_FALSE(on.value());
  auto missing = xdp::is_bpffs(dir + "/absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, -ENOENT);

  auto mounted = xdp::ensure_bpffs(dir);
  if (!mounted.ok() && mounted.error().code == -EPERM) GTEST_SKIP() << mounted.error().message;
  ASSERT_OK(mounted);
  cleanup.mounted = mounted.value();
  EXPECT_TRUE(mounted.value());
  on = xdp::is_bpffs(dir);
  ASSERT_OK(on);
  EXPECT_TRUE(on.value());
  auto again = xdp::ensure_bpffs(dir);
  ASSERT_OK(again);
  EXPECT_FALSE(again.value()) << "mounted twice";

  ASSERT_OK(xdp::make_dirs(dir + "/a/b/c"));
  ASSERT_OK(xdp::make_dirs(dir + "/a/b/c"));
  on = xdp::is_bpffs(dir + "/a/b/c");
  ASSERT_OK(on);
  EXPECT_TRUE(on.value());
  rmdir((dir + "/a/b/c").c_str());
  rmdir((dir + "/a/b").c_str());
  rmdir((dir + "/a").c_str());
}

}  // namespace
}  // namespace sluice::test
