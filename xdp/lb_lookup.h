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
 * refresh an entry. A TCP SYN (without ACK) never follows an established
 * entry: clients reuse ports (Linux cycles its ephemeral range within a few
 * thousand connections to one VIP, well inside the idle timeout), and a new
 * connection is placed by the VIP's current table, which also keeps it off
 * a draining backend.
 *
 * sluice_flows is one table shared by all CPUs: a flow's packets are not
 * bound to one CPU (veth runs XDP on the sending CPU; a NIC's RSS can be
 * reprogrammed), and a flow must find its entry on whichever CPU it comes
 * to, or a table change meanwhile re-places it and resets it.
 *
 * In front of it each CPU keeps a direct-mapped cache (sluice_flow_cache):
 * a packet that may follow an established entry (neither a SYN nor an ICMP
 * error) first reads its slot, an inlined array read with no helper call.
 * A slot answers only for sluice_flow_cache_jiffies after this CPU found
 * the flow in sluice_flows and refreshed it there, so the shared entry's
 * last_seen and LRU recency lag the flow by less than that, and a flow idle
 * past its timeout (at least a second whenever the cache is on) has no
 * slot that answers. The slot's backend is the shared entry's, checked like
 * it (a removed backend is a miss and goes to sluice_flows). The one write
 * that changes a live entry's backend for a flow whose packets still come,
 * a SYN re-placing a reused 4-tuple, empties that flow's slot on every CPU
 * before the SYN is sent on, so no packet of the new connection (which
 * follows the SYN) reads the old backend. What the cache cannot see: an
 * established entry the LRU evicted (a table past capacity) may still be
 * served from a slot for one sync interval, where without the cache that
 * flow would be placed again at once. */
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
	__u8 frag_unmatched; /* a later fragment no VIP claimed (lb_lookup_frag_vip) */
	__u8 frag_recorded;  /* a first fragment left its record in sluice_frags */
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

/* The sluice_frags key of a fragment's datagram. */
static __always_inline void lb_frag_key_of(const struct lb_packet *p, struct lb_frag_key *fk)
{
	__builtin_memcpy(&fk->src, &p->key.src, sizeof(fk->src));
	__builtin_memcpy(&fk->dst, &p->key.dst, sizeof(fk->dst));
	fk->id = p->frag_id;
	fk->family = p->key.family;
	fk->proto = p->frag_proto;
}

/* Marks the record of a dropped first fragment's datagram, so that its
 * later fragments are dropped too instead of forwarded as half a datagram
 * the backend can never reassemble. */
static __always_inline void lb_frag_mark_dropped(const struct lb_packet *p)
{
	struct lb_frag_key fk = {};
	struct lb_frag_value *v;

	lb_frag_key_of(p, &fk);
	v = bpf_map_lookup_elem(&sluice_frags, &fk);
	if (v)
		v->flags |= LB_FRAG_DROPPED;
}

/* A fragment found its VIP `vip` with `port` (its first fragment's
 * destination port): if that VIP is a port VIP, not the port-0 wildcard of
 * the address, the port goes into the fragment's flow key (dport; sport
 * stays 0). Fragments carry no ports of their own, so without it the
 * fragments of every VIP on one address and protocol share one flow key,
 * and the flow-table entry one VIP's datagrams made would send another
 * VIP's datagrams to the first one's backend. A wildcard VIP's fragments
 * keep ports 0: addresses only, as the core and the DPDK path hash them. */
static __always_inline void lb_frag_key_port(struct lb_state *st, __be16 port,
					     const struct sluice_vip_meta *vip)
{
	struct sluice_vip_meta wildcard;

	if (!port)
		return;
	/* The key still has ports 0: this looks up the wildcard. */
	if (lb_lookup_vip(&st->pkt.key, &wildcard) == 0 && wildcard.vip_id == vip->vip_id)
		return;
	st->pkt.key.dport = port;
}

