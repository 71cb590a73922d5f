// SPDX-License-Identifier: BSD-2-Clause
// The packet parser: a fixture table of crafted frames (valid, malformed and
// not ours), every valid frame truncated at every length, header fields and
// offsets, and one flow giving one key and one hash however it is wrapped.
#include "dataplane/core/packet_parser.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/common/packet_builder.hpp"
#include "tests/common/parse_invariants.hpp"

namespace sluice {
namespace {

using test::Bytes;
using test::kClientV4;
using test::kClientV6;
using test::kVipV4;
using test::kVipV6;
using test::PacketBuilder;

constexpr const char* kRouterV4 = "203.0.113.1";
constexpr const char* kRouterV6 = "2001:db8:e::1";
constexpr uint32_t kSeed = 0x5eed1234;

// Parses a copy of `b` in a heap buffer of exactly its size, so ASan flags
// any read past the end.
ParseResult parse_exact(const Bytes& b, size_t n) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
  if (n != 0) std::memcpy(buf.get(), b.data(), n);
  return parse_packet(buf.get(), n);
}

ParseResult parse_exact(const Bytes& b) { return parse_exact(b, b.size()); }

sluice_flow_key make_key(const std::string& src, const std::string& dst, uint16_t sport,
                         uint16_t dport, uint8_t proto) {
  sluice_flow_key k;
  std::memset(&k, 0, sizeof k);
  const IpAddress s = test::address(src);
  const IpAddress d = test::address(dst);
  std::memcpy(k.src.bytes, s.ip.bytes, s.size());
  std::memcpy(k.dst.bytes, d.ip.bytes, d.size());
  k.sport = sl_htons(sport);
  k.dport = sl_htons(dport);
  k.proto = proto;
  k.family = s.family;
  return k;
}

bool same_key(const sluice_flow_key& a, const sluice_flow_key& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

std::string key_text(const sluice_flow_key& k) {
  IpAddress s;
  IpAddress d;
  s.ip = k.src;
  d.ip = k.dst;
  s.family = d.family =
      k.family == SLUICE_FAMILY_IPV6 ? uint8_t{SLUICE_FAMILY_IPV6} : uint8_t{SLUICE_FAMILY_IPV4};
  return s.to_string() + ":" + std::to_string(sl_ntohs(k.sport)) + " -> " + d.to_string() + ":" +
         std::to_string(sl_ntohs(k.dport)) + " proto " + std::to_string(k.proto) + " family " +
         std::to_string(k.family);
}

Bytes patched8(Bytes b, size_t off, uint8_t v) {
  b.at(off) = v;
  return b;
}

Bytes patched16(Bytes b, size_t off, uint16_t v) {
  test::put_be16(b, off, v);
  return b;
}

// The same client -> VIP TCP flow, and the server's reply that ICMP errors
// quote (VIP -> client, ports swapped).
PacketBuilder v4_tcp() { return PacketBuilder().ipv4().tcp(); }
PacketBuilder v6_tcp() { return PacketBuilder().ipv6().tcp(); }
Bytes v4_reply(uint8_t proto) {
  PacketBuilder b;
  b.ipv4({.src = kVipV4, .dst = kClientV4});
  if (proto == SLUICE_IPPROTO_TCP) {
    b.tcp({.sport = 80, .dport = 40000, .flags = kTcpSyn | kTcpAck});
  } else {
    b.udp({.sport = 53, .dport = 40000}).payload(Bytes(64, 0xab));
  }
  return b.build_ip();
}
Bytes v6_reply(uint8_t proto) {
  PacketBuilder b;
  b.ipv6({.src = kVipV6, .dst = kClientV6});
  if (proto == SLUICE_IPPROTO_TCP) {
    b.tcp({.sport = 80, .dport = 40000, .flags = kTcpAck}).payload(Bytes(1400, 0xcd));
  } else {
    b.udp({.sport = 53, .dport = 40000}).payload(Bytes(64, 0xab));
  }
  return b.build_ip();
}

Bytes arp_request() {
  // Ethernet/IPv4 ARP request (RFC 826): htype 1, ptype 0x0800, who has
  // 192.0.2.10 tell 198.51.100.7.
  Bytes arp = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 0x02, 0, 0,   0, 0, 0x01,
               198,  51,   100,  7,    0, 0, 0,    0,    0,    0, 192, 0, 2, 10};
  return PacketBuilder().raw({.bytes = arp, .ethertype = 0x0806}).build();
}

struct Expect {
  ParseStatus status = ParseStatus::kOk;
  // The expected key; empty `src` means all-zero (or, for a reject, unchecked).
  std::string src{};
  std::string dst{};
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint8_t proto = 0;
  uint8_t vlans = 0;
  bool fragment = false;
  bool icmp_error = false;
};

struct Fixture {
  std::string name;
  Bytes frame;
  Expect want;
};

Expect v4_flow(uint8_t vlans = 0) {
  return {.src = kClientV4,
          .dst = kVipV4,
          .sport = 40000,
          .dport = 80,
          .proto = SLUICE_IPPROTO_TCP,
          .vlans = vlans};
}
Expect v6_flow() {
  return {
      .src = kClientV6, .dst = kVipV6, .sport = 40000, .dport = 80, .proto = SLUICE_IPPROTO_TCP};
}
Expect reject(ParseStatus s) { return {.status = s}; }

// A chain of IPv6 extension headers of the given types, then TCP.
Bytes v6_ext_chain(std::initializer_list<uint8_t> types) {
  PacketBuilder b;
  b.ipv6();
  for (uint8_t t : types) b.ipv6_ext({.type = t, .len = 16});
  return b.tcp().build();
}

std::vector<Fixture> fixtures() {
  constexpr size_t kL3 = SLUICE_ETH_HLEN;
  const uint8_t tcp = SLUICE_IPPROTO_TCP;
  const uint8_t udp = SLUICE_IPPROTO_UDP;
  const uint8_t hop = SLUICE_IPPROTO_HOPOPTS;
  const uint8_t rt = SLUICE_IPPROTO_ROUTING;
  const uint8_t dst = SLUICE_IPPROTO_DSTOPTS;
  const uint8_t frag = SLUICE_IPPROTO_FRAGMENT;

  std::vector<Fixture> f;
  // Plain flows.
  f.push_back({"ipv4 tcp syn", v4_tcp().build(), v4_flow()});
  f.push_back(
      {"ipv4 udp",
       PacketBuilder().ipv4().udp({.sport = 5353, .dport = 53}).payload(Bytes(12, 1)).build(),
       {.src = kClientV4, .dst = kVipV4, .sport = 5353, .dport = 53, .proto = udp}});
  f.push_back({"ipv6 tcp syn", v6_tcp().build(), v6_flow()});
  f.push_back(
      {"ipv6 udp",
       PacketBuilder().ipv6().udp({.sport = 5353, .dport = 11211}).payload(Bytes(30, 2)).build(),
       {.src = kClientV6, .dst = kVipV6, .sport = 5353, .dport = 11211, .proto = udp}});
  f.push_back({"ipv4 tcp with ethernet padding",
               PacketBuilder().ipv4().tcp().trailer(Bytes(6, 0)).build(), v4_flow()});
  f.push_back({"ipv4 udp zero payload",
               PacketBuilder().ipv4().udp({.sport = 1, .dport = 2}).trailer(Bytes(18, 0)).build(),
               {.src = kClientV4, .dst = kVipV4, .sport = 1, .dport = 2, .proto = udp}});
  f.push_back({"ipv4 tcp with options and payload",
               PacketBuilder()
                   .ipv4()
                   .tcp({.options = {2, 4, 0x05, 0xb4, 1, 1, 4, 2}})
                   .payload(Bytes(100, 7))
                   .build(),
               v4_flow()});

  // VLAN tags.
  f.push_back(
      {"vlan ipv4 tcp", PacketBuilder().vlan({.vid = 10}).ipv4().tcp().build(), v4_flow(1)});
  f.push_back({"qinq ipv4 tcp",
               PacketBuilder()
                   .vlan({.vid = 100, .tpid = SLUICE_ETH_P_8021AD})
                   .vlan({.vid = 10})
                   .ipv4()
                   .tcp()
                   .build(),
               v4_flow(2)});
  f.push_back(
      {"two 802.1q tags ipv6 tcp",
       PacketBuilder().vlan({.vid = 5}).vlan({.vid = 6}).ipv6().tcp().build(),
       {.src = kClientV6, .dst = kVipV6, .sport = 40000, .dport = 80, .proto = tcp, .vlans = 2}});
  f.push_back({"three vlan tags",
               PacketBuilder()
                   .vlan({.vid = 1, .tpid = SLUICE_ETH_P_8021AD})
                   .vlan({.vid = 2})
                   .vlan({.vid = 3})
                   .ipv4()
                   .tcp()
                   .build(),
               reject(ParseStatus::kTooManyVlanTags)});

  // IPv4 header.
  f.push_back({"ipv4 router alert option",
               PacketBuilder().ipv4({.options = {0x94, 0x04, 0x00, 0x00}}).tcp().build(),
               v4_flow()});
  f.push_back({"ipv4 40 bytes of options",
               PacketBuilder().ipv4({.options = Bytes(40, 0x01)}).tcp().build(), v4_flow()});
  f.push_back({"ipv4 ihl 4", patched8(v4_tcp().build(), kL3, 0x44),
               reject(ParseStatus::kBadIpv4HeaderLength)});
  f.push_back({"ipv4 ihl 0", patched8(v4_tcp().build(), kL3, 0x40),
               reject(ParseStatus::kBadIpv4HeaderLength)});
  f.push_back({"ipv4 ihl past the frame",
               patched8(PacketBuilder().ipv4().raw({.proto = 253}).build(), kL3, 0x4f),
               reject(ParseStatus::kTruncated)});
  f.push_back({"ipv4 version 6 under ethertype ipv4", patched8(v4_tcp().build(), kL3, 0x65),
               reject(ParseStatus::kBadIpv4Version)});
  f.push_back({"ipv4 total length below ihl", patched16(v4_tcp().build(), kL3 + 2, 19),
               reject(ParseStatus::kBadIpv4TotalLength)});
  f.push_back({"ipv4 total length one past the frame", patched16(v4_tcp().build(), kL3 + 2, 41),
               reject(ParseStatus::kBadIpv4TotalLength)});
  f.push_back({"ipv4 total length leaves tcp short", patched16(v4_tcp().build(), kL3 + 2, 39),
               reject(ParseStatus::kTruncated)});

  // IPv6 header and extension headers.
  f.push_back({"ipv6 version 4 under ethertype ipv6", patched8(v6_tcp().build(), kL3, 0x45),
               reject(ParseStatus::kBadIpv6Version)});
  f.push_back({"ipv6 payload length past the frame", patched16(v6_tcp().build(), kL3 + 4, 21),
               reject(ParseStatus::kBadIpv6PayloadLength)});
  f.push_back({"ipv6 hop-by-hop", v6_ext_chain({hop}), v6_flow()});
  f.push_back({"ipv6 routing", v6_ext_chain({rt}), v6_flow()});
  f.push_back({"ipv6 destination options", v6_ext_chain({dst}), v6_flow()});
  f.push_back({"ipv6 atomic fragment",
               PacketBuilder().ipv6().ipv6_ext({.type = frag, .frag_id = 9}).tcp().build(),
               v6_flow()});
  f.push_back({"ipv6 chain at the bound", v6_ext_chain({hop, dst, rt, dst}), v6_flow()});
  f.push_back({"ipv6 chain past the bound", v6_ext_chain({hop, dst, rt, dst, dst}),
               reject(ParseStatus::kIpv6ExtChainTooLong)});
  f.push_back({"ipv6 extension past the packet",
               patched8(v6_ext_chain({dst}), kL3 + SLUICE_IPV6_HLEN + 1, 200),
               reject(ParseStatus::kTruncated)});

  // TCP and UDP headers.
  f.push_back({"tcp data offset 4", patched8(v4_tcp().build(), kL3 + 20 + 12, 0x40),
               reject(ParseStatus::kBadTcpHeaderLength)});
  f.push_back({"tcp data offset past the packet", patched8(v4_tcp().build(), kL3 + 20 + 12, 0x60),
               reject(ParseStatus::kBadTcpHeaderLength)});
  const Bytes v4_udp = PacketBuilder().ipv4().udp().payload(Bytes(8, 3)).build();
  f.push_back(
      {"udp length 7", patched16(v4_udp, kL3 + 20 + 4, 7), reject(ParseStatus::kBadUdpLength)});
  f.push_back({"udp length past the packet", patched16(v4_udp, kL3 + 20 + 4, 17),
               reject(ParseStatus::kBadUdpLength)});
  f.push_back({"udp length short of the packet",
               patched16(v4_udp, kL3 + 20 + 4, 12),
               {.src = kClientV4, .dst = kVipV4, .sport = 40000, .dport = 53, .proto = udp}});

  // Fragments: every piece keyed on addresses and protocol only.
  const Bytes v4_dgram = PacketBuilder()
                             .ipv4({.id = 77})
                             .udp({.sport = 4000, .dport = 53})
                             .payload(Bytes(100, 0x5a))
                             .build();
  const auto v4_frags = test::fragment_ipv4(v4_dgram, kL3, 48);
  const Expect v4_frag = {.src = kClientV4, .dst = kVipV4, .proto = udp, .fragment = true};
  f.push_back({"ipv4 first fragment", v4_frags.at(0), v4_frag});
  f.push_back({"ipv4 middle fragment", v4_frags.at(1), v4_frag});
  f.push_back({"ipv4 last fragment", v4_frags.at(2), v4_frag});
  const Bytes v6_dgram = PacketBuilder()
                             .ipv6()
                             .ipv6_ext({.type = hop, .len = 8})
                             .tcp()
                             .payload(Bytes(100, 0x6b))
                             .build();
  const auto v6_frags = test::fragment_ipv6(v6_dgram, kL3, 48, 0xabcd);
  const Expect v6_frag = {.src = kClientV6, .dst = kVipV6, .proto = tcp, .fragment = true};
  f.push_back({"ipv6 first fragment", v6_frags.at(0), v6_frag});
  f.push_back({"ipv6 middle fragment", v6_frags.at(1), v6_frag});
  f.push_back({"ipv6 last fragment", v6_frags.at(2), v6_frag});

  // ICMP errors about a flow: keyed as the flow's client -> VIP packets.
  const Expect v4_tcp_err = {.src = kClientV4,
                             .dst = kVipV4,
                             .sport = 40000,
                             .dport = 80,
                             .proto = tcp,
                             .icmp_error = true};
  const Expect v4_udp_err = {.src = kClientV4,
                             .dst = kVipV4,
                             .sport = 40000,
                             .dport = 53,
                             .proto = udp,
                             .icmp_error = true};
  const Expect v6_tcp_err = {.src = kClientV6,
                             .dst = kVipV6,
                             .sport = 40000,
                             .dport = 80,
                             .proto = tcp,
                             .icmp_error = true};
  const Expect v6_udp_err = {.src = kClientV6,
                             .dst = kVipV6,
                             .sport = 40000,
                             .dport = 53,
                             .proto = udp,
                             .icmp_error = true};
  const auto icmp4 = [](uint8_t type, uint8_t code, const Bytes& quote, uint32_t rest = 0) {
    return PacketBuilder()
        .ipv4({.src = kRouterV4, .dst = kVipV4})
        .icmp_error(type, code, quote, rest)
        .build();
  };
  const auto icmp6 = [](uint8_t type, uint8_t code, const Bytes& quote, uint32_t rest = 0) {
    return PacketBuilder()
        .ipv6({.src = kRouterV6, .dst = kVipV6})
        .icmp_error(type, code, quote, rest)
        .build();
  };
  f.push_back(
      {"icmp frag needed about tcp", icmp4(3, 4, test::head(v4_reply(tcp), 28), 1400), v4_tcp_err});
  f.push_back({"icmp port unreachable about udp", icmp4(3, 3, v4_reply(udp)), v4_udp_err});
  f.push_back(
      {"icmp time exceeded about udp", icmp4(11, 0, test::head(v4_reply(udp), 28)), v4_udp_err});
  f.push_back({"icmp parameter problem about tcp", icmp4(12, 0, test::head(v4_reply(tcp), 40)),
               v4_tcp_err});
  f.push_back({"icmpv6 packet too big about tcp",
               icmp6(2, 0, test::head(v6_reply(tcp), 1232), 1280), v6_tcp_err});
  f.push_back({"icmpv6 destination unreachable about udp",
               icmp6(1, 4, test::head(v6_reply(udp), 48)), v6_udp_err});
  f.push_back(
      {"icmpv6 time exceeded about tcp", icmp6(3, 0, test::head(v6_reply(tcp), 48)), v6_tcp_err});
  f.push_back({"icmpv6 parameter problem about udp", icmp6(4, 0, v6_reply(udp)), v6_udp_err});
  f.push_back({"icmp error quote one byte short", icmp4(3, 4, test::head(v4_reply(tcp), 27), 1400),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmpv6 error quote one byte short",
               icmp6(2, 0, test::head(v6_reply(tcp), 47), 1280),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmp error quoting ipv6", icmp4(3, 1, test::head(v6_reply(tcp), 48)),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmp error quoting a later fragment",
               icmp4(11, 1, test::fragment_ipv4(v4_reply(udp), 0, 32).at(1)),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmp error quoting ihl 4",
               icmp4(3, 4, patched8(test::head(v4_reply(tcp), 28), 0, 0x44), 1400),
               reject(ParseStatus::kBadIcmpEmbedded)});
  const Bytes echo_reply =
      PacketBuilder().ipv4({.src = kVipV4, .dst = kClientV4}).icmp({.type = 0}).build_ip();
  f.push_back({"icmp error quoting an echo reply",
               icmp4(11, 0, echo_reply),
               {.status = ParseStatus::kIcmpOther,
                .src = kRouterV4,
                .dst = kVipV4,
                .proto = SLUICE_IPPROTO_ICMP,
                .icmp_error = true}});

  // Not for the flow logic: passed or counted by the caller.
  f.push_back(
      {"icmp echo request",
       PacketBuilder().ipv4().icmp({.type = 8, .rest = 0x00010001}).payload(Bytes(56, 0)).build(),
       {.status = ParseStatus::kIcmpOther,
        .src = kClientV4,
        .dst = kVipV4,
        .proto = SLUICE_IPPROTO_ICMP}});
  f.push_back({"icmp source quench is not an error",
               icmp4(4, 0, test::head(v4_reply(tcp), 28)),
               {.status = ParseStatus::kIcmpOther,
                .src = kRouterV4,
                .dst = kVipV4,
                .proto = SLUICE_IPPROTO_ICMP}});
  f.push_back({"icmpv6 echo request",
               PacketBuilder().ipv6().icmp({.type = 128}).payload(Bytes(8, 0)).build(),
               {.status = ParseStatus::kIcmpOther,
                .src = kClientV6,
                .dst = kVipV6,
                .proto = SLUICE_IPPROTO_ICMPV6}});
  f.push_back({"arp request", arp_request(), {.status = ParseStatus::kNotIp}});
  f.push_back(
      {"gre",
       PacketBuilder().ipv4().raw({.bytes = Bytes(4, 0), .proto = 47}).build(),
       {.status = ParseStatus::kUnsupportedL4, .src = kClientV4, .dst = kVipV4, .proto = 47}});
  f.push_back(
      {"sctp over ipv6 after an extension header",
       PacketBuilder()
           .ipv6()
           .ipv6_ext({.type = dst})
           .raw({.bytes = Bytes(12, 0), .proto = 132})
           .build(),
       {.status = ParseStatus::kUnsupportedL4, .src = kClientV6, .dst = kVipV6, .proto = 132}});
  f.push_back(
      {"icmpv6 number inside ipv4",
       PacketBuilder().ipv4().raw({.bytes = Bytes(8, 0), .proto = SLUICE_IPPROTO_ICMPV6}).build(),
       {.status = ParseStatus::kUnsupportedL4,
        .src = kClientV4,
        .dst = kVipV4,
        .proto = SLUICE_IPPROTO_ICMPV6}});
  f.push_back({"no next header",
               PacketBuilder().ipv6().raw({.proto = SLUICE_IPPROTO_NONE}).build(),
               {.status = ParseStatus::kUnsupportedL4,
                .src = kClientV6,
                .dst = kVipV6,
                .proto = SLUICE_IPPROTO_NONE}});
  f.push_back({"ipv4 fragment of gre",
               PacketBuilder()
                   .ipv4({.more_fragments = true})
                   .raw({.bytes = Bytes(8, 0), .proto = 47})
                   .build(),
               {.status = ParseStatus::kUnsupportedL4,
                .src = kClientV4,
                .dst = kVipV4,
                .proto = 47,
                .fragment = true}});
  f.push_back({"runt frame", Bytes(13, 0), reject(ParseStatus::kTruncated)});
  f.push_back({"empty frame", Bytes{}, reject(ParseStatus::kTruncated)});
  return f;
}

TEST(PacketParser, FixtureTable) {
  for (const Fixture& fx : fixtures()) {
    SCOPED_TRACE(fx.name);
    const ParseResult r = parse_exact(fx.frame);
    EXPECT_STREQ(parse_status_name(r.status), parse_status_name(fx.want.status));
    EXPECT_EQ(test::parse_invariant_violation(r, fx.frame.size()), nullptr);
    if (is_reject(fx.want.status)) continue;

    sluice_flow_key want;
    std::memset(&want, 0, sizeof want);
    if (!fx.want.src.empty()) {
      want = make_key(fx.want.src, fx.want.dst, fx.want.sport, fx.want.dport, fx.want.proto);
    }
    EXPECT_TRUE(same_key(r.key, want)) << key_text(r.key) << " want " << key_text(want);
    EXPECT_EQ(r.vlan_count, fx.want.vlans);
    EXPECT_EQ(r.is_fragment, fx.want.fragment);
    EXPECT_EQ(r.is_icmp_error, fx.want.icmp_error);
    if (fx.want.status != ParseStatus::kNotIp) {
      EXPECT_EQ(r.l3_offset, SLUICE_ETH_HLEN + SLUICE_VLAN_HLEN * fx.want.vlans);
      EXPECT_LE(size_t{r.l3_offset} + r.ip_len, fx.frame.size());
      EXPECT_LE(r.l4_offset, size_t{r.l3_offset} + r.ip_len);
    }
  }
}

// Every frame the table accepts, cut at every length: either rejected, or
// (when the cut only removes Ethernet padding) parsed exactly as the whole.
TEST(PacketParser, EveryTruncationIsRejectedOrHarmless) {
  size_t frames = 0;
  for (const Fixture& fx : fixtures()) {
    if (is_reject(fx.want.status)) continue;
    ++frames;
    const ParseResult whole = parse_packet(fx.frame.data(), fx.frame.size());
    for (size_t n = 0; n < fx.frame.size(); ++n) {
      const ParseResult r = parse_exact(fx.frame, n);
      SCOPED_TRACE(fx.name + " cut to " + std::to_string(n));
      ASSERT_EQ(test::parse_invariant_violation(r, n), nullptr);
      if (is_reject(r.status)) continue;
      ASSERT_EQ(r.status, whole.status);
      ASSERT_TRUE(same_key(r.key, whole.key));
      ASSERT_EQ(r.l4_offset, whole.l4_offset);
      ASSERT_EQ(r.payload_offset, whole.payload_offset);
      ASSERT_EQ(r.payload_len, whole.payload_len);
      if (r.status != ParseStatus::kNotIp) {
        ASSERT_GE(n, size_t{r.l3_offset} + r.ip_len);
      }
    }
  }
  EXPECT_GE(frames, 40u);  // the table's accepted frames were all swept
}

// Every accepted IP frame with its IP packet shortened to every length from
// its header on, the length field rewritten to agree and the buffer ending
// at the IP end: so the L4, extension-header and ICMP-quote checks, not just
// the IP length check, meet the end of an exactly-sized buffer.
TEST(PacketParser, EveryShortenedIpPacketIsSafe) {
  size_t frames = 0;
  for (const Fixture& fx : fixtures()) {
    if (is_reject(fx.want.status) || fx.want.status == ParseStatus::kNotIp) continue;
    ++frames;
    const ParseResult whole = parse_packet(fx.frame.data(), fx.frame.size());
    const size_t l3 = whole.l3_offset;
    const bool v4 = whole.key.family == SLUICE_FAMILY_IPV4;
    const size_t hdr = v4 ? size_t{fx.frame[l3] & 0x0Fu} * 4 : SLUICE_IPV6_HLEN;
    for (size_t c = l3 + hdr; c <= l3 + whole.ip_len; ++c) {
      SCOPED_TRACE(fx.name + " IP packet shortened to " + std::to_string(c - l3));
      Bytes b(fx.frame.begin(), fx.frame.begin() + static_cast<std::ptrdiff_t>(c));
      if (v4) {
        test::put_be16(b, l3 + 2, static_cast<uint16_t>(c - l3));
      } else {
        test::put_be16(b, l3 + 4, static_cast<uint16_t>(c - l3 - SLUICE_IPV6_HLEN));
      }
      const ParseResult r = parse_exact(b);
      ASSERT_EQ(test::parse_invariant_violation(r, c), nullptr);
      if (c == l3 + whole.ip_len) {
        EXPECT_EQ(r.status, whole.status);
        EXPECT_TRUE(same_key(r.key, whole.key));
      }
    }
  }
  EXPECT_GE(frames, 40u);
}

TEST(PacketParser, Ipv4TcpFieldsAndOffsets) {
  const Bytes frame = PacketBuilder()
                          .vlan({.vid = 7})
                          .ipv4({.tos = 0xb8, .ttl = 9, .options = {0x94, 4, 0, 0}})
                          .tcp({.flags = kTcpSyn | kTcpAck, .options = {2, 4, 0x05, 0xb4}})
                          .payload(Bytes(33, 1))
                          .trailer(Bytes(4, 0xee))
                          .build();
  const ParseResult r = parse_exact(frame);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_EQ(r.l3_offset, 18);
  EXPECT_EQ(r.l4_offset, 18 + 24);
  EXPECT_EQ(r.payload_offset, 18 + 24 + 24);
  EXPECT_EQ(r.payload_len, 33);
  EXPECT_EQ(r.ip_len, 24 + 24 + 33);
  EXPECT_EQ(r.l4_proto, SLUICE_IPPROTO_TCP);
  EXPECT_EQ(r.ttl, 9);
  EXPECT_EQ(r.tos, 0xb8);
  EXPECT_EQ(r.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(r.icmp_mtu, 0u);
  EXPECT_EQ(parse_drop_reason(r.status), SLUICE_DROP_NONE);
}

TEST(PacketParser, TcpFlagsAreReported) {
  for (uint8_t flags :
       {kTcpSyn, kTcpAck, uint8_t(kTcpFin | kTcpAck), kTcpRst, uint8_t(kTcpPsh | kTcpAck)}) {
    const ParseResult r = parse_exact(PacketBuilder().ipv4().tcp({.flags = flags}).build());
    ASSERT_EQ(r.status, ParseStatus::kOk);
    EXPECT_EQ(r.tcp_flags, flags);
  }
}

TEST(PacketParser, Ipv6FieldsAndOffsets) {
  const Bytes frame = PacketBuilder()
                          .ipv6({.traffic_class = 0x2e, .flow_label = 0xfffff, .hop_limit = 3})
                          .ipv6_ext({.type = SLUICE_IPPROTO_HOPOPTS, .len = 8})
                          .ipv6_ext({.type = SLUICE_IPPROTO_DSTOPTS, .len = 24})
                          .udp({.sport = 9, .dport = 11211})
                          .payload(Bytes(20, 'g'))
                          .build();
  const ParseResult r = parse_exact(frame);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_EQ(r.l3_offset, 14);
  EXPECT_EQ(r.l4_offset, 14 + 40 + 8 + 24);
  EXPECT_EQ(r.payload_offset, 14 + 40 + 8 + 24 + 8);
  EXPECT_EQ(r.payload_len, 20);
  EXPECT_EQ(r.ip_len, frame.size() - 14);
  EXPECT_EQ(r.l4_proto, SLUICE_IPPROTO_UDP);
  EXPECT_EQ(r.ttl, 3);
  EXPECT_EQ(r.tos, 0x2e);
  EXPECT_EQ(r.tcp_flags, 0);
}

TEST(PacketParser, UdpPayloadExcludesEthernetPadding) {
  const Bytes frame =
      PacketBuilder().ipv4().udp().payload({'h', 'i'}).trailer(Bytes(16, 0)).build();
  const ParseResult r = parse_exact(frame);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_EQ(r.payload_offset, 14 + 20 + 8);
  EXPECT_EQ(r.payload_len, 2);
  EXPECT_EQ(r.ip_len, 30);
  EXPECT_EQ(frame[r.payload_offset], 'h');
}

TEST(PacketParser, IcmpErrorsReportTypeCodeAndMtu) {
  const Bytes v4 = PacketBuilder()
                       .ipv4({.src = kRouterV4, .dst = kVipV4})
                       .icmp_error(3, 4, test::head(v4_reply(SLUICE_IPPROTO_TCP), 28), 1400)
                       .build();
  ParseResult r = parse_exact(v4);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_TRUE(r.is_icmp_error);
  EXPECT_EQ(r.icmp_type, 3);
  EXPECT_EQ(r.icmp_code, 4);
  EXPECT_EQ(r.icmp_mtu, 1400u);
  EXPECT_EQ(r.l4_proto, SLUICE_IPPROTO_ICMP);
  EXPECT_EQ(r.l4_offset, 14 + 20);
  EXPECT_EQ(r.payload_offset, 14 + 20 + 8);
  EXPECT_EQ(r.payload_len, 28);

  // Host unreachable (code 1) carries no MTU.
  const Bytes unreach = PacketBuilder()
                            .ipv4({.src = kRouterV4, .dst = kVipV4})
                            .icmp_error(3, 1, test::head(v4_reply(SLUICE_IPPROTO_TCP), 28), 1400)
                            .build();
  EXPECT_EQ(parse_exact(unreach).icmp_mtu, 0u);

  const Bytes v6 = PacketBuilder()
                       .ipv6({.src = kRouterV6, .dst = kVipV6})
                       .icmp_error(2, 0, test::head(v6_reply(SLUICE_IPPROTO_TCP), 1232), 70000)
                       .build();
  r = parse_exact(v6);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_TRUE(r.is_icmp_error);
  EXPECT_EQ(r.icmp_type, 2);
  EXPECT_EQ(r.icmp_mtu, 70000u);
  EXPECT_EQ(r.l4_proto, SLUICE_IPPROTO_ICMPV6);
}

// A later fragment's data is not an L4 header: bytes that would be a broken
// TCP header must not be read as one.
TEST(PacketParser, LaterFragmentsReadNoL4Header) {
  Bytes garbage(40, 0);  // as TCP: data offset 0
  const Bytes v4 = PacketBuilder().ipv4({.frag_offset = 1480}).tcp().payload(garbage).build();
  // Overwrite the TCP header with the garbage too.
  Bytes frame = v4;
  std::fill(frame.begin() + 34, frame.end(), 0);
  ParseResult r = parse_exact(frame);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_TRUE(r.is_fragment);
  EXPECT_EQ(r.tcp_flags, 0);
  EXPECT_EQ(r.key.sport, 0);
  EXPECT_EQ(r.payload_len, 0);
  EXPECT_EQ(r.l4_offset, 34);

  // Even a later fragment too short to hold a TCP header is fine.
  const Bytes tiny =
      PacketBuilder()
          .ipv6()
          .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 8, .frag_id = 1})
          .raw({.bytes = {1, 2}, .proto = 0})
          .build();
  Bytes t = tiny;
  t[14 + 40] = SLUICE_IPPROTO_TCP;  // the fragment header's next header
  r = parse_exact(t);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_TRUE(r.is_fragment);
  EXPECT_EQ(r.key.proto, SLUICE_IPPROTO_TCP);
}

