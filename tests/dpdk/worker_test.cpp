// SPDX-License-Identifier: BSD-2-Clause
// Worker::process_burst packet by packet and flow by flow: a fixture table
// of {description, input frame, expected verdict, expected output frame,
// expected counter deltas} against the standard world (tests/dpdk/world.hpp),
// the same cases as the XDP program's table (tests/bpf/lb_packet_test.cpp),
// then the flow-table semantics the two paths share.
#include "dataplane/dpdk/worker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "tests/dpdk/dpdk_env.hpp"
#include "tests/dpdk/world.hpp"

namespace sluice::test {
namespace {

using dpdk::SnapshotRcu;
using dpdk::Verdicts;
using dpdk::Worker;

constexpr const char* kClient = "192.0.2.10";
constexpr const char* kClient6 = "2001:db8:c::10";

enum class Verdict { kTx, kKernel, kDrop };

const char* name(Verdict v) {
  return v == Verdict::kTx ? "tx" : v == Verdict::kKernel ? "kernel" : "drop";
}

PacketBuilder frame() { return PacketBuilder().eth({.dst = kLbMac, .src = kRouterMac}); }
Ipv4Spec v4(const char* src, const char* dst) { return {.src = src, .dst = dst}; }
Ipv6Spec v6(const char* src, const char* dst) { return {.src = src, .dst = dst}; }
// ACK by default: a flow's ordinary packet (a SYN without ACK is a new
// connection, placed by the current table whatever entry it meets).
TcpSpec tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x10) {
  return {.sport = sport, .dport = dport, .flags = flags};
}
UdpSpec udp(uint16_t sport, uint16_t dport) { return {.sport = sport, .dport = dport}; }
Bytes tcp4(const char* dst, uint16_t dport, uint16_t sport = 40000, size_t payload = 32) {
  return frame().ipv4(v4(kClient, dst)).tcp(tcp(sport, dport)).payload(pattern(payload)).build();
}

sluice_global_stats forwarded(size_t len, bool hit = false) {
  sluice_global_stats s{};
  s.rx_packets = 1;
  s.rx_bytes = len;
  s.tx_packets = 1;
  (hit ? s.flow_hits : s.flow_misses) = 1;
  return s;
}
sluice_global_stats passed(size_t len) {
  sluice_global_stats s{};
  s.rx_packets = 1;
  s.rx_bytes = len;
  s.pass_packets = 1;
  return s;
}
sluice_global_stats dropped(size_t len, sluice_drop_reason why) {
  sluice_global_stats s{};
  s.rx_packets = 1;
  s.rx_bytes = len;
  s.drops[why] = 1;
  return s;
}

void expect_delta(const sluice_global_stats& before, const sluice_global_stats& after,
                  const sluice_global_stats& want, const std::string& what) {
  const auto* b = reinterpret_cast<const uint64_t*>(&before);
  const auto* a = reinterpret_cast<const uint64_t*>(&after);
  const auto* w = reinterpret_cast<const uint64_t*>(&want);
  for (size_t i = 0; i < sizeof want / 8; ++i)
    EXPECT_EQ(a[i] - b[i], w[i]) << what << ": global counter word " << i;
}

struct Row {
  std::string name;
  Bytes in;
  Verdict verdict;
  Bytes out;  // expected; empty for kKernel means "the input, untouched"
  sluice_global_stats delta;
  uint32_t vip = SLUICE_BACKEND_NONE;
  uint32_t backend = SLUICE_BACKEND_NONE;
  bool new_flow = false;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override { restart(); }

  void restart(const FlowTableConfig& flows = {.capacity = 4096}, uint32_t frag_capacity = 4096) {
    worker_.reset();
    rcu_.reset();
    auto rcu = SnapshotRcu::create(1, world_.snapshot());
    ASSERT_TRUE(rcu.ok()) << rcu.error().message;
    rcu_ = std::move(rcu.value());
    auto w = Worker::create(
        {.reader_id = 0, .hash_seed = kSeed, .flows = flows, .frag_capacity = frag_capacity},
        *rcu_);
    ASSERT_TRUE(w.ok()) << w.error().message;
    worker_ = std::move(w.value());
  }
  void publish() { rcu_->publish(world_.snapshot()); }

  struct Out {
    Verdict verdict;
    Bytes frame;
  };
  // One frame through process_burst_at at time now_ms.
  Out run(const Bytes& in, uint32_t now = 1000) {
    rte_mbuf* m = to_mbuf(in);
    Verdicts v;
    EXPECT_EQ(worker_->process_burst_at(&m, 1, v, now), 1);
    EXPECT_EQ(v.n_tx + v.n_kernel + v.n_dropped, 1);
    Out o{v.n_tx == 1       ? Verdict::kTx
          : v.n_kernel == 1 ? Verdict::kKernel
                            : Verdict::kDrop,
          from_mbuf(m)};
    rte_pktmbuf_free(m);
    return o;
  }
  // Frames through one process_burst_at call, in order: each one's verdict
  // and frame afterwards.
  std::vector<Out> run_burst(const std::vector<Bytes>& in, uint32_t now = 1000) {
    std::vector<rte_mbuf*> m;
    for (const Bytes& b : in) m.push_back(to_mbuf(b));
    Verdicts v;
    EXPECT_EQ(worker_->process_burst_at(m.data(), static_cast<uint16_t>(m.size()), v, now),
              m.size());
    std::vector<Out> out;
    for (rte_mbuf* x : m) {
      const auto in_list = [x](rte_mbuf* const* l, uint16_t n) {
        return std::find(l, l + n, x) != l + n;
      };
      out.push_back({in_list(v.tx, v.n_tx)           ? Verdict::kTx
                     : in_list(v.kernel, v.n_kernel) ? Verdict::kKernel
                                                     : Verdict::kDrop,
                     from_mbuf(x)});
      rte_pktmbuf_free(x);
    }
    return out;
  }
  uint32_t backend_of(const Out& o) {
    if (o.verdict != Verdict::kTx) return SLUICE_BACKEND_NONE;
    size_t l3 = 14;
    while (l3 + 4 <= o.frame.size() && (get_be16(&o.frame[l3 - 2]) == SLUICE_ETH_P_8021Q ||
                                        get_be16(&o.frame[l3 - 2]) == SLUICE_ETH_P_8021AD))
      l3 += 4;
    if (o.frame.size() < l3 + 40) return SLUICE_BACKEND_NONE;
    for (const World::Known& k : World::kKnown) {
      const uint32_t id = k.id;
      const IpAddress a = address(k.addr);
      if (!a.is_v6() && std::memcmp(&o.frame[l3 + 16], a.ip.bytes, 4) == 0) return id;
      if (a.is_v6() && std::memcmp(&o.frame[l3 + 24], a.ip.bytes, 16) == 0) return id;
    }
    return SLUICE_BACKEND_NONE;
  }

