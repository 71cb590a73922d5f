// SPDX-License-Identifier: BSD-2-Clause
// The packet parser: one Ethernet frame in, the flow key and header offsets a
// load-balancing decision needs out, every read bounds-checked.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/abi/flow.h"
#include "dataplane/abi/stats.h"

namespace sluice {

/// What a frame turned out to be. The first four are outcomes the fast path
/// acts on; every status from kTruncated on is a reject (a malformed frame,
/// dropped and counted under parse_drop_reason()).
enum class ParseStatus : uint8_t {
  /// TCP or UDP (possibly a fragment), or an ICMP/ICMPv6 error about a TCP or
  /// UDP flow: the flow key is valid. Also a later IPv6 fragment whose upper
  /// layer only its first fragment shows (see ParseResult::key).
  kOk = 0,
  /// The EtherType is neither IPv4 nor IPv6 (ARP, LLDP, ...): pass it on.
  kNotIp,
  /// ICMP/ICMPv6 that is not about a TCP/UDP flow: informational messages
  /// (echo, neighbour discovery), source quench (obsolete, RFC 6633), and
  /// errors quoting something other than TCP/UDP. The key holds the outer
  /// addresses with proto ICMP/ICMPv6 and ports 0. The fast path passes it.
  kIcmpOther,
  /// IP, but the protocol is none of TCP, UDP or ICMP of the right family
  /// (GRE, SCTP, ESP, ...). The key holds the addresses and the protocol,
  /// ports 0. A VIP is an (address, port, TCP or UDP) triple, so no VIP
  /// matches it: both fast paths pass it to the kernel (DESIGN.md, packet
  /// path step 2) and count it in pass_packets.
  kUnsupportedL4,

  /// A header runs past the end of the frame (or of the IP packet).
  kTruncated,
  /// A third VLAN tag (more than SLUICE_MAX_VLAN_TAGS).
  kTooManyVlanTags,
  /// EtherType IPv4 but the version field is not 4.
  kBadIpv4Version,
  /// IPv4 IHL below 5 (20 bytes).
  kBadIpv4HeaderLength,
  /// IPv4 total length below the header length or beyond the frame.
  kBadIpv4TotalLength,
  /// EtherType IPv6 but the version field is not 6.
  kBadIpv6Version,
  /// IPv6 payload length beyond the frame.
  kBadIpv6PayloadLength,
  /// More than SLUICE_MAX_IPV6_EXT_HDRS extension headers before the upper layer.
  kIpv6ExtChainTooLong,
  /// A hop-by-hop options header anywhere but right after the IPv6 header
  /// (RFC 8200 section 4.1 allows it only there; hosts discard it elsewhere).
  kIpv6HopByHopNotFirst,
  /// TCP data offset below 5 or past the end of the IP packet.
  kBadTcpHeaderLength,
  /// UDP length below 8 or past the end of the IP packet.
  kBadUdpLength,
  /// ICMP/ICMPv6 error whose quoted packet is unusable: shorter than its IP
  /// header plus 8 bytes, wrong IP version, or a non-first fragment (no ports).
  kBadIcmpEmbedded,

