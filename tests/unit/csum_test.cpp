// SPDX-License-Identifier: BSD-2-Clause
// dataplane/abi/csum.h and encap.h: RFC 1071 values, the RFC 1624
// incremental update against full recomputation, and the same bytes from
// the C-compiled copy (abi_c_check.c) as from C++.
#include "dataplane/abi/csum.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "dataplane/abi/encap.h"
#include "tests/common/packet_builder.hpp"
#include "tests/unit/abi_c_check.h"

namespace sluice {
namespace {

// The reference: packet_builder.hpp's RFC 1071 sum, written apart from csum.h.
uint16_t ref_checksum(const uint8_t* p, size_t len) { return test::checksum(p, len); }
uint16_t be16(const uint8_t* p) { return test::get_be16(p); }

// std::mt19937 with 32-bit results (its result_type may be wider), fixed seed.
class Rng {
 public:
  explicit Rng(uint32_t seed) : engine_(seed) {}
  uint32_t operator()() { return static_cast<uint32_t>(engine_()); }

 private:
  std::mt19937 engine_;
};

TEST(Csum, Rfc1071Example) {
  // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 2ddf0, which
  // folds to ddf2; the checksum is its complement.
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  const sl_u64 sum = sluice_csum_add_bytes(0, data, sizeof data, sizeof data);
  EXPECT_EQ(sluice_csum_fold(sum), 0xddf2);
  EXPECT_EQ(sluice_csum(data, sizeof data, sizeof data), 0x220d);
}

TEST(Csum, KnownIpv4Header) {
  // A common textbook header (192.168.0.1 -> 192.168.0.199, UDP, DF),
  // checksum b861.
  uint8_t hdr[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                     0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  sluice_ipv4_csum_fill(hdr);
  EXPECT_EQ(be16(hdr + 10), 0xb861);
  EXPECT_EQ(sluice_csum(hdr, 20, 20), 0) << "a correct header sums to zero";
  sluice_ipv4_csum_fill(hdr);  // the old checksum is ignored
  EXPECT_EQ(be16(hdr + 10), 0xb861);
}

TEST(Csum, OddLengthPadsTheLastByteOnTheRight) {
  const uint8_t one[] = {0x01};
  EXPECT_EQ(sluice_csum_add_bytes(0, one, 1, 1), 0x0100u);
  const uint8_t three[] = {0x12, 0x34, 0x56};
  EXPECT_EQ(sluice_csum_add_bytes(0, three, 3, 3), 0x1234u + 0x5600u);
  EXPECT_EQ(sluice_csum_add_bytes(7, three, 0, 3), 7u) << "empty input adds nothing";
}

TEST(Csum, MaxLenBoundsTheBytesSummed) {
  const uint8_t data[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
  EXPECT_EQ(sluice_csum_fold(sluice_csum_add_bytes(0, data, 6, 4)), 0x1122u + 0x3344u);
  EXPECT_EQ(sluice_csum_add_bytes(0, data, 6, 3), 0x1122u + 0x3300u);
  EXPECT_EQ(sluice_csum_add_bytes(0, data, 2, 6), 0x1122u);
}

TEST(Csum, FoldCarriesEndAround) {
  EXPECT_EQ(sluice_csum_fold(0), 0);
  EXPECT_EQ(sluice_csum_fold(0xFFFF), 0xFFFF);
  EXPECT_EQ(sluice_csum_fold(0x10000), 1);
  EXPECT_EQ(sluice_csum_fold(0x1FFFE), 0xFFFF);
  EXPECT_EQ(sluice_csum_fold(0xFFFFFFFFu), 0xFFFF);
  EXPECT_EQ(sluice_csum_fold(0xFFFFFFFFFFFFFFFFull), 0xFFFF);
  EXPECT_EQ(sluice_csum_fold(0x0001000200030004ull), 0x000A);
  EXPECT_EQ(sluice_csum_finish(0x2ddf0), 0x220d);
}

TEST(Csum, AgreesWithReferenceOnRandomBuffers) {
  Rng rng(1071);
  std::vector<uint8_t> buf(1500);
  for (int iter = 0; iter < 2000; ++iter) {
    const size_t len = rng() % buf.size();
    for (size_t i = 0; i < len; ++i) buf[i] = static_cast<uint8_t>(rng());
    const auto n = static_cast<sl_u32>(len);
    ASSERT_EQ(sluice_csum(buf.data(), n, 0xFFFF), ref_checksum(buf.data(), len)) << len;
    ASSERT_EQ(abi_c_csum(buf.data(), n), ref_checksum(buf.data(), len)) << len;
  }
}

// A random 20-byte IPv4 header with a valid checksum (version/IHL fixed, so
// the data is never all zero).
std::array<uint8_t, 20> random_header(Rng& rng) {
  std::array<uint8_t, 20> h{};
  for (auto& b : h) b = static_cast<uint8_t>(rng());
  h[0] = 0x45;
  sluice_ipv4_csum_fill(h.data());
  return h;
}

TEST(Csum, IncrementalUpdate16EqualsRecomputation) {
  Rng rng(1624);
  for (int iter = 0; iter < 100000; ++iter) {
    auto h = random_header(rng);
    uint16_t check = be16(h.data() + 10);
    // A chain of edits, as a NAT or TTL decrement would make.
    for (int edit = 0; edit < 4; ++edit) {
      size_t word = 1 + rng() % 9;  // any word but version/IHL/TOS (0) and...
      if (word == 5) word = 9;      // ...never the checksum itself
      const uint16_t old_word = be16(h.data() + 2 * word);
      // Bias toward the edge values where one's-complement zeros differ.
      const uint32_t r = rng();
      const auto new_word = static_cast<uint16_t>(r % 8 == 0 ? 0 : r % 8 == 1 ? 0xFFFF : r >> 8);
      test::put_be16(h.data() + 2 * word, new_word);
      check = sluice_csum_update16(check, old_word, new_word);
      auto full = h;
      sluice_ipv4_csum_fill(full.data());
      ASSERT_EQ(check, be16(full.data() + 10))
          << "iter " << iter << " word " << word << " " << old_word << "->" << new_word;
    }
  }
}

TEST(Csum, IncrementalUpdate32EqualsRecomputation) {
  Rng rng(4242);
  for (int iter = 0; iter < 50000; ++iter) {
    auto h = random_header(rng);
    const uint16_t check = be16(h.data() + 10);
    const size_t at = rng() % 2 == 0 ? 12 : 16;  // source or destination address
    const uint32_t old_val = test::get_be32(h.data() + at);
    const uint32_t r = rng();
    const uint32_t new_val = r % 8 == 0 ? 0 : r % 8 == 1 ? 0xFFFFFFFF : rng();
    sluice_put_be32(h.data() + at, new_val);
    auto full = h;
    sluice_ipv4_csum_fill(full.data());
    ASSERT_EQ(sluice_csum_update32(check, old_val, new_val), be16(full.data() + 10)) << iter;
    ASSERT_EQ(abi_c_csum_update32(check, old_val, new_val), be16(full.data() + 10)) << iter;
  }
}

TEST(Csum, Ipv6PseudoHeaderMatchesReference) {
  Rng rng(4443);
  std::vector<uint8_t> msg(1240);
  for (int iter = 0; iter < 500; ++iter) {
    uint8_t src[16];
    uint8_t dst[16];
    for (auto& b : src) b = static_cast<uint8_t>(rng());
    for (auto& b : dst) b = static_cast<uint8_t>(rng());
    const size_t len = 1 + rng() % msg.size();
    for (size_t i = 0; i < len; ++i) msg[i] = static_cast<uint8_t>(rng());
    const auto n = static_cast<sl_u32>(len);
    const uint16_t want = test::checksum6(src, dst, SLUICE_IPPROTO_ICMPV6, msg.data(), len);
    sl_u64 sum = sluice_csum_ipv6_pseudo(0, src, dst, n, SLUICE_IPPROTO_ICMPV6);
    EXPECT_EQ(sluice_csum_finish(sluice_csum_add_bytes(sum, msg.data(), n, 0xFFFF)), want);
    EXPECT_EQ(abi_c_icmp6_csum(src, dst, msg.data(), n), want);
  }
}

TEST(AbiC, HeaderWritersGiveTheSameBytesInCAndCpp) {
  Rng rng(11);
  for (int iter = 0; iter < 1000; ++iter) {
    const sl_be32 s4 = rng();
    const sl_be32 d4 = rng();
    const auto len = static_cast<sl_u16>(rng() % 65000);
    const auto tos = static_cast<sl_u8>(rng());
    const auto id = static_cast<sl_u16>(rng());
    const int df = static_cast<int>(rng() % 2);
    const auto ttl = static_cast<sl_u8>(rng());
    uint8_t a[20];
    uint8_t b[20];
    sluice_ipv4_write_hdr(a, s4, d4, len, tos, id, df, ttl, SLUICE_IPPROTO_IPIP);
    abi_c_ipv4_write_hdr(b, s4, d4, len, tos, id, df, ttl, SLUICE_IPPROTO_IPIP);
    ASSERT_EQ(0, std::memcmp(a, b, 20));
    ASSERT_EQ(ref_checksum(a, 20), 0);

    union sluice_ip s6;
    union sluice_ip d6;
    for (auto& x : s6.bytes) x = static_cast<uint8_t>(rng());
    for (auto& x : d6.bytes) x = static_cast<uint8_t>(rng());
    const uint32_t label = rng();
    uint8_t c[40];
    uint8_t d[40];
    sluice_ipv6_write_hdr(c, &s6, &d6, len, tos, label, ttl, SLUICE_IPPROTO_IPV6);
    abi_c_ipv6_write_hdr(d, &s6, &d6, len, tos, label, ttl, SLUICE_IPPROTO_IPV6);
    ASSERT_EQ(0, std::memcmp(c, d, 40));

    const auto bits = static_cast<sl_u8>(rng() % 20);
    const uint32_t hash = rng();
    ASSERT_EQ(sluice_encap4_src(s4, bits, hash), abi_c_encap4_src(s4, bits, hash));
    union sluice_ip e;
    union sluice_ip f;
    sluice_encap6_src(&e, &s6, bits, hash);
    abi_c_encap6_src(&f, &s6, bits, hash);
    ASSERT_EQ(0, std::memcmp(e.bytes, f.bytes, 16));
  }
}

TEST(AbiC, IcmpHelpers) {
  uint8_t h[8];
  sluice_icmp4_write_frag_needed(h, 1480);
  const uint8_t want4[8] = {3, 4, 0, 0, 0, 0, 0x05, 0xC8};
  EXPECT_EQ(0, std::memcmp(h, want4, 8));
  sluice_icmp6_write_packet_too_big(h, 0x00012345);
  const uint8_t want6[8] = {2, 0, 0, 0, 0x00, 0x01, 0x23, 0x45};
  EXPECT_EQ(0, std::memcmp(h, want6, 8));

  EXPECT_EQ(sluice_icmp4_mtu(0), 68);
  EXPECT_EQ(sluice_icmp4_mtu(67), 68);
  EXPECT_EQ(sluice_icmp4_mtu(1480), 1480);
  EXPECT_EQ(sluice_icmp4_mtu(70000), 65535);
  EXPECT_EQ(sluice_icmp6_mtu(1000), 1280u);
  EXPECT_EQ(sluice_icmp6_mtu(1460), 1460u);

  // Who may get a too-big reply: DF set, first fragment, one host as the
  // source, no multicast or broadcast destination (IP or link layer).
  const sl_be32 host = sl_htonl(0xC6336407);   // 198.51.100.7
  const sl_be32 vip = sl_htonl(0xC000020A);    // 192.0.2.10
  const sl_be32 group = sl_htonl(0xE0000005);  // 224.0.0.5
  EXPECT_TRUE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, host, vip, 0x02));
  EXPECT_FALSE(sluice_icmp4_reply_allowed(0, host, vip, 0x02)) << "no DF";
  EXPECT_TRUE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF | 0x2000, host, vip, 0x02)) << "MF";
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF | 1, host, vip, 0x02)) << "offset";
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, sl_htonl(0x00000009), vip, 0x02));
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, sl_htonl(0x7F000001), vip, 0x02));
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, group, vip, 0x02));
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, sl_htonl(0xFFFFFFFF), vip, 0x02));
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, host, group, 0x02)) << "group dst";
  EXPECT_FALSE(sluice_icmp4_reply_allowed(SLUICE_IPV4_DF, host, vip, 0x01)) << "link multicast";
  union sluice_ip a6 {};
  EXPECT_FALSE(sluice_icmp6_reply_allowed(&a6)) << "::";
  a6.bytes[15] = 1;
  EXPECT_TRUE(sluice_icmp6_reply_allowed(&a6)) << "::1 names one host";
  a6.bytes[0] = 0xFF;
  EXPECT_FALSE(sluice_icmp6_reply_allowed(&a6)) << "multicast";
  a6.bytes[0] = 0x20;
  EXPECT_TRUE(sluice_icmp6_reply_allowed(&a6));

  for (int t = 0; t < 256; ++t) {
    const auto type = static_cast<sl_u8>(t);
    const bool v4_error = t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
    EXPECT_EQ(sluice_icmp4_is_error(type) != 0, v4_error) << t;
    EXPECT_EQ(sluice_icmp6_no_error_reply(type) != 0, t < 128 || t == 137) << t;
  }
}

