/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The load balancer's parser: from a frame to the flow key of
 * dataplane/abi/flow.h (client -> VIP, network order, unused bytes zero),
 * with the few facts the encapsulation and the ICMP replies need.
 *
 * Contract (the same as the core's parser, checked by a differential test):
 * - Ethernet with up to SLUICE_MAX_VLAN_TAGS tags; other EtherTypes pass.
 * - IPv4 with options; IPv6 skipping hop-by-hop (first only), routing,
 *   destination-options and atomic fragment headers (RFC 6946), at most
 *   SLUICE_MAX_IPV6_EXT_HDRS of them.
 * - TCP and UDP give the ports. Fragments (IPv4 MF or offset, IPv6 fragment
 *   header with M or offset) give ports 0 and never read L4, so every
 *   fragment of a datagram has the same key. An IPv6 first fragment's walk
 *   goes on past its fragment header to the upper layer (RFC 8200 section
 *   4.5 puts the whole chain in it); a later one's protocol is the fragment
 *   header's next header, and one naming a routing or destination-options
 *   header is a flow whose protocol its first fragment's record gives.
 * - ICMP errors (v4 types 3, 11, 12; v6 types 1-4) about TCP or UDP give
 *   the key of the flow the embedded header belongs to: the embedded
 *   header reversed. The quote must hold its IP header and 8 bytes (RFC
 *   792) and not be a later fragment (no ports there); a first fragment's
 *   ports are read.
 * - Anything else (ARP, other protocols, ICMP echo, ...) is not ours: pass.
 * - Malformed or truncated headers are counted drops (the negative
 *   SLUICE_DROP_* reason); nothing is read past data_end.
 */
#pragma once

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "encap.h"
#include "flow.h"
#include "l2.h"
#include "stats.h"

/* Results of lb_parse besides a negative drop reason. */
#define LB_PARSE_FLOW 0 /* p->key is a TCP/UDP flow (or an ICMP error about one) */
#define LB_PARSE_PASS 1 /* not something sluice balances: XDP_PASS */

/* lb_packet.flags */
#define LB_PKT_FRAGMENT (1u << 0)   /* an IP fragment: key ports are 0 */
#define LB_PKT_ICMP_ERR (1u << 1)   /* an ICMP error; key is the flow it is about */
#define LB_PKT_LATER_FRAG (1u << 2) /* a fragment past the first (offset != 0) */
#define LB_PKT_SYN (1u << 3)        /* a TCP SYN without ACK: a connection's first segment */

/* ICMP error types that quote a flow's packet (RFC 792, RFC 4443), beside
 * SLUICE_ICMP_DEST_UNREACH and SLUICE_ICMPV6_PACKET_TOO_BIG of encap.h;
 * <linux/icmp.h> pulls in libc headers. */
#define LB_ICMP_TIME_EXCEEDED 11
#define LB_ICMP_PARAMETERPROB 12
#define LB_ICMP6_DEST_UNREACH 1
#define LB_ICMP6_TIME_EXCEED 3
#define LB_ICMP6_PARAMPROB 4

/* The 8 bytes that start an ICMP or ICMPv6 error: type, code, checksum and
 * a 32-bit field (unused, or the MTU of a too-big message). */
struct lb_icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 info; /* v4 frag-needed: 16 unused bits, then the next-hop MTU; v6 too-big: the MTU */
};

/* IPv4 fragment field bits, host order (RFC 791). */
#define LB_IP_MF 0x2000
#define LB_IP_OFFSET 0x1fff

/* What the parser learnt about one frame. */
struct lb_packet {
	struct sluice_flow_key key; /* the flow, as dataplane/abi/flow.h defines it */
	__u32 frame_len;            /* bytes from data to data_end */
	__u32 l3_off;               /* offset of the IP header = L2 header bytes */
	__u32 ip_len;               /* IP packet bytes per its header (<= frame_len - l3_off) */
	__u8 ntags;                 /* VLAN tags in the L2 header */
	__u8 tos;                   /* DSCP and ECN: IPv4 TOS or IPv6 traffic class */
	__u8 flags;                 /* LB_PKT_* */
	__u8 l2_dst0;               /* first byte of the destination MAC (bit 0: group address) */
	__u16 frag_off;             /* IPv4 flags and fragment offset, host order; 0 for IPv6 */
	__u16 ip_id;                /* IPv4 identification, host order; 0 for IPv6 */
	__u32 frag_id;              /* a fragment's datagram id (IPv4 16, IPv6 32 bits), host order */
	__be16 frag_dport;          /* a first fragment's destination port (0: not in it) */
	__u8 frag_proto;            /* the protocol keying a fragment's sluice_frags record:
				     * IPv4's protocol, the IPv6 fragment header's next header */
	__u8 pad;                   /* zero */
};

