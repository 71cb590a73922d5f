// SPDX-License-Identifier: BSD-2-Clause
// Test frames for the encapsulation and ICMP tests: a builder of Ethernet
// (+VLAN) + IPv4/IPv6 frames behind chosen headroom, byte readers, and a
// reference Internet checksum written independently of dataplane/abi/csum.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/abi/consts.h"
#include "dataplane/core/frame_span.hpp"

namespace sluice::test {

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

/// RFC 1071 the plain way: 32-bit sum of big-endian words, carries folded
/// until none is left, complemented.
inline uint16_t ref_checksum(const uint8_t* p, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += be16(p + i);
  if (len % 2 != 0) sum += uint32_t{p[len - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

/// ICMPv6 / UDP-over-IPv6 checksum with the pseudo-header, built as bytes.
inline uint16_t ref_checksum6(const uint8_t* src, const uint8_t* dst, uint8_t next_hdr,
                              const uint8_t* p, size_t len) {
  std::vector<uint8_t> v(40 + len);
  std::memcpy(v.data(), src, 16);
  std::memcpy(v.data() + 16, dst, 16);
  v[32] = static_cast<uint8_t>(len >> 24);
  v[33] = static_cast<uint8_t>(len >> 16);
  v[34] = static_cast<uint8_t>(len >> 8);
  v[35] = static_cast<uint8_t>(len);
  v[39] = next_hdr;
  std::memcpy(v.data() + 40, p, len);
  return ref_checksum(v.data(), v.size());
}

inline constexpr uint8_t kDstMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};  // the LB
inline constexpr uint8_t kSrcMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};  // the router
inline constexpr uint8_t kClient4[4] = {198, 51, 100, 7};
inline constexpr uint8_t kVip4[4] = {192, 0, 2, 10};
inline constexpr uint8_t kClient6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                         0,    0,    0,    0,    0, 0, 0, 0x07};
inline constexpr uint8_t kVip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x10,
                                      0,    0,    0,    0,    0, 0, 0, 0x0a};

/// One IPv6 extension header to put before the upper-layer header.
struct ExtHdr {
  uint8_t type = SLUICE_IPPROTO_DSTOPTS;  // HOPOPTS, ROUTING, DSTOPTS or FRAGMENT
  uint16_t frag_off = 0;                  // FRAGMENT only: offset field (8-byte units << 3)
};

/// What to build. Sizes in bytes.
struct FrameSpec {
  uint8_t family = SLUICE_FAMILY_IPV4;
  size_t vlans = 0;         // 802.1Q tags (0-2)
  size_t payload = 100;     // bytes after the IP header(s)
  uint8_t tos = 0;          // IPv4 TOS / IPv6 traffic class
  bool df = true;           // IPv4 only
  uint16_t frag = 0;        // IPv4 only: MF + offset bits of the fragment field
  uint16_t id = 0x1234;     // IPv4 only
  uint32_t flow_label = 0;  // IPv6 only
  size_t options = 0;       // IPv4 option bytes (multiple of 4, at most 40)
  std::vector<ExtHdr> ext;  // IPv6 only
  uint8_t proto = SLUICE_IPPROTO_TCP;
  uint8_t first_payload_byte = 0x55;  // e.g. an ICMP type
  const uint8_t* src = nullptr;       // default kClient4 / kClient6
  const uint8_t* dst = nullptr;       // default kVip4 / kVip6
  const uint8_t* dst_mac = kDstMac;
  size_t padding = 0;  // bytes after the IP packet (Ethernet padding)
};

struct TestFrame {
  std::vector<uint8_t> buf;
  FrameSpan span;
  size_t l3_off = 0;
  size_t ip_len = 0;

  [[nodiscard]] uint8_t* frame() { return buf.data() + span.off; }
  [[nodiscard]] uint8_t* l3() { return frame() + l3_off; }
};

