/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Headers that direct server return writes: the outer IPv4/IPv6 header of
 * the tunnel toward a backend, its flow-entropy source address, and the
 * ICMP too-big reply sent when a packet no longer fits; one definition for
 * the BPF program and the C++ core. */
#pragma once

#include "consts.h"
#include "csum.h"
#include "flow.h"
#include "stats.h"
#include "types.h"

/*
 * All writers take a byte pointer and store byte by byte (no alignment
 * assumption, same result on every architecture); the caller has checked
 * that the bytes are there (in BPF: against data_end). They take many
 * arguments, which is fine for always_inline functions but would exceed
 * BPF's 5-argument limit for a real BPF-to-BPF call.
 */

/* Outer TTL / hop limit when the configuration sets none. */
#define SLUICE_ENCAP_DEFAULT_TTL 64
/* Most bits of the outer source the flow hash may replace. */
#define SLUICE_ENCAP_MAX_ENTROPY_BITS 16

/* ICMP (RFC 792) and ICMPv6 (RFC 4443) numbers for "too big". */
#define SLUICE_ICMP_DEST_UNREACH 3
#define SLUICE_ICMP_FRAG_NEEDED 4       /* code of SLUICE_ICMP_DEST_UNREACH */
#define SLUICE_ICMPV6_PACKET_TOO_BIG 2
#define SLUICE_ICMPV6_REDIRECT 137
/* Bytes of the ICMP/ICMPv6 header before the quoted datagram. */
#define SLUICE_ICMP_HLEN 8
/* Largest ICMP error datagram, IP header included, bytes: RFC 1812
 * 4.3.2.3 (IPv4) and RFC 4443 2.4(c), the IPv6 minimum MTU. */
#define SLUICE_ICMP4_ERROR_MAX 576
#define SLUICE_ICMP6_ERROR_MAX 1280
/* Smallest MTU a host accepts in a too-big message, bytes: RFC 791 (68)
 * and RFC 8200 section 5 (1280). */
#define SLUICE_IPV4_MIN_MTU 68
#define SLUICE_IPV6_MIN_MTU 1280
/* TTL / hop limit of the ICMP replies. */
#define SLUICE_ICMP_REPLY_TTL 64
/* IPv4 TOS of the ICMP replies: precedence 6, internetwork control (RFC
 * 1812 section 4.3.2.5), ECN not-ECT. */
#define SLUICE_ICMP4_REPLY_TOS 0xC0

/* IPv4 flags/fragment field (16 bits, host order): Don't Fragment, and the
 * fragment offset in 8-byte units. */
#define SLUICE_IPV4_DF 0x4000
#define SLUICE_IPV4_OFFSET_MASK 0x1FFF

/* ECN codepoints, the low 2 bits of the IPv4 TOS / IPv6 traffic class
 * (RFC 3168 section 5). */
#define SLUICE_ECN_MASK 0x03
#define SLUICE_ECN_NOT_ECT 0x00
#define SLUICE_ECN_ECT1 0x01
#define SLUICE_ECN_ECT0 0x02
#define SLUICE_ECN_CE 0x03
/* sluice_ecn_decap's answer for a packet the decapsulator must drop. */
#define SLUICE_ECN_DROP 0xFF

/* The inner header's ECN field after decapsulation, from the arriving inner
 * and outer ECN fields (each 0-3): RFC 6040 section 4.2, figure 4, the
 * counterpart of the encapsulator's "normal mode" copy. A CE mark a router
 * put on the outer header reaches the inner one, so the backend's transport
 * sees the congestion; an ECT(1) outer over an ECT(0) inner becomes ECT(1).
 * CE on the outer header of a not-ECT inner packet cannot be passed on (the
 * endpoints do not speak ECN): SLUICE_ECN_DROP, the packet is dropped, as
 * the RFC requires. Every other combination keeps the inner field. */
SLUICE_INLINE sl_u8 sluice_ecn_decap(sl_u8 inner, sl_u8 outer)
{
	inner &= SLUICE_ECN_MASK;
	outer &= SLUICE_ECN_MASK;
	if (inner == SLUICE_ECN_NOT_ECT)
		return outer == SLUICE_ECN_CE ? SLUICE_ECN_DROP : inner;
	if (outer == SLUICE_ECN_CE)
		return SLUICE_ECN_CE;
	if (outer == SLUICE_ECN_ECT1 && inner == SLUICE_ECN_ECT0)
		return SLUICE_ECN_ECT1;
	return inner;
}

