// SPDX-License-Identifier: BSD-2-Clause
// sluice_lb packet by packet: a fixture table of {description, input frame,
// expected verdict, expected output frame, expected counter deltas} run
// through BPF_PROG_TEST_RUN against the standard world of lb_fixture.cpp,
// loaded and provisioned through the real xdp::Loader (publish of whole
// snapshots with the core's Maglev tables, set_next_hop).
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/bpf/lb_fixture.hpp"

namespace sluice::test {
namespace {

constexpr const char* kClient = "192.0.2.10";
constexpr const char* kClient6 = "2001:db8:c::10";
constexpr const char* kRouter = "198.51.100.1";
constexpr const char* kRouter6 = "2001:db8:f::1";

struct Row {
  std::string name;
  Bytes in;
  uint32_t verdict;
  Bytes out;  // expected output; for XDP_PASS empty means "the input, untouched"
  sluice_global_stats delta;
  uint32_t vip = SLUICE_BACKEND_NONE;      // VIP whose counters move
  uint32_t backend = SLUICE_BACKEND_NONE;  // backend sent to
  bool new_flow = false;
};

PacketBuilder frame() { return PacketBuilder().eth({.dst = kLbMac, .src = kRouterMac}); }

Ipv4Spec v4(const char* src, const char* dst) { return {.src = src, .dst = dst}; }
Ipv6Spec v6(const char* src, const char* dst) { return {.src = src, .dst = dst}; }
TcpSpec tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x02 /* SYN */) {
  return {.sport = sport, .dport = dport, .flags = flags};
}
UdpSpec udp(uint16_t sport, uint16_t dport) { return {.sport = sport, .dport = dport}; }
Ipv6ExtSpec ext6(uint8_t type, size_t len = 8) { return {.type = type, .len = len}; }

Bytes tcp4(const char* dst, uint16_t dport, uint16_t sport = 40000, size_t payload = 32) {
  return frame().ipv4(v4(kClient, dst)).tcp(tcp(sport, dport)).payload(pattern(payload)).build();
}

Bytes with_byte(Bytes b, size_t at, uint8_t v) {
  b.at(at) = v;
  return b;
}

class LbPacketTest : public LbFixture {
 protected:
  // The Loader writes the VIP slots, backends, tables and next hop: a
  // loader bug writing any of them fails the table.
  [[nodiscard]] bool through_loader() const override { return true; }
  void SetUp() override {
    LbFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    provision_world();
  }

  // A packet that must be encapsulated toward the backend Maglev gives key.
  Row fwd(std::string name, Bytes in, uint32_t vip, const sluice_flow_key& key, size_t ntags = 0) {
    Row r{std::move(name), in, XDP_TX, forwarded_frame(in, ntags, vip, key), forwarded(in.size())};
    r.vip = vip;
    r.backend = choice(vip, key);
    r.new_flow = true;
    return r;
  }
  // A later packet of a flow an earlier row started: a flow-table hit.
  Row hit(std::string name, Bytes in, uint32_t vip, const sluice_flow_key& key) {
    Row r = fwd(std::move(name), std::move(in), vip, key);
    r.delta = forwarded(r.in.size(), true);
    r.new_flow = false;
    return r;
  }
  static Row pass(std::string name, Bytes in) {
    const size_t n = in.size();
    return Row{std::move(name), std::move(in), XDP_PASS, {}, passed(n)};
  }
  static Row drop(std::string name, Bytes in, sluice_drop_reason why) {
    const size_t n = in.size();
    return Row{std::move(name), std::move(in), XDP_DROP, {}, dropped(n, why)};
  }

