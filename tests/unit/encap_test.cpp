// SPDX-License-Identifier: BSD-2-Clause
// encap_frame: the three encapsulations field by field, outer-source
// entropy, the MTU and headroom limits, and the inputs it refuses.
#include "dataplane/core/encap.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "tests/common/packet_builder.hpp"

namespace sluice {
namespace {

using test::BufferedFrame;
using test::Bytes;
using test::PacketBuilder;

uint16_t be16(const uint8_t* p) { return test::get_be16(p); }
uint32_t be32(const uint8_t* p) { return test::get_be32(p); }

constexpr uint32_t kFlowHash = 0xDEADBEEF;
constexpr uint8_t kSrc4[4] = {10, 1, 2, 3};
constexpr uint8_t kSrc6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03};
constexpr uint8_t kBackend4[4] = {203, 0, 113, 5};
constexpr uint8_t kBackend6[16] = {0x20, 0x01, 0x0d, 0xb8, 0xbe, 0xef, 0, 0,
                                   0,    0,    0,    0,    0,    0,    0, 0x05};
constexpr size_t kHeadroom = 64;
constexpr uint16_t kClientId = 0x1234;

// A client's frame as the load balancer receives it: `vlans` tags (802.1ad
// outside 802.1Q), an IPv4 or IPv6 header and `payload` bytes of TCP
// segment (not interpreted), then `padding` bytes of Ethernet padding;
// placed behind `headroom` bytes.
struct ClientFrame {
  uint8_t family = SLUICE_FAMILY_IPV4;
  size_t vlans = 0;
  uint8_t tos = 0;  // IPv4 TOS / IPv6 traffic class
  bool df = true;   // IPv4 only
  size_t payload = 100;
  size_t padding = 0;

