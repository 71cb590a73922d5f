// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
/* The XDP load balancer: parse, VIP lookup, flow table, Maglev, encapsulate
 * toward the backend, XDP_TX to the next hop (XDP_REDIRECT when it is behind
 * another interface); non-VIP traffic passes to the kernel untouched. Every
 * packet is counted once, at lb_account. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "cache.bpf.h"
#include "lb_encap.h"
#include "lb_icmp.h"
#include "lb_lookup.h"
#include "lb_maps.h"
#include "lb_parse.h"

/* A packet over the MTU once encapsulated: a too-big reply to the client
 * where build_icmp_too_big (dataplane/core/icmp_too_big.hpp) would send
 * one, by the same abi predicates; otherwise a silent drop (XDP cannot
 * fragment). Never about an ICMP error (RFC 1122 3.2.2). Returns the drop
 * reason sluice_too_big_reason gives (TOO_BIG_DF_CLEAR for IPv4 without
 * DF, never answered, else TOO_BIG); st->icmp_sent says whether a reply
 * goes out. */
static __always_inline int lb_too_big(struct xdp_md *ctx, struct lb_state *st, __u32 next_mtu)
{
	const struct lb_packet *p = &st->pkt;
	int reason = sluice_too_big_reason(p->key.family, p->frag_off);
	int ret;

	if ((p->flags & LB_PKT_ICMP_ERR) || reason != SLUICE_DROP_TOO_BIG)
		return -reason;
	if (p->key.family == SLUICE_FAMILY_IPV4) {
		if (!sluice_icmp4_reply_allowed(p->frag_off, p->key.src.v4, p->key.dst.v4,
						p->l2_dst0))
			return -reason;
		ret = lb_icmp4_too_big(ctx, p, sluice_icmp4_mtu(next_mtu));
	} else {
		/* A group destination MAC would be the reply's source MAC
		 * (as for IPv4; dataplane/core/icmp_too_big.cpp says more). */
		if ((p->flags & LB_PKT_LATER_FRAG) || (p->l2_dst0 & 1) ||
		    !sluice_icmp6_reply_allowed(&p->key.src))
			return -reason;
		ret = lb_icmp6_too_big(ctx, p, sluice_icmp6_mtu(next_mtu));
	}
	st->icmp_sent = ret == 0;
	return -reason;
}

static __always_inline int lb_mac_set(const __u8 *mac)
{
	return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) != 0;
}

/* The next hop toward backend b: its own (resolved for its id), else the
 * static one; NULL when neither is set (struct sluice_next_hop). */
static __always_inline const struct sluice_next_hop *lb_next_hop(const struct sluice_backend *b)
{
	__u32 slot = b->id & (SLUICE_MAX_BACKENDS - 1);
	struct sluice_backend_hop *bh = bpf_map_lookup_elem(&sluice_backend_hops, &slot);
	struct sluice_next_hop *nh;
	__u32 zero = 0;

	if (bh && bh->backend_id == b->id && lb_mac_set(bh->hop.dst_mac))
		return &bh->hop;
	nh = bpf_map_lookup_elem(&sluice_next_hop, &zero);
	if (nh && lb_mac_set(nh->dst_mac))
		return nh;
	return NULL;
}

/* Sends a VIP packet to backend b: MTU check, encapsulation, next hop. */
static __always_inline int lb_forward(struct xdp_md *ctx, struct lb_state *st,
				      const struct sluice_backend *b, __u32 hash)
{
	__u32 zero = 0;
	struct sluice_encap_config *cfg = bpf_map_lookup_elem(&sluice_encap, &zero);
	__u32 outer_len = b->family == SLUICE_FAMILY_IPV6 ? SLUICE_IPV6_HLEN : SLUICE_IPV4_HLEN;
	const struct sluice_next_hop *nh;
	__u32 mtu;
	int ret;

	if (!cfg)
		return -SLUICE_DROP_TX_FAILED;
	/* MTU 0 means "no limit beyond what the outer length field holds". */
	mtu = cfg->mtu ? cfg->mtu : 0xffff;
	if (st->pkt.ip_len + outer_len > mtu)
		return lb_too_big(ctx, st, mtu > outer_len ? mtu - outer_len : 0);
	nh = lb_next_hop(b);
	if (!nh)
		return -SLUICE_DROP_TX_FAILED;
	ret = lb_encap(ctx, &st->pkt, b, cfg, nh, hash);
	if (ret < 0)
		return ret;
	if (!nh->ifindex)
		return XDP_TX;
	/* flags 0: a missing entry returns XDP_ABORTED, counted here instead. */
	if (bpf_redirect_map(&sluice_tx_ports, nh->ifindex, 0) != XDP_REDIRECT)
		return -SLUICE_DROP_TX_FAILED;
	return XDP_REDIRECT;
}