static __always_inline int lb_is_l4(__u8 proto)
{
	return proto == SLUICE_IPPROTO_TCP || proto == SLUICE_IPPROTO_UDP;
}

static __always_inline int lb_is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == SLUICE_IPPROTO_HOPOPTS || nexthdr == SLUICE_IPPROTO_ROUTING ||
	       nexthdr == SLUICE_IPPROTO_DSTOPTS || nexthdr == SLUICE_IPPROTO_FRAGMENT;
}

/* lb_skip_ipv6_ext results besides 0 (upper layer reached). */
#define LB_EXT_FRAGMENT 1       /* a first fragment (offset 0, M set): upper layer reached */
#define LB_EXT_LATER_FRAGMENT 2 /* a fragment with an offset: stop, no L4 header follows */
#define LB_EXT_TRUNCATED -1
#define LB_EXT_INVALID -2 /* chain too long, or hop-by-hop not first */

/* Skips the extension headers starting at *off (right after the fixed IPv6
 * header) while *nexthdr names one, reading nothing at or past `end` (the
 * end of the IPv6 packet, an offset from data). On return *nexthdr is the
 * next protocol, *off its offset and *frag_hdr the offset of the fragment
 * header that really fragments (M or offset set), if any. A later fragment
 * stops right after that header; a first one goes on through the headers
 * of the fragmentable part (RFC 8200 section 4.5) to the upper layer; a
 * second real fragment header stops the walk at itself (protocol 44, not
 * balanced). With `past_frag` 0 (a packet quoted by an ICMP error) a first
 * fragment stops right after its fragment header too: walking on there as
 * well takes the program past the verifier's 1M-instruction budget. The
 * walk of dataplane/core/packet_parser.cpp skip_ipv6_ext_headers, step for
 * step. */
static __always_inline int lb_skip_ipv6_ext(void *data, void *data_end, __u32 *off, __u32 end,
					    __u8 *nexthdr, __u32 *frag_hdr, const int past_frag)
{
	__u32 o = *off;
	__u8 nh = *nexthdr;
	__u32 fh = 0;

#pragma unroll
	for (int i = 0; i < SLUICE_MAX_IPV6_EXT_HDRS; i++) {
		__u8 *h = data + o;

		if (!lb_is_ipv6_ext(nh))
			break;
		if (nh == SLUICE_IPPROTO_HOPOPTS && i != 0)
			return LB_EXT_INVALID;
		if ((void *)(h + 8) > data_end || o + 8 > end)
			return LB_EXT_TRUNCATED;
		if (nh == SLUICE_IPPROTO_FRAGMENT) {
			/* Offset (high 13 bits) or M (bit 0) set: a real fragment. */
			__u16 frag = bpf_ntohs(*(__be16 *)(h + 2));

			if (frag & 0xfff9) {
				if (fh) {
					*off = o;
					*nexthdr = nh;
					*frag_hdr = fh;
					return LB_EXT_FRAGMENT;
				}
				fh = o;
				if ((frag & 0xfff8) || !past_frag) {
					*off = o + 8;
					*nexthdr = h[0];
					*frag_hdr = fh;
					return frag & 0xfff8 ? LB_EXT_LATER_FRAGMENT :
							       LB_EXT_FRAGMENT;
				}
			}
			nh = h[0];
			o += 8;
			continue;
		}
		nh = h[0];
		o += ((__u32)h[1] + 1) * 8;
		if (o > end)
			return LB_EXT_TRUNCATED;
	}
	if (lb_is_ipv6_ext(nh))
		return LB_EXT_INVALID;
	*off = o;
	*nexthdr = nh;
	*frag_hdr = fh;
	return fh ? LB_EXT_FRAGMENT : 0;
}

