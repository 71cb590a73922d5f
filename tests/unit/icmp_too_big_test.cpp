// SPDX-License-Identifier: BSD-2-Clause
// build_icmp_too_big: IPv4 fragmentation-needed and ICMPv6 packet-too-big
// replies field by field, their size limits, and the packets that must get
// no reply.
#include "dataplane/core/icmp_too_big.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "tests/common/packet_builder.hpp"

namespace sluice {
namespace {

using test::BufferedFrame;
using test::Bytes;
using test::PacketBuilder;

uint16_t be16(const uint8_t* p) { return test::get_be16(p); }
uint32_t be32(const uint8_t* p) { return test::get_be32(p); }

constexpr size_t kHeadroom = 128;
const IpAddress kClient4 = test::address(test::kClientV4);
const IpAddress kVip4 = test::address(test::kVipV4);
const IpAddress kClient6 = test::address(test::kClientV6);
const IpAddress kVip6 = test::address(test::kVipV6);

// The packet that was too big: Ethernet (+VLAN tags), IPv4 (DF set by
// default) or IPv6 with extension headers, then `payload` bytes of the
// upper layer `proto`, uninterpreted, the first of them `first_byte` (an
// ICMP type, say).
struct Original {
  uint8_t family = SLUICE_FAMILY_IPV4;
  size_t vlans = 0;
  test::Ipv4Spec ip4{.dont_fragment = true};
  test::Ipv6Spec ip6{};
  std::vector<test::Ipv6ExtSpec> ext{};
  size_t payload = 1480;
  uint8_t proto = SLUICE_IPPROTO_TCP;
  uint8_t first_byte = 0x55;
  test::Mac dst_mac = test::EthSpec{}.dst;

