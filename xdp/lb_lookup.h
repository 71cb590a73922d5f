/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* VIP lookup and the flow table: which backend a VIP packet goes to.
 *
 * Flow admission (flood-proof, DESIGN.md "Packet path" 3): a new flow's
 * first packet is entered only into its sluice_newflows slot (probation);
 * its second packet, if the slot still holds it, promotes it into
 * sluice_flows (established) and empties the slot. Established entries are
 * never displaced by new flows, so spoofed one-packet flows (a SYN flood)
 * only overwrite probation slots, and an established flow keeps its
 * backend even when the Maglev table changed meanwhile. A new flow whose
 * slot another one took before its second packet is placed by Maglev
 * again (the same backend unless the table changed in between).
 *
 * Semantics shared with the core's flow table: an entry whose backend was
 * removed (slot not VALID or holding another id) is a miss; a draining
 * backend keeps its flows; an entry idle longer than the protocol's timeout
 * is a miss. ICMP errors only read the table: they never create, promote or
 * refresh an entry. */
#pragma once

#include "lb_maglev.h"
#include "lb_parse.h"

/* lb_state.flow: how the backend was found. */
#define LB_FLOW_NONE 0 /* no flow-table lookup (not a VIP packet, or dropped before) */
#define LB_FLOW_HIT 1  /* an established or probation entry gave it */
#define LB_FLOW_MISS 2 /* Maglev gave it */

/* lb_state.vip_id / backend_slot before they are known. */
#define LB_NONE 0xffffffffu

/* Everything one packet's counters need, filled along the path and counted
 * at the single exit point. */
struct lb_state {
	struct lb_packet pkt;
	__u32 vip_id;       /* the VIP's id once found, else LB_NONE */
	__u32 backend_slot; /* the chosen backend's slot once found, else LB_NONE */
	__u8 flow;          /* LB_FLOW_* */
	__u8 new_flow;      /* Maglev placed a flow (not an ICMP error) */
	__u8 insert_failed; /* the flow could not be stored */
	__u8 icmp_sent;     /* the packet became a too-big reply to send back */
};

/* Finds the VIP of a flow in the hash map: exact (address, port,
 * protocol), then the same with port 0. Copies its meta to *out; returns
 * 0, or -1 if not a VIP. */
static __always_inline int lb_lookup_vip_hashed(const struct sluice_flow_key *key,
						struct sluice_vip_meta *out)
{
	struct sluice_vip_key vk = {};
	struct sluice_vip_meta *m;

	__builtin_memcpy(&vk.addr, &key->dst, sizeof(vk.addr));
	vk.port = key->dport;
	vk.proto = key->proto;
	vk.family = key->family;
	m = bpf_map_lookup_elem(&sluice_vips, &vk);
	if (!m && vk.port) {
		vk.port = 0;
		m = bpf_map_lookup_elem(&sluice_vips, &vk);
	}
	if (!m)
		return -1;
	*out = *m;
	return 0;
}

/* lb_probe_vip results. */
#define LB_VIP_FOUND 0
#define LB_VIP_NONE 1   /* (address, port, protocol) is no VIP */
#define LB_VIP_LOOKUP 2 /* the slot defers to the hash map */

/* Reads the direct-mapped slot of the flow's destination with `port`. */
static __always_inline int lb_probe_vip(const struct sluice_flow_key *key, __be16 port,
					struct sluice_vip_meta *out)
{
	__u32 idx = sluice_vip_slot_index(&key->dst, port, key->proto);
	struct sluice_vip_slot *s = bpf_map_lookup_elem(&sluice_vip_slots, &idx);

	if (!s)
		return LB_VIP_NONE;
	if (s->flags & SLUICE_VIP_SLOT_LOOKUP)
		return LB_VIP_LOOKUP;
	if (s->family != key->family || s->proto != key->proto || s->port != port ||
	    s->addr.v6[0] != key->dst.v6[0] || s->addr.v6[1] != key->dst.v6[1] ||
	    s->addr.v6[2] != key->dst.v6[2] || s->addr.v6[3] != key->dst.v6[3])
		return LB_VIP_NONE;
	*out = s->meta;
	return LB_VIP_FOUND;
}

/* Finds the VIP of a flow: exact (address, port, protocol), then the same
 * with port 0, through the direct-mapped slots, the hash map only where a
 * slot defers to it. Copies its meta to *out; returns 0, or -1 if not a
 * VIP. */
static __always_inline int lb_lookup_vip(const struct sluice_flow_key *key,
					 struct sluice_vip_meta *out)
{
	int r = lb_probe_vip(key, key->dport, out);

	if (r == LB_VIP_FOUND)
		return 0;
	/* An exact VIP may hide behind a deferring slot: the hash map decides
	 * both steps then. */
	if (r == LB_VIP_NONE && key->dport) {
		r = lb_probe_vip(key, 0, out);
		if (r == LB_VIP_FOUND)
			return 0;
	}
	if (r == LB_VIP_NONE)
		return -1;
	return lb_lookup_vip_hashed(key, out);
}