  std::vector<Row> rows();
  Row too_big4(std::string name, uint32_t vip, const char* vip_addr, uint16_t next_mtu);
};

// The frag-needed reply sluice must build for a 1500-byte DF packet.
Row LbPacketTest::too_big4(std::string name, uint32_t vip, const char* vip_addr,
                           uint16_t next_mtu) {
  Ipv4Spec df = v4(kClient, vip_addr);
  df.dont_fragment = true;
  const Bytes in = frame().ipv4(df).tcp(tcp(40001, 80, 0x10)).payload(pattern(1500 - 40)).build();
  // As build_icmp_too_big writes it: 548 bytes quoted (a 576-byte reply),
  // TOS 0xC0, DF, id 0.
  const Bytes reply = PacketBuilder()
                          .ipv4({.src = vip_addr,
                                 .dst = kClient,
                                 .tos = 0xC0,
                                 .ttl = 64,
                                 .id = 0,
                                 .dont_fragment = true})
                          .icmp_error(3, 4, slice(in, 14, 548), next_mtu)
                          .build_ip();
  const Bytes out = cat({l2_header(in, 0, kRouterMac, kLbMac, SLUICE_ETH_P_IP), reply});
  sluice_global_stats d = dropped(in.size(), SLUICE_DROP_TOO_BIG);
  d.flow_misses = 1;
  d.icmp_too_big_sent = 1;
  Row r{std::move(name), in, XDP_TX, out, d};
  r.vip = vip;
  r.new_flow = true;
  return r;
}

std::vector<Row> LbPacketTest::rows() {
  std::vector<Row> t;
  const auto k_tcp = flow_key(kClient, 40000, "10.0.0.1", 80, kTcp);

  // --- Forwarded: each encapsulation and L4 protocol.
  t.push_back(
      fwd("IPv4 TCP to an IPv4 VIP -> IPv4 backend (IPIP)", tcp4("10.0.0.1", 80), 1, k_tcp));
  t.push_back(
      fwd("IPv4 UDP to an IPv4 VIP -> IPv4 backend",
          frame().ipv4(v4(kClient, "10.0.0.1")).udp(udp(5353, 53)).payload(pattern(40)).build(), 2,
          flow_key(kClient, 5353, "10.0.0.1", 53, kUdp)));
  t.push_back(fwd(
      "IPv6 TCP to an IPv6 VIP -> IPv6 backend (IPv6-in-IPv6)",
      frame().ipv6(v6(kClient6, "2001:db8::1")).tcp(tcp(40000, 443)).payload(pattern(20)).build(),
      5, flow_key(kClient6, 40000, "2001:db8::1", 443, kTcp)));
  t.push_back(fwd(
      "IPv6 UDP to a wildcard IPv6 VIP",
      frame().ipv6(v6(kClient6, "2001:db8::1")).udp(udp(7000, 9999)).payload(pattern(20)).build(),
      6, flow_key(kClient6, 7000, "2001:db8::1", 9999, kUdp)));
  t.push_back(fwd("IPv4 VIP -> IPv6 backend (IPv4-in-IPv6)", tcp4("10.0.0.3", 80), 7,
                  flow_key(kClient, 40000, "10.0.0.3", 80, kTcp)));
  t.push_back(fwd("IPv6 VIP -> IPv4 backend (IPv6-in-IPv4)",
                  frame().ipv6(v6(kClient6, "2001:db8::3")).tcp(tcp(40000, 80)).build(), 8,
                  flow_key(kClient6, 40000, "2001:db8::3", 80, kTcp)));
  t.push_back(fwd("port-0 wildcard VIP matches any port", tcp4("10.0.0.2", 12345), 4,
                  flow_key(kClient, 40000, "10.0.0.2", 12345, kTcp)));
  t.push_back(fwd("DF is copied to the outer header, which then has id 0",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 77, .dont_fragment = true})
                      .tcp(tcp(40012, 80))
                      .build(),
                  1, flow_key(kClient, 40012, "10.0.0.1", 80, kTcp)));
  t.push_back(fwd(
      "DSCP and ECN are copied to the outer header",
      frame().ipv4({.src = kClient, .dst = "10.0.0.1", .tos = 0xb9}).tcp(tcp(40002, 80)).build(), 1,
      flow_key(kClient, 40002, "10.0.0.1", 80, kTcp)));
  t.push_back(fwd("source-only hash VIP, first port",
                  frame().ipv4(v4("192.0.2.20", "10.0.0.4")).tcp(tcp(1000, 80)).build(), 9,
                  flow_key("192.0.2.20", 1000, "10.0.0.4", 80, kTcp)));
  t.push_back(fwd("source-only hash VIP, another port: same backend",
                  frame().ipv4(v4("192.0.2.20", "10.0.0.4")).tcp(tcp(2000, 80)).build(), 9,
                  flow_key("192.0.2.20", 2000, "10.0.0.4", 80, kTcp)));
  {
    // Ethernet pads a 40-byte packet to the 60-byte minimum; the padding
    // is not part of the packet and is not carried to the backend.
    Bytes in = frame().ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(40003, 80)).build();
    in.resize(60, 0);
    t.push_back(fwd("Ethernet padding after the IP packet", in, 1,
                    flow_key(kClient, 40003, "10.0.0.1", 80, kTcp)));
  }

  // --- L2 variants.
  t.push_back(
      fwd("one 802.1Q tag, kept on the way out",
          frame().vlan({.vid = 100}).ipv4(v4(kClient, "10.0.0.1")).tcp(tcp(40004, 80)).build(), 1,
          flow_key(kClient, 40004, "10.0.0.1", 80, kTcp), 1));
  t.push_back(fwd("802.1ad + 802.1Q (QinQ), both kept",
                  frame()
                      .vlan({.vid = 10, .tpid = SLUICE_ETH_P_8021AD})
                      .vlan({.vid = 100})
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .tcp(tcp(40004, 443))
                      .build(),
                  5, flow_key(kClient6, 40004, "2001:db8::1", 443, kTcp), 2));
  t.push_back(drop("three VLAN tags",
                   frame()
                       .vlan({.vid = 1, .tpid = SLUICE_ETH_P_8021AD})
                       .vlan({.vid = 2})
                       .vlan({.vid = 3})
                       .ipv4(v4(kClient, "10.0.0.1"))
                       .tcp(tcp(40000, 80))
                       .build(),
                   SLUICE_DROP_BAD_L2));

  // --- IPv4 options, IPv6 extension headers.
  t.push_back(fwd("IPv4 with options (router alert, IHL 6)",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.1", .options = {0x94, 0x04, 0, 0}})
                      .tcp(tcp(40005, 80))
                      .build(),
                  1, flow_key(kClient, 40005, "10.0.0.1", 80, kTcp)));
  t.push_back(fwd("IPv6 hop-by-hop, destination options and routing headers before TCP",
                  frame()
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .ipv6_ext(ext6(0, 8))
                      .ipv6_ext(ext6(60, 16))
                      .ipv6_ext(ext6(43, 24))
                      .tcp(tcp(40005, 443))
                      .build(),
                  5, flow_key(kClient6, 40005, "2001:db8::1", 443, kTcp)));
  t.push_back(fwd("IPv6 atomic fragment (offset 0, M 0) is a whole packet: ports read",
                  frame()
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .ipv6_ext(ext6(SLUICE_IPPROTO_FRAGMENT))
                      .tcp(tcp(40006, 443))
                      .build(),
                  5, flow_key(kClient6, 40006, "2001:db8::1", 443, kTcp)));
  t.push_back(drop("five IPv6 extension headers (over SLUICE_MAX_IPV6_EXT_HDRS)",
                   frame()
                       .ipv6(v6(kClient6, "2001:db8::1"))
                       .ipv6_ext(ext6(0))
                       .ipv6_ext(ext6(60))
                       .ipv6_ext(ext6(43))
                       .ipv6_ext(ext6(60))
                       .ipv6_ext(ext6(60))
                       .tcp(tcp(40000, 443))
                       .build(),
                   SLUICE_DROP_BAD_IPV6));
  t.push_back(drop("IPv6 hop-by-hop not first",
                   frame()
                       .ipv6(v6(kClient6, "2001:db8::1"))
                       .ipv6_ext(ext6(60))
                       .ipv6_ext(ext6(0))
                       .tcp(tcp(40000, 443))
                       .build(),
                   SLUICE_DROP_BAD_IPV6));
  // Destination options claiming 64 bytes in a 36-byte payload.
  t.push_back(drop("IPv6 extension header running past the packet",
                   with_byte(frame()
                                 .ipv6(v6(kClient6, "2001:db8::1"))
                                 .ipv6_ext(ext6(60, 16))
                                 .tcp(tcp(40000, 443))
                                 .build(),
                             14 + 40 + 1, 7),
                   SLUICE_DROP_TRUNCATED));

  // --- Fragments: addresses only, every fragment to the same backend.
  const auto k_frag4 = flow_key(kClient, 0, "10.0.0.2", 0, kUdp);
  t.push_back(fwd("IPv4 first fragment (MF) hashes on addresses",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.2", .id = 7, .more_fragments = true})
                      .udp(udp(5000, 53))
                      .payload(pattern(64))
                      .build(),
                  3, k_frag4));
  t.push_back(hit("IPv4 later fragment: same backend as the first",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.2", .id = 7, .frag_offset = 72})
                      .raw({.bytes = pattern(30), .proto = kUdp})
                      .build(),
                  3, k_frag4));
  // To a VIP with a port (no port-0 VIP at its address): the first
  // fragment finds the VIP by its port and leaves its datagram's VIP in
  // sluice_frags, where the later ones (no ports) find it; all are placed
  // by the hash of the addresses and the VIP's port (lb_frag_key_port), so
  // they meet one backend.
  const auto k_pfrag4 = flow_key(kClient, 0, "10.0.0.1", 53, kUdp);
  t.push_back(fwd("IPv4 first fragment to a port VIP finds it by its port",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 9, .more_fragments = true})
                      .udp(udp(5000, 53))
                      .payload(pattern(64))
                      .build(),
                  2, k_pfrag4));
  t.push_back(hit("IPv4 middle fragment to a port VIP: the same backend",
                  frame()
                      .ipv4({.src = kClient,
                             .dst = "10.0.0.1",
                             .id = 9,
                             .more_fragments = true,
                             .frag_offset = 72})
                      .raw({.bytes = pattern(72), .proto = kUdp})
                      .build(),
                  2, k_pfrag4));
  t.push_back(hit("IPv4 last fragment to a port VIP: the same backend",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 9, .frag_offset = 144})
                      .raw({.bytes = pattern(30), .proto = kUdp})
                      .build(),
                  2, k_pfrag4));
  {
    Row r = pass("IPv4 later fragment whose first was not seen: passed and counted",
                 frame()
                     .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 10, .frag_offset = 72})
                     .raw({.bytes = pattern(30), .proto = kUdp})
                     .build());
    r.delta.frag_unmatched = 1;
    t.push_back(r);
  }
  t.push_back(pass("IPv4 first fragment to a VIP address on a port it does not serve",
                   frame()
                       .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 11, .more_fragments = true})
                       .udp(udp(5000, 54))
                       .payload(pattern(64))
                       .build()));
  {
    Row r = pass("IPv4 later fragment of that datagram: no record, passed and counted",
                 frame()
                     .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 11, .frag_offset = 72})
                     .raw({.bytes = pattern(30), .proto = kUdp})
                     .build());
    r.delta.frag_unmatched = 1;
    t.push_back(r);
  }
  // A first fragment that finds no VIP erases the record an older datagram
  // with the same addresses, protocol and id left (review9): its later
  // fragments are not sent after the older one's.
  t.push_back(hit("IPv4 first fragment to a port VIP (datagram id 12)",
                  frame()
                      .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 12, .more_fragments = true})
                      .udp(udp(5000, 53))
                      .payload(pattern(64))
                      .build(),
                  2, k_pfrag4));
  t.push_back(pass("IPv4 first fragment of a new datagram, id 12 again, to no VIP",
                   frame()
                       .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 12, .more_fragments = true})
                       .udp(udp(5000, 54))
                       .payload(pattern(64))
                       .build()));
  {
    Row r = pass("IPv4 later fragment of the new datagram: the old record is gone",
                 frame()
                     .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 12, .frag_offset = 72})
                     .raw({.bytes = pattern(30), .proto = kUdp})
                     .build());
    r.delta.frag_unmatched = 1;
    t.push_back(r);
  }
  // A datagram whose first fragment was dropped: its later fragments are
  // dropped too (the record in sluice_frags is marked), not sent on as
  // half a datagram. `first` is the dropped first fragment's row.
  const auto dropped_datagram = [&](Row first, const char* dst, uint16_t id, uint8_t proto) {
    const uint32_t vip = first.vip;
    t.push_back(std::move(first));
    Row r = drop("IPv4 later fragment of that datagram: dropped as a dropped datagram's",
                 frame()
                     .ipv4({.src = kClient, .dst = dst, .id = id, .frag_offset = 1480})
                     .raw({.bytes = pattern(30), .proto = proto})
                     .build(),
                 SLUICE_DROP_FRAG_OF_DROPPED);
    r.vip = vip;
    t.push_back(r);
  };
  {
    Row r = drop("IPv4 first fragment without DF over the MTU: dropped, no reply",
                 frame()
                     .ipv4({.src = kClient, .dst = "10.0.0.1", .id = 30, .more_fragments = true})
                     .udp(udp(5000, 53))
                     .payload(pattern(1480 - 28 + 8))
                     .build(),
                 SLUICE_DROP_TOO_BIG_DF_CLEAR);
    r.delta.flow_hits = 1;  // the addresses' flow, entered by the rows above
    r.vip = 2;
    dropped_datagram(r, "10.0.0.1", 30, kUdp);
  }
  {
    Row r = drop("IPv4 first fragment to a VIP without backends",
                 frame()
                     .ipv4({.src = kClient, .dst = "10.0.0.5", .id = 31, .more_fragments = true})
                     .tcp(tcp(40030, 80))
                     .payload(pattern(64))
                     .build(),
                 SLUICE_DROP_NO_BACKEND);
    r.vip = 10;
    dropped_datagram(r, "10.0.0.5", 31, kTcp);
  }
  const auto k_pfrag6 = flow_key(kClient6, 0, "2001:db8::1", 443, kTcp);
  t.push_back(fwd("IPv6 first fragment to a port VIP finds it by its port",
                  frame()
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT,
                                 .more_fragments = true,
                                 .frag_id = 0x12345678})
                      .tcp(tcp(40020, 443))
                      .payload(pattern(64))
                      .build(),
                  5, k_pfrag6));
  t.push_back(hit("IPv6 later fragment to a port VIP: the same backend",
                  frame()
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT,
                                 .frag_offset = 88,
                                 .frag_id = 0x12345678})
                      .raw({.bytes = pattern(30), .proto = kTcp})
                      .build(),
                  5, k_pfrag6));
  // Destination options after the fragment header (review9): the first
  // fragment is walked on to its TCP ports; a later one names only 60, and
  // its first fragment's record gives the protocol.
  t.push_back(
      hit("IPv6 first fragment, destination options after the fragment header",
          frame()
              .ipv6(v6(kClient6, "2001:db8::1"))
              .ipv6_ext(
                  {.type = SLUICE_IPPROTO_FRAGMENT, .more_fragments = true, .frag_id = 0x12345679})
              .ipv6_ext({.type = SLUICE_IPPROTO_DSTOPTS, .len = 16})
              .tcp(tcp(40022, 443))
              .payload(pattern(64))
              .build(),
          5, k_pfrag6));
  t.push_back(hit(
      "IPv6 later fragment of that datagram: the same backend",
      frame()
          .ipv6(v6(kClient6, "2001:db8::1"))
          .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 104, .frag_id = 0x12345679})
          .raw({.bytes = pattern(30), .proto = SLUICE_IPPROTO_DSTOPTS})
          .build(),
      5, k_pfrag6));
  {
    Row r = pass(
        "IPv6 later fragment behind destination options, no record: passed and counted",
        frame()
            .ipv6(v6(kClient6, "2001:db8::1"))
            .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 104, .frag_id = 0x1234567a})
            .raw({.bytes = pattern(30), .proto = SLUICE_IPPROTO_DSTOPTS})
            .build());
    r.delta.frag_unmatched = 1;
    t.push_back(r);
  }
  {
    // The same datagram id from another client is another datagram.
    Row r = pass("IPv6 later fragment whose first was not seen: passed and counted",
                 frame()
                     .ipv6(v6("2001:db8:c::11", "2001:db8::1"))
                     .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT,
                                .frag_offset = 88,
                                .frag_id = 0x12345678})
                     .raw({.bytes = pattern(30), .proto = kTcp})
                     .build());
    r.delta.frag_unmatched = 1;
    t.push_back(r);
  }
  const auto k_frag6 = flow_key(kClient6, 0, "2001:db8::1", 0, kUdp);
  t.push_back(fwd("IPv6 first fragment hashes on addresses",
                  frame()
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .more_fragments = true})
                      .udp(udp(5000, 53))
                      .payload(pattern(64))
                      .build(),
                  6, k_frag6));
  t.push_back(hit("IPv6 later fragment: same backend as the first",
                  frame()
                      .ipv6(v6(kClient6, "2001:db8::1"))
                      .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 72})
                      .raw({.bytes = pattern(30), .proto = kUdp})
                      .build(),
                  6, k_frag6));

  // --- ICMP errors about a VIP flow (started by rows above) go to the
  // flow's backend.
  t.push_back(hit("ICMP frag-needed about a VIP flow -> that flow's backend",
                  frame()
                      .ipv4(v4(kRouter, "10.0.0.1"))
                      .icmp({.type = 3, .code = 4, .rest = 1400})
                      .ipv4(v4("10.0.0.1", kClient))
                      .tcp(tcp(80, 40000, 0x10))
                      .build(),
                  1, k_tcp));
  t.push_back(hit("ICMPv6 packet-too-big about a VIP flow -> that flow's backend",
                  frame()
                      .ipv6(v6(kRouter6, "2001:db8::1"))
                      .icmp({.type = 2, .code = 0, .rest = 1280})
                      .ipv6(v6("2001:db8::1", kClient6))
                      .tcp(tcp(443, 40000, 0x10))
                      .build(),
                  5, flow_key(kClient6, 40000, "2001:db8::1", 443, kTcp)));
  t.push_back(hit("ICMP time-exceeded about a UDP VIP flow",
                  frame()
                      .ipv4(v4(kRouter, "10.0.0.1"))
                      .icmp({.type = 11, .code = 0})
                      .ipv4(v4("10.0.0.1", kClient))
                      .udp(udp(53, 5353))
                      .build(),
                  2, flow_key(kClient, 5353, "10.0.0.1", 53, kUdp)));
  t.push_back(pass("ICMP error about a flow that is not a VIP's",
                   frame()
                       .ipv4(v4(kRouter, "10.9.9.9"))
                       .icmp({.type = 3, .code = 4, .rest = 1400})
                       .ipv4(v4("10.9.9.9", kClient))
                       .tcp(tcp(80, 40000))
                       .build()));
  t.push_back(pass("ICMP echo request to a VIP address",
                   frame()
                       .ipv4(v4(kClient, "10.0.0.1"))
                       .icmp({.type = 8, .code = 0, .rest = 0x00010001})
                       .payload(pattern(8))
                       .build()));
  t.push_back(drop("ICMP error with a truncated embedded header",
                   frame()
                       .ipv4(v4(kRouter, "10.0.0.1"))
                       .icmp({.type = 3, .code = 4, .rest = 1400})
                       .payload(pattern(10))
                       .build(),
                   SLUICE_DROP_BAD_ICMP));
  t.push_back(drop("ICMP error whose embedded header is not IPv4",
                   with_byte(frame()
                                 .ipv4(v4(kRouter, "10.0.0.1"))
                                 .icmp({.type = 3, .code = 4, .rest = 1400})
                                 .ipv4(v4("10.0.0.1", kClient))
                                 .tcp(tcp(80, 40000))
                                 .build(),
                             14 + 20 + 8, 0x65),
                   SLUICE_DROP_BAD_ICMP));

  // --- Too big after encapsulation.
  t.push_back(too_big4("IPv4 DF over the MTU once encapsulated -> ICMP frag-needed (MTU 1480)", 1,
                       "10.0.0.1", kMtu - 20));
  t.push_back(too_big4("IPv4 DF to an IPv6 backend: the next-hop MTU counts the IPv6 header", 7,
                       "10.0.0.3", kMtu - 40));
  {
    const Bytes in = frame()
                         .ipv4(v4(kClient, "10.0.0.1"))
                         .tcp(tcp(40007, 80, 0x10))
                         .payload(pattern(1440))
                         .build();
    t.push_back(fwd("IPv4 exactly at the MTU once encapsulated is forwarded", in, 1,
                    flow_key(kClient, 40007, "10.0.0.1", 80, kTcp)));
  }
  {
    Row r = drop("IPv4 without DF over the MTU: no reply (XDP cannot fragment), counted apart",
                 frame()
                     .ipv4(v4(kClient, "10.0.0.1"))
                     .tcp(tcp(40008, 80, 0x10))
                     .payload(pattern(1460))
                     .build(),
                 SLUICE_DROP_TOO_BIG_DF_CLEAR);
    r.delta.flow_misses = 1;
    r.vip = 1;
    r.new_flow = true;
    t.push_back(r);
  }
  // Too big, but no reply may go back (build_icmp_too_big's rules): a
  // counted drop like the one above.
  const auto too_big_no_reply = [&](std::string name, Ipv4Spec ip, uint16_t sport, uint32_t vip,
                                    const Mac& dst_mac = kLbMac) {
    ip.dont_fragment = true;
    const Bytes in = PacketBuilder()
                         .eth({.dst = dst_mac, .src = kRouterMac})
                         .ipv4(ip)
                         .tcp(tcp(sport, 80, 0x10))
                         .payload(pattern(1460))
                         .build();
    Row r = drop(std::move(name), in, SLUICE_DROP_TOO_BIG);
    r.delta.flow_misses = 1;
    r.vip = vip;
    r.new_flow = true;
    t.push_back(r);
  };
  too_big_no_reply("too big from a multicast source: no reply", v4("224.0.0.5", "10.0.0.1"), 40013,
                   1);
  too_big_no_reply("too big from a loopback source: no reply", v4("127.0.0.1", "10.0.0.1"), 40014,
                   1);
  too_big_no_reply("too big to a link-layer broadcast: no reply", v4(kClient, "10.0.0.1"), 40015, 1,
                   Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  {
    // The reply would leave from the group MAC (as IPv4: none).
    const Bytes in = PacketBuilder()
                         .eth({.dst = Mac{0x33, 0x33, 0, 0, 0, 1}, .src = kRouterMac})
                         .ipv6(v6(kClient6, "2001:db8::1"))
                         .tcp(tcp(40016, 443, 0x10))
                         .payload(pattern(1480 - 60))
                         .build();
    Row r = drop("IPv6 too big to a link-layer multicast: no reply", in, SLUICE_DROP_TOO_BIG);
    r.delta.flow_misses = 1;
    r.vip = 5;
    r.new_flow = true;
    t.push_back(r);
  }
  {
    // Only a datagram's first fragment is answered (RFC 1812 4.3.2.7).
    Row r = drop("IPv4 later fragment with DF over the MTU: no reply",
                 frame()
                     .ipv4({.src = "192.0.2.99",
                            .dst = "10.0.0.2",
                            .dont_fragment = true,
                            .frag_offset = 1480})
                     .raw({.bytes = pattern(1464), .proto = kUdp})
                     .build(),
                 SLUICE_DROP_TOO_BIG);
    r.delta.flow_misses = 1;
    r.vip = 3;
    r.new_flow = true;
    t.push_back(r);
  }
  {
    Row r = drop("IPv6 later fragment over the MTU: no reply",
                 frame()
                     .ipv6(v6("2001:db8:c::99", "2001:db8::1"))
                     .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 1448})
                     .raw({.bytes = pattern(1440), .proto = kUdp})
                     .build(),
                 SLUICE_DROP_TOO_BIG);
    r.delta.flow_misses = 1;
    r.vip = 6;
    r.new_flow = true;
    t.push_back(r);
  }

  // --- Not a VIP: untouched.
  t.push_back(pass("TCP to an address that is no VIP", tcp4("10.9.9.9", 80)));
  t.push_back(pass("TCP to a VIP address on a port it does not serve", tcp4("10.0.0.1", 81)));
  t.push_back(pass("UDP to a TCP-only VIP",
                   frame().ipv4(v4(kClient, "10.0.0.1")).udp(udp(40000, 80)).build()));
  t.push_back(pass("ARP", frame().raw({.bytes = pattern(28), .ethertype = 0x0806}).build()));
  t.push_back(
      pass("GRE to a VIP address",
           frame().ipv4(v4(kClient, "10.0.0.1")).raw({.bytes = pattern(24), .proto = 47}).build()));

  // --- VIP without backends.
  {
    Row r = drop("VIP with an empty table", tcp4("10.0.0.5", 80), SLUICE_DROP_NO_BACKEND);
    r.vip = 10;
    t.push_back(r);
  }

  // --- Malformed and truncated: a counted drop, never a forward.
  t.push_back(
      drop("Ethernet header only", slice(tcp4("10.0.0.1", 80), 0, 14), SLUICE_DROP_TRUNCATED));
  t.push_back(drop("IPv4 header cut short", slice(tcp4("10.0.0.1", 80), 0, 14 + 12),
                   SLUICE_DROP_TRUNCATED));
  t.push_back(
      drop("IPv4 version 5", with_byte(tcp4("10.0.0.1", 80), 14, 0x55), SLUICE_DROP_BAD_IPV4));
  t.push_back(drop("IPv4 IHL 4", with_byte(tcp4("10.0.0.1", 80), 14, 0x44), SLUICE_DROP_BAD_IPV4));
  t.push_back(drop("IPv4 total length past the frame",
                   frame()
                       .ipv4({.src = kClient, .dst = "10.0.0.1", .total_length = 1000})
                       .tcp(tcp(40000, 80))
                       .build(),
                   SLUICE_DROP_BAD_IPV4));
  t.push_back(drop("IPv4 total length below the header",
                   frame()
                       .ipv4({.src = kClient, .dst = "10.0.0.1", .total_length = 16})
                       .tcp(tcp(40000, 80))
                       .build(),
                   SLUICE_DROP_BAD_IPV4));
  t.push_back(drop("TCP header cut short",
                   slice(frame()
                             .ipv4({.src = kClient, .dst = "10.0.0.1", .total_length = 30})
                             .tcp(tcp(40000, 80))
                             .build(),
                         0, 14 + 30),
                   SLUICE_DROP_TRUNCATED));
  t.push_back(drop("TCP data offset 4",
                   frame()
                       .ipv4(v4(kClient, "10.0.0.1"))
                       .tcp({.sport = 40000, .dport = 80, .data_offset = 4})
                       .build(),
                   SLUICE_DROP_BAD_L4));
  t.push_back(drop(
      "UDP length below its header",
      frame().ipv4(v4(kClient, "10.0.0.1")).udp({.sport = 5353, .dport = 53, .length = 4}).build(),
      SLUICE_DROP_BAD_L4));
  t.push_back(drop("UDP length past the IP payload",
                   frame()
                       .ipv4(v4(kClient, "10.0.0.1"))
                       .udp({.sport = 5353, .dport = 53, .length = 200})
                       .payload(pattern(10))
                       .build(),
                   SLUICE_DROP_BAD_L4));
  t.push_back(drop(
      "IPv6 header cut short",
      slice(frame().ipv6(v6(kClient6, "2001:db8::1")).tcp(tcp(40000, 443)).build(), 0, 14 + 30),
      SLUICE_DROP_TRUNCATED));
  // Payload length 0 (empty, or a jumbogram): no TCP header fits in it.
  t.push_back(drop("IPv6 payload length 0",
                   frame()
                       .ipv6({.src = kClient6, .dst = "2001:db8::1", .payload_length = 0})
                       .tcp(tcp(40000, 443))
                       .build(),
                   SLUICE_DROP_TRUNCATED));
  t.push_back(drop("IPv6 payload length past the frame",
                   frame()
                       .ipv6({.src = kClient6, .dst = "2001:db8::1", .payload_length = 500})
                       .tcp(tcp(40000, 443))
                       .build(),
                   SLUICE_DROP_BAD_IPV6));
  t.push_back(drop(
      "IPv6 version 4 in an IPv6 EtherType",
      with_byte(frame().ipv6(v6(kClient6, "2001:db8::1")).tcp(tcp(40000, 443)).build(), 14, 0x40),
      SLUICE_DROP_BAD_IPV6));
  return t;
}

