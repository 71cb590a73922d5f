// SPDX-License-Identifier: BSD-2-Clause
// The packet parser: the fixture table of tests/common/parser_fixtures.hpp
// (valid, malformed and not ours), every valid frame truncated at every
// length, header fields and offsets, and one flow giving one key and one
// hash however it is wrapped.
#include "dataplane/core/packet_parser.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/common/packet_builder.hpp"
#include "tests/common/parse_invariants.hpp"
#include "tests/common/parser_fixtures.hpp"

namespace sluice {
namespace {

using test::Bytes;
using test::Fixture;
using test::kClientV4;
using test::kClientV6;
using test::key_text;
using test::kRouterV4;
using test::kRouterV6;
using test::kVipV4;
using test::kVipV6;
using test::make_key;
using test::PacketBuilder;
using test::same_key;
using test::v4_reply;
using test::v4_tcp;
using test::v6_reply;
using test::v6_tcp;

constexpr uint32_t kSeed = 0x5eed1234;

// Parses a copy of `b` in a heap buffer of exactly its size, so ASan flags
// any read past the end.
ParseResult parse_exact(const Bytes& b, size_t n) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
  if (n != 0) std::memcpy(buf.get(), b.data(), n);
  return parse_packet(buf.get(), n);
}

ParseResult parse_exact(const Bytes& b) { return parse_exact(b, b.size()); }

TEST(PacketParser, FixtureTable) {
  for (const Fixture& fx : test::parser_fixtures()) {
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
  for (const Fixture& fx : test::parser_fixtures()) {
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
  for (const Fixture& fx : test::parser_fixtures()) {
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

// fragment_facts: the datagram id, first or later, the first fragment's
// destination port and the record protocol, for both families, with IPv4
// options, an IPv6 extension header before the fragment header, and one
// after it (destination options, in the first fragment only: review9).
TEST(PacketParser, FragmentFactsOfFirstAndLaterFragments) {
  const Bytes v4 = PacketBuilder()
                       .ipv4({.id = 0xbeef, .options = {0x94, 4, 0, 0}})
                       .udp({.sport = 5000, .dport = 53})
                       .payload(Bytes(3000, 9))
                       .build();
  const Bytes v6 = PacketBuilder()
                       .ipv6()
                       .ipv6_ext({.type = SLUICE_IPPROTO_HOPOPTS})
                       .tcp({.sport = 40000, .dport = 443})
                       .payload(Bytes(3000, 9))
                       .build();
  const Bytes v6_dst = PacketBuilder()
                           .ipv6()
                           .ipv6_ext({.type = SLUICE_IPPROTO_DSTOPTS, .len = 24})
                           .udp({.sport = 5000, .dport = 4789})
                           .payload(Bytes(3000, 9))
                           .build();
  const uint8_t udp = SLUICE_IPPROTO_UDP;
  const uint8_t tcp = SLUICE_IPPROTO_TCP;
  const uint8_t dst = SLUICE_IPPROTO_DSTOPTS;
  const struct {
    std::vector<Bytes> frags;
    uint32_t id;
    uint16_t dport;
    uint8_t record_proto;
    uint8_t later_proto;  // the key's protocol in a later fragment
  } cases[] = {{test::fragment_ipv4(v4, 14, 1480), 0xbeef, 53, udp, udp},
               {test::fragment_ipv6(v6, 14, 1232, 0x89abcdef), 0x89abcdef, 443, tcp, tcp},
               {test::fragment_ipv6(v6_dst, 14, 1232, 0x12345678), 0x12345678, 4789, dst, dst}};
  for (const auto& c : cases) {
    ASSERT_GE(c.frags.size(), 3u);
    for (size_t i = 0; i < c.frags.size(); ++i) {
      SCOPED_TRACE(i);
      const Bytes& fr = c.frags[i];
      const ParseResult r = parse_exact(fr);
      ASSERT_EQ(r.status, ParseStatus::kOk);
      const FragmentFacts f = fragment_facts(fr.data(), fr.size(), r);
      EXPECT_TRUE(f.valid);
      EXPECT_EQ(f.id, c.id);
      EXPECT_EQ(f.later, i != 0);
      EXPECT_EQ(ntohs(f.first_dport), i == 0 ? c.dport : 0);
      EXPECT_EQ(f.record_proto, c.record_proto);
      // The first fragment shows its upper layer's protocol.
      EXPECT_EQ(r.key.proto, i == 0 ? (c.later_proto == dst ? udp : c.later_proto) : c.later_proto);
      // The flow key keeps ports 0 either way.
      EXPECT_EQ(r.key.dport, 0);
    }
  }
}

// A first fragment too short to hold the destination port gives port 0;
// an unfragmented packet, a non-TCP/UDP fragment, and a result that does not
// belong to the bytes give no facts.
TEST(PacketParser, FragmentFactsEdges) {
  Bytes tiny = PacketBuilder()
                   .ipv4({.id = 7, .more_fragments = true})
                   .raw({.bytes = {0x13, 0x88}, .proto = SLUICE_IPPROTO_UDP})
                   .build();
  ParseResult r = parse_exact(tiny);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  FragmentFacts f = fragment_facts(tiny.data(), tiny.size(), r);
  EXPECT_TRUE(f.valid);
  EXPECT_FALSE(f.later);
  EXPECT_EQ(f.id, 7u);
  EXPECT_EQ(f.first_dport, 0);

  const Bytes whole = v4_tcp().build();
  r = parse_exact(whole);
  EXPECT_FALSE(fragment_facts(whole.data(), whole.size(), r).valid);

  const Bytes gre = PacketBuilder()
                        .ipv4({.more_fragments = true})
                        .raw({.bytes = Bytes(16, 0), .proto = 47})
                        .build();
  r = parse_exact(gre);
  EXPECT_EQ(r.status, ParseStatus::kUnsupportedL4);
  EXPECT_FALSE(fragment_facts(gre.data(), gre.size(), r).valid);

  // The result of a longer frame against a shorter buffer: refused, not read.
  const Bytes frag =
      test::fragment_ipv4(PacketBuilder().ipv4().udp().payload(Bytes(100, 1)).build(), 14, 48)[0];
  r = parse_exact(frag);
  ASSERT_EQ(r.status, ParseStatus::kOk);
  EXPECT_FALSE(fragment_facts(frag.data(), 30, r).valid);
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
      {ParseStatus::kIpv6HopByHopNotFirst, SLUICE_DROP_BAD_IPV6},
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