static __always_inline int lb_flow_expired(const struct sluice_flow_value *v, __u8 proto, __u32 now_ms)
{
	__u32 idle = proto == SLUICE_IPPROTO_TCP ? sluice_tcp_idle_ms : sluice_udp_idle_ms;

	/* Signed: an entry stamped by user space with a finer clock may be a
	 * tick ahead of now_ms, which must read as fresh, not as 49 days old. */
	return (__s32)(now_ms - v->last_seen) > (__s32)idle;
}

/* Whether two flow keys are equal (all 40 bytes; unused ones are zero). */
static __always_inline int lb_same_key(const struct sluice_flow_key *a,
				       const struct sluice_flow_key *b)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 4); i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

/* The one flow hash of a packet to `vip`: Maglev slot, probation entry and
 * outer-header entropy. */
static __always_inline __u32 lb_flow_hash(const struct sluice_flow_key *key,
					  const struct sluice_vip_meta *vip)
{
	if (vip->flags & SLUICE_VIP_HASH_SRC_ONLY)
		return sluice_flow_hash_src(key, sluice_hash_seed);
	return sluice_flow_hash(key, sluice_hash_seed);
}

/* Chooses the backend of a VIP packet (the flow table, then Maglev with the
 * packet's one flow hash) and records the flow as the admission rule above
 * says. The hash is computed only when the established table misses: a
 * hit takes the bits the outer header needs from the entry. Returns 0 with
 * *out and *hash (at least its low SLUICE_FLOW_VALUE_HASH_BITS bits)
 * filled, or -SLUICE_DROP_NO_BACKEND. */
static __always_inline int lb_select_backend(struct lb_state *st, const struct sluice_vip_meta *vip,
					     struct sluice_backend *out, __u32 *hash)
{
	const struct sluice_flow_key *key = &st->pkt.key;
	int update = !(st->pkt.flags & LB_PKT_ICMP_ERR);
	/* The coarse clock (one jiffy, 4 ms at HZ=250) is enough for idle
	 * timeouts of seconds and costs a fraction of bpf_ktime_get_ns, which
	 * measured 25-50 ns per VIP packet here (perf/XDP_RESULTS.md). */
	__u32 now = (__u32)(bpf_ktime_get_coarse_ns() / 1000000);
	struct sluice_probation_slot *ps;
	struct sluice_flow_value nv = {};
	struct sluice_flow_value *v;
	__u32 h, slot;

	v = bpf_map_lookup_elem(&sluice_flows, key);
	if (v && v->state == SLUICE_FLOW_ESTABLISHED && !lb_flow_expired(v, key->proto, now)) {
		if (lb_get_backend(v->backend_id, out) == 0) {
			st->flow = LB_FLOW_HIT;
			*hash = sluice_flow_value_hash(v);
			if (update)
				v->last_seen = now;
			return 0;
		}
		/* Its backend is gone: the flow moves to the VIP's current
		 * choice and, having shown two packets already, stays
		 * established. */
		h = lb_flow_hash(key, vip);
		*hash = h;
		if (lb_maglev_pick(vip, h, out))
			return -SLUICE_DROP_NO_BACKEND;
		st->flow = LB_FLOW_MISS;
		st->new_flow = (__u8)update;
		if (update) {
			v->backend_id = out->id;
			v->last_seen = now;
			sluice_flow_value_set_hash(v, h);
		}
		return 0;
	}

	h = lb_flow_hash(key, vip);
	*hash = h;
	slot = h % sluice_probation_slots;
	ps = bpf_map_lookup_elem(&sluice_newflows, &slot);
	if (!ps)
		return -SLUICE_DROP_NO_BACKEND; /* cannot happen: slot < max_entries */
	if (lb_same_key(&ps->key, key) && !lb_flow_expired(&ps->value, key->proto, now) &&
	    lb_get_backend(ps->value.backend_id, out) == 0) {
		st->flow = LB_FLOW_HIT;
		if (!update)
			return 0;
		nv.backend_id = out->id;
		nv.last_seen = now;
		nv.state = SLUICE_FLOW_ESTABLISHED;
		sluice_flow_value_set_hash(&nv, h);
		/* On failure the flow stays on probation and tries again. */
		if (bpf_map_update_elem(&sluice_flows, key, &nv, BPF_ANY))
			st->insert_failed = 1;
		else
			ps->key.family = 0;
		return 0;
	}

	if (lb_maglev_pick(vip, h, out))
		return -SLUICE_DROP_NO_BACKEND;
	st->flow = LB_FLOW_MISS;
	st->new_flow = (__u8)update;
	if (!update)
		return 0;
	ps->key = *key;
	ps->value.backend_id = out->id;
	ps->value.last_seen = now;
	ps->value.state = SLUICE_FLOW_PROBATION;
	sluice_flow_value_set_hash(&ps->value, h);
	return 0;
}