TEST(PacketParser, FramesBeyond64KiBAreParsedAsTheirFirst64KiB) {
  Bytes frame = v4_tcp().build();
  frame.resize(70000, 0);
  const ParseResult r = parse_exact(frame);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_TRUE(same_key(r.key, make_key(kClientV4, kVipV4, 40000, 80, SLUICE_IPPROTO_TCP)));
}

// DESIGN.md: one flow, one hash, however the packet is wrapped; an ICMP
// error about the flow reaches the flow's backend.
TEST(PacketParser, OneFlowOneKeyOneHash) {
  const sluice_flow_key v4 = make_key(kClientV4, kVipV4, 40000, 80, SLUICE_IPPROTO_TCP);
  const Bytes v4_forms[] = {
      v4_tcp().build(),
      PacketBuilder().vlan({.vid = 3}).ipv4().tcp().build(),
      PacketBuilder()
          .vlan({.vid = 3, .tpid = SLUICE_ETH_P_8021AD})
          .vlan({.vid = 4})
          .ipv4()
          .tcp()
          .build(),
      PacketBuilder()
          .ipv4({.options = {0x94, 4, 0, 0}})
          .tcp({.flags = kTcpAck})
          .payload(Bytes(200, 1))
          .build(),
      PacketBuilder().vlan().ipv4({.options = Bytes(12, 1)}).tcp().trailer(Bytes(9, 0)).build(),
      PacketBuilder()
          .ipv4({.src = kRouterV4, .dst = kVipV4})
          .icmp_error(3, 4, test::head(v4_reply(SLUICE_IPPROTO_TCP), 28), 1400)
          .build(),
      PacketBuilder()
          .vlan()
          .ipv4({.src = kRouterV4, .dst = kVipV4})
          .icmp_error(11, 0, v4_reply(SLUICE_IPPROTO_TCP))
          .build(),
  };
  for (const Bytes& frame : v4_forms) {
    const ParseResult r = parse_exact(frame);
    ASSERT_EQ(r.status, ParseStatus::kOk);
    EXPECT_TRUE(same_key(r.key, v4)) << key_text(r.key);
    EXPECT_EQ(sluice_flow_hash(&r.key, kSeed), sluice_flow_hash(&v4, kSeed));
  }

  const sluice_flow_key v6 = make_key(kClientV6, kVipV6, 40000, 80, SLUICE_IPPROTO_TCP);
  const Bytes v6_forms[] = {
      v6_tcp().build(),
      PacketBuilder().vlan().ipv6().ipv6_ext({.type = SLUICE_IPPROTO_DSTOPTS}).tcp().build(),
      PacketBuilder().ipv6().ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT}).tcp().build(),
      PacketBuilder()
          .ipv6({.src = kRouterV6, .dst = kVipV6})
          .icmp_error(2, 0, test::head(v6_reply(SLUICE_IPPROTO_TCP), 1232), 1280)
          .build(),
  };
  for (const Bytes& frame : v6_forms) {
    const ParseResult r = parse_exact(frame);
    ASSERT_EQ(r.status, ParseStatus::kOk);
    EXPECT_TRUE(same_key(r.key, v6)) << key_text(r.key);
    EXPECT_EQ(sluice_flow_hash(&r.key, kSeed), sluice_flow_hash(&v6, kSeed));
  }
}

