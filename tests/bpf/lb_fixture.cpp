// SPDX-License-Identifier: BSD-2-Clause
// LbFixture: provisioning and predictions for the sluice_lb tests.
#include "tests/bpf/lb_fixture.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>

#include "dataplane/core/maglev.hpp"

namespace sluice::test {
namespace {

const char* const kStatNames[] = {
    "rx_packets",         "rx_bytes",
    "tx_packets",         "pass_packets",
    "flow_hits",          "flow_misses",
    "flow_insert_failed", "icmp_too_big_sent",
    "drops[NONE]",        "drops[TRUNCATED]",
    "drops[BAD_L2]",      "drops[BAD_IPV4]",
    "drops[BAD_IPV6]",    "drops[BAD_L4]",
    "drops[BAD_ICMP]",    "drops[UNSUPPORTED_L4]",
    "drops[NO_BACKEND]",  "drops[ENCAP_NO_ROOM]",
    "drops[TOO_BIG]",     "drops[TX_FAILED]",
    "drops[TOO_BIG_DF_CLEAR]", "drops[FRAG_OF_DROPPED]",
    "frag_unmatched",
};
static_assert(sizeof(kStatNames) / sizeof(kStatNames[0]) * 8 == sizeof(sluice_global_stats),
              "a name for every counter");

const IpAddress kSrcV4 = address("10.255.0.0");  // outer source base (low bits: entropy)
const IpAddress kSrcV6 = address("2001:db8:ffff::");

uint16_t be16(const Bytes& b, size_t at) { return get_be16(&b.at(at)); }

IpAddress address_of(const sluice_backend& b) {
  IpAddress a;
  a.ip = b.addr;
  a.family = b.family;
  return a;
}

}  // namespace

sluice_flow_key flow_key(std::string_view client, uint16_t cport, std::string_view vip,
                         uint16_t vport, uint8_t proto) {
  sluice_flow_key k{};
  const IpAddress c = address(std::string(client));
  const IpAddress v = address(std::string(vip));
  k.src = c.ip;
  k.dst = v.ip;
  k.sport = sl_htons(cport);
  k.dport = sl_htons(vport);
  k.proto = proto;
  k.family = c.family;
  return k;
}

Bytes l2_header(const Bytes& like, size_t ntags, const Mac& dst, const Mac& src, uint16_t type) {
  Bytes h = slice(like, 0, SLUICE_ETH_HLEN + SLUICE_VLAN_HLEN * ntags);
  std::copy(dst.begin(), dst.end(), h.begin());
  std::copy(src.begin(), src.end(), h.begin() + 6);
  put_be16(h, h.size() - 2, type);
  return h;
}

uint32_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // what bpf_ktime_get_coarse_ns reads
  return static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000 +
                               static_cast<uint64_t>(ts.tv_nsec) / 1000000);
}

sluice_global_stats forwarded(size_t frame_len, bool hit) {
  sluice_global_stats s{};
  s.rx_packets = 1;
  s.rx_bytes = frame_len;
  s.tx_packets = 1;
  (hit ? s.flow_hits : s.flow_misses) = 1;
  return s;
}

sluice_global_stats passed(size_t frame_len) {
  sluice_global_stats s{};
  s.rx_packets = 1;
  s.rx_bytes = frame_len;
  s.pass_packets = 1;
  return s;
}

sluice_global_stats dropped(size_t frame_len, sluice_drop_reason reason) {
  sluice_global_stats s{};
  s.rx_packets = 1;
  s.rx_bytes = frame_len;
  s.drops[reason] = 1;
  return s;
}

void expect_stats_delta(const sluice_global_stats& before, const sluice_global_stats& after,
                        const sluice_global_stats& want) {
  uint64_t b[sizeof before / 8], a[sizeof after / 8], w[sizeof want / 8];
  std::memcpy(b, &before, sizeof b);
  std::memcpy(a, &after, sizeof a);
  std::memcpy(w, &want, sizeof w);
  for (size_t i = 0; i < sizeof b / 8; ++i)
    EXPECT_EQ(a[i] - b[i], w[i]) << "global counter " << kStatNames[i];
}

