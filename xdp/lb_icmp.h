/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Too-big replies: a VIP packet that would exceed the MTU once
 * encapsulated is turned, in place, into ICMP fragmentation-needed
 * (RFC 792 / RFC 1191) or ICMPv6 packet-too-big (RFC 4443) back to the
 * client, and sent out the way it came (XDP_TX). */
#pragma once

#include "csum_compat.h"
#include "encap_compat.h"
#include "lb_parse.h"

/* Bytes of the invoking packet a reply quotes: as much as keeps the reply
 * within 576 bytes (RFC 1812, 4.3.2.3) or the IPv6 minimum MTU of 1280
 * (RFC 4443, 2.4 (c)). Multiples of 4 for bpf_csum_diff. */
#define LB_ICMP4_QUOTE 512
#define LB_ICMP6_QUOTE 1232
/* bpf_csum_diff sums at most 512 bytes per call. */
#define LB_CSUM_CHUNK 512

/* Cuts the frame to l3_off + quote bytes, prepends hdr_len bytes for the
 * reply's IP and ICMP headers, puts the L2 header in front with its MACs
 * swapped. Returns 0, or -1 (frame too short or no room). */
static __always_inline int lb_icmp_reshape(struct xdp_md *ctx, const struct lb_packet *p,
					   __u32 quote, __u32 hdr_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct l2_saved saved;
	struct ethhdr *eth;

	if (p->ip_len < quote || l2_save(data, data_end, p->ntags, &saved))
		return -1;
	if (bpf_xdp_adjust_tail(ctx, (int)(p->l3_off + quote) - (int)p->frame_len))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)hdr_len))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l2_store(data, data_end, p->ntags, &saved))
		return -1;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	/* Back the way it came: from this interface to the sender's MAC. */
	__builtin_memcpy(eth->h_dest, saved.bytes + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(eth->h_source, saved.bytes, ETH_ALEN);
	return 0;
}

/* The unfolded sum of `len` bytes (a multiple of 4, at most 3 chunks) of
 * packet memory at p, added to `sum`. */
static __always_inline __u32 lb_csum_packet(void *p, void *data_end, __u32 len, __u32 sum)
{
#pragma unroll
	for (int i = 0; i < 3; i++) {
		__u32 n = len > LB_CSUM_CHUNK ? LB_CSUM_CHUNK : len;

		if (n == 0)
			break;
		if (p + n > data_end)
			return sum;
		sum = (__u32)bpf_csum_diff(0, 0, p, n, sum);
		p += n;
		len -= n;
	}
	return sum;
}

/* Fragmentation needed (type 3, code 4) with the next-hop MTU, from the
 * VIP to the client. Returns 0 or -1. */
static __always_inline int lb_icmp4_too_big(struct xdp_md *ctx, const struct lb_packet *p,
					    __u16 next_mtu)
{
	struct iphdr *iph;
	struct lb_icmp_hdr *icmp;
	void *data, *data_end;
	__u32 sum;

	if (lb_icmp_reshape(ctx, p, LB_ICMP4_QUOTE, sizeof(*iph) + sizeof(*icmp)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	iph = data + (p->l3_off & 0x1f);
	icmp = (void *)(iph + 1);
	if ((void *)(icmp + 1) + LB_ICMP4_QUOTE > data_end)
		return -1;
	*(__u8 *)iph = 0x45;
	iph->tos = 0;
	iph->tot_len = bpf_htons(sizeof(*iph) + sizeof(*icmp) + LB_ICMP4_QUOTE);
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = ENCAP_TTL;
	iph->protocol = SLUICE_IPPROTO_ICMP;
	iph->check = 0;
	iph->saddr = p->key.dst.v4;
	iph->daddr = p->key.src.v4;
	iph->check = csum_ipv4_header(iph);

	icmp->type = LB_ICMP_DEST_UNREACH;
	icmp->code = LB_ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->info = bpf_htonl(next_mtu);
	sum = (__u32)bpf_csum_diff(0, 0, (void *)icmp, sizeof(*icmp), 0);
	sum = lb_csum_packet(icmp + 1, data_end, LB_ICMP4_QUOTE, sum);
	icmp->checksum = csum_fold(sum);
	return 0;
}

/* Packet too big (type 2) with the MTU, from the VIP to the client.
 * Returns 0 or -1. */
static __always_inline int lb_icmp6_too_big(struct xdp_md *ctx, const struct lb_packet *p,
					    __u32 mtu)
{
	struct ipv6hdr *ip6;
	struct lb_icmp_hdr *icmp;
	void *data, *data_end;
	__u32 sum;

	if (lb_icmp_reshape(ctx, p, LB_ICMP6_QUOTE, sizeof(*ip6) + sizeof(*icmp)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = data + (p->l3_off & 0x1f);
	icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 1) + LB_ICMP6_QUOTE > data_end)
		return -1;
	*(__be32 *)ip6 = bpf_htonl(0x60000000u);
	ip6->payload_len = bpf_htons(sizeof(*icmp) + LB_ICMP6_QUOTE);
	ip6->nexthdr = SLUICE_IPPROTO_ICMPV6;
	ip6->hop_limit = ENCAP_TTL;
	__builtin_memcpy(&ip6->saddr, p->key.dst.bytes, 16);
	__builtin_memcpy(&ip6->daddr, p->key.src.bytes, 16);

	icmp->type = LB_ICMP6_PKT_TOOBIG;
	icmp->code = 0;
	icmp->checksum = 0;
	icmp->info = bpf_htonl(mtu);
	sum = csum_ipv6_pseudo(p->key.dst.v6, p->key.src.v6, sizeof(*icmp) + LB_ICMP6_QUOTE,
			       SLUICE_IPPROTO_ICMPV6);
	sum = (__u32)bpf_csum_diff(0, 0, (void *)icmp, sizeof(*icmp), sum);
	sum = lb_csum_packet(icmp + 1, data_end, LB_ICMP6_QUOTE, sum);
	icmp->checksum = csum_fold(sum);
	return 0;
}