  [[nodiscard]] BufferedFrame build(size_t headroom) const {
    PacketBuilder b;
    for (size_t i = 0; i < vlans; ++i) {
      b.vlan({.vid = static_cast<uint16_t>(100 + i),
              .tpid =
                  static_cast<uint16_t>(i + 1 < vlans ? SLUICE_ETH_P_8021AD : SLUICE_ETH_P_8021Q)});
    }
    if (family == SLUICE_FAMILY_IPV4) {
      b.ipv4({.tos = tos, .ttl = 55, .id = kClientId, .dont_fragment = df});
    } else {
      b.ipv6({.traffic_class = tos, .flow_label = 0x12345, .hop_limit = 55});
    }
    b.raw({.bytes = test::pattern(payload, 3), .proto = SLUICE_IPPROTO_TCP});
    b.trailer(Bytes(padding, 0));
    return test::in_buffer(b.build(), b.l3_offset(), headroom);
  }
};

EncapSettings settings(uint16_t mtu = 1500, uint8_t entropy_bits = 0) {
  EncapSettings s;
  std::memcpy(s.config.src_v4.bytes, kSrc4, 4);
  std::memcpy(s.config.src_v6.bytes, kSrc6, 16);
  s.config.mtu = mtu;
  s.config.entropy_bits = entropy_bits;
  return s;
}

EncapTarget target(uint8_t family) {
  EncapTarget t;
  t.family = family;
  if (family == SLUICE_FAMILY_IPV4) std::memcpy(t.addr.bytes, kBackend4, 4);
  if (family == SLUICE_FAMILY_IPV6) std::memcpy(t.addr.bytes, kBackend6, 16);
  t.flow_hash = kFlowHash;
  return t;
}

struct EncapCase {
  const char* name;
  uint8_t inner;    // client packet family
  uint8_t backend;  // backend family
  size_t vlans;
  uint8_t tos;  // DSCP << 2 | ECN
  bool df;
  uint8_t entropy_bits;
  uint8_t ttl;
  uint16_t want_src_low;  // last two bytes of the outer source; the rest is the configured one
};

// The configured sources end in 0x0203 (IPv4) and 0x0003 (IPv6); the flow
// hash ends in 0xBEEF.
const EncapCase kCases[] = {
    {"ipip4_plain", 4, 4, 0, 0x00, true, 0, 64, 0x0203},
    {"ipip4_ef_ect1_entropy8", 4, 4, 0, 0xB9, true, 8, 64, 0x02EF},
    {"ipip4_ce_nodf_entropy16", 4, 4, 1, 0x03, false, 16, 9, 0xBEEF},
    {"ipip4_two_vlans", 4, 4, 2, 0x2A, true, 16, 64, 0xBEEF},
    {"ip6ip6_plain", 6, 6, 0, 0x00, true, 0, 64, 0x0003},
    {"ip6ip6_af41_ect0_entropy8", 6, 6, 1, 0x8A, true, 8, 255, 0x00EF},
    {"ip6ip6_ce_entropy16", 6, 6, 2, 0x03, true, 16, 64, 0xBEEF},
    {"ip4in6_plain", 4, 6, 0, 0x00, true, 0, 64, 0x0003},
    {"ip4in6_cs1_ect1_nodf_entropy8", 4, 6, 1, 0x21, false, 8, 64, 0x00EF},
    {"ip4in6_entropy16", 4, 6, 2, 0xFF, true, 16, 1, 0xBEEF},
};

void PrintTo(const EncapCase& c, std::ostream* os) { *os << c.name; }

class EncapCases : public ::testing::TestWithParam<EncapCase> {};

TEST_P(EncapCases, WritesEveryOuterField) {
  const EncapCase& c = GetParam();
  const ClientFrame spec{
      .family = c.inner, .vlans = c.vlans, .tos = c.tos, .df = c.df, .payload = 333};
  BufferedFrame t = spec.build(kHeadroom);
  const std::vector<uint8_t> before(t.buf);
  const FrameSpan old = t.span;
  const size_t inner_off = old.off + t.l3_off;

  EncapSettings s = settings(1500, c.entropy_bits);
  s.hop_limit = c.ttl;
  FrameSpan span = t.span;
  ASSERT_EQ(encap_frame(t.buf.data(), t.buf.size(), span, t.l3_off, s, target(c.backend)),
            EncapStatus::kOk);

  const size_t h = c.backend == 4 ? 20 : 40;
  EXPECT_EQ(span.off, old.off - h);
  EXPECT_EQ(span.len, old.len + h);
  const uint8_t* f = t.buf.data() + span.off;

  // L2 header moved intact; only the last EtherType names the outer family.
  EXPECT_EQ(0, std::memcmp(f, before.data() + old.off, t.l3_off - 2));
  EXPECT_EQ(be16(f + t.l3_off - 2), c.backend == 4 ? SLUICE_ETH_P_IP : SLUICE_ETH_P_IPV6);

  // The client packet follows the outer header, byte for byte.
  const uint8_t* outer = f + t.l3_off;
  EXPECT_EQ(0, std::memcmp(outer + h, before.data() + inner_off, t.ip_len));

  const uint8_t want_proto = c.inner == 4 ? SLUICE_IPPROTO_IPIP : SLUICE_IPPROTO_IPV6;
  if (c.backend == 4) {
    EXPECT_EQ(outer[0], 0x45) << "version 4, IHL 5";
    EXPECT_EQ(outer[1], c.tos) << "DSCP and ECN copied";
    EXPECT_EQ(be16(outer + 2), 20 + t.ip_len);
    EXPECT_EQ(be16(outer + 4), c.df ? 0 : kClientId) << "id 0 if atomic, else the client's";
    EXPECT_EQ(be16(outer + 6), c.df ? 0x4000 : 0) << "DF copied, no fragment";
    EXPECT_EQ(outer[8], c.ttl);
    EXPECT_EQ(outer[9], want_proto);
    EXPECT_EQ(test::checksum(outer, 20), 0) << "header checksum verifies";
    EXPECT_EQ(0, std::memcmp(outer + 12, kSrc4, 2));
    EXPECT_EQ(be16(outer + 14), c.want_src_low);
    EXPECT_EQ(0, std::memcmp(outer + 16, kBackend4, 4));
  } else {
    const uint32_t w0 = be32(outer);
    EXPECT_EQ(w0 >> 28, 6u);
    EXPECT_EQ((w0 >> 20) & 0xFF, c.tos) << "traffic class copied";
    EXPECT_EQ(w0 & 0xFFFFF, kFlowHash & 0xFFFFF) << "flow label from the flow hash";
    EXPECT_EQ(be16(outer + 4), t.ip_len);
    EXPECT_EQ(outer[6], want_proto);
    EXPECT_EQ(outer[7], c.ttl);
    EXPECT_EQ(0, std::memcmp(outer + 8, kSrc6, 14));
    EXPECT_EQ(be16(outer + 22), c.want_src_low);
    EXPECT_EQ(0, std::memcmp(outer + 24, kBackend6, 16));
  }

  // Nothing outside the new frame was written.
  EXPECT_EQ(0, std::memcmp(t.buf.data(), before.data(), span.off));
}

INSTANTIATE_TEST_SUITE_P(Encap, EncapCases, ::testing::ValuesIn(kCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

struct SizeCase {
  const char* name;
  uint8_t inner;
  uint8_t backend;
};

const SizeCase kSizeCases[] = {{"ipip4", 4, 4}, {"ip6ip6", 6, 6}, {"ip4in6", 4, 6}};

void PrintTo(const SizeCase& c, std::ostream* os) { *os << c.name; }

class EncapLimits : public ::testing::TestWithParam<SizeCase> {};

TEST_P(EncapLimits, ExactlyAtMtuIsOkOneByteMoreIsTooBig) {
  const SizeCase& c = GetParam();
  const ClientFrame spec{.family = c.inner, .payload = 1000};
  const size_t h = c.backend == 4 ? 20 : 40;
  const size_t ip_len = (c.inner == 4 ? 20 : 40) + spec.payload;

  BufferedFrame at = spec.build(kHeadroom);
  FrameSpan span = at.span;
  EXPECT_EQ(encap_frame(at.buf.data(), at.buf.size(), span, at.l3_off,
                        settings(static_cast<uint16_t>(h + ip_len)), target(c.backend)),
            EncapStatus::kOk);
  EXPECT_EQ(span.len - at.l3_off, h + ip_len);

  BufferedFrame over = spec.build(kHeadroom);
  const std::vector<uint8_t> before(over.buf);
  span = over.span;
  EXPECT_EQ(encap_frame(over.buf.data(), over.buf.size(), span, over.l3_off,
                        settings(static_cast<uint16_t>(h + ip_len - 1)), target(c.backend)),
            EncapStatus::kTooBig);
  EXPECT_EQ(span.off, over.span.off);
  EXPECT_EQ(span.len, over.span.len);
  EXPECT_EQ(over.buf, before) << "frame untouched";
}

TEST_P(EncapLimits, HeadroomOneByteShortIsRefusedUntouched) {
  const SizeCase& c = GetParam();
  const ClientFrame spec{.family = c.inner};
  const size_t h = c.backend == 4 ? 20 : 40;

  BufferedFrame exact = spec.build(h);
  FrameSpan span = exact.span;
  EXPECT_EQ(encap_frame(exact.buf.data(), exact.buf.size(), span, exact.l3_off, settings(),
                        target(c.backend)),
            EncapStatus::kOk);
  EXPECT_EQ(span.off, 0u);

  BufferedFrame short_room = spec.build(h - 1);
  const std::vector<uint8_t> before(short_room.buf);
  span = short_room.span;
  EXPECT_EQ(encap_frame(short_room.buf.data(), short_room.buf.size(), span, short_room.l3_off,
                        settings(), target(c.backend)),
            EncapStatus::kNoHeadroom);
  EXPECT_EQ(span.off, short_room.span.off);
  EXPECT_EQ(short_room.buf, before);
}

TEST_P(EncapLimits, TooBigIsReportedBeforeMissingHeadroom) {
  // An oversize packet must reach the ICMP builder even when it also lacks
  // headroom, so the client still learns the MTU.
  const SizeCase& c = GetParam();
  BufferedFrame t = ClientFrame{.family = c.inner, .payload = 1480}.build(0);
  FrameSpan span = t.span;
  EXPECT_EQ(
      encap_frame(t.buf.data(), t.buf.size(), span, t.l3_off, settings(1500), target(c.backend)),
      EncapStatus::kTooBig);
}

INSTANTIATE_TEST_SUITE_P(Encap, EncapLimits, ::testing::ValuesIn(kSizeCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

TEST(Encap, DropsEthernetPaddingAfterTheClientPacket) {
  // A 26-byte IPv4 packet in a 60-byte minimum frame.
  BufferedFrame t = ClientFrame{.payload = 6, .padding = 20}.build(kHeadroom);
  FrameSpan span = t.span;
  ASSERT_EQ(encap_frame(t.buf.data(), t.buf.size(), span, t.l3_off, settings(),
                        target(SLUICE_FAMILY_IPV4)),
            EncapStatus::kOk);
  EXPECT_EQ(span.len, 14u + 20 + 26);
  EXPECT_EQ(be16(t.buf.data() + span.off + 14 + 2), 20 + 26);
}

TEST(Encap, Ipv6ClientToIpv4BackendIsUnsupported) {
  BufferedFrame t = ClientFrame{.family = SLUICE_FAMILY_IPV6}.build(kHeadroom);
  const std::vector<uint8_t> before(t.buf);
  FrameSpan span = t.span;
  EXPECT_EQ(encap_frame(t.buf.data(), t.buf.size(), span, t.l3_off, settings(),
                        target(SLUICE_FAMILY_IPV4)),
            EncapStatus::kUnsupportedFamily);
  EXPECT_EQ(t.buf, before);

  EncapTarget unknown = target(SLUICE_FAMILY_IPV4);
  unknown.family = 0;
  BufferedFrame t4 = ClientFrame{}.build(kHeadroom);
  span = t4.span;
  EXPECT_EQ(encap_frame(t4.buf.data(), t4.buf.size(), span, t4.l3_off, settings(), unknown),
            EncapStatus::kUnsupportedFamily);
}

TEST(Encap, RefusesMalformedInputUntouched) {
  struct Bad {
    const char* name;
    void (*mutate)(BufferedFrame&, FrameSpan&, size_t&);
  };
  const Bad bad[] = {
      {"l3_off below Ethernet", [](BufferedFrame&, FrameSpan&, size_t& l3) { l3 = 13; }},
      {"l3_off past two VLANs", [](BufferedFrame&, FrameSpan&, size_t& l3) { l3 = 26; }},
      // Between Ethernet and one VLAN tag: no L2 header is 16 bytes long, and
      // writing the outer EtherType at l3_off - 2 would corrupt the frame.
      // The IP header really starts there (2 or 7 bytes pushed in after the
      // Ethernet header), so only the L2 length check can refuse it.
      {"l3_off 16",
       [](BufferedFrame& t, FrameSpan& s, size_t& l3) {
         t.buf.insert(t.buf.begin() + static_cast<std::ptrdiff_t>(s.off + 14), 2, 0);
         s.len += 2;
         l3 = 16;
       }},
      {"l3_off 21",
       [](BufferedFrame& t, FrameSpan& s, size_t& l3) {
         t.buf.insert(t.buf.begin() + static_cast<std::ptrdiff_t>(s.off + 14), 7, 0);
         s.len += 7;
         l3 = 21;
       }},
      {"span past buffer", [](BufferedFrame& t, FrameSpan& s, size_t&) { s.len = t.buf.size(); }},
      {"offset past buffer",
       [](BufferedFrame& t, FrameSpan& s, size_t&) { s.off = t.buf.size() + 1; }},
      {"version 5", [](BufferedFrame& t, FrameSpan&, size_t&) { t.l3()[0] = 0x55; }},
      {"IHL 4", [](BufferedFrame& t, FrameSpan&, size_t&) { t.l3()[0] = 0x44; }},
      {"total length past frame", [](BufferedFrame& t, FrameSpan&, size_t&) { t.l3()[3] += 1; }},
      {"total length below IHL",
       [](BufferedFrame& t, FrameSpan&, size_t&) {
         t.l3()[2] = 0;
         t.l3()[3] = 19;
       }},
      {"frame cut inside IP header",
       [](BufferedFrame&, FrameSpan& s, size_t&) { s.len = 14 + 19; }},
  };
  for (const Bad& b : bad) {
    BufferedFrame t = ClientFrame{}.build(kHeadroom);
    FrameSpan span = t.span;
    size_t l3 = t.l3_off;
    b.mutate(t, span, l3);
    const std::vector<uint8_t> before(t.buf);
    const FrameSpan given = span;
    EXPECT_EQ(
        encap_frame(t.buf.data(), t.buf.size(), span, l3, settings(), target(SLUICE_FAMILY_IPV4)),
        EncapStatus::kBadInput)
        << b.name;
    EXPECT_EQ(t.buf, before) << b.name;
    EXPECT_EQ(span.off, given.off) << b.name;
  }

  // Payload length 0: empty or a jumbogram.
  BufferedFrame t = ClientFrame{.family = SLUICE_FAMILY_IPV6, .payload = 0}.build(kHeadroom);
  FrameSpan span = t.span;
  EXPECT_EQ(encap_frame(t.buf.data(), t.buf.size(), span, t.l3_off, settings(),
                        target(SLUICE_FAMILY_IPV6)),
            EncapStatus::kBadInput);
  EXPECT_EQ(encap_frame(nullptr, 0, span, 14, settings(), target(SLUICE_FAMILY_IPV6)),
            EncapStatus::kBadInput);
}

TEST(Encap, InnerMtuSubtractsTheOuterHeader) {
  sluice_encap_config cfg{};
  cfg.mtu = 1500;
  EXPECT_EQ(encap_inner_mtu(cfg, SLUICE_FAMILY_IPV4), 1480u);
  EXPECT_EQ(encap_inner_mtu(cfg, SLUICE_FAMILY_IPV6), 1460u);
  EXPECT_EQ(encap_inner_mtu(cfg, 0), 0u);
  cfg.mtu = 40;
  EXPECT_EQ(encap_inner_mtu(cfg, SLUICE_FAMILY_IPV6), 0u);
  EXPECT_EQ(encap_inner_mtu(cfg, SLUICE_FAMILY_IPV4), 20u);
}

TEST(Encap, EntropyReplacesOnlyTheLowBits) {
  // Every width from 0 to 16 (and beyond, clamped) on both families.
  const sl_be32 base4 = sl_htonl(0x0A0102FF);
  for (unsigned bits = 0; bits <= 20; ++bits) {
    const uint32_t eff = bits > 16 ? 16 : bits;
    const uint32_t mask = (1u << eff) - 1;
    const sl_be32 got = sluice_encap4_src(base4, static_cast<uint8_t>(bits), kFlowHash);
    EXPECT_EQ(sl_ntohl(got), (0x0A0102FFu & ~mask) | (kFlowHash & mask)) << bits;

    union sluice_ip base6 {};
    std::memcpy(base6.bytes, kSrc6, 16);
    base6.bytes[14] = 0x5A;
    base6.bytes[15] = 0xA5;
    union sluice_ip out6;
    sluice_encap6_src(&out6, &base6, static_cast<uint8_t>(bits), kFlowHash);
    EXPECT_EQ(0, std::memcmp(out6.bytes, base6.bytes, 14)) << bits;
    EXPECT_EQ(be16(out6.bytes + 14), (0x5AA5u & ~mask) | (kFlowHash & mask)) << bits;
  }
}

TEST(Encap, StatusNames) {
  EXPECT_STREQ(to_string(EncapStatus::kOk), "ok");
  EXPECT_STREQ(to_string(EncapStatus::kTooBig), "too_big");
  EXPECT_STREQ(to_string(EncapStatus::kNoHeadroom), "no_headroom");
  EXPECT_STREQ(to_string(EncapStatus::kUnsupportedFamily), "unsupported_family");
  EXPECT_STREQ(to_string(EncapStatus::kBadInput), "bad_input");
}

}  // namespace
}  // namespace sluice