void LbFixture::SetUp() {
  SLUICE_SKIP_WITHOUT_BPF();
  pin_.emplace();
  ASSERT_GE(pin_->cpu(), 0) << "cannot pin the test to one CPU";
  encap_config_.src_v4 = kSrcV4.ip;
  encap_config_.src_v6 = kSrcV6.ip;
  encap_config_.mtu = kMtu;
  encap_config_.entropy_bits = kEntropyBits;
  if (through_loader()) {
    // Loaded, never attached: "lo" only names an interface for the loader.
    std::random_device rd;
    pin_root_ = "/sys/fs/bpf/sluice-test-lbfix-" + std::to_string(rd()) + std::to_string(rd());
    xdp::LoaderOptions o;
    o.ifname = "lo";
    o.hash_seed = kSeed;
    o.flows_per_cpu = 4096;
    o.probation_per_cpu = 4096;
    o.pin_root = pin_root_;
    auto loaded = xdp::Loader::load(o);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    loader_.emplace(std::move(loaded.value()));
    publish_world();
    set_next_hop(kGatewayMac, kLbMac);
    return;
  }
  auto opened = LbSkeleton::open("sluice_lb");
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  skel_.emplace(std::move(opened.value()));
  skel()->rodata->sluice_hash_seed = kSeed;
  before_load(skel());
  // Every possible CPU's run of probation slots, as the loader sizes it.
  const int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  ASSERT_EQ(bpf_map__set_max_entries(
                skel()->maps.sluice_newflows,
                skel()->rodata->sluice_probation_slots * static_cast<uint32_t>(ncpus)),
            0);
  ASSERT_EQ(skel_->load(), 0) << "the verifier rejected sluice_lb (log above)";

  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_encap), &zero, &encap_config_, BPF_ANY), 0);
  set_next_hop(kGatewayMac, kLbMac);
}

void LbFixture::TearDown() {
  if (!loader_) return;
  const auto unpinned = loader_->unpin();
  EXPECT_TRUE(unpinned.ok()) << unpinned.error().message;
  loader_.reset();
}

void LbFixture::set_next_hop(const Mac& dst, const Mac& src) {
  sluice_next_hop nh{};
  std::memcpy(nh.dst_mac, dst.data(), 6);
  std::memcpy(nh.src_mac, src.data(), 6);
  if (loader_) {
    const auto set = loader_->set_next_hop(nh);
    ASSERT_TRUE(set.ok()) << set.error().message;
    return;
  }
  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_next_hop), &zero, &nh, BPF_ANY), 0);
}

void LbFixture::inject_established(const sluice_flow_key& key, uint32_t backend,
                                   uint32_t last_seen, uint32_t hash) {
  sluice_flow_value v{};
  v.backend_id = backend;
  v.last_seen = last_seen;
  v.state = SLUICE_FLOW_ESTABLISHED;
  sluice_flow_value_set_hash(&v, hash);
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_flows), &key, &v, BPF_ANY), 0);
}

uint32_t LbFixture::probation_index(uint32_t vip_id, const sluice_flow_key& key) const {
  const uint32_t slots = skel()->rodata->sluice_probation_slots;
  return static_cast<uint32_t>(cpu()) * slots + hash_of(vip_id, key) % slots;
}

bool LbFixture::on_probation(uint32_t vip_id, const sluice_flow_key& key, sluice_flow_value* v) {
  const uint32_t index = probation_index(vip_id, key);
  sluice_probation_slot slot{};
  if (bpf_map_lookup_elem(fd(skel()->maps.sluice_newflows), &index, &slot) != 0) return false;
  if (slot.key.family == 0 || std::memcmp(&slot.key, &key, sizeof key) != 0) return false;
  *v = slot.value;
  return true;
}

void LbFixture::put_probation(uint32_t vip_id, const sluice_flow_key& key,
                              const sluice_flow_value& v) {
  sluice_probation_slot slot{};
  slot.key = key;
  slot.value = v;
  const uint32_t index = probation_index(vip_id, key);
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_newflows), &index, &slot, BPF_ANY), 0);
}

std::vector<sluice_flow_key> LbFixture::take_probation() {
  const int map = fd(skel()->maps.sluice_newflows);
  std::vector<sluice_flow_key> keys;
  const uint32_t slots = skel()->rodata->sluice_probation_slots;
  const uint32_t first = static_cast<uint32_t>(cpu()) * slots;
  for (uint32_t i = first; i < first + slots; ++i) {
    sluice_probation_slot slot{};
    if (bpf_map_lookup_elem(map, &i, &slot) != 0 || slot.key.family == 0) continue;
    keys.push_back(slot.key);
    const sluice_probation_slot empty{};
    bpf_map_update_elem(map, &i, &empty, BPF_ANY);
  }
  return keys;
}