TEST_F(LbPacketTest, FixtureTable) {
  for (const Row& row : rows()) {
    SCOPED_TRACE(row.name);
    const auto g0 = global_stats();
    const auto v0 = row.vip != SLUICE_BACKEND_NONE ? vip_stats(row.vip) : sluice_vip_stats{};
    const auto b0 =
        row.backend != SLUICE_BACKEND_NONE ? backend_stats(row.backend) : sluice_backend_stats{};

    const XdpRun r = run(row.in);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, row.verdict);
    if (row.verdict == XDP_PASS) {
      EXPECT_EQ(r.out, row.in) << "a passed packet must be untouched";
    } else if (row.verdict == XDP_TX) {
      EXPECT_EQ(r.out, row.out);
    }
    expect_stats_delta(g0, global_stats(), row.delta);

    if (row.vip != SLUICE_BACKEND_NONE) {
      const auto v1 = vip_stats(row.vip);
      const bool sent = row.verdict == XDP_TX && row.delta.tx_packets == 1;
      EXPECT_EQ(v1.packets - v0.packets, sent ? 1u : 0u);
      EXPECT_EQ(v1.bytes - v0.bytes, sent ? row.in.size() : 0u);
      EXPECT_EQ(v1.drops - v0.drops, sent ? 0u : 1u);
      EXPECT_EQ(v1.new_flows - v0.new_flows, row.new_flow ? 1u : 0u);
    }
    if (row.backend != SLUICE_BACKEND_NONE) {
      const auto b1 = backend_stats(row.backend);
      EXPECT_EQ(b1.packets - b0.packets, 1u);
      EXPECT_EQ(b1.bytes - b0.bytes, row.in.size());
      EXPECT_EQ(b1.new_flows - b0.new_flows, row.new_flow ? 1u : 0u);
    }
  }
}