/// Builds the frame with `headroom` bytes before it and `tailroom` after.
/// Headroom and tailroom are filled with 0xEE, payload with a pattern.
inline TestFrame make_frame(const FrameSpec& s, size_t headroom, size_t tailroom = 0) {
  const bool v4 = s.family == SLUICE_FAMILY_IPV4;
  const size_t l3_off = SLUICE_ETH_HLEN + s.vlans * SLUICE_VLAN_HLEN;
  const size_t ext_len = s.ext.size() * 8;
  const size_t ip_hdr = v4 ? SLUICE_IPV4_HLEN + s.options : SLUICE_IPV6_HLEN + ext_len;
  const size_t ip_len = ip_hdr + s.payload;
  TestFrame t;
  t.l3_off = l3_off;
  t.ip_len = ip_len;
  t.span = {headroom, l3_off + ip_len + s.padding};
  t.buf.assign(headroom + t.span.len + tailroom, 0xEE);
  uint8_t* f = t.frame();
  std::memcpy(f, s.dst_mac, 6);
  std::memcpy(f + 6, kSrcMac, 6);
  for (size_t i = 0; i < s.vlans; ++i) {
    put16(f + 12 + 4 * i,
          static_cast<uint16_t>(i + 1 < s.vlans ? SLUICE_ETH_P_8021AD : SLUICE_ETH_P_8021Q));
    put16(f + 14 + 4 * i, static_cast<uint16_t>(100 + i));
  }
  put16(f + l3_off - 2, static_cast<uint16_t>(v4 ? SLUICE_ETH_P_IP : SLUICE_ETH_P_IPV6));

  uint8_t* ip = f + l3_off;
  uint8_t* payload = ip + ip_hdr;
  for (size_t i = 0; i < s.payload; ++i) payload[i] = static_cast<uint8_t>(i * 7 + 3);
  if (s.payload > 0) payload[0] = s.first_payload_byte;
  std::memset(f + l3_off + ip_len, 0, s.padding);

  if (v4) {
    ip[0] = static_cast<uint8_t>(0x40 | (ip_hdr / 4));
    ip[1] = s.tos;
    put16(ip + 2, static_cast<uint16_t>(ip_len));
    put16(ip + 4, s.id);
    put16(ip + 6, static_cast<uint16_t>((s.df ? 0x4000 : 0) | s.frag));
    ip[8] = 55;
    ip[9] = s.proto;
    put16(ip + 10, 0);
    std::memcpy(ip + 12, s.src ? s.src : kClient4, 4);
    std::memcpy(ip + 16, s.dst ? s.dst : kVip4, 4);
    std::memset(ip + 20, 1, s.options);  // NOP options
    put16(ip + 10, ref_checksum(ip, ip_hdr));
  } else {
    const uint32_t w0 = (6u << 28) | (uint32_t{s.tos} << 20) | (s.flow_label & 0xFFFFF);
    put16(ip, static_cast<uint16_t>(w0 >> 16));
    put16(ip + 2, static_cast<uint16_t>(w0));
    put16(ip + 4, static_cast<uint16_t>(ip_len - SLUICE_IPV6_HLEN));
    ip[6] = s.ext.empty() ? s.proto : s.ext[0].type;
    ip[7] = 55;
    std::memcpy(ip + 8, s.src ? s.src : kClient6, 16);
    std::memcpy(ip + 24, s.dst ? s.dst : kVip6, 16);
    for (size_t i = 0; i < s.ext.size(); ++i) {
      uint8_t* e = ip + SLUICE_IPV6_HLEN + 8 * i;
      std::memset(e, 0, 8);
      e[0] = i + 1 < s.ext.size() ? s.ext[i + 1].type : s.proto;
      if (s.ext[i].type == SLUICE_IPPROTO_FRAGMENT) {
        put16(e + 2, s.ext[i].frag_off);
        e[7] = 0x42;  // identification
      } else {
        e[1] = 0;  // 8 bytes
        e[2] = 1;  // PadN, 4 bytes of padding
        e[3] = 4;
      }
    }
  }
  return t;
}

}  // namespace sluice::test