TEST(PacketParser, AllFragmentsOfADatagramHashAlike) {
  const Bytes v4 = PacketBuilder().ipv4().udp().payload(Bytes(3000, 9)).build();
  const Bytes v6 = PacketBuilder().ipv6().udp().payload(Bytes(3000, 9)).build();
  for (const auto& frags :
       {test::fragment_ipv4(v4, 14, 1480), test::fragment_ipv6(v6, 14, 1232, 5)}) {
    ASSERT_GE(frags.size(), 3u);
    const ParseResult first = parse_exact(frags[0]);
    for (const Bytes& fr : frags) {
      const ParseResult r = parse_exact(fr);
      ASSERT_EQ(r.status, ParseStatus::kOk);
      EXPECT_TRUE(r.is_fragment);
      EXPECT_EQ(r.key.sport, 0);
      EXPECT_EQ(r.key.dport, 0);
      EXPECT_TRUE(same_key(r.key, first.key));
    }
  }
}

TEST(PacketParser, DropReasons) {
  struct {
    ParseStatus status;
    sluice_drop_reason reason;
  } const table[] = {
      {ParseStatus::kOk, SLUICE_DROP_NONE},
      {ParseStatus::kNotIp, SLUICE_DROP_NONE},
      {ParseStatus::kIcmpOther, SLUICE_DROP_NONE},
      {ParseStatus::kUnsupportedL4, SLUICE_DROP_UNSUPPORTED_L4},
      {ParseStatus::kTruncated, SLUICE_DROP_TRUNCATED},
      {ParseStatus::kTooManyVlanTags, SLUICE_DROP_BAD_L2},
      {ParseStatus::kBadIpv4Version, SLUICE_DROP_BAD_IPV4},
      {ParseStatus::kBadIpv4HeaderLength, SLUICE_DROP_BAD_IPV4},
      {ParseStatus::kBadIpv4TotalLength, SLUICE_DROP_BAD_IPV4},
      {ParseStatus::kBadIpv6Version, SLUICE_DROP_BAD_IPV6},
      {ParseStatus::kBadIpv6PayloadLength, SLUICE_DROP_BAD_IPV6},
      {ParseStatus::kIpv6ExtChainTooLong, SLUICE_DROP_BAD_IPV6},
      {ParseStatus::kBadTcpHeaderLength, SLUICE_DROP_BAD_L4},
      {ParseStatus::kBadUdpLength, SLUICE_DROP_BAD_L4},
      {ParseStatus::kBadIcmpEmbedded, SLUICE_DROP_BAD_ICMP},
  };
  static_assert(std::size(table) == static_cast<size_t>(ParseStatus::kCount));
  std::set<std::string> names;
  for (const auto& row : table) {
    SCOPED_TRACE(parse_status_name(row.status));
    EXPECT_EQ(parse_drop_reason(row.status), row.reason);
    EXPECT_EQ(is_reject(row.status),
              row.reason != SLUICE_DROP_NONE && row.reason != SLUICE_DROP_UNSUPPORTED_L4);
    names.insert(parse_status_name(row.status));
  }
  EXPECT_EQ(names.size(), std::size(table));
  EXPECT_EQ(names.count("unknown"), 0u);
}