static __always_inline int lb_is_icmp_error(__u8 family, __u8 type)
{
	if (family == SLUICE_FAMILY_IPV4)
		return type == SLUICE_ICMP_DEST_UNREACH || type == LB_ICMP_TIME_EXCEEDED ||
		       type == LB_ICMP_PARAMETERPROB;
	return type == LB_ICMP6_DEST_UNREACH || type == SLUICE_ICMPV6_PACKET_TOO_BIG ||
	       type == LB_ICMP6_TIME_EXCEED || type == LB_ICMP6_PARAMPROB;
}

/* Bytes of the quoted packet's upper layer an ICMP error must carry: RFC
 * 792 quotes the IP header and 64 bits of data. */
#define LB_ICMP_QUOTED_L4 8

/* Ports of the embedded header, reversed into the key: the embedded packet
 * went VIP -> client, the flow is client -> VIP. The caller has checked
 * that LB_ICMP_QUOTED_L4 bytes are in the packet. */
static __always_inline int lb_parse_inner_ports(void *data_end, void *l4, struct lb_packet *p)
{
	__be16 *ports = l4;

	if ((void *)(ports + 2) > data_end)
		return -SLUICE_DROP_BAD_ICMP;
	p->key.sport = ports[1];
	p->key.dport = ports[0];
	p->flags |= LB_PKT_ICMP_ERR;
	return LB_PARSE_FLOW;
}

/* The IPv4 header inside an ICMP error, at offset `off`; `end` is the end
 * of the outer IPv4 packet (offset from data). */
static __always_inline int lb_parse_icmp4_inner(void *data, void *data_end, __u32 off, __u32 end,
						struct lb_packet *p)
{
	struct iphdr *iph = data + off;
	__u32 hlen;

	if ((void *)(iph + 1) > data_end || off + sizeof(*iph) > end)
		return -SLUICE_DROP_BAD_ICMP;
	if (iph->version != 4 || iph->ihl < 5)
		return -SLUICE_DROP_BAD_ICMP;
	hlen = iph->ihl * 4;
	if (off + hlen + LB_ICMP_QUOTED_L4 > end)
		return -SLUICE_DROP_BAD_ICMP;
	/* A later fragment carries no ports; a first one does. */
	if (bpf_ntohs(iph->frag_off) & LB_IP_OFFSET)
		return -SLUICE_DROP_BAD_ICMP;
	if (!lb_is_l4(iph->protocol))
		return LB_PARSE_PASS;
	p->key.src.v4 = iph->daddr;
	p->key.dst.v4 = iph->saddr;
	p->key.proto = iph->protocol;
	return lb_parse_inner_ports(data_end, (void *)iph + hlen, p);
}

/* The IPv6 header inside an ICMPv6 error, as lb_parse_icmp4_inner. */
static __always_inline int lb_parse_icmp6_inner(void *data, void *data_end, __u32 off, __u32 end,
						struct lb_packet *p)
{
	struct ipv6hdr *ip6 = data + off;
	__u32 fh;
	__u8 nh;
	int ret;

	if ((void *)(ip6 + 1) > data_end || off + sizeof(*ip6) > end)
		return -SLUICE_DROP_BAD_ICMP;
	if (ip6->version != 6)
		return -SLUICE_DROP_BAD_ICMP;
	nh = ip6->nexthdr;
	off += sizeof(*ip6);
	ret = lb_skip_ipv6_ext(data, data_end, &off, end, &nh, &fh, 0);
	/* A later fragment carries no ports; a first one does. */
	if (ret < 0 || ret == LB_EXT_LATER_FRAGMENT || off + LB_ICMP_QUOTED_L4 > end)
		return -SLUICE_DROP_BAD_ICMP;
	if (!lb_is_l4(nh))
		return LB_PARSE_PASS;
	__builtin_memcpy(p->key.src.bytes, &ip6->daddr, 16);
	__builtin_memcpy(p->key.dst.bytes, &ip6->saddr, 16);
	p->key.proto = nh;
	return lb_parse_inner_ports(data_end, data + off, p);
}

/* The transport header at offset `off`, `end` the end of the IP packet;
 * p->key.proto and the addresses are already set. */
static __always_inline int lb_parse_l4(void *data, void *data_end, __u32 off, __u32 end,
				       struct lb_packet *p)
{
	void *l4 = data + off;
	__u32 avail = end - off;