// RFC 6040 section 4.2, figure 4, row by row: arriving inner (rows) and
// outer (columns) ECN, in the order Not-ECT, ECT(0), ECT(1), CE.
TEST(AbiC, EcnDecapFollowsRfc6040Figure4) {
  constexpr uint8_t kN = SLUICE_ECN_NOT_ECT, k0 = SLUICE_ECN_ECT0, k1 = SLUICE_ECN_ECT1,
                    kCe = SLUICE_ECN_CE, kDrop = SLUICE_ECN_DROP;
  const uint8_t order[4] = {kN, k0, k1, kCe};
  const uint8_t want[4][4] = {
      {kN, kN, kN, kDrop},     // Not-ECT inner
      {k0, k0, k1, kCe},       // ECT(0) inner
      {k1, k1, k1, kCe},       // ECT(1) inner
      {kCe, kCe, kCe, kCe},    // CE inner
  };
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 4; ++o)
      EXPECT_EQ(sluice_ecn_decap(order[i], order[o]), want[i][o])
          << "inner " << int(order[i]) << " outer " << int(order[o]);
  // Only the low two bits are read: a whole TOS byte gives the same answer.
  EXPECT_EQ(sluice_ecn_decap(0xB8 | k0, 0x28 | kCe), kCe);
}

}  // namespace
}  // namespace sluice