// The builder's checksums are right (other tests will trust them): a packet
// with its checksum field included sums to zero.
TEST(PacketBuilder, ChecksumsVerify) {
  const Bytes v4 = PacketBuilder().ipv4({.options = {1, 1, 1}}).tcp().payload({1, 2, 3}).build();
  const size_t ihl = size_t{v4[14] & 0x0Fu} * 4;
  EXPECT_EQ(test::checksum_fold(test::checksum_add(0, &v4[14], ihl)), 0);
  const size_t l4 = 14 + ihl;
  uint32_t sum = test::checksum_add(0, &v4[14 + 12], 8);
  sum += SLUICE_IPPROTO_TCP + static_cast<uint32_t>(v4.size() - l4);
  EXPECT_EQ(test::checksum_fold(test::checksum_add(sum, &v4[l4], v4.size() - l4)), 0);

  const Bytes v6 = PacketBuilder().ipv6().icmp({.type = 128}).payload({9, 9, 9}).build();
  sum = test::checksum_add(0, &v6[14 + 8], 32);
  sum += SLUICE_IPPROTO_ICMPV6 + static_cast<uint32_t>(v6.size() - 54);
  EXPECT_EQ(test::checksum_fold(test::checksum_add(sum, &v6[54], v6.size() - 54)), 0);
}

}  // namespace
}  // namespace sluice
