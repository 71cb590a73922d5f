/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Too-big replies: a VIP packet that would exceed the MTU once
 * encapsulated is turned, in place, into ICMP fragmentation-needed
 * (RFC 792 / RFC 1191) or ICMPv6 packet-too-big (RFC 4443) back to the
 * client, and sent out the way it came (XDP_TX). */
#pragma once

#include "csum.h"
#include "encap.h"
#include "lb_parse.h"

/* Bytes of the invoking packet a reply quotes: as much as keeps the reply
 * within 576 bytes (RFC 1812, 4.3.2.3) or the IPv6 minimum MTU of 1280
 * (RFC 4443, 2.4 (c)), as build_icmp_too_big quotes. The length is a
 * constant so the checksum can run straight over the packet (see
 * dataplane/abi/csum.h): a packet too big for an MTU of at least 600
 * (IPv4 client) or 1280 (IPv6 client) is always this long. Under a smaller
 * configured MTU a shorter packet gets no reply (build_icmp_too_big would
 * quote all of it): a counted drop. */
#define LB_ICMP4_QUOTE (SLUICE_ICMP4_ERROR_MAX - SLUICE_IPV4_HLEN - SLUICE_ICMP_HLEN)
#define LB_ICMP6_QUOTE (SLUICE_ICMP6_ERROR_MAX - SLUICE_IPV6_HLEN - SLUICE_ICMP_HLEN)

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

	if (p->ip_len < quote || l2_save(data, data_end, &saved))
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

/* Fragmentation needed (type 3, code 4) with the next-hop MTU (already
 * clamped, sluice_icmp4_mtu), from the VIP to the client: TOS
 * SLUICE_ICMP4_REPLY_TOS, DF and id 0, as build_icmp_too_big writes it.
 * Returns 0 or -1. */
static __always_inline int lb_icmp4_too_big(struct xdp_md *ctx, const struct lb_packet *p,
					    __u16 next_mtu)
{
	const __u32 icmp_len = SLUICE_ICMP_HLEN + LB_ICMP4_QUOTE;
	void *data, *data_end;
	__u8 *ip, *icmp;

	if (lb_icmp_reshape(ctx, p, LB_ICMP4_QUOTE, SLUICE_IPV4_HLEN + SLUICE_ICMP_HLEN))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + (p->l3_off & 0x1f);
	icmp = ip + SLUICE_IPV4_HLEN;
	if ((void *)(icmp + icmp_len) > data_end)
		return -1;
	sluice_ipv4_write_hdr(ip, p->key.dst.v4, p->key.src.v4, icmp_len, SLUICE_ICMP4_REPLY_TOS, 0,
			      1, SLUICE_ICMP_REPLY_TTL, SLUICE_IPPROTO_ICMP);
	sluice_icmp4_write_frag_needed(icmp, next_mtu);
	sluice_put_be16(icmp + 2, sluice_csum(icmp, icmp_len, icmp_len));
	return 0;
}

/* Packet too big (type 2) with the MTU (already raised to 1280,
 * sluice_icmp6_mtu), from the VIP to the client, its checksum over the
 * pseudo-header. Returns 0 or -1. */
static __always_inline int lb_icmp6_too_big(struct xdp_md *ctx, const struct lb_packet *p,
					    __u32 mtu)
{
	const __u32 icmp_len = SLUICE_ICMP_HLEN + LB_ICMP6_QUOTE;
	void *data, *data_end;
	__u8 *ip, *icmp;
	sl_u64 sum;

	if (lb_icmp_reshape(ctx, p, LB_ICMP6_QUOTE, SLUICE_IPV6_HLEN + SLUICE_ICMP_HLEN))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + (p->l3_off & 0x1f);
	icmp = ip + SLUICE_IPV6_HLEN;
	if ((void *)(icmp + icmp_len) > data_end)
		return -1;
	sluice_ipv6_write_hdr(ip, &p->key.dst, &p->key.src, icmp_len, 0, 0, SLUICE_ICMP_REPLY_TTL,
			      SLUICE_IPPROTO_ICMPV6);
	sluice_icmp6_write_packet_too_big(icmp, mtu);
	sum = sluice_csum_ipv6_pseudo(0, p->key.dst.bytes, p->key.src.bytes, icmp_len,
				      SLUICE_IPPROTO_ICMPV6);
	sum = sluice_csum_add_bytes(sum, icmp, icmp_len, icmp_len);
	sluice_put_be16(icmp + 2, sluice_csum_finish(sum));
	return 0;
}