/* Big-endian stores and loads through byte pointers: no alignment needed,
 * the same bytes on every architecture. */
SLUICE_INLINE void sluice_put_be16(sl_u8 *p, sl_u16 v)
{
	p[0] = (sl_u8)(v >> 8);
	p[1] = (sl_u8)v;
}

SLUICE_INLINE void sluice_put_be32(sl_u8 *p, sl_u32 v)
{
	p[0] = (sl_u8)(v >> 24);
	p[1] = (sl_u8)(v >> 16);
	p[2] = (sl_u8)(v >> 8);
	p[3] = (sl_u8)v;
}

SLUICE_INLINE sl_u16 sluice_get_be16(const sl_u8 *p)
{
	return (sl_u16)(((sl_u32)p[0] << 8) | (sl_u32)p[1]);
}

SLUICE_INLINE sl_u32 sluice_get_be32(const sl_u8 *p)
{
	return ((sl_u32)p[0] << 24) | ((sl_u32)p[1] << 16) | ((sl_u32)p[2] << 8) | (sl_u32)p[3];
}

/*
 * Writes a 20-byte IPv4 header (no options) at hdr and its checksum.
 *   saddr, daddr  addresses, network order
 *   payload_len   bytes after this header; total length = 20 + payload_len,
 *                 the caller keeps it <= 65535
 *   tos           DSCP and ECN byte
 *   id            identification, host order
 *   df            non-zero sets Don't Fragment
 *   proto         SLUICE_IPPROTO_IPIP for IPv4-in-IPv4 (RFC 2003), or the
 *                 protocol of a reply (SLUICE_IPPROTO_ICMP)
 */
SLUICE_INLINE void sluice_ipv4_write_hdr(sl_u8 *hdr, sl_be32 saddr, sl_be32 daddr,
					 sl_u16 payload_len, sl_u8 tos, sl_u16 id, int df,
					 sl_u8 ttl, sl_u8 proto)
{
	sl_u16 w0 = (sl_u16)(0x4500 | tos); /* version 4, IHL 5 words */
	sl_u16 total = (sl_u16)(payload_len + SLUICE_IPV4_HLEN);
	sl_u16 frag = df ? SLUICE_IPV4_DF : 0;
	sl_u16 w4 = (sl_u16)(((sl_u32)ttl << 8) | proto);
	sl_u32 s = sl_ntohl(saddr);
	sl_u32 d = sl_ntohl(daddr);
	/* The checksum from the values, not by reading the header back: fewer
	 * loads, and in BPF no packet reads after the writes. */
	sl_u64 sum = (sl_u64)w0 + total + id + frag + w4 + (s >> 16) + (s & 0xffffu) +
		     (d >> 16) + (d & 0xffffu);

	sluice_put_be16(hdr, w0);
	sluice_put_be16(hdr + 2, total);
	sluice_put_be16(hdr + 4, id);
	sluice_put_be16(hdr + 6, frag);
	sluice_put_be16(hdr + 8, w4);
	sluice_put_be16(hdr + 10, sluice_csum_finish(sum));
	__builtin_memcpy(hdr + 12, &saddr, 4);
	__builtin_memcpy(hdr + 16, &daddr, 4);
}

/*
 * Writes a 40-byte IPv6 header at hdr (RFC 8200 section 3).
 *   saddr, daddr  addresses, network order (all 16 bytes)
 *   payload_len   bytes after this header, host order
 *   tclass        traffic class (DSCP and ECN)
 *   flow_label    low 20 bits used
 *   next_hdr      SLUICE_IPPROTO_IPIP for IPv4-in-IPv6, SLUICE_IPPROTO_IPV6
 *                 for IPv6-in-IPv6 (RFC 2473), or SLUICE_IPPROTO_ICMPV6
 */