	switch (p->key.proto) {
	case SLUICE_IPPROTO_TCP: {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || avail < sizeof(*th))
			return -SLUICE_DROP_TRUNCATED;
		if (th->doff < 5 || th->doff * 4u > avail)
			return -SLUICE_DROP_BAD_L4;
		p->key.sport = th->source;
		p->key.dport = th->dest;
		if (th->syn && !th->ack)
			p->flags |= LB_PKT_SYN;
		return LB_PARSE_FLOW;
	}
	case SLUICE_IPPROTO_UDP: {
		struct udphdr *uh = l4;
		__u32 ulen;

		if ((void *)(uh + 1) > data_end || avail < sizeof(*uh))
			return -SLUICE_DROP_TRUNCATED;
		ulen = bpf_ntohs(uh->len);
		if (ulen < sizeof(*uh) || ulen > avail)
			return -SLUICE_DROP_BAD_L4;
		p->key.sport = uh->source;
		p->key.dport = uh->dest;
		return LB_PARSE_FLOW;
	}
	case SLUICE_IPPROTO_ICMP:
	case SLUICE_IPPROTO_ICMPV6: {
		struct lb_icmp_hdr *icmp = l4;

		if ((p->key.family == SLUICE_FAMILY_IPV4) != (p->key.proto == SLUICE_IPPROTO_ICMP))
			return LB_PARSE_PASS;
		if ((void *)(icmp + 1) > data_end || avail < sizeof(*icmp))
			return -SLUICE_DROP_TRUNCATED;
		if (!lb_is_icmp_error(p->key.family, icmp->type))
			return LB_PARSE_PASS;
		if (p->key.family == SLUICE_FAMILY_IPV4)
			return lb_parse_icmp4_inner(data, data_end, off + 8, end, p);
		return lb_parse_icmp6_inner(data, data_end, off + 8, end, p);
	}
	default:
		return LB_PARSE_PASS;
	}
}

/* A first fragment's destination port, where the fragment holds it (TCP
 * and UDP both keep it at bytes 2-3 of their header); the key's ports stay
 * 0, so every fragment of a datagram hashes alike. */
static __always_inline void lb_first_frag_port(void *data, void *data_end, __u32 off, __u32 end,
					       struct lb_packet *p)
{
	__be16 *ports;

	if (!lb_is_l4(p->key.proto) || off > 0xffff || off + 4 > end)
		return;
	ports = data + off;
	if ((void *)(ports + 2) > data_end)
		return;
	p->frag_dport = ports[1];
}

static __always_inline int lb_parse_ipv4(void *data, void *data_end, struct lb_packet *p)
{
	struct iphdr *iph = data + p->l3_off;
	__u32 hlen, frag;

	if ((void *)(iph + 1) > data_end)
		return -SLUICE_DROP_TRUNCATED;
	if (iph->version != 4 || iph->ihl < 5)
		return -SLUICE_DROP_BAD_IPV4;
	hlen = iph->ihl * 4;
	if (hlen > p->frame_len - p->l3_off)
		return -SLUICE_DROP_TRUNCATED;
	p->ip_len = bpf_ntohs(iph->tot_len);
	if (p->ip_len < hlen || p->ip_len > p->frame_len - p->l3_off)
		return -SLUICE_DROP_BAD_IPV4;
	p->tos = iph->tos;
	p->key.family = SLUICE_FAMILY_IPV4;
	p->key.src.v4 = iph->saddr;
	p->key.dst.v4 = iph->daddr;
	p->key.proto = iph->protocol;
	frag = bpf_ntohs(iph->frag_off);
	p->frag_off = (__u16)frag;
	p->ip_id = bpf_ntohs(iph->id);
	if (frag & LB_IP_OFFSET)
		p->flags |= LB_PKT_LATER_FRAG;
	if (frag & (LB_IP_MF | LB_IP_OFFSET)) {
		p->flags |= LB_PKT_FRAGMENT;
		p->frag_id = p->ip_id;
		p->frag_proto = iph->protocol;
		if (!(frag & LB_IP_OFFSET))
			lb_first_frag_port(data, data_end, p->l3_off + hlen, p->l3_off + p->ip_len, p);
		return lb_is_l4(p->key.proto) ? LB_PARSE_FLOW : LB_PARSE_PASS;
	}
	return lb_parse_l4(data, data_end, p->l3_off + hlen, p->l3_off + p->ip_len, p);
}

