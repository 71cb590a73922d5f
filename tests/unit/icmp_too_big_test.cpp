// SPDX-License-Identifier: BSD-2-Clause
// build_icmp_too_big: IPv4 fragmentation-needed and ICMPv6 packet-too-big
// replies field by field, their size limits, and the packets that must get
// no reply.
#include "dataplane/core/icmp_too_big.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "encap_frames.hpp"

namespace sluice {
namespace {

using test::be16;
using test::be32;
using test::ExtHdr;
using test::FrameSpec;
using test::make_frame;
using test::ref_checksum;
using test::TestFrame;

constexpr size_t kHeadroom = 128;

struct Reply {
  IcmpStatus status;
  FrameSpan span;
};

Reply build(TestFrame& t, uint32_t mtu) {
  FrameSpan span = t.span;
  const IcmpStatus st = build_icmp_too_big(t.buf.data(), t.buf.size(), span, t.l3_off, mtu);
  return {st, span};
}

// The L2 header of the reply: MACs swapped, VLAN tags and EtherType kept.
void expect_l2_returned(const uint8_t* reply, const std::vector<uint8_t>& before,
                        const TestFrame& t) {
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
  FrameSpec spec;
  spec.vlans = c.vlans;
  spec.options = c.options;
  spec.payload = c.payload;
  spec.tos = 0xB9;
  TestFrame t = make_frame(spec, kHeadroom);
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
  EXPECT_EQ(ref_checksum(ip, 20), 0);
  EXPECT_EQ(0, std::memcmp(ip + 12, test::kVip4, 4)) << "from the VIP";
  EXPECT_EQ(0, std::memcmp(ip + 16, test::kClient4, 4)) << "to the client";

  const uint8_t* icmp = ip + 20;
  EXPECT_EQ(icmp[0], 3);
  EXPECT_EQ(icmp[1], 4);
  EXPECT_EQ(be16(icmp + 4), 0) << "unused";
  EXPECT_EQ(be16(icmp + 6), c.want_mtu) << "next-hop MTU";
  EXPECT_EQ(ref_checksum(icmp, 8 + quote), 0) << "ICMP checksum verifies";
  EXPECT_EQ(0, std::memcmp(icmp + 8, orig_ip, quote)) << "original header and data quoted";
  EXPECT_EQ(size_t{icmp[8]} & 0x0F, (20 + c.options) / 4) << "options quoted too";
}

INSTANTIATE_TEST_SUITE_P(Icmp, IcmpV4, ::testing::ValuesIn(kV4Cases),
                         [](const auto& tp) { return std::string(tp.param.name); });

struct V6Case {
  const char* name;
  size_t vlans;
  std::vector<ExtHdr> ext;
  size_t payload;
  uint32_t mtu;
  uint32_t want_mtu;
};

const V6Case kV6Cases[] = {
    {"full_size", 0, {}, 1460, 1460, 1460},
    {"vlan_tagged_jumbo_mtu", 1, {}, 8960, 8960, 8960},
    {"hop_by_hop_then_tcp", 2, {{SLUICE_IPPROTO_HOPOPTS, 0}}, 1452, 1460, 1460},
    {"first_fragment", 0, {{SLUICE_IPPROTO_FRAGMENT, 0x0001}}, 1452, 1460, 1460},
    {"small_original_quoted_whole", 0, {}, 200, 150, 1280},
    {"mtu_below_1280_raised", 0, {}, 1460, 1200, 1280},
};

void PrintTo(const V6Case& c, std::ostream* os) { *os << c.name; }

class IcmpV6 : public ::testing::TestWithParam<V6Case> {};

TEST_P(IcmpV6, BuildsPacketTooBig) {
  const V6Case& c = GetParam();
  FrameSpec spec;
  spec.family = SLUICE_FAMILY_IPV6;
  spec.vlans = c.vlans;
  spec.ext = c.ext;
  spec.payload = c.payload;
  spec.tos = 0xB9;
  spec.flow_label = 0xABCDE;
  TestFrame t = make_frame(spec, kHeadroom);
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
  EXPECT_EQ(0, std::memcmp(ip + 8, test::kVip6, 16)) << "from the VIP";
  EXPECT_EQ(0, std::memcmp(ip + 24, test::kClient6, 16)) << "to the client";

  const uint8_t* icmp = ip + 40;
  EXPECT_EQ(icmp[0], 2);
  EXPECT_EQ(icmp[1], 0);
  EXPECT_EQ(be32(icmp + 4), c.want_mtu);
  EXPECT_EQ(test::ref_checksum6(ip + 8, ip + 24, SLUICE_IPPROTO_ICMPV6, icmp, 8 + quote), 0)
      << "checksum with the pseudo-header verifies";
  EXPECT_EQ(0, std::memcmp(icmp + 8, orig_ip, quote)) << "original quoted";
}

INSTANTIATE_TEST_SUITE_P(Icmp, IcmpV6, ::testing::ValuesIn(kV6Cases),
                         [](const auto& tp) { return std::string(tp.param.name); });

// Packets that must get no reply, and must be left as they were.
struct NoReplyCase {
  const char* name;
  FrameSpec spec;
};

FrameSpec v4(void (*f)(FrameSpec&)) {
  FrameSpec s;
  s.payload = 1480;
  f(s);
  return s;
}

FrameSpec v6(void (*f)(FrameSpec&)) {
  FrameSpec s;
  s.family = SLUICE_FAMILY_IPV6;
  s.payload = 1460;
  f(s);
  return s;
}

constexpr uint8_t kBroadcastMac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint8_t kMulticastMac[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
constexpr uint8_t kZero4[4] = {0, 0, 0, 9};
constexpr uint8_t kLoopback4[4] = {127, 0, 0, 1};
constexpr uint8_t kMulticast4[4] = {224, 0, 0, 5};
constexpr uint8_t kReserved4[4] = {240, 0, 0, 1};
constexpr uint8_t kBroadcast4[4] = {255, 255, 255, 255};
constexpr uint8_t kUnspecified6[16] = {};
constexpr uint8_t kMulticast6[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

const NoReplyCase kNoReply[] = {
    {"v4_without_df", v4([](FrameSpec& s) { s.df = false; })},
    {"v4_icmp_dest_unreach", v4([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMP;
       s.first_payload_byte = 3;
     })},
    {"v4_icmp_time_exceeded", v4([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMP;
       s.first_payload_byte = 11;
     })},
    {"v4_icmp_without_type", v4([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMP;
       s.payload = 0;
     })},
    {"v4_non_initial_fragment", v4([](FrameSpec& s) { s.frag = 185; })},
    {"v4_source_this_net", v4([](FrameSpec& s) { s.src = kZero4; })},
    {"v4_source_loopback", v4([](FrameSpec& s) { s.src = kLoopback4; })},
    {"v4_source_multicast", v4([](FrameSpec& s) { s.src = kMulticast4; })},
    {"v4_source_reserved", v4([](FrameSpec& s) { s.src = kReserved4; })},
    {"v4_source_broadcast", v4([](FrameSpec& s) { s.src = kBroadcast4; })},
    {"v4_destination_multicast", v4([](FrameSpec& s) { s.dst = kMulticast4; })},
    {"v4_link_broadcast", v4([](FrameSpec& s) { s.dst_mac = kBroadcastMac; })},
    {"v4_link_multicast", v4([](FrameSpec& s) { s.dst_mac = kMulticastMac; })},
    {"v6_icmp_dest_unreach", v6([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_payload_byte = 1;
     })},
    {"v6_icmp_packet_too_big", v6([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_payload_byte = 2;
     })},
    {"v6_icmp_redirect", v6([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_payload_byte = 137;
     })},
    {"v6_icmp_error_behind_ext_headers", v6([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.first_payload_byte = 3;
       s.ext = {{SLUICE_IPPROTO_HOPOPTS, 0}, {SLUICE_IPPROTO_DSTOPTS, 0}};
     })},
    {"v6_icmp_without_type", v6([](FrameSpec& s) {
       s.proto = SLUICE_IPPROTO_ICMPV6;
       s.ext = {{SLUICE_IPPROTO_DSTOPTS, 0}};
       s.payload = 0;
     })},
    {"v6_too_many_ext_headers",
     v6([](FrameSpec& s) { s.ext = std::vector<ExtHdr>(SLUICE_MAX_IPV6_EXT_HDRS + 1, ExtHdr{}); })},
    {"v6_non_initial_fragment", v6([](FrameSpec& s) {
       s.ext = {{SLUICE_IPPROTO_FRAGMENT, 185 << 3}};
     })},
    {"v6_source_unspecified", v6([](FrameSpec& s) { s.src = kUnspecified6; })},
    {"v6_source_multicast", v6([](FrameSpec& s) { s.src = kMulticast6; })},
};

void PrintTo(const NoReplyCase& c, std::ostream* os) { *os << c.name; }

class IcmpNoReply : public ::testing::TestWithParam<NoReplyCase> {};

TEST_P(IcmpNoReply, SuppressedAndUntouched) {
  TestFrame t = make_frame(GetParam().spec, kHeadroom);
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
  FrameSpec s4;
  s4.payload = 1480;
  s4.proto = SLUICE_IPPROTO_ICMP;
  s4.first_payload_byte = 8;
  TestFrame t4 = make_frame(s4, kHeadroom);
  EXPECT_EQ(build(t4, 1400).status, IcmpStatus::kBuilt);

  FrameSpec s6;
  s6.family = SLUICE_FAMILY_IPV6;
  s6.payload = 1460;
  s6.proto = SLUICE_IPPROTO_ICMPV6;
  s6.first_payload_byte = 128;
  s6.ext = {{SLUICE_IPPROTO_DSTOPTS, 0}};
  TestFrame t6 = make_frame(s6, kHeadroom);
  EXPECT_EQ(build(t6, 1400).status, IcmpStatus::kBuilt);
}

TEST(Icmp, ExtensionHeadersUpToTheBoundAreWalked) {
  FrameSpec s;
  s.family = SLUICE_FAMILY_IPV6;
  s.payload = 1400;
  s.ext = std::vector<ExtHdr>(SLUICE_MAX_IPV6_EXT_HDRS, ExtHdr{});
  TestFrame t = make_frame(s, kHeadroom);
  EXPECT_EQ(build(t, 1400).status, IcmpStatus::kBuilt);
}

TEST(Icmp, HeadroomOneByteShortIsRefusedUntouched) {
  for (const int family : {SLUICE_FAMILY_IPV4, SLUICE_FAMILY_IPV6}) {
    FrameSpec s;
    s.family = static_cast<uint8_t>(family);
    s.payload = 1460;
    const size_t need = family == SLUICE_FAMILY_IPV4 ? 28 : 48;

    TestFrame exact = make_frame(s, need);
    const Reply ok = build(exact, 1400);
    EXPECT_EQ(ok.status, IcmpStatus::kBuilt);
    EXPECT_EQ(ok.span.off, 0u);

    TestFrame t = make_frame(s, need - 1);
    const std::vector<uint8_t> before(t.buf);
    const Reply r = build(t, 1400);
    EXPECT_EQ(r.status, IcmpStatus::kNoHeadroom) << family;
    EXPECT_EQ(r.span.off, t.span.off);
    EXPECT_EQ(t.buf, before);
  }
}

TEST(Icmp, RefusesMalformedInput) {
  FrameSpec s;
  s.payload = 1480;
  TestFrame t = make_frame(s, kHeadroom);
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