int LbFixture::fd(bpf_map* map) const { return bpf_map__fd(map); }

void LbFixture::provision_world() {
  batching_ = true;
  add_backend(1, "10.1.0.1");
  add_backend(2, "10.1.0.2");
  add_backend(3, "10.1.0.3");
  add_backend(11, "2001:db8:1::1");
  add_backend(12, "2001:db8:1::2");
  add_vip({"10.0.0.1", 80, kTcp, 1, 0, {1, 2, 3}});
  add_vip({"10.0.0.1", 53, kUdp, 2, 0, {1, 2, 3}});
  add_vip({"10.0.0.2", 0, kUdp, 3, 0, {1, 2, 3}});  // every port
  add_vip({"10.0.0.2", 0, kTcp, 4, 0, {1, 2, 3}});
  add_vip({"2001:db8::1", 443, kTcp, 5, 0, {11, 12}});
  add_vip({"2001:db8::1", 0, kUdp, 6, 0, {11, 12}});
  add_vip({"10.0.0.3", 80, kTcp, 7, 0, {11, 12}});   // IPv4 VIP, IPv6 backends
  add_vip({"2001:db8::3", 80, kTcp, 8, 0, {1, 2}});  // IPv6 VIP, IPv4 backends
  add_vip({"10.0.0.4", 80, kTcp, 9, SLUICE_VIP_HASH_SRC_ONLY, {1, 2, 3}});
  add_vip({"10.0.0.5", 80, kTcp, 10, 0, {}});  // no backend
  batching_ = false;
  publish_world();
}

void LbFixture::publish_world() {
  if (!loader_ || batching_) return;
  xdp::Snapshot snap;
  for (const auto& [id, b] : backends_) {
    sluice_backend out = b;
    out.flags &= SLUICE_BACKEND_DRAINING;  // VALID is the loader's
    snap.backends.push_back(out);
  }
  for (const auto& [id, v] : vips_) {
    const IpAddress a = address(v.addr);
    xdp::SnapshotVip sv;
    sv.key.addr = a.ip;
    sv.key.port = sl_htons(v.port);
    sv.key.proto = v.proto;
    sv.key.family = a.family;
    sv.meta.vip_id = id;
    sv.meta.flags = v.flags;
    sv.table = tables_.at(id);
    snap.vips.push_back(sv);
  }
  snap.encap = encap_config_;
  const auto published = loader_->publish(snap);
  ASSERT_TRUE(published.ok()) << published.error().message;
}

void LbFixture::add_backend(uint32_t id, std::string_view addr, uint8_t flags) {
  const IpAddress a = address(std::string(addr));
  sluice_backend b{};
  b.addr = a.ip;
  b.id = id;
  b.family = a.family;
  b.flags = flags;
  backends_[id] = b;
  if (loader_) return publish_world();
  set_backend(id & (SLUICE_MAX_BACKENDS - 1), b);
}

void LbFixture::remove_backend(uint32_t id) {
  backends_.erase(id);
  if (loader_) return publish_world();
  set_backend(id & (SLUICE_MAX_BACKENDS - 1), sluice_backend{});
}

void LbFixture::set_backend(uint32_t slot, const sluice_backend& b) {
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_backends), &slot, &b, BPF_ANY), 0);
}

void LbFixture::add_vip(const VipSpec& v) {
  const IpAddress a = address(v.addr);
  sluice_vip_key k{};
  k.addr = a.ip;
  k.port = sl_htons(v.port);
  k.proto = v.proto;
  k.family = a.family;
  sluice_vip_meta m{};
  m.vip_id = v.vip_id;
  m.flags = v.flags;
  m.table_size = kTableSize;
  vips_[v.vip_id] = v;
  publish_table(v.vip_id, v.backends);
  if (loader_) return;
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_vips), &k, &m, BPF_ANY), 0);
  sluice_vip_slot slot{};
  slot.addr = k.addr;
  slot.port = k.port;
  slot.proto = k.proto;
  slot.family = k.family;
  slot.meta = m;
  const uint32_t index = sluice_vip_slot_index(&k.addr, k.port, k.proto);
  vip_slots_[index].push_back(slot);
  write_vip_slot(index);
}