// The rows above check each packet against the backend its key should
// get; they would prove little if every key met the same backend.
TEST_F(LbPacketTest, WorldSpreadsFlowsOverBackends) {
  std::vector<int> seen(4, 0);
  for (uint16_t port = 1000; port < 1100; ++port)
    ++seen[choice(1, flow_key(kClient, port, "10.0.0.1", 80, kTcp))];
  EXPECT_GT(seen[1], 0);
  EXPECT_GT(seen[2], 0);
  EXPECT_GT(seen[3], 0);
}

TEST_F(LbPacketTest, NoNextHopConfiguredDropsInsteadOfSendingToANullMac) {
  set_next_hop(Mac{}, kLbMac);
  const Bytes in = tcp4("10.0.0.1", 80);
  const auto g0 = global_stats();
  const XdpRun r = run(in);
  EXPECT_EQ(r.verdict, XDP_DROP);
  sluice_global_stats d = dropped(in.size(), SLUICE_DROP_TX_FAILED);
  d.flow_misses = 1;
  expect_stats_delta(g0, global_stats(), d);
}

TEST_F(LbPacketTest, IcmpErrorsNeverCreateFlowEntries) {
  const Bytes err = frame()
                        .ipv4(v4(kRouter, "10.0.0.1"))
                        .icmp({.type = 3, .code = 4, .rest = 1400})
                        .ipv4(v4("10.0.0.1", kClient))
                        .tcp(tcp(80, 41000, 0x10))
                        .build();
  EXPECT_EQ(run(err).verdict, XDP_TX);
  const auto key = flow_key(kClient, 41000, "10.0.0.1", 80, kTcp);
  sluice_flow_value v{};
  EXPECT_TRUE(take_probation().empty());
  EXPECT_NE(bpf_map_lookup_elem(fd(skel()->maps.sluice_flows), &key, &v), 0);
}