  Row fwd(std::string n, Bytes in, uint32_t vip, const sluice_flow_key& k, size_t ntags = 0) {
    Row r{std::move(n), in, Verdict::kTx, world_.forwarded(in, ntags, vip, k),
          forwarded(in.size())};
    r.vip = vip;
    r.backend = world_.choice(vip, k);
    r.new_flow = true;
    return r;
  }
  static Row pass(std::string n, Bytes in) {
    const size_t len = in.size();
    return Row{std::move(n), std::move(in), Verdict::kKernel, {}, passed(len)};
  }
  static Row drop(std::string n, Bytes in, sluice_drop_reason why,
                  uint32_t vip = SLUICE_BACKEND_NONE) {
    const size_t len = in.size();
    Row r{std::move(n), std::move(in), Verdict::kDrop, {}, dropped(len, why)};
    r.vip = vip;
    return r;
  }
  std::vector<Row> rows();

  World world_;
  std::unique_ptr<SnapshotRcu> rcu_;
  std::unique_ptr<Worker> worker_;
};

std::vector<Row> WorkerTest::rows() {
  std::vector<Row> t;
  t.push_back(fwd("IPv4 TCP to an IPv4 VIP -> IPv4 backend (IPIP)", tcp4("10.0.0.1", 80), 1,
                  flow_key(kClient, 40000, "10.0.0.1", 80, kTcp)));
  t.push_back(
      fwd("IPv4 UDP -> IPv4 backend",
          frame().ipv4(v4(kClient, "10.0.0.1")).udp(udp(5353, 53)).payload(pattern(40)).build(), 2,
          flow_key(kClient, 5353, "10.0.0.1", 53, kUdp)));
  t.push_back(fwd(
      "IPv6 TCP -> IPv6 backend (IPv6-in-IPv6)",
      frame().ipv6(v6(kClient6, "2001:db8::1")).tcp(tcp(40000, 443)).payload(pattern(20)).build(),
      4, flow_key(kClient6, 40000, "2001:db8::1", 443, kTcp)));
  t.push_back(fwd(
      "IPv6 UDP to a wildcard IPv6 VIP",
      frame().ipv6(v6(kClient6, "2001:db8::1")).udp(udp(7000, 9999)).payload(pattern(20)).build(),
      5, flow_key(kClient6, 7000, "2001:db8::1", 9999, kUdp)));
  t.push_back(fwd("IPv4 VIP -> IPv6 backend (IPv4-in-IPv6)", tcp4("10.0.0.3", 80), 6,
                  flow_key(kClient, 40000, "10.0.0.3", 80, kTcp)));
  t.push_back(fwd("IPv6 VIP -> IPv4 backend (IPv6-in-IPv4)",
                  frame().ipv6(v6(kClient6, "2001:db8::3")).tcp(tcp(40000, 80)).build(), 7,
                  flow_key(kClient6, 40000, "2001:db8::3", 80, kTcp)));
  t.push_back(fwd("port-0 wildcard VIP matches any port", tcp4("10.0.0.2", 12345), 3,
                  flow_key(kClient, 40000, "10.0.0.2", 12345, kTcp)));
  t.push_back(fwd("DF copied to the outer header, which then has id 0",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 77, .dont_fragment = true})
                      .tcp(tcp(40012, 80))
                      .build(),
                  1, flow_key(kClient, 40012, "10.0.0.1", 80, kTcp)));
  t.push_back(fwd(
      "DSCP and ECN copied",
      frame().ipv4({.src = kClient, .dst = "10.0.0.1", .tos = 0xb9}).tcp(tcp(40002, 80)).build(), 1,
      flow_key(kClient, 40002, "10.0.0.1", 80, kTcp)));
  t.push_back(fwd("source-only hash VIP",
                  frame().ipv4(v4("192.0.2.20", "10.0.0.4")).tcp(tcp(1000, 80)).build(), 8,
                  flow_key("192.0.2.20", 1000, "10.0.0.4", 80, kTcp)));
  {
    Bytes in = frame().ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(40003, 80)).build();
    in.resize(60, 0);
    t.push_back(fwd("Ethernet padding is not carried", in, 1,
                    flow_key(kClient, 40003, "10.0.0.1", 80, kTcp)));
  }
  t.push_back(
      fwd("one 802.1Q tag, kept",
          frame().vlan({.vid = 100}).ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(40004, 80)).build(), 1,
          flow_key(kClient, 40004, "10.0.0.1", 80, kTcp), 1));
  t.push_back(fwd("QinQ, both tags kept",
                  frame()
                      .vlan({.vid = 10, .tpid = SLUICE_ETH_P_8021AD})
                      .vlan({.vid = 100})
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .tcp(tcp(40004, 443))
                      .build(),
                  4, flow_key(kClient6, 40004, "2001:db8::1", 443, kTcp), 2));
  {
    // A first fragment hashes on addresses (ports 0), like every later one.
    Ipv4Spec f = v4(kClient, "10.0.0.2");
    f.more_fragments = true;
    t.push_back(fwd("IPv4 first fragment to a wildcard VIP: hashed on addresses",
                    frame().ipv4(f).tcp(tcp(40000, 80)).payload(pattern(64)).build(), 3,
                    flow_key(kClient, 0, "10.0.0.2", 0, kTcp)));
  }

  t.push_back(pass("ARP goes to the kernel",
                   frame().raw({.bytes = pattern(28), .ethertype = 0x0806}).build()));
  t.push_back(pass("not a VIP address", tcp4("10.9.9.9", 80)));
  t.push_back(pass("a VIP address, another port", tcp4("10.0.0.1", 8080)));
  t.push_back(
      pass("ICMP echo to a VIP",
           frame().ipv4(v4(kClient, "10.0.0.1")).icmp({.type = 8}).payload(pattern(16)).build()));
  t.push_back(
      pass("GRE to a VIP (neither TCP nor UDP)",
           frame().ipv4(v4(kClient, "10.0.0.1")).raw({.bytes = pattern(24), .proto = 47}).build()));

  t.push_back(drop("three VLAN tags",
                   frame()
                       .vlan({.vid = 1, .tpid = SLUICE_ETH_P_8021AD})
                       .vlan({.vid = 2})
                       .vlan({.vid = 3})
                       .ipv4(v4(kClient, "10.0.0.1"))
                       .tcp(tcp(40000, 80))
                       .build(),
                   SLUICE_DROP_BAD_L2));
  t.push_back(drop("truncated TCP header", slice(tcp4("10.0.0.1", 80, 40000, 0), 0, 14 + 20 + 10),
                   SLUICE_DROP_BAD_IPV4));
  {
    Row r = drop("VIP with an empty table", tcp4("10.0.0.9", 80), SLUICE_DROP_NO_BACKEND, 9);
    t.push_back(r);
  }
  {
    // 1500-byte DF packet: over the MTU once encapsulated; a frag-needed
    // reply back to the client (576 bytes, RFC 1812), TOO_BIG counted.
    Ipv4Spec df = v4(kClient, "10.0.0.1");
    df.dont_fragment = true;
    const Bytes in = frame().ipv4(df).tcp(tcp(40001, 80, 0x10)).payload(pattern(1460)).build();
    const Bytes reply = PacketBuilder()
                            .ipv4({.src = "10.0.0.1",
                                   .dst = kClient,
                                   .tos = 0xC0,
                                   .ttl = 64,
                                   .id = 0,
                                   .dont_fragment = true})
                            .icmp_error(3, 4, slice(in, 14, 548), 1480)
                            .build_ip();
    Bytes l2 = slice(in, 0, 14);
    std::copy(kRouterMac.begin(), kRouterMac.end(), l2.begin());
    std::copy(kLbMac.begin(), kLbMac.end(), l2.begin() + 6);
    sluice_global_stats d = dropped(in.size(), SLUICE_DROP_TOO_BIG);
    d.flow_misses = 1;
    d.icmp_too_big_sent = 1;
    Row r{"too big after encapsulation: ICMP frag-needed back", in, Verdict::kTx, cat({l2, reply}),
          d};
    r.vip = 1;
    r.new_flow = true;
    t.push_back(r);
  }
  {
    // Without DF the client did not ask for PMTUD: no reply, and counted
    // apart from the answered ones (as XDP does).
    const Bytes in = frame()
                         .ipv4(v4(kClient, "10.0.0.1"))
                         .tcp(tcp(40002, 80, 0x10))
                         .payload(pattern(1460))
                         .build();
    Row r = drop("too big after encapsulation, DF clear: dropped, no reply", in,
                 SLUICE_DROP_TOO_BIG_DF_CLEAR, 1);
    r.delta.flow_misses = 1;
    r.new_flow = true;
    t.push_back(r);
  }
  return t;
}

