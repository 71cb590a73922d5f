/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Encapsulation of a VIP packet toward its backend in place: push the outer
 * header (bpf_xdp_adjust_head), keep the L2 header (VLAN tags included) in
 * front of it, re-address it to the next hop. The outer family is the
 * backend's: IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6, IPv6-in-IPv4. */
#pragma once

#include "encap.h"
#include "lb_parse.h"
#include "maps.h"
#include "sluice_lb.h"

/* Makes room for `outer_len` bytes after the L2 header, puts the L2 header
 * at the new front and points it at the next hop with the outer EtherType.
 * Returns 0 or a negative SLUICE_DROP_* reason. */
static __always_inline int lb_push_outer(struct xdp_md *ctx, const struct lb_packet *p,
					 const struct sluice_next_hop *nh, __u32 outer_len,
					 __u16 outer_proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct l2_saved saved;
	struct ethhdr *eth;

	/* Untagged (most frames): the new Ethernet header is all next hop and
	 * EtherType, written in place with nothing to keep from the old one. */
	if (p->ntags == 0) {
		if (bpf_xdp_adjust_head(ctx, -(int)outer_len))
			return -SLUICE_DROP_ENCAP_NO_ROOM;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return -SLUICE_DROP_TRUNCATED;
		__builtin_memcpy(eth->h_dest, nh->dst_mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, nh->src_mac, ETH_ALEN);
		eth->h_proto = bpf_htons(outer_proto);
		return 0;
	}
	if (l2_save(data, data_end, &saved))
		return -SLUICE_DROP_TRUNCATED;
	if (bpf_xdp_adjust_head(ctx, -(int)outer_len))
		return -SLUICE_DROP_ENCAP_NO_ROOM;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l2_store(data, data_end, p->ntags, &saved) ||
	    l2_set_proto(data, data_end, p->ntags, outer_proto))
		return -SLUICE_DROP_TRUNCATED;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -SLUICE_DROP_TRUNCATED;
	__builtin_memcpy(eth->h_dest, nh->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->src_mac, ETH_ALEN);
	return 0;
}

/* Encapsulates the parsed packet toward backend b with source and entropy
 * from cfg, as encap_frame (dataplane/core/encap.hpp) does, with the same
 * dataplane/abi/encap.h writers: Ethernet padding after the client's
 * packet cut; DSCP and ECN copied (RFC 6040 normal mode); TTL / hop limit
 * SLUICE_ENCAP_DEFAULT_TTL; outer IPv4 with the client's DF (RFC 2003 3.1)
 * and id 0 when DF is set (atomic, RFC 6864), else the client's id; outer
 * IPv6 with the flow hash as its flow label (RFC 6438). An IPv6 client
 * packet toward an IPv4 backend (which encap_frame refuses) goes with DF
 * and id 0. The caller has checked the MTU. Returns 0 or a negative
 * SLUICE_DROP_* reason. Only the low SLUICE_FLOW_VALUE_HASH_BITS bits of
 * `hash` are read (a flow-table hit knows no more of it). */
static __always_inline int lb_encap(struct xdp_md *ctx, const struct lb_packet *p,
				    const struct sluice_backend *b,
				    const struct sluice_encap_config *cfg,
				    const struct sluice_next_hop *nh, __u32 hash)
{
	int inner_v4 = p->key.family == SLUICE_FAMILY_IPV4;
	__u8 inner_proto = inner_v4 ? SLUICE_IPPROTO_IPIP : SLUICE_IPPROTO_IPV6;
	__u32 end = p->l3_off + p->ip_len;
	void *data, *data_end;
	__u8 *o;
	int ret;

	/* Cannot fail: the frame keeps at least its L2 and IP headers. */
	if (p->frame_len > end && bpf_xdp_adjust_tail(ctx, (int)end - (int)p->frame_len))
		return -SLUICE_DROP_ENCAP_NO_ROOM;

	if (b->family == SLUICE_FAMILY_IPV6) {
		union sluice_ip src;

		ret = lb_push_outer(ctx, p, nh, SLUICE_IPV6_HLEN, SLUICE_ETH_P_IPV6);
		if (ret)
			return ret;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		o = data + (p->l3_off & 0x1f);
		if ((void *)(o + SLUICE_IPV6_HLEN) > data_end)
			return -SLUICE_DROP_TRUNCATED;
		sluice_encap6_src(&src, &cfg->src_v6, cfg->entropy_bits, hash);
		sluice_ipv6_write_hdr(o, &src, &b->addr, (__u16)p->ip_len, p->tos, hash,
				      SLUICE_ENCAP_DEFAULT_TTL, inner_proto);
		return 0;
	}

	int df = !inner_v4 || (p->frag_off & SLUICE_IPV4_DF);

	ret = lb_push_outer(ctx, p, nh, SLUICE_IPV4_HLEN, SLUICE_ETH_P_IP);
	if (ret)
		return ret;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	o = data + (p->l3_off & 0x1f);
	if ((void *)(o + SLUICE_IPV4_HLEN) > data_end)
		return -SLUICE_DROP_TRUNCATED;
	sluice_ipv4_write_hdr(o, sluice_encap4_src(cfg->src_v4.v4, cfg->entropy_bits, hash),
			      b->addr.v4, (__u16)p->ip_len, p->tos, df ? 0 : p->ip_id, df,
			      SLUICE_ENCAP_DEFAULT_TTL, inner_proto);
	return 0;
}