// An address with both a port VIP and a port-0 wildcard: a datagram's
// later fragments follow its first fragment's record in sluice_frags to
// the port VIP, and take the wildcard only when there is no record. Each
// VIP has its own backends, so the wrong VIP shows as the wrong backend;
// the probation slots are emptied between fragments, as a fragment coming
// on another CPU (whose slots do not hold the flow) would find them.
TEST_F(LbPacketTest, LaterFragmentsFollowTheirFirstNotTheWildcard) {
  add_vip({"10.0.0.6", 53, kUdp, 11, 0, {1, 2, 3}});
  add_vip({"10.0.0.6", 0, kUdp, 12, 0, {11, 12}});
  // A port VIP's fragments carry its port in their flow key; the
  // wildcard's have ports 0 (lb_frag_key_port).
  const auto port_key = flow_key(kClient, 0, "10.0.0.6", 53, kUdp);
  const auto key = flow_key(kClient, 0, "10.0.0.6", 0, kUdp);
  const auto fragment = [](uint16_t id, uint16_t offset, bool more) {
    PacketBuilder b = frame().ipv4(
        {.src = kClient, .dst = "10.0.0.6", .id = id, .more_fragments = more, .frag_offset = offset});
    if (offset == 0) return b.udp(udp(5000, 53)).payload(pattern(64)).build();
    return b.raw({.bytes = pattern(30), .proto = kUdp}).build();
  };

  const XdpRun first = run(fragment(21, 0, true));
  ASSERT_EQ(first.verdict, XDP_TX);
  EXPECT_EQ(backend_of(first), choice(11, port_key));
  EXPECT_EQ(take_probation().size(), 1u);
  const XdpRun later = run(fragment(21, 72, false));
  ASSERT_EQ(later.verdict, XDP_TX);
  EXPECT_EQ(backend_of(later), choice(11, port_key)) << "the datagram was split across backends";
  EXPECT_EQ(vip_stats(11).packets, 2u);
  EXPECT_EQ(vip_stats(12).packets, 0u);

  // Another datagram's later fragment, its first not seen: the wildcard.
  EXPECT_EQ(take_probation().size(), 1u);
  const XdpRun unrecorded = run(fragment(22, 72, false));
  ASSERT_EQ(unrecorded.verdict, XDP_TX);
  EXPECT_EQ(backend_of(unrecorded), choice(12, key));
  EXPECT_EQ(vip_stats(12).packets, 1u);
  EXPECT_EQ(global_stats().frag_unmatched, 0u);
}

