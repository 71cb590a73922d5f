/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Outer headers of the encapsulation toward a backend: IPv4 (IP-in-IP,
 * RFC 2003) and IPv6 (RFC 2473), plus the flow entropy in the outer source.
 * TODO(lead): switch to dataplane/abi/encap.h when it lands; the callers use
 * only encap_write_ipv4, encap_write_ipv6 and encap_entropy_*. */
#pragma once

#include <linux/ip.h>
#include <linux/ipv6.h>

#include "csum_compat.h"
#include "types.h"

/* Hop limit of outer headers and of sluice's own ICMP replies. */
#define ENCAP_TTL 64

/* Low `bits` (0-16) of an IPv4 source (network order) replaced by the flow
 * hash, so backends' RSS spreads flows that all come from one balancer. */
static __always_inline sl_be32 encap_entropy_v4(sl_be32 src, __u32 hash, __u8 bits)
{
	__u32 mask;

	if (bits == 0)
		return src;
	mask = (1u << (bits > 16 ? 16 : bits)) - 1;
	return sl_htonl((sl_ntohl(src) & ~mask) | (hash & mask));
}

/* The same for the last 32 bits of an IPv6 source, in place. */
static __always_inline void encap_entropy_v6(sl_be32 src[4], __u32 hash, __u8 bits)
{
	src[3] = encap_entropy_v4(src[3], hash, bits);
}

/* Writes a 20-byte outer IPv4 header: DF set (the MTU was checked), id 0
 * (RFC 6864 allows it for atomic datagrams), TTL ENCAP_TTL, the inner
 * DSCP and ECN copied (RFC 6040 normal mode). inner_len: bytes of the inner
 * IP packet; proto: SLUICE_IPPROTO_IPIP or _IPV6; addresses network order. */
static __always_inline void encap_write_ipv4(struct iphdr *o, __u8 tos, __u16 inner_len,
					     sl_be32 saddr, sl_be32 daddr, __u8 proto)
{
	*(__u8 *)o = 0x45;
	o->tos = tos;
	o->tot_len = sl_htons((__u16)(inner_len + sizeof(*o)));
	o->id = 0;
	o->frag_off = sl_htons(0x4000);
	o->ttl = ENCAP_TTL;
	o->protocol = proto;
	o->check = 0;
	o->saddr = saddr;
	o->daddr = daddr;
	o->check = csum_ipv4_header(o);
}

/* Writes a 40-byte outer IPv6 header: traffic class from the inner packet,
 * the flow label from the flow hash (for ECMP and RSS on the way, RFC 6438),
 * hop limit ENCAP_TTL. inner_len: bytes of the inner IP packet (the outer
 * payload); nexthdr: SLUICE_IPPROTO_IPIP or _IPV6; addresses network order. */
static __always_inline void encap_write_ipv6(struct ipv6hdr *o, __u8 tclass, __u32 flow_label,
					     __u16 inner_len, const sl_be32 saddr[4],
					     const sl_be32 daddr[4], __u8 nexthdr)
{
	*(sl_be32 *)o = sl_htonl(0x60000000u | (__u32)tclass << 20 | (flow_label & 0xfffff));
	o->payload_len = sl_htons(inner_len);
	o->nexthdr = nexthdr;
	o->hop_limit = ENCAP_TTL;
	__builtin_memcpy(&o->saddr, saddr, 16);
	__builtin_memcpy(&o->daddr, daddr, 16);
}