/* The VIP of a fragment, whose key has ports 0 so that every fragment of a
 * datagram meets the same backend (DESIGN.md); a port VIP's fragments then
 * get its port back in the key (lb_frag_key_port). A first fragment finds its
 * VIP by its own destination port, as an unfragmented packet does, and
 * records that port in sluice_frags under its datagram (addresses,
 * protocol, IP id; st->frag_recorded = 1). A later fragment takes its
 * first fragment's record first, and the port-0 wildcard VIP of its
 * address only when there is no record: where an address has both a port
 * VIP and a wildcard, the wildcard first would send the first fragment to
 * the port VIP's backend and the rest to the wildcard's, splitting the
 * datagram. Returns 0 with *out; -SLUICE_DROP_FRAG_OF_DROPPED with *out
 * for a later fragment whose first was dropped (lb_frag_mark_dropped); or
 * -1 (pass): not a VIP's, or a later fragment without a usable record and
 * no wildcard (first not seen: out of order, evicted, or not a VIP's
 * datagram; or its VIP gone since; st->frag_unmatched = 1 counts it). */
static __always_inline int lb_lookup_frag_vip(struct lb_state *st, struct sluice_vip_meta *out)
{
	const struct lb_packet *p = &st->pkt;
	struct sluice_flow_key k = p->key;
	struct lb_frag_key fk = {};
	struct lb_frag_value fv = {};
	struct lb_frag_value *seen;

	lb_frag_key_of(p, &fk);
	if (!(p->flags & LB_PKT_LATER_FRAG)) {
		k.dport = p->frag_dport;
		/* Nothing to record (no VIP, or no port): an older datagram's
		 * record with this key must not send this one's later
		 * fragments to its VIP. */
		if (lb_lookup_vip(&k, out)) {
			bpf_map_delete_elem(&sluice_frags, &fk);
			return -1;
		}
		if (!k.dport) {
			bpf_map_delete_elem(&sluice_frags, &fk);
			return 0;
		}
		fv.vip_id = out->vip_id;
		fv.port = k.dport;
		fv.proto = k.proto;
		st->frag_recorded = bpf_map_update_elem(&sluice_frags, &fk, &fv, BPF_ANY) == 0;
		lb_frag_key_port(st, k.dport, out);
		return 0;
	}
	seen = bpf_map_lookup_elem(&sluice_frags, &fk);
	if (!seen) {
		if (lb_lookup_vip(&k, out) == 0)
			return 0;
		st->frag_unmatched = 1;
		return -1;
	}
	k.dport = seen->port;
	/* The first fragment's protocol, which a later IPv6 fragment behind
	 * destination options does not show; its flow key gets it too, so it
	 * hashes as its first fragment did. */
	k.proto = seen->proto;
	st->pkt.key.proto = seen->proto;
	/* The VIP may have gone, or its key been given to another, since. */
	if (lb_lookup_vip(&k, out) || out->vip_id != seen->vip_id) {
		st->frag_unmatched = 1;
		return -1;
	}
	if (seen->flags & LB_FRAG_DROPPED)
		return -SLUICE_DROP_FRAG_OF_DROPPED;
	lb_frag_key_port(st, k.dport, out);
	return 0;
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

/* The sluice_flow_cache slot of a flow: its key's words folded and
 * multiplied (Knuth's multiplicative hash, TAOCP 6.4), cheaper than the
 * flow hash, which a hit must not pay for. A collision only costs a miss. */
static __always_inline __u32 lb_flow_cache_index(const struct sluice_flow_key *key)
{
	const __u32 *w = (const __u32 *)key;
	__u32 x = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*key) / 4); i++)
		x ^= w[i];
	return (x * 0x9e3779b1u) >> (32 - LB_FLOW_CACHE_BITS);
}

/* What lb_flow_cache_drop_cpu needs: the flow and its slot. */
struct lb_flow_cache_drop {
	struct sluice_flow_key key;
	__u32 idx;
};

/* bpf_loop callback: empties CPU `cpu`'s slot if it holds the flow; stops
 * past the last possible CPU (the lookup fails there). */
static long lb_flow_cache_drop_cpu(__u32 cpu, void *data)
{
	struct lb_flow_cache_drop *d = data;
	struct lb_flow_cache_slot *s = bpf_map_lookup_percpu_elem(&sluice_flow_cache, &d->idx, cpu);

	if (!s)
		return 1;
	if (lb_same_key(&s->key, &d->key))
		s->key.family = 0;
	return 0;
}