// Fragments have no ports of their own, so the flow entry one VIP's
// fragmented datagrams establish must not place another VIP's datagrams
// from the same client to the same address: each VIP (two port VIPs and the
// wildcard, each with backends of its own) keeps its datagrams on its own
// backends, established entries and all, in either order.
TEST_F(LbPacketTest, FragmentedDatagramsOfVipsOnOneAddressKeepTheirOwnBackends) {
  add_vip({"10.0.0.7", 9999, kUdp, 13, 0, {1}});
  add_vip({"10.0.0.7", 7777, kUdp, 14, 0, {3}});
  add_vip({"10.0.0.7", 0, kUdp, 15, 0, {11, 12}});
  uint16_t id = 100;
  // One two-fragment datagram to `dport`; returns the backends of both.
  const auto datagram = [&](uint16_t dport) {
    const auto ip = [&](uint16_t offset, bool more) {
      return frame().ipv4({.src = kClient,
                           .dst = "10.0.0.7",
                           .id = id,
                           .more_fragments = more,
                           .frag_offset = offset});
    };
    const XdpRun first = run(ip(0, true).udp(udp(4001, dport)).payload(pattern(64)).build());
    const XdpRun later = run(ip(72, false).raw({.bytes = pattern(30), .proto = kUdp}).build());
    ++id;
    EXPECT_EQ(first.verdict, XDP_TX);
    EXPECT_EQ(later.verdict, XDP_TX);
    return std::pair{backend_of(first), backend_of(later)};
  };
  const std::set<uint32_t> wildcard = {11, 12};
  for (int round = 0; round < 3; ++round) {  // the second round finds established entries
    SCOPED_TRACE(round);
    EXPECT_EQ(datagram(9999), std::pair(1u, 1u));
    const auto w = datagram(5555);
    EXPECT_TRUE(wildcard.count(w.first) == 1 && w.second == w.first)
        << "wildcard datagram sent to " << w.first << " and " << w.second;
    EXPECT_EQ(datagram(7777), std::pair(3u, 3u));
  }
  EXPECT_EQ(vip_stats(13).packets, 6u);
  EXPECT_EQ(vip_stats(14).packets, 6u);
  EXPECT_EQ(vip_stats(15).packets, 6u);
}

