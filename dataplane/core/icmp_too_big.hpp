// SPDX-License-Identifier: BSD-2-Clause
// The ICMP reply to a packet too big to encapsulate: IPv4 fragmentation
// needed or ICMPv6 packet too big, built in place over the offending frame.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/core/frame_span.hpp"

namespace sluice {

/// Outcome of build_icmp_too_big(). On anything but kBuilt the frame is
/// untouched; the caller drops it under sluice_too_big_reason() (abi/encap.h).
enum class IcmpStatus : uint8_t {
  kBuilt,       ///< the span names the reply, ready to go back out the port it came in on
  kSuppressed,  ///< the rules forbid a reply to this packet (see build_icmp_too_big)
  kNoHeadroom,  ///< fewer headroom bytes than the headers the reply adds (28 or 48)
  kBadInput,    ///< span or L3 offset outside the buffer, or not a whole IPv4/IPv6 packet
};

/// A name for logs and test messages ("built", "suppressed", ...).
const char* to_string(IcmpStatus status);

/// Turns the frame at `frame` in buf (buf_len bytes), an IPv4 or IPv6
/// packet l3_off bytes in (the parser's L3 offset: 14, plus 4 per VLAN
/// tag), into the ICMP error that tells its sender to use packets of at
/// most `mtu` bytes (host order; encap_inner_mtu() of the backend's family):
///
///   before  [headroom][L2][original IP packet .......................]
///   after   [headroom - H][L2'][IP][ICMP 8][original, truncated]
///
/// The original's first bytes stay where they are and become the quote; the
/// L2 header moves H bytes forward (H = 28 for IPv4, 48 for IPv6) with its
/// source and destination MAC swapped so the reply leaves the port the
/// packet came in on, VLAN tags and EtherType kept; the frame is cut after
/// the quote. In XDP that is bpf_xdp_adjust_head(-H), a copy of at most 22
/// L2 bytes, bpf_xdp_adjust_tail(); in DPDK rte_pktmbuf_prepend/trim. A
/// packet that encap_frame() found too big is at least as long as the
/// largest quote (548 / 1232 bytes) once config.mtu is at least 600 (IPv4
/// client) / 1280 (IPv6 client), so the quote has a constant length and the
/// XDP port can checksum it straight from the packet (see csum.h).
///
/// IPv4 (RFC 792, RFC 1191): type 3 code 4, the next-hop MTU field set to
/// mtu clamped to 68..65535 (sluice_icmp4_mtu); the quote is as much of the
/// original datagram (its header with any options included) as keeps the
/// reply within 576 bytes (RFC 1812 4.3.2.3); IP source = the original
/// destination (the VIP), destination = the original source, TTL 64, TOS
/// 0xC0, DF set and id 0 (atomic, RFC 6864), no options.
/// IPv6 (RFC 4443 3.2): type 2 code 0, the MTU field set to mtu raised to at
/// least 1280 (sluice_icmp6_mtu: a smaller value is discarded by the
/// client, RFC 8201 section 4); the quote keeps the reply within 1280
/// bytes; addresses swapped, hop limit 64, traffic class and flow label 0;
/// checksum over the pseudo-header (RFC 4443 2.3).
///
/// kSuppressed, where no reply may or should be sent:
/// - an ICMP error, or an ICMPv6 error or redirect (RFC 1122 3.2.2,
///   RFC 4443 2.4(e)); also an ICMPv6 packet whose extension headers run
///   past SLUICE_MAX_IPV6_EXT_HDRS or the frame, since it could be one;
/// - a non-initial fragment (RFC 1812 4.3.2.7; applied to IPv6 too: its
///   upper-layer header, hence whether it is an ICMPv6 error, is unknown);
/// - a source that names no single host: IPv4 0/8, 127/8, 224/4 and above
///   (multicast, reserved, broadcast); IPv6 :: and ff00::/8 (RFC 1122
///   3.2.2, RFC 4443 2.4(e.6)); an IPv4 multicast or broadcast destination;
///   a packet (IPv4 or IPv6) sent to a link-layer multicast or broadcast
///   address (the reply's source MAC would be that group address);
/// - IPv4 without DF. The sender did not ask for path MTU discovery, and a
///   frag-needed for a datagram it allowed to be fragmented is not what RFC
///   1191 describes; fragmenting is not the fast path's job, so such a packet
///   cannot be forwarded either. It is dropped and counted (TOO_BIG_DF_CLEAR), the
///   same as a router that cannot fragment; the sender's transport
///   retransmits or its PLPMTUD (RFC 4821) finds the size.
///
/// Allocation-free, no throw.
[[nodiscard]] IcmpStatus build_icmp_too_big(uint8_t* buf, size_t buf_len, FrameSpan& frame,
                                            size_t l3_off, uint32_t mtu);

}  // namespace sluice