SLUICE_INLINE void sluice_ipv6_write_hdr(sl_u8 *hdr, const union sluice_ip *saddr,
					 const union sluice_ip *daddr, sl_u16 payload_len,
					 sl_u8 tclass, sl_u32 flow_label, sl_u8 hop_limit,
					 sl_u8 next_hdr)
{
	sluice_put_be32(hdr, (6u << 28) | ((sl_u32)tclass << 20) | (flow_label & 0xFFFFFu));
	sluice_put_be16(hdr + 4, payload_len);
	hdr[6] = next_hdr;
	hdr[7] = hop_limit;
	__builtin_memcpy(hdr + 8, saddr->bytes, 16);
	__builtin_memcpy(hdr + 24, daddr->bytes, 16);
}

/* Mask of the low entropy_bits bits; more than SLUICE_ENCAP_MAX_ENTROPY_BITS
 * counts as that many (the control plane rejects such configs; the fast
 * path must still not shift out of range). */
SLUICE_INLINE sl_u32 sluice_encap_entropy_mask(sl_u8 entropy_bits)
{
	sl_u32 bits = entropy_bits;

	if (bits > SLUICE_ENCAP_MAX_ENTROPY_BITS)
		bits = SLUICE_ENCAP_MAX_ENTROPY_BITS;
	return (1u << bits) - 1;
}

/*
 * The outer source address with flow entropy: the configured source with
 * its low entropy_bits bits (0-16) replaced by the low bits of the flow
 * hash, so a backend's RSS, which hashes the outer header of a tunnel
 * packet, spreads flows over its queues instead of sending every tunnel
 * packet from this load balancer to one queue.
 *
 * Each source then ranges over a 2^entropy_bits block (a /(32 - bits) IPv4
 * or /(128 - bits) IPv6 prefix, aligned). The operator must own that whole
 * block and route it back to the load balancer: backends check reverse
 * paths (rp_filter) against it, and ICMP errors about tunnel packets are
 * sent to it. Replies to clients never use it (direct server return).
 *
 * IPv4: base and result network order.
 */
SLUICE_INLINE sl_be32 sluice_encap4_src(sl_be32 base, sl_u8 entropy_bits, sl_u32 flow_hash)
{
	sl_u32 mask = sluice_encap_entropy_mask(entropy_bits);

	return sl_htonl((sl_ntohl(base) & ~mask) | (flow_hash & mask));
}

/* IPv6: the same on the last 16 bits of the address; network order. */
SLUICE_INLINE void sluice_encap6_src(union sluice_ip *out, const union sluice_ip *base,
				     sl_u8 entropy_bits, sl_u32 flow_hash)
{
	sl_u32 mask = sluice_encap_entropy_mask(entropy_bits);
	sl_u32 low = sluice_get_be16(&base->bytes[14]);

	*out = *base;
	sluice_put_be16(&out->bytes[14], (sl_u16)((low & ~mask) | (flow_hash & mask)));
}

/* Writes the 8-byte ICMP "fragmentation needed and DF set" header (type 3
 * code 4, RFC 792) with the next-hop MTU (bytes, host order) in its second
 * half (RFC 1191 section 4) and a zero checksum; the quoted datagram
 * follows it. */
SLUICE_INLINE void sluice_icmp4_write_frag_needed(sl_u8 *hdr, sl_u16 mtu)
{
	hdr[0] = SLUICE_ICMP_DEST_UNREACH;
	hdr[1] = SLUICE_ICMP_FRAG_NEEDED;
	sluice_put_be16(hdr + 2, 0);
	sluice_put_be16(hdr + 4, 0);
	sluice_put_be16(hdr + 6, mtu);
}

/* Writes the 8-byte ICMPv6 Packet Too Big header (type 2 code 0, RFC 4443
 * section 3.2) with the MTU (bytes, host order) and a zero checksum. */
SLUICE_INLINE void sluice_icmp6_write_packet_too_big(sl_u8 *hdr, sl_u32 mtu)
{
	hdr[0] = SLUICE_ICMPV6_PACKET_TOO_BIG;
	hdr[1] = 0;
	sluice_put_be16(hdr + 2, 0);
	sluice_put_be32(hdr + 4, mtu);
}

/* The MTU to announce to an IPv4 client: at least 68 (RFC 791: hosts must
 * accept it, and RFC 1191 hosts ignore smaller ones), at most 65535. */