  [[nodiscard]] BufferedFrame build(size_t headroom) const {
    PacketBuilder b;
    b.eth({.dst = dst_mac});
    for (size_t i = 0; i < vlans; ++i) b.vlan({.vid = static_cast<uint16_t>(100 + i)});
    if (family == SLUICE_FAMILY_IPV4) {
      b.ipv4(ip4);
    } else {
      b.ipv6(ip6);
      for (const auto& e : ext) b.ipv6_ext(e);
    }
    Bytes upper = test::pattern(payload, 3);
    if (!upper.empty()) upper[0] = first_byte;
    b.raw({.bytes = upper, .proto = proto});
    return test::in_buffer(b.build(), b.l3_offset(), headroom);
  }
};

struct Reply {
  IcmpStatus status;
  FrameSpan span;
};

Reply build(BufferedFrame& t, uint32_t mtu) {
  FrameSpan span = t.span;
  const IcmpStatus st = build_icmp_too_big(t.buf.data(), t.buf.size(), span, t.l3_off, mtu);
  return {st, span};
}

// The L2 header of the reply: MACs swapped, VLAN tags and EtherType kept.
void expect_l2_returned(const uint8_t* reply, const std::vector<uint8_t>& before,
                        const BufferedFrame& t) {
  const uint8_t* orig = before.data() + t.span.off;
  EXPECT_EQ(0, std::memcmp(reply, orig + 6, 6)) << "destination = original source MAC";
  EXPECT_EQ(0, std::memcmp(reply + 6, orig, 6)) << "source = original destination MAC";
  EXPECT_EQ(0, std::memcmp(reply + 12, orig + 12, t.l3_off - 12)) << "tags and EtherType kept";
}

struct V4Case {
  const char* name;
  size_t vlans;
  size_t options;  // bytes of IPv4 options in the original
  size_t payload;
  uint32_t mtu;       // given to the builder
  uint16_t want_mtu;  // in the reply
};

const V4Case kV4Cases[] = {
    {"full_size", 0, 0, 1480, 1480, 1480},
    {"vlan_tagged", 1, 0, 1480, 1460, 1460},
    {"two_tags_with_options", 2, 12, 1468, 1480, 1480},
    {"max_options", 0, 40, 1440, 1476, 1476},
    {"small_original_quoted_whole", 0, 0, 180, 150, 150},
    {"mtu_below_68_clamped", 0, 0, 1480, 20, 68},
    {"mtu_above_65535_clamped", 0, 0, 1480, 70000, 65535},
};

void PrintTo(const V4Case& c, std::ostream* os) { *os << c.name; }

class IcmpV4 : public ::testing::TestWithParam<V4Case> {};

TEST_P(IcmpV4, BuildsFragNeeded) {
  const V4Case& c = GetParam();
  Original spec{.vlans = c.vlans, .payload = c.payload};
  spec.ip4.tos = 0xB9;
  spec.ip4.options = Bytes(c.options, 1);  // NOP options
  BufferedFrame t = spec.build(kHeadroom);
  const std::vector<uint8_t> before(t.buf);
  const uint8_t* orig_ip = before.data() + t.span.off + t.l3_off;

  const Reply r = build(t, c.mtu);
  ASSERT_EQ(r.status, IcmpStatus::kBuilt);
  const size_t quote = std::min<size_t>(t.ip_len, 576 - 28);
  EXPECT_EQ(r.span.off, t.span.off - 28);
  EXPECT_EQ(r.span.len, t.l3_off + 28 + quote);
  const uint8_t* f = t.buf.data() + r.span.off;
  expect_l2_returned(f, before, t);

  const uint8_t* ip = f + t.l3_off;
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ(ip[1], 0xC0) << "internetwork control precedence";
  EXPECT_EQ(be16(ip + 2), 28 + quote);
  EXPECT_LE(be16(ip + 2), 576);
  EXPECT_EQ(be16(ip + 4), 0);
  EXPECT_EQ(be16(ip + 6), 0x4000);
  EXPECT_EQ(ip[8], 64);
  EXPECT_EQ(ip[9], SLUICE_IPPROTO_ICMP);
  EXPECT_EQ(test::checksum(ip, 20), 0);
  EXPECT_EQ(0, std::memcmp(ip + 12, kVip4.ip.bytes, 4)) << "from the VIP";
  EXPECT_EQ(0, std::memcmp(ip + 16, kClient4.ip.bytes, 4)) << "to the client";

  const uint8_t* icmp = ip + 20;
  EXPECT_EQ(icmp[0], 3);
  EXPECT_EQ(icmp[1], 4);
  EXPECT_EQ(be16(icmp + 4), 0) << "unused";
  EXPECT_EQ(be16(icmp + 6), c.want_mtu) << "next-hop MTU";
  EXPECT_EQ(test::checksum(icmp, 8 + quote), 0) << "ICMP checksum verifies";
  EXPECT_EQ(0, std::memcmp(icmp + 8, orig_ip, quote)) << "original header and data quoted";
  EXPECT_EQ(size_t{icmp[8]} & 0x0F, (20 + c.options) / 4) << "options quoted too";
}

INSTANTIATE_TEST_SUITE_P(Icmp, IcmpV4, ::testing::ValuesIn(kV4Cases),
                         [](const auto& tp) { return std::string(tp.param.name); });

struct V6Case {
  const char* name;
  size_t vlans;
  std::vector<test::Ipv6ExtSpec> ext;
  size_t payload;
  uint32_t mtu;
  uint32_t want_mtu;
};

const V6Case kV6Cases[] = {
    {"full_size", 0, {}, 1460, 1460, 1460},
    {"vlan_tagged_jumbo_mtu", 1, {}, 8960, 8960, 8960},
    {"hop_by_hop_then_tcp", 2, {{.type = SLUICE_IPPROTO_HOPOPTS}}, 1452, 1460, 1460},
    {"first_fragment",
     0,
     {{.type = SLUICE_IPPROTO_FRAGMENT, .more_fragments = true, .frag_id = 0x42}},
     1452,
     1460,
     1460},
    {"small_original_quoted_whole", 0, {}, 200, 150, 1280},
    {"mtu_below_1280_raised", 0, {}, 1460, 1200, 1280},
};

void PrintTo(const V6Case& c, std::ostream* os) { *os << c.name; }

class IcmpV6 : public ::testing::TestWithParam<V6Case> {};

TEST_P(IcmpV6, BuildsPacketTooBig) {
  const V6Case& c = GetParam();
  Original spec{.family = SLUICE_FAMILY_IPV6, .vlans = c.vlans, .ext = c.ext, .payload = c.payload};
  spec.ip6.traffic_class = 0xB9;
  spec.ip6.flow_label = 0xABCDE;
  BufferedFrame t = spec.build(kHeadroom);
  const std::vector<uint8_t> before(t.buf);
  const uint8_t* orig_ip = before.data() + t.span.off + t.l3_off;

  const Reply r = build(t, c.mtu);
  ASSERT_EQ(r.status, IcmpStatus::kBuilt);
  const size_t quote = std::min<size_t>(t.ip_len, 1280 - 48);
  EXPECT_EQ(r.span.off, t.span.off - 48);
  EXPECT_EQ(r.span.len, t.l3_off + 48 + quote);
  const uint8_t* f = t.buf.data() + r.span.off;
  expect_l2_returned(f, before, t);

  const uint8_t* ip = f + t.l3_off;
  EXPECT_EQ(be32(ip), 6u << 28) << "version 6, traffic class 0, flow label 0";
  EXPECT_EQ(be16(ip + 4), 8 + quote);
  EXPECT_LE(40 + be16(ip + 4), 1280);
  EXPECT_EQ(ip[6], SLUICE_IPPROTO_ICMPV6);
  EXPECT_EQ(ip[7], 64);
  EXPECT_EQ(0, std::memcmp(ip + 8, kVip6.ip.bytes, 16)) << "from the VIP";
  EXPECT_EQ(0, std::memcmp(ip + 24, kClient6.ip.bytes, 16)) << "to the client";

  const uint8_t* icmp = ip + 40;
  EXPECT_EQ(icmp[0], 2);
  EXPECT_EQ(icmp[1], 0);
  EXPECT_EQ(be32(icmp + 4), c.want_mtu);
  EXPECT_EQ(test::checksum6(ip + 8, ip + 24, SLUICE_IPPROTO_ICMPV6, icmp, 8 + quote), 0)
      << "checksum with the pseudo-header verifies";
  EXPECT_EQ(0, std::memcmp(icmp + 8, orig_ip, quote)) << "original quoted";
}

INSTANTIATE_TEST_SUITE_P(Icmp, IcmpV6, ::testing::ValuesIn(kV6Cases),
                         [](const auto& tp) { return std::string(tp.param.name); });

// Packets that must get no reply, and must be left as they were.
struct NoReplyCase {
  const char* name;
  Original spec;
};

Original v4(void (*f)(Original&)) {
  Original s;
  f(s);
  return s;
}

Original v6(void (*f)(Original&)) {
  Original s{.family = SLUICE_FAMILY_IPV6, .payload = 1460};
  f(s);
  return s;
}

constexpr test::Mac kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr test::Mac kMulticastMac = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
const test::Ipv6ExtSpec kDstOpts{.type = SLUICE_IPPROTO_DSTOPTS};

const NoReplyCase kNoReply[] = {
    {"v4_without_df", v4([](Original& s) { s.ip4.dont_fragment = false; })},
    {"v4_icmp_dest_unreach", v4([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMP;
       s.first_byte = 3;
     })},
    {"v4_icmp_time_exceeded", v4([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMP;
       s.first_byte = 11;
     })},
    {"v4_icmp_without_type", v4([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMP;
       s.payload = 0;
     })},
    {"v4_non_initial_fragment", v4([](Original& s) { s.ip4.frag_offset = 1480; })},
    {"v4_source_this_net", v4([](Original& s) { s.ip4.src = "0.0.0.9"; })},
    {"v4_source_loopback", v4([](Original& s) { s.ip4.src = "127.0.0.1"; })},
    {"v4_source_multicast", v4([](Original& s) { s.ip4.src = "224.0.0.5"; })},
    {"v4_source_reserved", v4([](Original& s) { s.ip4.src = "240.0.0.1"; })},
    {"v4_source_broadcast", v4([](Original& s) { s.ip4.src = "255.255.255.255"; })},
    {"v4_destination_multicast", v4([](Original& s) { s.ip4.dst = "224.0.0.5"; })},
    {"v4_link_broadcast", v4([](Original& s) { s.dst_mac = kBroadcastMac; })},
    {"v4_link_multicast", v4([](Original& s) { s.dst_mac = kMulticastMac; })},
    {"v6_icmp_dest_unreach", v6([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_byte = 1;
     })},
    {"v6_icmp_packet_too_big", v6([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_byte = 2;
     })},
    {"v6_icmp_redirect", v6([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_byte = 137;
     })},
    {"v6_icmp_error_behind_ext_headers", v6([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_byte = 3;
       s.ext = {{.type = SLUICE_IPPROTO_HOPOPTS}, kDstOpts};
     })},
    {"v6_icmp_without_type", v6([](Original& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.ext = {kDstOpts};
       s.payload = 0;
     })},
    {"v6_too_many_ext_headers",
     v6([](Original& s) { s.ext.assign(SLUICE_MAX_IPV6_EXT_HDRS + 1, kDstOpts); })},
    {"v6_non_initial_fragment", v6([](Original& s) {
       s.ext = {{.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 1480, .frag_id = 0x42}};
     })},
    {"v6_source_unspecified", v6([](Original& s) { s.ip6.src = "::"; })},
    {"v6_source_multicast", v6([](Original& s) { s.ip6.src = "ff02::1"; })},
    // The reply's source MAC would be the group address (review5 L4).
    {"v6_link_multicast",
     v6([](Original& s) { s.dst_mac = {0x33, 0x33, 0x00, 0x00, 0x00, 0x01}; })},
    {"v6_link_broadcast", v6([](Original& s) { s.dst_mac = kBroadcastMac; })},
};

void PrintTo(const NoReplyCase& c, std::ostream* os) { *os << c.name; }

class IcmpNoReply : public ::testing::TestWithParam<NoReplyCase> {};

TEST_P(IcmpNoReply, SuppressedAndUntouched) {
  BufferedFrame t = GetParam().spec.build(kHeadroom);
  const std::vector<uint8_t> before(t.buf);
  const Reply r = build(t, 1400);
  EXPECT_EQ(r.status, IcmpStatus::kSuppressed);
  EXPECT_EQ(r.span.off, t.span.off);
  EXPECT_EQ(r.span.len, t.span.len);
  EXPECT_EQ(t.buf, before);
}

INSTANTIATE_TEST_SUITE_P(Icmp, IcmpNoReply, ::testing::ValuesIn(kNoReply),
                         [](const auto& tp) { return std::string(tp.param.name); });

TEST(Icmp, RepliesToNonErrorIcmp) {
  // Echo requests are not errors: a too-big ping gets its frag-needed.
  BufferedFrame t4 = Original{.proto = SLUICE_IPPROTO_ICMP, .first_byte = 8}.build(kHeadroom);
  EXPECT_EQ(build(t4, 1400).status, IcmpStatus::kBuilt);

  BufferedFrame t6 = Original{.family = SLUICE_FAMILY_IPV6,
                              .ext = {kDstOpts},
                              .payload = 1460,
                              .proto = SLUICE_IPPROTO_ICMPV6,
                              .first_byte = 128}
                         .build(kHeadroom);
  EXPECT_EQ(build(t6, 1400).status, IcmpStatus::kBuilt);
}

TEST(Icmp, ExtensionHeadersUpToTheBoundAreWalked) {
  Original s{.family = SLUICE_FAMILY_IPV6, .payload = 1400};
  s.ext.assign(SLUICE_MAX_IPV6_EXT_HDRS, kDstOpts);
  BufferedFrame t = s.build(kHeadroom);
  EXPECT_EQ(build(t, 1400).status, IcmpStatus::kBuilt);
}

TEST(Icmp, HeadroomOneByteShortIsRefusedUntouched) {
  for (const int family : {SLUICE_FAMILY_IPV4, SLUICE_FAMILY_IPV6}) {
    const Original s{.family = static_cast<uint8_t>(family), .payload = 1460};
    const size_t need = family == SLUICE_FAMILY_IPV4 ? 28 : 48;

    BufferedFrame exact = s.build(need);
    const Reply ok = build(exact, 1400);
    EXPECT_EQ(ok.status, IcmpStatus::kBuilt);
    EXPECT_EQ(ok.span.off, 0u);

    BufferedFrame t = s.build(need - 1);
    const std::vector<uint8_t> before(t.buf);
    const Reply r = build(t, 1400);
    EXPECT_EQ(r.status, IcmpStatus::kNoHeadroom) << family;
    EXPECT_EQ(r.span.off, t.span.off);
    EXPECT_EQ(t.buf, before);
  }
}

TEST(Icmp, RefusesMalformedInput) {
  BufferedFrame t = Original{}.build(kHeadroom);
  t.l3()[3] += 1;  // total length past the frame
  const std::vector<uint8_t> before(t.buf);
  EXPECT_EQ(build(t, 1400).status, IcmpStatus::kBadInput);
  EXPECT_EQ(t.buf, before);

  FrameSpan span = t.span;
  EXPECT_EQ(build_icmp_too_big(t.buf.data(), t.buf.size(), span, 10, 1400), IcmpStatus::kBadInput);
  span.len = t.buf.size();
  EXPECT_EQ(build_icmp_too_big(t.buf.data(), t.buf.size(), span, 14, 1400), IcmpStatus::kBadInput);
}

TEST(Icmp, StatusNames) {
  EXPECT_STREQ(to_string(IcmpStatus::kBuilt), "built");
  EXPECT_STREQ(to_string(IcmpStatus::kSuppressed), "suppressed");
  EXPECT_STREQ(to_string(IcmpStatus::kNoHeadroom), "no_headroom");
  EXPECT_STREQ(to_string(IcmpStatus::kBadInput), "bad_input");
}

}  // namespace
}  // namespace sluice