TEST_F(WorkerTest, FixtureTable) {
  for (const Row& r : rows()) {
    SCOPED_TRACE(r.name);
    restart();  // every row starts with an empty flow table
    const sluice_global_stats g0 = worker_->global_stats();
    const Out o = run(r.in);
    EXPECT_EQ(name(o.verdict), name(r.verdict));
    if (r.verdict == Verdict::kKernel) {
      EXPECT_EQ(o.frame, r.in);
    } else if (r.verdict == Verdict::kTx) {
      EXPECT_EQ(o.frame, r.out);
    }
    expect_delta(g0, worker_->global_stats(), r.delta, r.name);
    if (r.vip != SLUICE_BACKEND_NONE) {
      const sluice_vip_stats vs = worker_->vip_stats(r.vip);
      const bool sent = r.backend != SLUICE_BACKEND_NONE;
      EXPECT_EQ(vs.packets, sent ? 1u : 0u);
      EXPECT_EQ(vs.drops, sent ? 0u : 1u);
      EXPECT_EQ(vs.new_flows, r.new_flow ? 1u : 0u);
    }
    if (r.backend != SLUICE_BACKEND_NONE) {
      EXPECT_EQ(backend_of(o), r.backend);
      const sluice_backend_stats bs = worker_->backend_stats(r.backend);
      EXPECT_EQ(bs.packets, 1u);
      EXPECT_EQ(bs.bytes, r.in.size());
      EXPECT_EQ(bs.new_flows, 1u);
    }
  }
}

TEST_F(WorkerTest, NoNextHopIsACountedDrop) {
  World w;
  dpdk::SnapshotSpec s = w.spec();
  s.next_hop = {};
  auto snap = dpdk::Snapshot::create(s);
  ASSERT_TRUE(snap.ok());
  rcu_->publish(std::move(snap.value()));
  const Bytes in = tcp4("10.0.0.1", 80);
  const sluice_global_stats g0 = worker_->global_stats();
  EXPECT_EQ(run(in).verdict, Verdict::kDrop);
  sluice_global_stats d = dropped(in.size(), SLUICE_DROP_TX_FAILED);
  d.flow_misses = 1;
  expect_delta(g0, worker_->global_stats(), d, "no next hop");
}

