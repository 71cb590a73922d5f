// SPDX-License-Identifier: BSD-2-Clause
// FrameSpan: where a frame sits in a buffer with headroom, and the bounds
// checks that locate the IP packet in it for the header writers (encap, ICMP
// replies).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/abi/consts.h"
#include "dataplane/abi/encap.h"

namespace sluice {

/// Where a frame sits in its buffer: bytes [off, off + len), in bytes. The
/// bytes before `off` are headroom a header may grow into, as with XDP's
/// bpf_xdp_adjust_head() and DPDK's rte_pktmbuf_prepend().
struct FrameSpan {
  size_t off = 0;
  size_t len = 0;
};

/// Smallest and largest L2 header, bytes: Ethernet, and Ethernet with
/// SLUICE_MAX_VLAN_TAGS tags.
inline constexpr size_t kMinL2Len = SLUICE_ETH_HLEN;
inline constexpr size_t kMaxL2Len = SLUICE_ETH_HLEN + SLUICE_MAX_VLAN_TAGS * SLUICE_VLAN_HLEN;

/// The IP packet of a frame, as locate_ip() found it.
struct IpPacket {
  uint8_t* l3 = nullptr;  ///< first byte of the IP header
  uint8_t family = 0;     ///< SLUICE_FAMILY_IPV4 or _IPV6 (from the version nibble)
  size_t hdr_len = 0;     ///< IPv4 IHL * 4 (options included) or 40, bytes
  size_t len = 0;         ///< total length from the header, bytes (<= bytes in the frame)
};

/// Finds the IP packet l3_off bytes into the frame and checks that its
/// fixed header and its length field fit the frame and the frame fits
/// buf_len. Returns false (out untouched) for a span outside the buffer,
/// an l3_off no L2 header has (14, 18 or 22 bytes: Ethernet and 0-2 VLAN
/// tags), a version other than 4 or 6, an
/// IPv4 IHL below 5 or total length below the header, or an IPv6 payload
/// length of 0 (no payload, or a jumbogram (RFC 2675): nothing sluice
/// forwards or answers).
[[nodiscard]] inline bool locate_ip(uint8_t* buf, size_t buf_len, const FrameSpan& frame,
                                    size_t l3_off, IpPacket& out) {
  if (buf == nullptr || frame.off > buf_len || frame.len > buf_len - frame.off) return false;
  if (l3_off < kMinL2Len || l3_off > kMaxL2Len || l3_off >= frame.len) return false;
  if ((l3_off - kMinL2Len) % SLUICE_VLAN_HLEN != 0) return false;
  uint8_t* l3 = buf + frame.off + l3_off;
  const size_t avail = frame.len - l3_off;
  IpPacket p;
  p.l3 = l3;
  switch (l3[0] >> 4) {
    case 4:
      if (avail < SLUICE_IPV4_HLEN) return false;
      p.family = SLUICE_FAMILY_IPV4;
      p.hdr_len = static_cast<size_t>(l3[0] & 0x0F) * 4;
      p.len = sluice_get_be16(l3 + 2);
      if (p.hdr_len < SLUICE_IPV4_HLEN || p.len < p.hdr_len) return false;
      break;
    case 6:
      if (avail < SLUICE_IPV6_HLEN) return false;
      p.family = SLUICE_FAMILY_IPV6;
      p.hdr_len = SLUICE_IPV6_HLEN;
      p.len = SLUICE_IPV6_HLEN + size_t{sluice_get_be16(l3 + 4)};
      if (p.len == SLUICE_IPV6_HLEN) return false;
      break;
    default:
      return false;
  }
  if (p.len > avail) return false;
  out = p;
  return true;
}

}  // namespace sluice