TEST_F(LbPacketTest, Ipv6TooBigRepliesWithPacketTooBig) {
  const Bytes in = frame()
                       .ipv6(v6(kClient6, "2001:db8::1"))
                       .tcp(tcp(40009, 443, 0x10))
                       .payload(pattern(1480 - 60))
                       .build();
  ASSERT_EQ(in.size(), 14u + 1480u);
  const XdpRun r = run(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  // 1280 bytes: IPv6 header, ICMPv6 header, 1232 bytes of the packet.
  ASSERT_EQ(r.out.size(), 14u + 1280u);
  const Bytes reply = PacketBuilder()
                          .ipv6({.src = "2001:db8::1", .dst = kClient6, .hop_limit = 64})
                          .icmp_error(2, 0, slice(in, 14, 1232), kMtu - 40)
                          .build_ip();
  const Bytes want = cat({l2_header(in, 0, kRouterMac, kLbMac, SLUICE_ETH_P_IPV6), reply});
  EXPECT_EQ(r.out, want);
  EXPECT_EQ(global_stats().icmp_too_big_sent, 1u);
  EXPECT_EQ(global_stats().drops[SLUICE_DROP_TOO_BIG], 1u);
}

TEST_F(LbPacketTest, TooBigReplyKeepsVlanTags) {
  const Bytes in = frame()
                       .vlan({.vid = 42})
                       .ipv4({.src = kClient, .dst = "10.0.0.1", .dont_fragment = true})
                       .tcp(tcp(40010, 80, 0x10))
                       .payload(pattern(1460))
                       .build();
  const XdpRun r = run(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  ASSERT_GE(r.out.size(), 18u + 20u);
  EXPECT_EQ(slice(r.out, 0, 18), l2_header(in, 1, kRouterMac, kLbMac, SLUICE_ETH_P_IP));
  EXPECT_EQ(r.out.size(), 18u + 576u);
  // The reply's IPv4 header and ICMP message check out.
  EXPECT_EQ(checksum(&r.out[18], 20), 0);
  EXPECT_EQ(checksum(&r.out[38], 8 + 548), 0);
}

}  // namespace
}  // namespace sluice::test