void LbFixture::remove_vip(uint32_t vip_id) {
  if (loader_) {
    vips_.erase(vip_id);
    tables_.erase(vip_id);
    return publish_world();
  }
  const VipSpec v = vips_.at(vip_id);
  const IpAddress a = address(v.addr);
  sluice_vip_key k{};
  k.addr = a.ip;
  k.port = sl_htons(v.port);
  k.proto = v.proto;
  k.family = a.family;
  ASSERT_EQ(bpf_map_delete_elem(fd(skel()->maps.sluice_vips), &k), 0);
  const uint32_t index = sluice_vip_slot_index(&k.addr, k.port, k.proto);
  auto& in_slot = vip_slots_[index];
  std::erase_if(in_slot, [&](const sluice_vip_slot& s) { return s.meta.vip_id == vip_id; });
  write_vip_slot(index);
  vips_.erase(vip_id);
}

void LbFixture::write_vip_slot(uint32_t index) {
  const auto& in_slot = vip_slots_[index];
  sluice_vip_slot slot{};
  if (!in_slot.empty()) slot = in_slot.front();
  if (in_slot.size() > 1) slot.flags = SLUICE_VIP_SLOT_LOOKUP;
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_vip_slots), &index, &slot, BPF_ANY), 0);
}

void LbFixture::publish_table(uint32_t vip_id, const std::vector<uint32_t>& backends) {
  if (loader_) {
    std::vector<uint32_t> table(kTableSize, SLUICE_BACKEND_NONE);
    if (!backends.empty()) {
      std::vector<MaglevBackend> in;
      for (uint32_t id : backends) in.push_back({address_of(backends_.at(id)), 1});
      MaglevBuilder builder;
      auto built = builder.build(in, kTableSize);
      ASSERT_TRUE(built.ok()) << built.error().message;
      for (size_t i = 0; i < table.size(); ++i) table[i] = backends[built.value()[i]];
    }
    vips_.at(vip_id).backends = backends;
    tables_[vip_id] = std::move(table);
    return publish_world();
  }
  // Slot i -> backends[i % n], on purpose: the tests choose tables whose
  // every slot changes by reordering the list (a Maglev table would not
  // change: it depends on addresses, not order), and predict the backend
  // with choice(). That the XDP program and the core's Maglev builder pick
  // the same backend for the same flows is a separate test (P2, to come).
  std::vector<uint32_t> table(kTableSize, SLUICE_BACKEND_NONE);
  for (size_t i = 0; i < table.size() && !backends.empty(); ++i)
    table[i] = backends[i % backends.size()];
  bpf_map_create_opts opts{};
  opts.sz = sizeof(opts);
  opts.map_flags = BPF_F_INNER_MAP;
  Fd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_mgl_tbl", 4, 4, kTableSize, &opts));
  ASSERT_GE(inner.get(), 0) << std::strerror(errno);
  std::vector<uint32_t> keys(kTableSize);
  for (uint32_t i = 0; i < kTableSize; ++i) keys[i] = i;
  uint32_t count = kTableSize;
  ASSERT_EQ(bpf_map_update_batch(inner.get(), keys.data(), table.data(), &count, nullptr), 0)
      << std::strerror(errno);
  // The swap: one update of the outer slot; the old table goes when no
  // packet can read it any more.
  const int inner_fd = inner.get();
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_maglev), &vip_id, &inner_fd, BPF_ANY), 0)
      << std::strerror(errno);
  tables_[vip_id] = std::move(table);
}

uint32_t LbFixture::hash_of(uint32_t vip_id, const sluice_flow_key& key) const {
  if (vips_.at(vip_id).flags & SLUICE_VIP_HASH_SRC_ONLY) return sluice_flow_hash_src(&key, kSeed);
  return sluice_flow_hash(&key, kSeed);
}

uint32_t LbFixture::choice(uint32_t vip_id, const sluice_flow_key& key) const {
  const auto& t = tables_.at(vip_id);
  return t[hash_of(vip_id, key) % t.size()];
}