  kCount  ///< number of statuses; not a status
};

/// True for the statuses that mean "malformed frame, drop it".
constexpr bool is_reject(ParseStatus s) noexcept { return s >= ParseStatus::kTruncated; }

/// The drop reason a status is counted under: SLUICE_DROP_NONE for kOk,
/// kNotIp and kIcmpOther; SLUICE_DROP_UNSUPPORTED_L4 for kUnsupportedL4 (for
/// a caller that drops it; sluice's fast paths pass it, see kUnsupportedL4);
/// a reason for every reject.
sluice_drop_reason parse_drop_reason(ParseStatus s) noexcept;

/// A short stable name for a status ("ok", "truncated", ...) for logs and tests.
const char* parse_status_name(ParseStatus s) noexcept;

/// TCP flag bits as they sit in ParseResult::tcp_flags (RFC 9293, byte 13).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

/// Everything parse_packet() learnt about one frame. 64 bytes, no heap.
/// Offsets are bytes from the start of the frame; lengths are bytes; all
/// integers outside `key` are host order. On a reject only `status` is
/// meaningful (the other fields hold whatever was parsed before the fault).
struct ParseResult {
  /// The flow as the client sent it (client -> VIP, network order, unused
  /// bytes zero). For an ICMP error: the quoted packet's tuple reversed (the
  /// quoted packet went VIP -> client), so the error meets the flow's
  /// backend. For a fragment: ports 0, and the protocol of its upper layer
  /// where the fragment shows it; a later IPv6 fragment whose fragment
  /// header names a routing (43) or destination-options (60) header has that
  /// protocol, the upper layer being in the first fragment only. For kNotIp:
  /// all zero.
  sluice_flow_key key;
  /// Next-hop MTU, bytes, of an ICMP fragmentation-needed (type 3 code 4) or
  /// ICMPv6 packet-too-big; 0 otherwise.
  uint32_t icmp_mtu;
  /// Start of the IP header (after Ethernet and VLAN tags).
  uint16_t l3_offset;
  /// Start of the L4 header (after IPv4 options / IPv6 extension headers);
  /// the ICMP header for ICMP errors; for fragments the L4 header of a first
  /// fragment (after any extension headers that follow an IPv6 fragment
  /// header), the fragment data of a later one (right after the fragment
  /// header).
  uint16_t l4_offset;
  /// Start of the L4 payload (after the TCP header with options, the UDP or
  /// ICMP header); 0 when there is none (fragments, kUnsupportedL4).
  uint16_t payload_offset;
  /// L4 payload length: UDP length - 8; IP end - payload_offset for TCP and
  /// ICMP. Trailing Ethernet padding is never counted.
  uint16_t payload_len;
  /// IPv4 total length, or 40 + IPv6 payload length.
  uint16_t ip_len;
  ParseStatus status;
  /// Protocol of the header at l4_offset (ICMP for an ICMP error, whose
  /// key.proto is the quoted packet's).
  uint8_t l4_proto;
  /// IPv4 TTL or IPv6 hop limit.
  uint8_t ttl;
  /// IPv4 TOS byte or IPv6 traffic class (DSCP << 2 | ECN).
  uint8_t tos;
  /// TCP flags byte (kTcpSyn, ...); 0 unless TCP.
  uint8_t tcp_flags;
  /// ICMP/ICMPv6 type and code; 0 unless ICMP.
  uint8_t icmp_type;
  uint8_t icmp_code;
  /// VLAN tags skipped, 0..SLUICE_MAX_VLAN_TAGS.
  uint8_t vlan_count;
  /// Part of a fragmented datagram (IPv4 MF or offset != 0; IPv6 fragment
  /// header other than an atomic one, RFC 6946): key ports are 0 and, past
  /// the first fragment, no L4 header was read.
  bool is_fragment;
  /// An ICMP (type 3, 11, 12) or ICMPv6 (type 1-4) error; status kOk when
  /// it quotes a TCP/UDP packet, kIcmpOther when it quotes anything else.
  bool is_icmp_error;
};
static_assert(sizeof(ParseResult) == 64, "a parse result is one cache line");

/// What a fragment's headers say beyond its flow key, for the fast paths
/// per-datagram state (xdp/lb_lookup.h lb_lookup_frag_vip and the DPDK
/// worker's FragTable): its first fragment carries the ports, the rest only
/// the datagram's identification.
struct FragmentFacts {
  /// The datagram's identification, host order: IPv4's 16-bit id (RFC 791)
  /// or the IPv6 fragment header's 32-bit one (RFC 8200 section 4.5).
  /// Fragments of one datagram share it with source, destination and
  /// protocol.
  uint32_t id;
  /// The first fragment's destination port, network order, where the
  /// fragment holds it (TCP and UDP both keep it at bytes 2-3 of their
  /// header); 0 for a later fragment and for a first one too short to hold
  /// it. The flow key's ports stay 0 either way.
  uint16_t first_dport;
  /// The protocol every fragment of the datagram names, which keys its
  /// record: IPv4's protocol field, or the IPv6 fragment header's next
  /// header (RFC 8200 section 4.5: the first header of the fragmentable
  /// part, so 60 where destination options precede TCP). The flow key's
  /// protocol is the upper layer's, which a later fragment may not show.
  uint8_t record_proto;
  /// Fragment offset != 0: a later fragment, no L4 header in it.
  bool later;
  /// False when `r` is not a TCP/UDP fragment (is_fragment, status kOk) or
  /// the frame is not the one `r` was parsed from; then the rest is zero.
  bool valid;
};

/// Reads the FragmentFacts of a fragment that parse_packet(frame, len) gave
/// `r` for (the same bytes). Kept out of parse_packet() and ParseResult so
/// unfragmented packets pay nothing for it; every read is bounds-checked
/// against `len` and the IP packet's end again. No allocation, no exceptions.
FragmentFacts fragment_facts(const uint8_t* frame, size_t len, const ParseResult& r) noexcept;

/// Largest frame parsed, bytes. Longer buffers are parsed as if cut here (no
/// Ethernet frame is this long; it keeps every offset in 16 bits).
inline constexpr size_t kMaxParsedFrameLen = 65535;

/// Parses one Ethernet frame of `len` bytes at `frame`: Ethernet, up to
/// SLUICE_MAX_VLAN_TAGS 802.1Q/802.1ad tags, IPv4 (RFC 791, options skipped)
/// or IPv6 (RFC 8200, up to SLUICE_MAX_IPV6_EXT_HDRS hop-by-hop (first
/// only), routing, destination-options and fragment headers skipped, in a
/// first fragment also those after its fragment header), then TCP, UDP, or ICMP
/// (RFC 792) / ICMPv6 (RFC 4443) errors with their quoted header. Never reads
/// outside [frame, frame + len); checksums are not verified. No allocation,
/// no exceptions; safe to call on any bytes.
ParseResult parse_packet(const uint8_t* frame, size_t len) noexcept;

}  // namespace sluice