// A frame leaves the port it came in on with that port's MAC as source;
// a port the worker has no MAC for falls back to the snapshot's.
TEST_F(WorkerTest, ForwardedFramesCarryTheEgressPortsMac) {
  constexpr std::array<uint8_t, 6> kPort1Mac{0x02, 0x00, 0x00, 0x00, 0x01, 0x01};
  constexpr std::array<uint8_t, 6> kPort3Mac{0x02, 0x00, 0x00, 0x00, 0x03, 0x03};
  worker_.reset();
  dpdk::WorkerConfig c{.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = 4096}};
  c.port_macs = {std::nullopt, kPort1Mac, std::nullopt, kPort3Mac};
  auto w = Worker::create(c, *rcu_);
  ASSERT_TRUE(w.ok()) << w.error().message;
  worker_ = std::move(w.value());
  const struct {
    uint16_t port;
    std::array<uint8_t, 6> src;
  } cases[] = {{1, kPort1Mac}, {3, kPort3Mac}, {0, kLbMac}, {2, kLbMac}, {9, kLbMac}};
  uint16_t sport = 41000;
  for (const auto& k : cases) {
    rte_mbuf* m = to_mbuf(tcp4("10.0.0.1", 80, sport++));
    m->port = k.port;
    Verdicts v;
    ASSERT_EQ(worker_->process_burst_at(&m, 1, v, 1000), 1);
    ASSERT_EQ(v.n_tx, 1) << "port " << k.port;
    const Bytes out = from_mbuf(m);
    rte_pktmbuf_free(m);
    EXPECT_TRUE(std::equal(k.src.begin(), k.src.end(), out.begin() + 6)) << "port " << k.port;
    EXPECT_TRUE(std::equal(kGatewayMac.begin(), kGatewayMac.end(), out.begin()))
        << "port " << k.port << ": the next hop's MAC is the destination";
  }
}

// A SYN without ACK hitting an entry is a new connection reusing the
// 5-tuple (the client's port came round): placed by the current table, and
// the entry follows; the flow's other packets keep the entry (as XDP,
// tests/bpf/lb_flow_test.cpp).
TEST_F(WorkerTest, NewConnectionReusingAFlowsTupleIsPlacedByTheCurrentTable) {
  uint16_t port = 40000;
  while (world_.choice(1, flow_key(kClient, port, "10.0.0.1", 80, kTcp)) != 1) ++port;
  const Bytes syn = frame().ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(port, 80, 0x02)).build();
  const Bytes ack = frame().ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(port, 80, 0x10)).build();
  const Bytes syn_ack = frame().ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(port, 80, 0x12)).build();
  EXPECT_EQ(backend_of(run(syn, 1000)), 1u);
  EXPECT_EQ(backend_of(run(ack, 1001)), 1u);
  world_.set_table(1, std::vector<uint32_t>(kTableSize, 2));
  publish();
  EXPECT_EQ(backend_of(run(ack, 1002)), 1u);  // the established flow keeps its backend
  EXPECT_EQ(backend_of(run(syn_ack, 1002)), 1u);
  const sluice_global_stats g0 = worker_->global_stats();
  EXPECT_EQ(backend_of(run(syn, 1003)), 2u);
  EXPECT_EQ(worker_->global_stats().flow_misses - g0.flow_misses, 1u);
  EXPECT_EQ(backend_of(run(ack, 1004)), 2u);
  EXPECT_EQ(worker_->global_stats().flow_hits - g0.flow_hits, 1u);
}

// A flow stays on its backend while the table changes under it; a drained
// backend keeps it; a removed backend is a miss and the flow moves.
TEST_F(WorkerTest, EstablishedFlowsSurviveTableChangesAndDrainButNotRemoval) {
  const auto key = [](uint16_t p) { return flow_key(kClient, p, "10.0.0.1", 80, kTcp); };
  // A flow whose Maglev choice is backend 1.
  uint16_t port = 40000;
  while (world_.choice(1, key(port)) != 1) ++port;
  const Bytes in = tcp4("10.0.0.1", 80, port);
  EXPECT_EQ(backend_of(run(in, 1000)), 1u);
  EXPECT_EQ(backend_of(run(in, 1001)), 1u);  // promoted to established

  // The table now sends everything to 2: the flow stays on 1.
  world_.set_table(1, std::vector<uint32_t>(kTableSize, 2));
  publish();
  sluice_global_stats g0 = worker_->global_stats();
  EXPECT_EQ(backend_of(run(in, 1002)), 1u);
  EXPECT_EQ(worker_->global_stats().flow_hits - g0.flow_hits, 1u);

  // Backend 1 draining (weight 0: no longer in the table): still 1.
  world_.add_backend(1, "10.1.0.1", SLUICE_BACKEND_DRAINING);
  publish();
  const Bytes ack = frame().ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(port, 80, 0x10)).build();
  EXPECT_EQ(backend_of(run(ack, 1003)), 1u);

  // Backend 1 removed: a miss, Maglev gives 2, and the entry follows.
  world_.remove_backend(1);
  world_.set_table(8, world_.build_table({2, 3}));
  world_.set_table(7, std::vector<uint32_t>(kTableSize, SLUICE_BACKEND_NONE));
  world_.set_table(3, world_.build_table({2, 3}));
  world_.set_table(2, world_.build_table({2}));
  publish();
  g0 = worker_->global_stats();
  EXPECT_EQ(backend_of(run(in, 1004)), 2u);
  EXPECT_EQ(worker_->global_stats().flow_misses - g0.flow_misses, 1u);
  EXPECT_EQ(backend_of(run(in, 1005)), 2u);
  EXPECT_EQ(worker_->global_stats().flow_hits - g0.flow_hits, 1u);
}