Bytes LbFixture::encapsulated(const Bytes& in, size_t ntags, uint32_t backend_id,
                              uint32_t hash) const {
  const Bytes l3 = slice(in, SLUICE_ETH_HLEN + SLUICE_VLAN_HLEN * ntags);
  const bool inner6 = (l3.at(0) >> 4) == 6;
  const size_t inner_len = inner6 ? SLUICE_IPV6_HLEN + be16(l3, 4) : be16(l3, 2);
  const uint8_t tos = inner6 ? static_cast<uint8_t>((l3[0] & 0xf) << 4 | l3[1] >> 4) : l3[1];
  const RawSpec inner{
      .bytes = slice(l3, 0, inner_len),
      .proto = inner6 ? uint8_t{SLUICE_IPPROTO_IPV6} : uint8_t{SLUICE_IPPROTO_IPIP}};
  const sluice_backend& b = backends_.at(backend_id);
  PacketBuilder outer;
  uint16_t type = SLUICE_ETH_P_IP;
  if (b.family == SLUICE_FAMILY_IPV4) {
    IpAddress src = kSrcV4;
    src.ip.bytes[3] = static_cast<uint8_t>(hash);  // kEntropyBits == 8
    // DF copied from an IPv4 client (RFC 2003 3.1), id 0 when set (RFC
    // 6864) and the client's otherwise; IPv6 in IPv4 with DF.
    const bool df = inner6 || (be16(l3, 6) & SLUICE_IPV4_DF) != 0;
    outer.ipv4({.src = src.to_string(),
                .dst = address_of(b).to_string(),
                .tos = tos,
                .ttl = 64,
                .id = df ? uint16_t{0} : be16(l3, 4),
                .dont_fragment = df});
  } else {
    IpAddress src = kSrcV6;
    src.ip.bytes[15] = static_cast<uint8_t>(hash);
    outer.ipv6({.src = src.to_string(),
                .dst = address_of(b).to_string(),
                .traffic_class = tos,
                .flow_label = hash & 0xfffff,
                .hop_limit = 64});
    type = SLUICE_ETH_P_IPV6;
  }
  // Ethernet padding after the client's packet is not carried.
  return cat({l2_header(in, ntags, kGatewayMac, kLbMac, type), outer.raw(inner).build_ip()});
}

Bytes LbFixture::forwarded_frame(const Bytes& in, size_t ntags, uint32_t vip_id,
                                 const sluice_flow_key& key) const {
  return encapsulated(in, ntags, choice(vip_id, key), hash_of(vip_id, key));
}

XdpRun LbFixture::run(const Bytes& in) {
  XdpRun r = run_xdp(bpf_program__fd(skel()->progs.sluice_lb), in);
  EXPECT_EQ(r.err, 0) << "BPF_PROG_TEST_RUN failed: " << std::strerror(-r.err);
  return r;
}

uint32_t LbFixture::backend_of(const XdpRun& r, size_t ntags) const {
  const size_t l3 = 14 + 4 * ntags;
  if (r.verdict != XDP_TX || r.out.size() < l3 + 40) return SLUICE_BACKEND_NONE;
  const uint16_t type = be16(r.out, l3 - 2);
  for (const auto& [id, b] : backends_) {
    if (type == SLUICE_ETH_P_IP && b.family == SLUICE_FAMILY_IPV4 &&
        std::memcmp(&r.out[l3 + 16], b.addr.bytes, 4) == 0)
      return id;
    if (type == SLUICE_ETH_P_IPV6 && b.family == SLUICE_FAMILY_IPV6 &&
        std::memcmp(&r.out[l3 + 24], b.addr.bytes, 16) == 0)
      return id;
  }
  return SLUICE_BACKEND_NONE;
}

sluice_global_stats LbFixture::global_stats() {
  return sum_percpu<sluice_global_stats>(fd(skel()->maps.sluice_stats), 0);
}

sluice_vip_stats LbFixture::vip_stats(uint32_t vip_id) {
  return sum_percpu<sluice_vip_stats>(fd(skel()->maps.sluice_vipstats), vip_id);
}

sluice_backend_stats LbFixture::backend_stats(uint32_t backend_id) {
  return sum_percpu<sluice_backend_stats>(fd(skel()->maps.sluice_bkstats),
                                          backend_id & (SLUICE_MAX_BACKENDS - 1));
}

}  // namespace sluice::test
