// SPDX-License-Identifier: BSD-2-Clause
// Builds IPv4 fragmentation-needed and ICMPv6 packet-too-big replies in
// place, with the rules that say when no reply may be sent.
#include "dataplane/core/icmp_too_big.hpp"

#include <algorithm>
#include <cstring>

#include "dataplane/abi/csum.h"

namespace sluice {
namespace {

constexpr size_t kEthAddrLen = 6;
constexpr size_t kIcmp4Added = SLUICE_IPV4_HLEN + SLUICE_ICMP_HLEN;
constexpr size_t kIcmp6Added = SLUICE_IPV6_HLEN + SLUICE_ICMP_HLEN;
// Most bytes of the original each reply quotes.
constexpr size_t kIcmp4MaxQuote = SLUICE_ICMP4_ERROR_MAX - kIcmp4Added;
constexpr size_t kIcmp6MaxQuote = SLUICE_ICMP6_ERROR_MAX - kIcmp6Added;

bool ipv4_reply_allowed(const uint8_t* l2, const IpPacket& p) {
  const uint8_t* ip = p.l3;
  sl_be32 saddr;
  sl_be32 daddr;
  std::memcpy(&saddr, ip + 12, 4);
  std::memcpy(&daddr, ip + 16, 4);
  if (!sluice_icmp4_reply_allowed(sluice_get_be16(ip + 6), saddr, daddr, l2[0])) return false;
  if (ip[9] == SLUICE_IPPROTO_ICMP) {
    // Without its type byte it might be an error: stay silent.
    return p.hdr_len < p.len && !sluice_icmp4_is_error(ip[p.hdr_len]);
  }
  return true;
}

bool ipv6_reply_allowed(const uint8_t* l2, const IpPacket& p) {
  const uint8_t* ip = p.l3;
  union sluice_ip saddr;
  std::memcpy(saddr.bytes, ip + 8, 16);
  if (!sluice_icmp6_reply_allowed(&saddr)) return false;
  // RFC 4443 2.4(e.4) would allow a packet-too-big about a link-layer
  // multicast, but the reply takes the frame's destination MAC as its
  // source, and a group address is no frame's source: none, as for IPv4.
  if (l2[0] & 1) return false;

  // Walk to the upper-layer header to learn whether this is an ICMPv6
  // error, a bounded number of extension headers (RFC 8200 section 4).
  uint8_t next = ip[6];
  size_t off = SLUICE_IPV6_HLEN;
  for (int i = 0; i <= SLUICE_MAX_IPV6_EXT_HDRS; ++i) {
    switch (next) {
      case SLUICE_IPPROTO_HOPOPTS:
      case SLUICE_IPPROTO_ROUTING:
      case SLUICE_IPPROTO_DSTOPTS:
        if (i == SLUICE_MAX_IPV6_EXT_HDRS || off + 2 > p.len) return false;
        next = ip[off];
        off += (size_t{ip[off + 1]} + 1) * 8;
        break;
      case SLUICE_IPPROTO_FRAGMENT:
        if (i == SLUICE_MAX_IPV6_EXT_HDRS || off + 8 > p.len) return false;
        if ((sluice_get_be16(ip + off + 2) & 0xFFF8) != 0) return false;  // not the first
        next = ip[off];
        off += 8;
        break;
      case SLUICE_IPPROTO_ICMPV6:
        return off < p.len && !sluice_icmp6_no_error_reply(ip[off]);
      default:
        return true;
    }
  }
  return false;  // not reached: every case of the last round returns
}

// Moves the L2 header from offset `from` forward to `to` and swaps its MAC
// addresses.
void move_l2_back_to_sender(uint8_t* buf, size_t from, size_t to, size_t l2_len) {
  std::memmove(buf + to, buf + from, l2_len);
  uint8_t mac[kEthAddrLen];
  std::memcpy(mac, buf + to, kEthAddrLen);
  std::memcpy(buf + to, buf + to + kEthAddrLen, kEthAddrLen);
  std::memcpy(buf + to + kEthAddrLen, mac, kEthAddrLen);
}

IcmpStatus build_v4(uint8_t* buf, FrameSpan& frame, size_t l3_off, const IpPacket& p,
                    uint32_t mtu) {
  if (!ipv4_reply_allowed(buf + frame.off, p)) return IcmpStatus::kSuppressed;
  if (frame.off < kIcmp4Added) return IcmpStatus::kNoHeadroom;

  const size_t quote = std::min(p.len, kIcmp4MaxQuote);
  sl_be32 client;
  sl_be32 vip;
  std::memcpy(&client, p.l3 + 12, 4);
  std::memcpy(&vip, p.l3 + 16, 4);

  const size_t new_off = frame.off - kIcmp4Added;
  move_l2_back_to_sender(buf, frame.off, new_off, l3_off);
  uint8_t* ip = buf + new_off + l3_off;  // == p.l3 - kIcmp4Added: the quote is in place
  uint8_t* icmp = ip + SLUICE_IPV4_HLEN;
  const auto icmp_len = static_cast<uint16_t>(SLUICE_ICMP_HLEN + quote);
  sluice_ipv4_write_hdr(ip, vip, client, icmp_len, SLUICE_ICMP4_REPLY_TOS, 0, 1,
                        SLUICE_ICMP_REPLY_TTL, SLUICE_IPPROTO_ICMP);
  sluice_icmp4_write_frag_needed(icmp, sluice_icmp4_mtu(mtu));
  sluice_put_be16(icmp + 2, sluice_csum(icmp, icmp_len, SLUICE_ICMP_HLEN + kIcmp4MaxQuote));

  frame.off = new_off;
  frame.len = l3_off + kIcmp4Added + quote;
  return IcmpStatus::kBuilt;
}

IcmpStatus build_v6(uint8_t* buf, FrameSpan& frame, size_t l3_off, const IpPacket& p,
                    uint32_t mtu) {
  if (!ipv6_reply_allowed(buf + frame.off, p)) return IcmpStatus::kSuppressed;
  if (frame.off < kIcmp6Added) return IcmpStatus::kNoHeadroom;

  const size_t quote = std::min(p.len, kIcmp6MaxQuote);
  union sluice_ip client;
  union sluice_ip vip;
  std::memcpy(client.bytes, p.l3 + 8, 16);
  std::memcpy(vip.bytes, p.l3 + 24, 16);

  const size_t new_off = frame.off - kIcmp6Added;
  move_l2_back_to_sender(buf, frame.off, new_off, l3_off);
  uint8_t* ip = buf + new_off + l3_off;  // == p.l3 - kIcmp6Added: the quote is in place
  uint8_t* icmp = ip + SLUICE_IPV6_HLEN;
  const auto icmp_len = static_cast<uint16_t>(SLUICE_ICMP_HLEN + quote);
  sluice_ipv6_write_hdr(ip, &vip, &client, icmp_len, 0, 0, SLUICE_ICMP_REPLY_TTL,
                        SLUICE_IPPROTO_ICMPV6);
  sluice_icmp6_write_packet_too_big(icmp, sluice_icmp6_mtu(mtu));
  sl_u64 sum = sluice_csum_ipv6_pseudo(0, vip.bytes, client.bytes, icmp_len, SLUICE_IPPROTO_ICMPV6);
  sum = sluice_csum_add_bytes(sum, icmp, icmp_len, SLUICE_ICMP_HLEN + kIcmp6MaxQuote);
  sluice_put_be16(icmp + 2, sluice_csum_finish(sum));

  frame.off = new_off;
  frame.len = l3_off + kIcmp6Added + quote;
  return IcmpStatus::kBuilt;
}

}  // namespace

const char* to_string(IcmpStatus status) {
  switch (status) {
    case IcmpStatus::kBuilt:
      return "built";
    case IcmpStatus::kSuppressed:
      return "suppressed";
    case IcmpStatus::kNoHeadroom:
      return "no_headroom";
    case IcmpStatus::kBadInput:
      return "bad_input";
  }
  return "?";
}

IcmpStatus build_icmp_too_big(uint8_t* buf, size_t buf_len, FrameSpan& frame, size_t l3_off,
                              uint32_t mtu) {
  IpPacket p;
  if (!locate_ip(buf, buf_len, frame, l3_off, p)) return IcmpStatus::kBadInput;
  return p.family == SLUICE_FAMILY_IPV4 ? build_v4(buf, frame, l3_off, p, mtu)
                                        : build_v6(buf, frame, l3_off, p, mtu);
}

}  // namespace sluice