TEST_F(WorkerTest, IdleEntriesExpire) {
  restart({.capacity = 4096, .tcp_idle_ms = 10'000, .udp_idle_ms = 5'000, .probation_ms = 2'000});
  uint16_t port = 40000;
  const auto key = [](uint16_t p) { return flow_key(kClient, p, "10.0.0.1", 80, kTcp); };
  while (world_.choice(1, key(port)) != 1) ++port;
  const Bytes in = tcp4("10.0.0.1", 80, port);
  EXPECT_EQ(backend_of(run(in, 1000)), 1u);
  EXPECT_EQ(backend_of(run(in, 1001)), 1u);
  world_.set_table(1, std::vector<uint32_t>(kTableSize, 3));
  publish();
  EXPECT_EQ(backend_of(run(in, 1001 + 9'000)), 1u);           // within the TCP idle time
  EXPECT_EQ(backend_of(run(in, 1001 + 9'000 + 10'001)), 3u);  // expired: Maglev again
}

// An ICMP error about a flow reaches the flow's backend, not Maglev's
// current choice, and does not refresh or create the entry.
TEST_F(WorkerTest, IcmpErrorFollowsTheFlowsEntry) {
  uint16_t port = 40000;
  const auto key = [](uint16_t p) { return flow_key(kClient, p, "10.0.0.1", 80, kTcp); };
  while (world_.choice(1, key(port)) != 1) ++port;
  const Bytes in = tcp4("10.0.0.1", 80, port);
  EXPECT_EQ(backend_of(run(in, 1000)), 1u);
  EXPECT_EQ(backend_of(run(in, 1001)), 1u);
  world_.set_table(1, std::vector<uint32_t>(kTableSize, 2));
  publish();
  // The router's error quotes the server's reply (VIP -> client).
  const Bytes quoted = PacketBuilder()
                           .ipv4({.src = "10.0.0.1", .dst = kClient})
                           .tcp({.sport = 80, .dport = port, .flags = 0x12})
                           .build_ip();
  const Bytes err =
      frame().ipv4(v4("203.0.113.1", "10.0.0.1")).icmp_error(3, 4, head(quoted, 28), 1400).build();
  const sluice_global_stats g0 = worker_->global_stats();
  const Out o = run(err, 1002);
  EXPECT_EQ(backend_of(o), 1u);
  EXPECT_EQ(worker_->global_stats().flow_hits - g0.flow_hits, 1u);
  EXPECT_EQ(worker_->vip_stats(1).new_flows, 1u);  // only the flow's first packet
  // An error about an unknown flow goes where Maglev says, and stores nothing.
  const Bytes quoted2 = PacketBuilder()
                            .ipv4({.src = "10.0.0.1", .dst = kClient})
                            .tcp({.sport = 80, .dport = 1, .flags = 0x12})
                            .build_ip();
  const Bytes err2 =
      frame().ipv4(v4("203.0.113.1", "10.0.0.1")).icmp_error(3, 4, head(quoted2, 28), 1400).build();
  const uint32_t entries = worker_->flows().size();
  EXPECT_EQ(backend_of(run(err2, 1003)), 2u);
  EXPECT_EQ(worker_->flows().size(), entries);
}

// A flood of one-packet flows never evicts an established flow.
TEST_F(WorkerTest, FloodOfNewFlowsKeepsEstablishedOnes) {
  restart({.capacity = 64});
  std::vector<Bytes> established;
  for (uint16_t p = 1000; p < 1016; ++p) {
    established.push_back(tcp4("10.0.0.1", 80, p));
    (void)run(established.back(), 1000);
    (void)run(established.back(), 1001);
  }
  for (uint32_t i = 0; i < 5000; ++i) {
    const std::string src = "100.64." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250);
    (void)run(frame().ipv4(v4(src.c_str(), "10.0.0.1")).tcp(tcp(2000, 80)).build(), 1002);
  }
  world_.set_table(1, std::vector<uint32_t>(kTableSize, 3));
  publish();
  const sluice_global_stats g0 = worker_->global_stats();
  for (const Bytes& in : established) (void)run(in, 1003);
  EXPECT_EQ(worker_->global_stats().flow_hits - g0.flow_hits, established.size());
}

// A whole burst in one call: each mbuf lands in exactly one list, in
// order, and packets of one flow in one burst meet one backend.
TEST_F(WorkerTest, MixedBurst) {
  std::vector<Bytes> in;
  for (uint16_t i = 0; i < 48; ++i)
    in.push_back(tcp4("10.0.0.1", 80, static_cast<uint16_t>(3000 + i % 16)));
  for (uint16_t i = 0; i < 8; ++i) in.push_back(tcp4("10.9.9.9", 80));
  for (uint16_t i = 0; i < 8; ++i) in.push_back(tcp4("10.0.0.9", 80));
  rte_mbuf* m[64];
  for (size_t i = 0; i < in.size(); ++i) m[i] = to_mbuf(in[i]);
  Verdicts v;
  ASSERT_EQ(worker_->process_burst_at(m, 64, v, 5000), 64);
  EXPECT_EQ(v.n_tx, 48);
  EXPECT_EQ(v.n_kernel, 8);
  EXPECT_EQ(v.n_dropped, 8);
  for (uint16_t i = 0; i < v.n_tx; ++i) {
    EXPECT_EQ(v.tx[i], m[i]);
    const Out o{Verdict::kTx, from_mbuf(v.tx[i])};
    EXPECT_EQ(backend_of(o),
              world_.choice(1, flow_key(kClient, static_cast<uint16_t>(3000 + i % 16), "10.0.0.1",
                                        80, kTcp)));
  }
  for (auto* x : m) rte_pktmbuf_free(x);
}

// A UDP datagram of `len` payload bytes from kClient to dst:dport with IP id
// `id`, cut into fragments of at most `max_data` bytes each.
std::vector<Bytes> frags4(const char* dst, uint16_t dport, uint16_t id, size_t len = 3000,
                          size_t max_data = 1400, uint16_t sport = 5000) {
  Ipv4Spec ip = v4(kClient, dst);
  ip.id = id;
  return fragment_ipv4(frame().ipv4(ip).udp(udp(sport, dport)).payload(pattern(len)).build(), 14,
                       max_data);
}

// The same as TCP (from port 40000): the VIP with no backend (10.0.0.9:80)
// is a TCP one.
std::vector<Bytes> tcp_frags4(const char* dst, uint16_t dport, uint16_t id) {
  Ipv4Spec ip = v4(kClient, dst);
  ip.id = id;
  return fragment_ipv4(frame().ipv4(ip).tcp(tcp(40000, dport)).payload(pattern(3000)).build(), 14,
                       1400);
}

// A port VIP's fragments, first and later, IPv4 and IPv6, all reach the
// backend of the VIP's flow key {client, 0, VIP, port}: each frame is exactly
// that backend's encapsulation, so they share the outer addresses.
TEST_F(WorkerTest, PortVipFragmentsFollowTheirFirstFragment) {
  const std::vector<Bytes> v4f = frags4("10.0.0.1", 53, 0x1234);
  const std::vector<Bytes> v6f = fragment_ipv6(
      frame().ipv6(v6(kClient6, "2001:db8::1")).tcp(tcp(40000, 443)).payload(pattern(3000)).build(),
      14, 1232, 0xabcdef01);
  // Destination options after the fragment header (review9): in the first
  // fragment only, so a later one names 60 and takes TCP from the record.
  const std::vector<Bytes> v6dst = fragment_ipv6(frame()
                                                     .ipv6(v6(kClient6, "2001:db8::1"))
                                                     .ipv6_ext({.len = 16})
                                                     .tcp(tcp(40001, 443))
                                                     .payload(pattern(3000))
                                                     .build(),
                                                 14, 1232, 0xabcdef02);
  const struct {
    const std::vector<Bytes>& frags;
    uint32_t vip;
    sluice_flow_key key;
  } cases[] = {{v4f, 2, flow_key(kClient, 0, "10.0.0.1", 53, kUdp)},
               {v6f, 4, flow_key(kClient6, 0, "2001:db8::1", 443, kTcp)},
               {v6dst, 4, flow_key(kClient6, 0, "2001:db8::1", 443, kTcp)}};
  for (const auto& c : cases) {
    ASSERT_GE(c.frags.size(), 3u);
    const sluice_global_stats g0 = worker_->global_stats();
    const uint64_t vip_packets0 = worker_->vip_stats(c.vip).packets;
    Bytes outer;
    for (size_t i = 0; i < c.frags.size(); ++i) {
      SCOPED_TRACE(i);
      const Out o = run(c.frags[i]);
      ASSERT_STREQ(name(o.verdict), name(Verdict::kTx));
      EXPECT_EQ(o.frame, world_.forwarded(c.frags[i], 0, c.vip, c.key));
      EXPECT_EQ(backend_of(o), world_.choice(c.vip, c.key));
      // Outer source (with the hash's entropy) and destination, alike.
      // (The backends here have the client's family.)
      const bool outer4 = c.key.family == SLUICE_FAMILY_IPV4;
      const Bytes these = slice(o.frame, outer4 ? 14 + 12 : 14 + 8, outer4 ? 8 : 32);
      if (i == 0) outer = these;
      EXPECT_EQ(these, outer);
    }
    const sluice_global_stats g = worker_->global_stats();
    EXPECT_EQ(g.tx_packets - g0.tx_packets, c.frags.size());
    EXPECT_EQ(g.frag_unmatched - g0.frag_unmatched, 0u);
    EXPECT_EQ(worker_->vip_stats(c.vip).packets - vip_packets0, c.frags.size());
  }
}

// An address with a port VIP and a port-0 wildcard beside it: each VIP gets
// its own datagrams' fragments, interleaved in one burst and across bursts.
TEST_F(WorkerTest, WildcardBesidePortVipEachGetsItsOwnFragments) {
  world_.add_vip({"10.0.0.1", 0, kUdp, 10, 0, {3}});
  restart();
  const std::vector<Bytes> a = frags4("10.0.0.1", 53, 100);    // the port VIP (2): backends 1, 2
  const std::vector<Bytes> b = frags4("10.0.0.1", 7777, 101);  // the wildcard (10): backend 3
  ASSERT_EQ(a.size(), b.size());
  const uint32_t a_backend = world_.choice(2, flow_key(kClient, 0, "10.0.0.1", 53, kUdp));
  std::vector<Bytes> burst;
  for (size_t i = 0; i < a.size(); ++i) {
    burst.push_back(a[i]);
    burst.push_back(b[i]);
  }
  const std::vector<Out> out = run_burst(burst);
  for (size_t i = 0; i < out.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_STREQ(name(out[i].verdict), name(Verdict::kTx));
    EXPECT_EQ(backend_of(out[i]), i % 2 == 0 ? a_backend : 3u);
  }
  // Across bursts, one fragment at a time, the same.
  const std::vector<Bytes> a2 = frags4("10.0.0.1", 53, 102);
  const std::vector<Bytes> b2 = frags4("10.0.0.1", 7777, 103);
  for (size_t i = 0; i < a2.size(); ++i) {
    EXPECT_EQ(backend_of(run(b2[i])), 3u);
    EXPECT_EQ(backend_of(run(a2[i])), a_backend);
  }
  EXPECT_EQ(worker_->vip_stats(2).packets, 2 * a.size());
  EXPECT_EQ(worker_->vip_stats(10).packets, 2 * b.size());
}

// A later fragment that overtook its first fragment, to a port VIP with no
// wildcard beside it: the kernel's, counted frag_unmatched; once the first
// came, the rest follow it.
TEST_F(WorkerTest, LaterFragmentBeforeItsFirstGoesToTheKernel) {
  const std::vector<Bytes> f = frags4("10.0.0.1", 53, 200);
  const sluice_global_stats g0 = worker_->global_stats();
  EXPECT_STREQ(name(run(f[1]).verdict), name(Verdict::kKernel));
  sluice_global_stats want = passed(f[1].size());
  want.frag_unmatched = 1;
  expect_delta(g0, worker_->global_stats(), want, "overtaking fragment");
  const uint32_t backend = world_.choice(2, flow_key(kClient, 0, "10.0.0.1", 53, kUdp));
  EXPECT_EQ(backend_of(run(f[0])), backend);
  EXPECT_EQ(backend_of(run(f[1])), backend);
  EXPECT_EQ(backend_of(run(f[2])), backend);
  EXPECT_EQ(worker_->global_stats().frag_unmatched - g0.frag_unmatched, 1u);
}

// A first fragment that finds no VIP erases the record an older datagram
// with the same addresses, protocol and id left (review9): the new
// datagram's later fragments go to the kernel, not after the old one's.
TEST_F(WorkerTest, NoVipFirstFragmentErasesAStaleRecord) {
  const std::vector<Bytes> old_dgram = frags4("10.0.0.1", 53, 250);
  const std::vector<Bytes> new_dgram = frags4("10.0.0.1", 54, 250);  // no VIP on port 54
  EXPECT_STREQ(name(run(old_dgram[0]).verdict), name(Verdict::kTx));
  const sluice_global_stats g0 = worker_->global_stats();
  EXPECT_STREQ(name(run(new_dgram[0]).verdict), name(Verdict::kKernel));
  EXPECT_STREQ(name(run(new_dgram[1]).verdict), name(Verdict::kKernel));
  sluice_global_stats want = passed(new_dgram[0].size() + new_dgram[1].size());
  want.pass_packets = 2;
  want.rx_packets = 2;
  want.frag_unmatched = 1;
  expect_delta(g0, worker_->global_stats(), want, "new datagram");
}

// A first fragment dropped after it was recorded drops its later fragments
// as FRAG_OF_DROPPED (counted at the VIP): no backend, too big, and within
// one burst (the later fragment's verdict comes after the first's drop).
TEST_F(WorkerTest, FirstFragmentDroppedDropsTheRest) {
  {
    SCOPED_TRACE("no backend");
    const std::vector<Bytes> f = tcp_frags4("10.0.0.9", 80, 300);
    EXPECT_STREQ(name(run(f[0]).verdict), name(Verdict::kDrop));
    const sluice_global_stats g0 = worker_->global_stats();
    EXPECT_STREQ(name(run(f[1]).verdict), name(Verdict::kDrop));
    expect_delta(g0, worker_->global_stats(), dropped(f[1].size(), SLUICE_DROP_FRAG_OF_DROPPED),
                 "later fragment");
    EXPECT_EQ(worker_->vip_stats(9).drops, 2u);
  }
  {
    SCOPED_TRACE("too big (DF clear, as fragments are)");
    // 1480 bytes of data: 1500 with its header, 1520 encapsulated.
    const std::vector<Bytes> f = frags4("10.0.0.1", 53, 301, 2000, 1480);
    ASSERT_EQ(f.size(), 2u);
    sluice_global_stats g0 = worker_->global_stats();
    EXPECT_STREQ(name(run(f[0]).verdict), name(Verdict::kDrop));
    EXPECT_EQ(worker_->global_stats().drops[SLUICE_DROP_TOO_BIG_DF_CLEAR] -
                  g0.drops[SLUICE_DROP_TOO_BIG_DF_CLEAR],
              1u);
    g0 = worker_->global_stats();
    EXPECT_STREQ(name(run(f[1]).verdict), name(Verdict::kDrop));
    expect_delta(g0, worker_->global_stats(), dropped(f[1].size(), SLUICE_DROP_FRAG_OF_DROPPED),
                 "later fragment");
  }
  {
    SCOPED_TRACE("IPv6 too big: a packet-too-big reply back, the rest dropped");
    const std::vector<Bytes> f = fragment_ipv6(frame()
                                                   .ipv6(v6(kClient6, "2001:db8::1"))
                                                   .tcp(tcp(40000, 443))
                                                   .payload(pattern(2000))
                                                   .build(),
                                               14, 1448, 77);
    ASSERT_EQ(f.size(), 2u);
    sluice_global_stats g0 = worker_->global_stats();
    EXPECT_STREQ(name(run(f[0]).verdict), name(Verdict::kTx));
    EXPECT_EQ(worker_->global_stats().icmp_too_big_sent - g0.icmp_too_big_sent, 1u);
    g0 = worker_->global_stats();
    EXPECT_STREQ(name(run(f[1]).verdict), name(Verdict::kDrop));
    expect_delta(g0, worker_->global_stats(), dropped(f[1].size(), SLUICE_DROP_FRAG_OF_DROPPED),
                 "later fragment");
  }
  {
    SCOPED_TRACE("one burst");
    const std::vector<Bytes> f = tcp_frags4("10.0.0.9", 80, 302);
    const sluice_global_stats g0 = worker_->global_stats();
    const std::vector<Out> out = run_burst({f[0], f[1], f[2]});
    for (const Out& o : out) EXPECT_STREQ(name(o.verdict), name(Verdict::kDrop));
    const sluice_global_stats g = worker_->global_stats();
    EXPECT_EQ(g.drops[SLUICE_DROP_NO_BACKEND] - g0.drops[SLUICE_DROP_NO_BACKEND], 1u);
    EXPECT_EQ(g.drops[SLUICE_DROP_FRAG_OF_DROPPED] - g0.drops[SLUICE_DROP_FRAG_OF_DROPPED], 2u);
  }
}

// A full fragment table evicts its oldest record: that datagram's later
// fragments find none (kernel, frag_unmatched); the newer ones still
// follow theirs; nothing breaks.
TEST_F(WorkerTest, FullFragmentTableEvictsTheOldest) {
  restart({.capacity = 4096}, dpdk::FragTable::kMinCapacity);
  ASSERT_EQ(worker_->frags().capacity(), dpdk::FragTable::kMinCapacity);
  std::vector<std::vector<Bytes>> d;
  for (uint16_t id = 0; id <= dpdk::FragTable::kMinCapacity; ++id)
    d.push_back(frags4("10.0.0.1", 53, static_cast<uint16_t>(400 + id), 3000, 1400,
                       static_cast<uint16_t>(5000 + id)));
  for (const auto& f : d) EXPECT_STREQ(name(run(f[0]).verdict), name(Verdict::kTx));
  EXPECT_EQ(worker_->frags().evictions(), 1u);
  const sluice_global_stats g0 = worker_->global_stats();
  EXPECT_STREQ(name(run(d[0][1]).verdict), name(Verdict::kKernel));
  EXPECT_EQ(worker_->global_stats().frag_unmatched - g0.frag_unmatched, 1u);
  for (size_t i = 1; i < d.size(); ++i)
    EXPECT_EQ(backend_of(run(d[i][1])),
              world_.choice(2, flow_key(kClient, 0, "10.0.0.1", 53, kUdp)));
  // Many more datagrams than records: still only bounded work, no crash.
  for (uint16_t id = 0; id < 1000; ++id)
    EXPECT_STREQ(name(run(frags4("10.0.0.1", 53, static_cast<uint16_t>(1000 + id))[0]).verdict),
                 name(Verdict::kTx));
  EXPECT_EQ(worker_->frags().evictions(), 1001u);
}

// FragTable alone: record, find, mark, re-record, and the size bounds.
TEST(FragTableTest, RecordFindMarkEvict) {
  EXPECT_FALSE(dpdk::FragTable::create(dpdk::FragTable::kMinCapacity - 1, 1).ok());
  EXPECT_FALSE(dpdk::FragTable::create(dpdk::FragTable::kMaxCapacity + 1, 1).ok());
  auto t = dpdk::FragTable::create(100, 7);
  ASSERT_TRUE(t.ok());
  dpdk::FragTable& ft = t.value();
  EXPECT_EQ(ft.capacity(), 128u);
  const sluice_flow_key k = flow_key(kClient, 0, "10.0.0.1", 0, kUdp);
  const dpdk::FragKey a = dpdk::frag_key_of(k, 1, kUdp);
  const dpdk::FragKey b = dpdk::frag_key_of(k, 2, kUdp);
  EXPECT_EQ(ft.find(a), nullptr);
  ft.record(a, 2, sl_htons(53), kUdp);
  ASSERT_NE(ft.find(a), nullptr);
  EXPECT_EQ(ft.find(a)->vip_id, 2u);
  EXPECT_EQ(ft.find(a)->port, sl_htons(53));
  EXPECT_EQ(ft.find(a)->proto, kUdp);
  EXPECT_FALSE(ft.find(a)->dropped);
  EXPECT_EQ(ft.find(b), nullptr);
  ft.mark_dropped(b);  // no record: nothing
  EXPECT_EQ(ft.find(b), nullptr);
  ft.mark_dropped(a);
  EXPECT_TRUE(ft.find(a)->dropped);
  ft.record(a, 3, sl_htons(54), kUdp);  // a new first fragment with the id: a fresh record
  EXPECT_FALSE(ft.find(a)->dropped);
  EXPECT_EQ(ft.find(a)->vip_id, 3u);
  EXPECT_EQ(ft.evictions(), 0u);
  // The ports and protocol of the flow key are not part of the datagram's
  // key; the record protocol is.
  EXPECT_NE(ft.find(dpdk::frag_key_of(flow_key(kClient, 1, "10.0.0.1", 2, kTcp), 1, kUdp)),
            nullptr);
  EXPECT_EQ(ft.find(dpdk::frag_key_of(k, 1, SLUICE_IPPROTO_DSTOPTS)), nullptr);
  // Erasing: the record goes, another stays; erasing a missing one is a no-op.
  ft.record(b, 4, sl_htons(55), kUdp);
  ft.erase(a);
  EXPECT_EQ(ft.find(a), nullptr);
  ASSERT_NE(ft.find(b), nullptr);
  EXPECT_EQ(ft.find(b)->vip_id, 4u);
  ft.erase(a);
  EXPECT_NE(ft.find(b), nullptr);
}

TEST(SnapshotTest, RejectsInvalidSpecs) {
  World w;
  const auto fails = [](dpdk::SnapshotSpec s, const char* what) {
    auto r = dpdk::Snapshot::create(s);
    EXPECT_FALSE(r.ok()) << what;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, -EINVAL) << what;
    }
  };
  dpdk::SnapshotSpec s = w.spec();
  s.vips[1].meta.vip_id = s.vips[0].meta.vip_id;
  fails(s, "vip_id twice");
  s = w.spec();
  s.vips[0].table.resize(1000);
  fails(s, "table size not prime");
  s = w.spec();
  s.vips[0].table[7] = 99;
  fails(s, "table names an unknown backend");
  s = w.spec();
  s.backends.push_back(s.backends[0]);
  fails(s, "one slot twice");
  s = w.spec();
  s.encap.src_v6 = {};
  fails(s, "no IPv6 source for IPv6 backends");
  s = w.spec();
  s.vips.push_back(s.vips[0]);
  s.vips.back().meta.vip_id = 100;
  fails(s, "one key twice");
  EXPECT_TRUE(dpdk::Snapshot::create(w.spec()).ok());
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) { return sluice::test::dpdk_test_main(argc, argv); }