/* The packet path. Returns an XDP action or a negative SLUICE_DROP_*. */
static __always_inline int lb_process(struct xdp_md *ctx, struct lb_state *st)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct lb_mc_route route = {};
	struct sluice_vip_meta vip;
	struct sluice_backend b;
	__u32 hash;
	int ret;

	ret = lb_parse(data, data_end, &st->pkt);
	if (ret != LB_PARSE_FLOW)
		return ret == LB_PARSE_PASS ? XDP_PASS : ret;
	if (st->pkt.flags & LB_PKT_FRAGMENT) {
		ret = lb_lookup_frag_vip(st, &vip);
		if (ret == -SLUICE_DROP_FRAG_OF_DROPPED) {
			st->vip_id = vip.vip_id;
			return ret;
		}
	} else {
		ret = lb_lookup_vip(&st->pkt.key, &vip);
	}
	if (ret)
		return XDP_PASS;
	st->vip_id = vip.vip_id;
	if (vip.flags & (SLUICE_VIP_CACHE | SLUICE_VIP_KEY_HASH)) {
		ret = lb_cache(ctx, st, vip.flags, &route);
		if (ret)
			return ret;
	}
	if (route.keyed && (vip.flags & SLUICE_VIP_KEY_HASH))
		ret = lb_select_by_key(&vip, route.key_hash, &b, &hash);
	else
		ret = lb_select_backend(st, &vip, &b, &hash);
	if (ret < 0)
		return ret;
	st->backend_slot = b.id & (SLUICE_MAX_BACKENDS - 1);
	return lb_forward(ctx, st, &b, hash);
}

/* The single exit point: counts the packet and turns a drop reason into
 * its XDP action. */
static __always_inline int lb_account(const struct lb_state *st, int ret)
{
	const struct lb_packet *p = &st->pkt;
	struct sluice_global_stats *g;
	struct sluice_backend_stats *bs;
	struct sluice_vip_stats *vs;
	__u32 zero = 0;
	__u32 key;

	g = bpf_map_lookup_elem(&sluice_stats, &zero);
	if (g) {
		g->rx_packets++;
		g->rx_bytes += p->frame_len;
		if (ret < 0) {
			__u32 reason = (__u32)-ret;

			if (reason < SLUICE_DROP_MAX)
				g->drops[reason]++;
		} else if (ret == XDP_PASS) {
			g->pass_packets++;
		} else {
			g->tx_packets++;
		}
		if (st->flow == LB_FLOW_HIT)
			g->flow_hits++;
		else if (st->flow == LB_FLOW_MISS)
			g->flow_misses++;
		g->flow_insert_failed += st->insert_failed;
		g->icmp_too_big_sent += st->icmp_sent;
		g->frag_unmatched += st->frag_unmatched;
	}
	if (st->vip_id != LB_NONE) {
		key = st->vip_id;
		vs = bpf_map_lookup_elem(&sluice_vipstats, &key);
		if (vs) {
			if (ret < 0) {
				vs->drops++;
			} else {
				vs->packets++;
				vs->bytes += p->frame_len;
			}
			vs->new_flows += st->new_flow;
		}
	}
	if (st->backend_slot != LB_NONE && ret >= 0) {
		key = st->backend_slot;
		bs = bpf_map_lookup_elem(&sluice_bkstats, &key);
		if (bs) {
			bs->packets++;
			bs->bytes += p->frame_len;
			bs->new_flows += st->new_flow;
		}
	}
	if (ret >= 0)
		return ret;
	return st->icmp_sent ? XDP_TX : XDP_DROP;
}

SEC("xdp")
int sluice_lb(struct xdp_md *ctx)
{
	struct lb_state st = {
		.vip_id = LB_NONE,
		.backend_slot = LB_NONE,
	};
	int ret = lb_process(ctx, &st);

	/* Its later fragments would be half a datagram: they are dropped too
	 * (SLUICE_DROP_FRAG_OF_DROPPED). */
	if (ret < 0 && st.frag_recorded)
		lb_frag_mark_dropped(&st.pkt);
	return lb_account(&st, ret);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
