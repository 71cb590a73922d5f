// SPDX-License-Identifier: BSD-2-Clause
// The packet parser: header walks with a bounds check before every read.
#include "dataplane/core/packet_parser.hpp"

#include <cstring>

namespace sluice {
namespace {

// ICMP error types that quote the offending packet (RFC 792). Source quench
// (4) is deliberately absent: it is obsolete and hosts drop it (RFC 6633).
constexpr uint8_t kIcmpDestUnreachable = 3;
constexpr uint8_t kIcmpFragNeededCode = 4;
constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr uint8_t kIcmpParameterProblem = 12;
// ICMPv6 error types 1-4 (RFC 4443 section 3); 2 is packet too big.
constexpr uint8_t kIcmp6PacketTooBig = 2;
constexpr uint8_t kIcmp6LastError = 4;

// ICMP header bytes before the quoted packet, and the L4 bytes a quote must
// hold beyond its IP header (RFC 792; ports are in the first 4).
constexpr size_t kIcmpHdrLen = 8;
constexpr size_t kQuotedL4Len = 8;
constexpr size_t kTcpMinLen = 20;
constexpr size_t kUdpLen = 8;
constexpr size_t kIpv6ExtMinLen = 8;

// IPv4 fragment field: MF flag and the 13-bit offset (RFC 791).
constexpr uint16_t kIpv4MoreFragments = 0x2000;
constexpr uint16_t kIpv4FragOffsetMask = 0x1FFF;
// IPv6 fragment header field: 13-bit offset in the top bits, M in bit 0.
constexpr uint16_t kIpv6FragOffsetMask = 0xFFF8;
constexpr uint16_t kIpv6MoreFragments = 0x0001;

inline uint16_t load_be16(const uint8_t* p) noexcept {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

inline uint32_t load_be32(const uint8_t* p) noexcept {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

inline bool is_vlan(uint16_t ethertype) noexcept {
  return ethertype == SLUICE_ETH_P_8021Q || ethertype == SLUICE_ETH_P_8021AD;
}

inline bool is_flow_proto(uint8_t proto) noexcept {
  return proto == SLUICE_IPPROTO_TCP || proto == SLUICE_IPPROTO_UDP;
}

inline bool is_ipv6_ext(uint8_t proto) noexcept {
  return proto == SLUICE_IPPROTO_HOPOPTS || proto == SLUICE_IPPROTO_ROUTING ||
         proto == SLUICE_IPPROTO_DSTOPTS || proto == SLUICE_IPPROTO_FRAGMENT;
}

// The ICMP protocol number that belongs to an IP family.
inline uint8_t icmp_proto_of(uint8_t family) noexcept {
  return family == SLUICE_FAMILY_IPV4 ? SLUICE_IPPROTO_ICMP : SLUICE_IPPROTO_ICMPV6;
}

// Where an IP packet's upper layer lies once its headers have been checked.
// Invariant: l4 <= end <= frame length.
struct IpSpan {
  size_t l4;            // first byte after the IP header and extension headers
  size_t end;           // one past the IP packet's last byte (padding excluded)
  uint8_t proto;        // protocol (next header) found at l4
  bool fragment;        // part of a fragmented datagram
  bool later_fragment;  // fragment offset != 0: no L4 header at l4
};

// Skips IPv6 extension headers from s.l4 (RFC 8200 section 4), at most
// SLUICE_MAX_IPV6_EXT_HDRS of them, hop-by-hop only first (RFC 8200
// section 4.1). Stops at the first other header. A fragment header that
// really fragments marks the span a fragment: past the first fragment it
// ends the walk (the data after it is opaque, and the protocol it names is
// the one reported); in the first fragment the walk goes on through the
// headers of the fragmentable part, which RFC 8200 section 4.5 puts there
// whole, to the upper layer and its ports, when `past_fragment` (an outer
// packet; a packet quoted by an ICMP error stops after the fragment header,
// as xdp/lb_parse.h does to stay within the BPF verifier's budget). A second real fragment header
// ends the walk with protocol 44 (nothing sluice balances). An atomic
// fragment (offset 0, M clear, RFC 6946) is a whole datagram and is skipped
// like any extension header. xdp/lb_parse.h lb_skip_ipv6_ext walks alike.
// Returns kOk, kTruncated, kIpv6ExtChainTooLong or kIpv6HopByHopNotFirst.
[[gnu::noinline, gnu::cold]] ParseStatus skip_ipv6_ext_headers(const uint8_t* frame, IpSpan& s,
                                                               bool past_fragment) noexcept {
  for (unsigned n = 0;; ++n) {
    const uint8_t nh = s.proto;
    if (!is_ipv6_ext(nh)) return ParseStatus::kOk;
    if (n == SLUICE_MAX_IPV6_EXT_HDRS) return ParseStatus::kIpv6ExtChainTooLong;
    if (nh == SLUICE_IPPROTO_HOPOPTS && n != 0) return ParseStatus::kIpv6HopByHopNotFirst;
    if (s.end - s.l4 < kIpv6ExtMinLen) return ParseStatus::kTruncated;
    const uint8_t* h = frame + s.l4;
    size_t hlen = kIpv6ExtMinLen;
    if (nh == SLUICE_IPPROTO_FRAGMENT) {
      const uint16_t field = load_be16(h + 2);
      if ((field & (kIpv6FragOffsetMask | kIpv6MoreFragments)) != 0) {
        if (s.fragment) return ParseStatus::kOk;
        s.fragment = true;
        s.later_fragment = (field & kIpv6FragOffsetMask) != 0;
        if (s.later_fragment || !past_fragment) {
          s.proto = h[0];
          s.l4 += hlen;
          return ParseStatus::kOk;
        }
      }
    } else {
      // Hdr Ext Len counts 8-byte units after the first 8 bytes.
      hlen = (size_t{h[1]} + 1) * 8;
      if (hlen > s.end - s.l4) return ParseStatus::kTruncated;
    }
    s.proto = h[0];
    s.l4 += hlen;
  }
}

// The offset of the fragment header that really fragments (offset or M set)
// in the IPv6 packet at l3 whose extension headers end at l4, or 0 when there
// is none. The chain was checked by skip_ipv6_ext_headers(); this walk
// checks its bounds again.
size_t find_ipv6_fragment_header(const uint8_t* frame, size_t l3, size_t l4) noexcept {
  size_t off = l3 + SLUICE_IPV6_HLEN;
  uint8_t nh = frame[l3 + 6];
  for (unsigned n = 0; n < SLUICE_MAX_IPV6_EXT_HDRS && is_ipv6_ext(nh); ++n) {
    if (off + kIpv6ExtMinLen > l4) return 0;
    const uint8_t* h = frame + off;
    size_t hlen = kIpv6ExtMinLen;
    if (nh == SLUICE_IPPROTO_FRAGMENT) {
      if ((load_be16(h + 2) & (kIpv6FragOffsetMask | kIpv6MoreFragments)) != 0) return off;
    } else {
      hlen = (size_t{h[1]} + 1) * 8;
    }
    nh = h[0];
    off += hlen;
  }
  return 0;
}

// Parses the packet quoted by an ICMP error, from `off` to `end` (the outer
// IP packet's end), and on success replaces the key with the quoted tuple
// reversed. The quote need not be whole (RFC 792 quotes the IP header and 8
// bytes), so its own length fields are not checked against `end`.
ParseStatus parse_icmp_quote(const uint8_t* frame, size_t off, size_t end,
                             ParseResult& r) noexcept {
  const uint8_t* h = frame + off;
  const size_t room = end - off;
  const uint8_t* qsrc;
  const uint8_t* qdst;
  size_t addr_len;
  size_t l4;
  uint8_t proto;
  if (r.key.family == SLUICE_FAMILY_IPV4) {
    if (room < SLUICE_IPV4_HLEN || (h[0] >> 4) != 4) return ParseStatus::kBadIcmpEmbedded;
    const size_t ihl = size_t{h[0] & 0x0Fu} * 4;
    if (ihl < SLUICE_IPV4_HLEN || room < ihl + kQuotedL4Len) return ParseStatus::kBadIcmpEmbedded;
    if ((load_be16(h + 6) & kIpv4FragOffsetMask) != 0) return ParseStatus::kBadIcmpEmbedded;
    proto = h[9];
    qsrc = h + 12;
    qdst = h + 16;
    addr_len = 4;
    l4 = off + ihl;
  } else {
    if (room < SLUICE_IPV6_HLEN || (h[0] >> 4) != 6) return ParseStatus::kBadIcmpEmbedded;
    IpSpan s{off + SLUICE_IPV6_HLEN, end, h[6], false, false};
    if (skip_ipv6_ext_headers(frame, s, false) != ParseStatus::kOk || s.later_fragment ||
        end - s.l4 < kQuotedL4Len) {
      return ParseStatus::kBadIcmpEmbedded;
    }
    proto = s.proto;
    qsrc = h + 8;
    qdst = h + 24;
    addr_len = 16;
    l4 = s.l4;
  }
  // An error about something other than a TCP/UDP flow (a ping, say) belongs
  // to no backend: the key keeps the outer addresses.
  if (!is_flow_proto(proto)) return ParseStatus::kIcmpOther;

  // The quoted packet went VIP -> client; the flow key is client -> VIP.
  std::memcpy(r.key.src.bytes, qdst, addr_len);
  std::memcpy(r.key.dst.bytes, qsrc, addr_len);
  std::memcpy(&r.key.sport, frame + l4 + 2, sizeof r.key.sport);
  std::memcpy(&r.key.dport, frame + l4, sizeof r.key.dport);
  r.key.proto = proto;
  return ParseStatus::kOk;
}

// ICMP or ICMPv6 from l4 to end (the family is r.key.family).
ParseStatus parse_icmp(const uint8_t* frame, size_t l4, size_t end, ParseResult& r) noexcept {
  const size_t room = end - l4;
  if (room < kIcmpHdrLen) return ParseStatus::kTruncated;
  const uint8_t* h = frame + l4;
  const uint8_t type = h[0];
  const uint8_t code = h[1];
  r.icmp_type = type;
  r.icmp_code = code;
  r.payload_offset = static_cast<uint16_t>(l4 + kIcmpHdrLen);
  r.payload_len = static_cast<uint16_t>(room - kIcmpHdrLen);

  bool error;
  if (r.key.family == SLUICE_FAMILY_IPV4) {
    error =
        type == kIcmpDestUnreachable || type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
    if (type == kIcmpDestUnreachable && code == kIcmpFragNeededCode) {
      r.icmp_mtu = load_be16(h + 6);
    }
  } else {
    error = type >= 1 && type <= kIcmp6LastError;
    if (type == kIcmp6PacketTooBig) r.icmp_mtu = load_be32(h + 4);
  }
  if (!error) return ParseStatus::kIcmpOther;
  r.is_icmp_error = true;
  return parse_icmp_quote(frame, l4 + kIcmpHdrLen, end, r);
}

// The straight line for TCP/UDP over IPv4/IPv6 is forced inline into
// parse_packet(); the rare branches (fragments, ICMP, other protocols, IPv6
// extension headers) are out-of-line calls so they do not crowd it.

// A fragment: ports stay 0 so every fragment of a datagram hashes alike, and
// the L4 header, if any, is left unread (a UDP length covers the datagram,
// not this fragment). A later IPv6 fragment whose fragment header names a
// routing or destination-options header is kOk too: those headers and the
// upper layer are in the first fragment only (RFC 8200 section 4.5), and
// the fast path takes the protocol from the first fragment's record.
[[gnu::noinline, gnu::cold]] ParseStatus parse_fragment(uint8_t proto, bool later,
                                                        ParseResult& r) noexcept {
  r.is_fragment = true;
  if (is_flow_proto(proto)) return ParseStatus::kOk;
  if (later && r.key.family == SLUICE_FAMILY_IPV6 &&
      (proto == SLUICE_IPPROTO_ROUTING || proto == SLUICE_IPPROTO_DSTOPTS))
    return ParseStatus::kOk;
  return proto == icmp_proto_of(r.key.family) ? ParseStatus::kIcmpOther
                                              : ParseStatus::kUnsupportedL4;
}

// Neither TCP nor UDP: ICMP of the packet's family, or unsupported. (The
// span comes as scalars so the hot caller need not build it in memory.)
[[gnu::noinline, gnu::cold]] ParseStatus parse_other_l4(const uint8_t* frame, size_t l4, size_t end,
                                                        uint8_t proto, ParseResult& r) noexcept {
  if (proto == icmp_proto_of(r.key.family)) return parse_icmp(frame, l4, end, r);
  return ParseStatus::kUnsupportedL4;
}

// The upper layer at s.l4, once the IP header has filled in the addresses.
[[gnu::always_inline]] inline ParseStatus parse_l4(const uint8_t* frame, IpSpan s,
                                                   ParseResult& r) noexcept {
  r.l4_offset = static_cast<uint16_t>(s.l4);
  r.l4_proto = s.proto;
  r.key.proto = s.proto;
  if (s.fragment) [[unlikely]]
    return parse_fragment(s.proto, s.later_fragment, r);

  const size_t room = s.end - s.l4;
  const uint8_t* h = frame + s.l4;
  if (s.proto == SLUICE_IPPROTO_TCP) [[likely]] {
    if (room < kTcpMinLen) return ParseStatus::kTruncated;
    const size_t doff = static_cast<size_t>(h[12] >> 4) * 4;
    if (doff < kTcpMinLen || doff > room) return ParseStatus::kBadTcpHeaderLength;
    std::memcpy(&r.key.sport, h, sizeof r.key.sport);
    std::memcpy(&r.key.dport, h + 2, sizeof r.key.dport);
    r.tcp_flags = h[13];
    r.payload_offset = static_cast<uint16_t>(s.l4 + doff);
    r.payload_len = static_cast<uint16_t>(room - doff);
    return ParseStatus::kOk;
  }
  if (s.proto == SLUICE_IPPROTO_UDP) {
    if (room < kUdpLen) return ParseStatus::kTruncated;
    const uint16_t ulen = load_be16(h + 4);
    // Shorter than the IP payload is allowed (the rest is ignored, as
    // Linux does); longer is not.
    if (ulen < kUdpLen || ulen > room) return ParseStatus::kBadUdpLength;
    std::memcpy(&r.key.sport, h, sizeof r.key.sport);
    std::memcpy(&r.key.dport, h + 2, sizeof r.key.dport);
    r.payload_offset = static_cast<uint16_t>(s.l4 + kUdpLen);
    r.payload_len = static_cast<uint16_t>(ulen - kUdpLen);
    return ParseStatus::kOk;
  }
  return parse_other_l4(frame, s.l4, s.end, s.proto, r);
}

[[gnu::always_inline]] inline ParseStatus parse_ipv4(const uint8_t* frame, size_t l3, size_t end,
                                                     ParseResult& r) noexcept {
  if (end - l3 < SLUICE_IPV4_HLEN) return ParseStatus::kTruncated;
  const uint8_t* h = frame + l3;
  size_t ihl = SLUICE_IPV4_HLEN;
  // 0x45 (version 4, no options) settles both checks at once.
  if (h[0] != 0x45) [[unlikely]] {
    if ((h[0] >> 4) != 4) return ParseStatus::kBadIpv4Version;
    ihl = size_t{h[0] & 0x0Fu} * 4;
    if (ihl < SLUICE_IPV4_HLEN) return ParseStatus::kBadIpv4HeaderLength;
    if (ihl > end - l3) return ParseStatus::kTruncated;
  }
  const uint16_t total = load_be16(h + 2);
  if (total < ihl || total > end - l3) return ParseStatus::kBadIpv4TotalLength;

  r.ip_len = total;
  r.tos = h[1];
  r.ttl = h[8];
  r.key.family = SLUICE_FAMILY_IPV4;
  std::memcpy(&r.key.src.v4, h + 12, 4);
  std::memcpy(&r.key.dst.v4, h + 16, 4);
  const uint16_t frag = load_be16(h + 6);
  const IpSpan s{l3 + ihl, l3 + total, h[9],
                 (frag & (kIpv4MoreFragments | kIpv4FragOffsetMask)) != 0,
                 (frag & kIpv4FragOffsetMask) != 0};
  return parse_l4(frame, s, r);
}

[[gnu::always_inline]] inline ParseStatus parse_ipv6(const uint8_t* frame, size_t l3, size_t end,
                                                     ParseResult& r) noexcept {
  if (end - l3 < SLUICE_IPV6_HLEN) return ParseStatus::kTruncated;
  const uint8_t* h = frame + l3;
  if ((h[0] >> 4) != 6) return ParseStatus::kBadIpv6Version;
  const uint16_t payload = load_be16(h + 4);
  if (payload > end - l3 - SLUICE_IPV6_HLEN) return ParseStatus::kBadIpv6PayloadLength;

  r.ip_len = static_cast<uint16_t>(SLUICE_IPV6_HLEN + payload);
  r.tos = static_cast<uint8_t>((h[0] << 4) | (h[1] >> 4));
  r.ttl = h[7];
  r.key.family = SLUICE_FAMILY_IPV6;
  std::memcpy(r.key.src.bytes, h + 8, 16);
  std::memcpy(r.key.dst.bytes, h + 24, 16);
  IpSpan s{l3 + SLUICE_IPV6_HLEN, l3 + SLUICE_IPV6_HLEN + payload, h[6], false, false};
  if (is_ipv6_ext(s.proto)) [[unlikely]] {
    const ParseStatus st = skip_ipv6_ext_headers(frame, s, true);
    if (st != ParseStatus::kOk) return st;
  }
  return parse_l4(frame, s, r);
}

[[gnu::always_inline]] inline ParseStatus parse_frame(const uint8_t* frame, size_t end,
                                                      ParseResult& r) noexcept {
  if (end < SLUICE_ETH_HLEN) return ParseStatus::kTruncated;
  uint16_t ethertype = load_be16(frame + 12);
  size_t l3 = SLUICE_ETH_HLEN;
  while (is_vlan(ethertype)) {
    if (r.vlan_count == SLUICE_MAX_VLAN_TAGS) return ParseStatus::kTooManyVlanTags;
    if (end - l3 < SLUICE_VLAN_HLEN) return ParseStatus::kTruncated;
    // A tag is TCI (2 bytes) then the next EtherType.
    ethertype = load_be16(frame + l3 + 2);
    l3 += SLUICE_VLAN_HLEN;
    ++r.vlan_count;
  }
  r.l3_offset = static_cast<uint16_t>(l3);
  if (ethertype == SLUICE_ETH_P_IP) return parse_ipv4(frame, l3, end, r);
  if (ethertype == SLUICE_ETH_P_IPV6) return parse_ipv6(frame, l3, end, r);
  return ParseStatus::kNotIp;
}

}  // namespace

ParseResult parse_packet(const uint8_t* frame, size_t len) noexcept {
  ParseResult r;
  // Zero every byte, the key's unused address bytes and padding included, so
  // keys compare and hash as bytes.
  std::memset(&r, 0, sizeof r);
  r.status = parse_frame(frame, len < kMaxParsedFrameLen ? len : kMaxParsedFrameLen, r);
  return r;
}

FragmentFacts fragment_facts(const uint8_t* frame, size_t len, const ParseResult& r) noexcept {
  FragmentFacts f{};
  if (!r.is_fragment || r.status != ParseStatus::kOk) return f;
  if (len > kMaxParsedFrameLen) len = kMaxParsedFrameLen;
  const size_t l3 = r.l3_offset;
  const size_t l4 = r.l4_offset;
  const size_t end = l3 + r.ip_len;
  if (end > len || l4 > end) return f;
  if (r.key.family == SLUICE_FAMILY_IPV4) {
    if (l3 + SLUICE_IPV4_HLEN > l4) return f;
    const uint8_t* h = frame + l3;
    f.id = load_be16(h + 4);
    f.later = (load_be16(h + 6) & kIpv4FragOffsetMask) != 0;
    f.record_proto = h[9];
  } else {
    // The fragment header: next header, reserved, offset and M (2 bytes),
    // identification (4). In a first fragment more extension headers may
    // follow it before l4.
    const size_t fh = find_ipv6_fragment_header(frame, l3, l4);
    if (fh == 0) return f;
    const uint8_t* h = frame + fh;
    f.id = load_be32(h + 4);
    f.later = (load_be16(h + 2) & kIpv6FragOffsetMask) != 0;
    f.record_proto = h[0];
  }
  if (!f.later && end - l4 >= 4) std::memcpy(&f.first_dport, frame + l4 + 2, sizeof f.first_dport);
  f.valid = true;
  return f;
}

sluice_drop_reason parse_drop_reason(ParseStatus s) noexcept {
  switch (s) {
    case ParseStatus::kOk:
    case ParseStatus::kNotIp:
    case ParseStatus::kIcmpOther:
    case ParseStatus::kCount:
      return SLUICE_DROP_NONE;
    case ParseStatus::kUnsupportedL4:
      return SLUICE_DROP_UNSUPPORTED_L4;
    case ParseStatus::kTruncated:
      return SLUICE_DROP_TRUNCATED;
    case ParseStatus::kTooManyVlanTags:
      return SLUICE_DROP_BAD_L2;
    case ParseStatus::kBadIpv4Version:
    case ParseStatus::kBadIpv4HeaderLength:
    case ParseStatus::kBadIpv4TotalLength:
      return SLUICE_DROP_BAD_IPV4;
    case ParseStatus::kBadIpv6Version:
    case ParseStatus::kBadIpv6PayloadLength:
    case ParseStatus::kIpv6ExtChainTooLong:
    case ParseStatus::kIpv6HopByHopNotFirst:
      return SLUICE_DROP_BAD_IPV6;
    case ParseStatus::kBadTcpHeaderLength:
    case ParseStatus::kBadUdpLength:
      return SLUICE_DROP_BAD_L4;
    case ParseStatus::kBadIcmpEmbedded:
      return SLUICE_DROP_BAD_ICMP;
  }
  return SLUICE_DROP_NONE;
}

const char* parse_status_name(ParseStatus s) noexcept {
  switch (s) {
    case ParseStatus::kOk:
      return "ok";
    case ParseStatus::kNotIp:
      return "not_ip";
    case ParseStatus::kIcmpOther:
      return "icmp_other";
    case ParseStatus::kUnsupportedL4:
      return "unsupported_l4";
    case ParseStatus::kTruncated:
      return "truncated";
    case ParseStatus::kTooManyVlanTags:
      return "too_many_vlan_tags";
    case ParseStatus::kBadIpv4Version:
      return "bad_ipv4_version";
    case ParseStatus::kBadIpv4HeaderLength:
      return "bad_ipv4_header_length";
    case ParseStatus::kBadIpv4TotalLength:
      return "bad_ipv4_total_length";
    case ParseStatus::kBadIpv6Version:
      return "bad_ipv6_version";
    case ParseStatus::kBadIpv6PayloadLength:
      return "bad_ipv6_payload_length";
    case ParseStatus::kIpv6ExtChainTooLong:
      return "ipv6_ext_chain_too_long";
    case ParseStatus::kIpv6HopByHopNotFirst:
      return "ipv6_hop_by_hop_not_first";
    case ParseStatus::kBadTcpHeaderLength:
      return "bad_tcp_header_length";
    case ParseStatus::kBadUdpLength:
      return "bad_udp_length";
    case ParseStatus::kBadIcmpEmbedded:
      return "bad_icmp_embedded";
    case ParseStatus::kCount:
      break;
  }
  return "unknown";
}

}  // namespace sluice