/* An IPv6 fragment header (RFC 8200 section 4.5). */
struct lb_frag6_hdr {
	__u8 nexthdr;  /* the first header of the fragmentable part */
	__u8 reserved;
	__be16 frag;   /* offset (high 13 bits) and M (bit 0) */
	__be32 id;     /* the datagram's identification */
};

static __always_inline int lb_parse_ipv6(void *data, void *data_end, struct lb_packet *p)
{
	struct ipv6hdr *ip6 = data + p->l3_off;
	struct lb_frag6_hdr *fhdr;
	__u32 off, plen, fh = 0;
	__u8 nh;
	int ret;

	if ((void *)(ip6 + 1) > data_end)
		return -SLUICE_DROP_TRUNCATED;
	if (ip6->version != 6)
		return -SLUICE_DROP_BAD_IPV6;
	/* Payload length 0 (an empty packet, or a jumbogram, RFC 2675) passes
	 * here, as in the core: no TCP or UDP header fits in it, so it is
	 * never balanced. */
	plen = bpf_ntohs(ip6->payload_len);
	if (plen > p->frame_len - p->l3_off - sizeof(*ip6))
		return -SLUICE_DROP_BAD_IPV6;
	p->ip_len = sizeof(*ip6) + plen;
	p->tos = (__u8)(ip6->priority << 4 | ip6->flow_lbl[0] >> 4);
	p->key.family = SLUICE_FAMILY_IPV6;
	__builtin_memcpy(p->key.src.bytes, &ip6->saddr, 16);
	__builtin_memcpy(p->key.dst.bytes, &ip6->daddr, 16);
	nh = ip6->nexthdr;
	off = p->l3_off + sizeof(*ip6);
	ret = lb_skip_ipv6_ext(data, data_end, &off, p->l3_off + p->ip_len, &nh, &fh, 1);
	if (ret == LB_EXT_TRUNCATED)
		return -SLUICE_DROP_TRUNCATED;
	if (ret == LB_EXT_INVALID)
		return -SLUICE_DROP_BAD_IPV6;
	p->key.proto = nh;
	if (ret == LB_EXT_LATER_FRAGMENT)
		p->flags |= LB_PKT_LATER_FRAG;
	if (ret == LB_EXT_FRAGMENT || ret == LB_EXT_LATER_FRAGMENT) {
		p->flags |= LB_PKT_FRAGMENT;
		if (fh > 0xffff)
			return -SLUICE_DROP_TRUNCATED;
		fhdr = data + fh;
		if ((void *)(fhdr + 1) > data_end)
			return -SLUICE_DROP_TRUNCATED;
		p->frag_id = bpf_ntohl(fhdr->id);
		p->frag_proto = fhdr->nexthdr;
		if (ret == LB_EXT_FRAGMENT)
			lb_first_frag_port(data, data_end, off, p->l3_off + p->ip_len, p);
		/* A later fragment after a routing or destination-options
		 * header: those and the upper layer came in the first
		 * fragment, whose record gives the protocol. */
		if (ret == LB_EXT_LATER_FRAGMENT &&
		    (nh == SLUICE_IPPROTO_ROUTING || nh == SLUICE_IPPROTO_DSTOPTS))
			return LB_PARSE_FLOW;
		return lb_is_l4(nh) ? LB_PARSE_FLOW : LB_PARSE_PASS;
	}
	return lb_parse_l4(data, data_end, off, p->l3_off + p->ip_len, p);
}

/* Parses one frame into *p (zeroed by the caller). Returns LB_PARSE_FLOW,
 * LB_PARSE_PASS or a negative SLUICE_DROP_* reason. */
static __always_inline int lb_parse(void *data, void *data_end, struct lb_packet *p)
{
	struct l2_info l2;
	int ret;

	p->frame_len = (__u32)(data_end - data);
	ret = l2_parse(data, data_end, &l2);
	if (ret < 0)
		return ret;
	p->l3_off = l2.l3_off;
	p->ntags = l2.ntags;
	p->l2_dst0 = *(__u8 *)data; /* l2_parse checked the Ethernet header */
	if (l2.proto == SLUICE_ETH_P_IP)
		return lb_parse_ipv4(data, data_end, p);
	if (l2.proto == SLUICE_ETH_P_IPV6)
		return lb_parse_ipv6(data, data_end, p);
	return LB_PARSE_PASS;
}