/* Empties the flow's cache slot on every CPU. */
static __always_inline void lb_flow_cache_drop_all(const struct sluice_flow_key *key)
{
	struct lb_flow_cache_drop d = {.key = *key, .idx = lb_flow_cache_index(key)};

	bpf_loop(LB_MAX_CPUS, lb_flow_cache_drop_cpu, &d, 0);
}

/* Remembers an established flow in this CPU's slot c at jiffies `j`,
 * unless the slot still answers for another flow: two busy flows sharing
 * a slot then leave one of them in the shared table instead of both
 * rewriting the slot on every packet. */
static __always_inline void lb_flow_cache_fill(struct lb_flow_cache_slot *c,
					       const struct sluice_flow_key *key,
					       const struct sluice_flow_value *v, __u64 j)
{
	if (j - c->synced < sluice_flow_cache_jiffies && !lb_same_key(&c->key, key))
		return;
	c->key = *key;
	c->value = *v;
	c->synced = j;
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
	struct lb_flow_cache_slot *c = NULL;
	struct sluice_probation_slot *ps;
	struct sluice_flow_value nv = {};
	struct sluice_flow_value *v;
	__u64 jiffies = 0;
	__u32 now, h, slot;

	if (sluice_flow_cache_jiffies && !(st->pkt.flags & (LB_PKT_SYN | LB_PKT_ICMP_ERR))) {
		slot = lb_flow_cache_index(key);
		c = bpf_map_lookup_elem(&sluice_flow_cache, &slot);
		/* Inlined by the verifier: a load, not a helper call. */
		jiffies = bpf_jiffies64();
		if (c && jiffies - c->synced < sluice_flow_cache_jiffies &&
		    lb_same_key(&c->key, key) && lb_get_backend(c->value.backend_id, out) == 0) {
			st->flow = LB_FLOW_HIT;
			*hash = sluice_flow_value_hash(&c->value);
			return 0;
		}
	}

	/* The coarse clock (one jiffy, 4 ms at HZ=250) is enough for idle
	 * timeouts of seconds and costs a fraction of bpf_ktime_get_ns, which
	 * measured 25-50 ns per VIP packet here (perf/RESULTS.md, XDP). */
	now = (__u32)(bpf_ktime_get_coarse_ns() / 1000000);
	v = bpf_map_lookup_elem(&sluice_flows, key);
	if (v && v->state == SLUICE_FLOW_ESTABLISHED && !lb_flow_expired(v, key->proto, now)) {
		/* A SYN starts a new connection: an entry under its 4-tuple is
		 * an old one's whose client port was reused, and must not send
		 * it to that connection's backend (perhaps draining). */
		if (!(st->pkt.flags & LB_PKT_SYN) && lb_get_backend(v->backend_id, out) == 0) {
			st->flow = LB_FLOW_HIT;
			*hash = sluice_flow_value_hash(v);
			if (update) {
				/* Only a flow seen in this ms already is worth a
				 * slot: one whose packets are further apart gains
				 * little, and would evict a busier flow. */
				if (c && v->last_seen == now)
					lb_flow_cache_fill(c, key, v, jiffies);
				v->last_seen = now;
			}
			return 0;
		}
		/* Its backend is gone, or a new connection reuses the tuple:
		 * the flow moves to the VIP's current choice and stays
		 * established (overwritten in place: a SYN never inserts). A
		 * SYN's new backend must reach every CPU's next packet of the
		 * flow: their cached slots go first. (A gone backend needs no
		 * such step: every slot naming it already misses.) */
		if (sluice_flow_cache_jiffies && update && (st->pkt.flags & LB_PKT_SYN))
			lb_flow_cache_drop_all(key);
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
	/* This CPU's run of slots (lb_maps.h); the loader sizes the map for
	 * every possible CPU, and the array lookup bounds the index anyway. */
	slot = bpf_get_smp_processor_id() * sluice_probation_slots + h % sluice_probation_slots;
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
		if (bpf_map_update_elem(&sluice_flows, key, &nv, BPF_ANY)) {
			st->insert_failed = 1;
		} else {
			ps->key.family = 0;
			if (c && ps->value.last_seen == now)
				lb_flow_cache_fill(c, key, &nv, jiffies);
		}
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
