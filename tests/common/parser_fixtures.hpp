// SPDX-License-Identifier: BSD-2-Clause
// The packet parser's fixture table: crafted frames (flows in every
// wrapping, malformed frames, frames that are not ours) with the parse
// result each must give. Shared by the parser's unit tests and the
// differential test that runs the same frames through the XDP program.
#pragma once

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "dataplane/core/packet_parser.hpp"
#include "tests/common/packet_builder.hpp"

namespace sluice::test {

inline constexpr const char* kRouterV4 = "203.0.113.1";
inline constexpr const char* kRouterV6 = "2001:db8:e::1";

inline sluice_flow_key make_key(const std::string& src, const std::string& dst, uint16_t sport,
                                uint16_t dport, uint8_t proto) {
  sluice_flow_key k;
  std::memset(&k, 0, sizeof k);
  const IpAddress s = address(src);
  const IpAddress d = address(dst);
  std::memcpy(k.src.bytes, s.ip.bytes, s.size());
  std::memcpy(k.dst.bytes, d.ip.bytes, d.size());
  k.sport = sl_htons(sport);
  k.dport = sl_htons(dport);
  k.proto = proto;
  k.family = s.family;
  return k;
}

inline bool same_key(const sluice_flow_key& a, const sluice_flow_key& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

inline std::string key_text(const sluice_flow_key& k) {
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

inline Bytes patched8(Bytes b, size_t off, uint8_t v) {
  b.at(off) = v;
  return b;
}

inline Bytes patched16(Bytes b, size_t off, uint16_t v) {
  put_be16(b, off, v);
  return b;
}

// The same client -> VIP TCP flow, and the server's reply that ICMP errors
// quote (VIP -> client, ports swapped).
inline PacketBuilder v4_tcp() { return PacketBuilder().ipv4().tcp(); }
inline PacketBuilder v6_tcp() { return PacketBuilder().ipv6().tcp(); }
inline Bytes v4_reply(uint8_t proto) {
  PacketBuilder b;
  b.ipv4({.src = kVipV4, .dst = kClientV4});
  if (proto == SLUICE_IPPROTO_TCP) {
    b.tcp({.sport = 80, .dport = 40000, .flags = kTcpSyn | kTcpAck});
  } else {
    b.udp({.sport = 53, .dport = 40000}).payload(Bytes(64, 0xab));
  }
  return b.build_ip();
}
inline Bytes v6_reply(uint8_t proto) {
  PacketBuilder b;
  b.ipv6({.src = kVipV6, .dst = kClientV6});
  if (proto == SLUICE_IPPROTO_TCP) {
    b.tcp({.sport = 80, .dport = 40000, .flags = kTcpAck}).payload(Bytes(1400, 0xcd));
  } else {
    b.udp({.sport = 53, .dport = 40000}).payload(Bytes(64, 0xab));
  }
  return b.build_ip();
}

inline Bytes arp_request() {
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

inline Expect v4_flow(uint8_t vlans = 0) {
  return {.src = kClientV4,
          .dst = kVipV4,
          .sport = 40000,
          .dport = 80,
          .proto = SLUICE_IPPROTO_TCP,
          .vlans = vlans};
}
inline Expect v6_flow() {
  return {
      .src = kClientV6, .dst = kVipV6, .sport = 40000, .dport = 80, .proto = SLUICE_IPPROTO_TCP};
}
inline Expect reject(ParseStatus s) { return {.status = s}; }

// A chain of IPv6 extension headers of the given types, then TCP.
inline Bytes v6_ext_chain(std::initializer_list<uint8_t> types) {
  PacketBuilder b;
  b.ipv6();
  for (uint8_t t : types) b.ipv6_ext({.type = t, .len = 16});
  return b.tcp().build();
}

inline std::vector<Fixture> parser_fixtures() {
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
  f.push_back({"ipv6 hop-by-hop not first", v6_ext_chain({dst, hop}),
               reject(ParseStatus::kIpv6HopByHopNotFirst)});
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
  const auto v4_frags = fragment_ipv4(v4_dgram, kL3, 48);
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
  const auto v6_frags = fragment_ipv6(v6_dgram, kL3, 48, 0xabcd);
  const Expect v6_frag = {.src = kClientV6, .dst = kVipV6, .proto = tcp, .fragment = true};
  f.push_back({"ipv6 first fragment", v6_frags.at(0), v6_frag});
  f.push_back({"ipv6 middle fragment", v6_frags.at(1), v6_frag});
  f.push_back({"ipv6 last fragment", v6_frags.at(2), v6_frag});
  // Destination options after the fragment header (RFC 8200 section 4.5:
  // part of the fragmentable part, so in the first fragment only): the
  // first fragment is walked to its TCP header; a later one shows only the
  // fragment header's next header, 60.
  const Bytes v6_dst_dgram = PacketBuilder()
                                 .ipv6()
                                 .ipv6_ext({.type = dst, .len = 16})
                                 .tcp()
                                 .payload(Bytes(100, 0x6c))
                                 .build();
  // (The later one is of another datagram, so that a fast path fed this
  // table in order finds no record of its first fragment.)
  f.push_back({"ipv6 first fragment, destination options after the fragment header",
               fragment_ipv6(v6_dst_dgram, kL3, 64, 0xabce).at(0), v6_frag});
  f.push_back({"ipv6 later fragment, destination options after the fragment header",
               fragment_ipv6(v6_dst_dgram, kL3, 64, 0xabcf).at(1),
               {.src = kClientV6, .dst = kVipV6, .proto = dst, .fragment = true}});
  f.push_back({"ipv6 first fragment, routing and destination options after it",
               PacketBuilder()
                   .ipv6()
                   .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 3})
                   .ipv6_ext({.type = rt, .len = 24})
                   .ipv6_ext({.type = dst})
                   .udp()
                   .build(),
               {.src = kClientV6, .dst = kVipV6, .proto = udp, .fragment = true}});
  f.push_back({"ipv6 first fragment, chain past the bound after it",
               PacketBuilder()
                   .ipv6()
                   .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 3})
                   .ipv6_ext({.type = dst})
                   .ipv6_ext({.type = dst})
                   .ipv6_ext({.type = dst})
                   .ipv6_ext({.type = dst})
                   .tcp()
                   .build(),
               reject(ParseStatus::kIpv6ExtChainTooLong)});
  f.push_back({"ipv6 first fragment, destination options cut short after it",
               PacketBuilder()
                   .ipv6()
                   .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 3})
                   .raw({.bytes = {SLUICE_IPPROTO_TCP, 2, 1, 0, 0, 0, 0, 0}, .proto = dst})
                   .build(),
               reject(ParseStatus::kTruncated)});
  f.push_back({"ipv6 first fragment, hop-by-hop after it",
               PacketBuilder()
                   .ipv6()
                   .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 3})
                   .ipv6_ext({.type = hop})
                   .tcp()
                   .build(),
               reject(ParseStatus::kIpv6HopByHopNotFirst)});
  f.push_back({"ipv6 first fragment, a second fragment header after it",
               PacketBuilder()
                   .ipv6()
                   .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 3})
                   .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 4})
                   .tcp()
                   .build(),
               {.status = ParseStatus::kUnsupportedL4,
                .src = kClientV6,
                .dst = kVipV6,
                .proto = frag,
                .fragment = true}});

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
      {"icmp frag needed about tcp", icmp4(3, 4, head(v4_reply(tcp), 28), 1400), v4_tcp_err});
  f.push_back({"icmp port unreachable about udp", icmp4(3, 3, v4_reply(udp)), v4_udp_err});
  f.push_back({"icmp time exceeded about udp", icmp4(11, 0, head(v4_reply(udp), 28)), v4_udp_err});
  f.push_back(
      {"icmp parameter problem about tcp", icmp4(12, 0, head(v4_reply(tcp), 40)), v4_tcp_err});
  f.push_back({"icmpv6 packet too big about tcp", icmp6(2, 0, head(v6_reply(tcp), 1232), 1280),
               v6_tcp_err});
  f.push_back({"icmpv6 destination unreachable about udp", icmp6(1, 4, head(v6_reply(udp), 48)),
               v6_udp_err});
  f.push_back({"icmpv6 time exceeded about tcp", icmp6(3, 0, head(v6_reply(tcp), 48)), v6_tcp_err});
  f.push_back({"icmpv6 parameter problem about udp", icmp6(4, 0, v6_reply(udp)), v6_udp_err});
  f.push_back({"icmp error quote one byte short", icmp4(3, 4, head(v4_reply(tcp), 27), 1400),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmpv6 error quote one byte short", icmp6(2, 0, head(v6_reply(tcp), 47), 1280),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmp error quoting ipv6", icmp4(3, 1, head(v6_reply(tcp), 48)),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmp error quoting a later fragment",
               icmp4(11, 1, fragment_ipv4(v4_reply(udp), 0, 32).at(1)),
               reject(ParseStatus::kBadIcmpEmbedded)});
  f.push_back({"icmp error quoting ihl 4",
               icmp4(3, 4, patched8(head(v4_reply(tcp), 28), 0, 0x44), 1400),
               reject(ParseStatus::kBadIcmpEmbedded)});
  // A quoted first fragment is not walked past its fragment header (the
  // XDP verifier's budget): destination options there end the quote's walk.
  {
    PacketBuilder q;
    q.ipv6({.src = kVipV6, .dst = kClientV6})
        .ipv6_ext({.type = frag, .more_fragments = true, .frag_id = 5})
        .ipv6_ext({.type = dst})
        .udp({.sport = 53, .dport = 40000})
        .payload(Bytes(64, 0xab));
    f.push_back({"icmpv6 error quoting a first fragment behind destination options",
                 icmp6(1, 4, q.build_ip()),
                 {.status = ParseStatus::kIcmpOther,
                  .src = kRouterV6,
                  .dst = kVipV6,
                  .proto = SLUICE_IPPROTO_ICMPV6,
                  .icmp_error = true}});
  }
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
               icmp4(4, 0, head(v4_reply(tcp), 28)),
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

}  // namespace sluice::test