SLUICE_INLINE sl_u16 sluice_icmp4_mtu(sl_u32 mtu)
{
	if (mtu < SLUICE_IPV4_MIN_MTU)
		return SLUICE_IPV4_MIN_MTU;
	return mtu > 0xFFFFu ? 0xFFFF : (sl_u16)mtu;
}

/* The MTU to announce to an IPv6 client: at least 1280. A host must not
 * lower its path MTU below 1280 and discards such a message (RFC 8201
 * section 4), so a smaller value would be lost; announcing 1280 at least
 * makes the client stop sending larger packets. */
SLUICE_INLINE sl_u32 sluice_icmp6_mtu(sl_u32 mtu)
{
	return mtu < SLUICE_IPV6_MIN_MTU ? SLUICE_IPV6_MIN_MTU : mtu;
}

/*
 * Whether a too-big reply may go back to the sender of an IPv4 packet, by
 * the fields that decide it (RFC 1122 3.2.2, RFC 1812 4.3.2.7, RFC 1191):
 *   frag     the flags/fragment field, host order: DF must be set (the
 *            sender asked for path MTU discovery) and the fragment offset 0
 *            (only a first fragment is answered)
 *   saddr    source, network order: one host, so not 0/8, 127/8, or 224/4
 *            and above (multicast, reserved, limited broadcast)
 *   daddr    destination, network order: not multicast or broadcast
 *   l2_dst0  first byte of the frame's destination MAC: its group bit
 *            marks a link-layer multicast or broadcast
 * Whether the packet is itself an ICMP error is the caller's check
 * (sluice_icmp4_is_error). Returns non-zero when a reply is allowed.
 */
SLUICE_INLINE int sluice_icmp4_reply_allowed(sl_u16 frag, sl_be32 saddr, sl_be32 daddr,
					     sl_u8 l2_dst0)
{
	sl_u32 src0 = sl_ntohl(saddr) >> 24;
	sl_u32 dst0 = sl_ntohl(daddr) >> 24;

	if (!(frag & SLUICE_IPV4_DF) || (frag & SLUICE_IPV4_OFFSET_MASK))
		return 0;
	if (src0 == 0 || src0 == 127 || src0 >= 224 || dst0 >= 224)
		return 0;
	return !(l2_dst0 & 1);
}

/* The drop reason of a packet over the MTU once encapsulated, by its
 * family and (IPv4) its flags/fragment field in host order: an IPv4 packet
 * without DF is SLUICE_DROP_TOO_BIG_DF_CLEAR (its sender did not ask for
 * path MTU discovery, so no reply may go back, and a fast path does not
 * fragment); any other is SLUICE_DROP_TOO_BIG, whether or not the rules let
 * a reply go back. */
SLUICE_INLINE enum sluice_drop_reason sluice_too_big_reason(sl_u8 family, sl_u16 frag)
{
	if (family == SLUICE_FAMILY_IPV4 && !(frag & SLUICE_IPV4_DF))
		return SLUICE_DROP_TOO_BIG_DF_CLEAR;
	return SLUICE_DROP_TOO_BIG;
}

/* Whether the source of an IPv6 packet (network order) names one host a
 * too-big reply may go to: not the unspecified address and not multicast
 * (RFC 4443 2.4(e.6)). Fragments past the first and ICMPv6 errors are the
 * caller's checks. */
SLUICE_INLINE int sluice_icmp6_reply_allowed(const union sluice_ip *saddr)
{
	if (saddr->bytes[0] == 0xFF)
		return 0;
	return (saddr->v6[0] | saddr->v6[1] | saddr->v6[2] | saddr->v6[3]) != 0;
}

/* Whether an ICMP type is an error message (RFC 792, RFC 1122 3.2.2):
 * destination unreachable, source quench, redirect, time exceeded,
 * parameter problem. No ICMP error answers one (RFC 1122 3.2.2). */
SLUICE_INLINE int sluice_icmp4_is_error(sl_u8 type)
{
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* Whether an ICMPv6 message forbids an error reply: an error message (type
 * < 128, RFC 4443 2.1) or a redirect (RFC 4443 2.4(e.2)). */
SLUICE_INLINE int sluice_icmp6_no_error_reply(sl_u8 type)
{
	return type < 128 || type == SLUICE_ICMPV6_REDIRECT;
}
