/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The load balancer's maps and load-time constants. Sizes here are
 * defaults; the loader sets them from the config between open and load. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "sluice_lb.h"
#include "stats.h"

/* Default capacities of the flow maps: sluice_flows in entries over all
 * CPUs (the loader sets flows-per-core x possible CPUs; each CPU gets an
 * equal share and evicts only from it), sluice_newflows in slots per CPU
 * (the loader sets max_entries to that x possible CPUs). */
#define LB_DEFAULT_FLOWS 65536
#define LB_DEFAULT_NEW_FLOWS 16384

/* Load-time constants (rodata): set by the loader before load; the
 * verifier then prunes on them. */
const volatile __u32 sluice_hash_seed = 0;                /* seed of the flow hash (config) */
const volatile __u32 sluice_tcp_idle_ms = 300 * 1000;     /* TCP flow entries expire after this, ms */
const volatile __u32 sluice_udp_idle_ms = 30 * 1000;      /* UDP flow entries expire after this, ms */
const volatile __u32 sluice_probation_slots = LB_DEFAULT_NEW_FLOWS; /* sluice_newflows slots per CPU */
/* How long a sluice_flow_cache slot answers before its flow's packet goes
 * to sluice_flows again, jiffies; 0 turns the cache off. The loader sets
 * SLUICE_FLOW_CACHE_JIFFIES, or 0 when an idle timeout is under
 * SLUICE_FLOW_CACHE_MIN_IDLE_MS (sluice_lb.h). */
const volatile __u32 sluice_flow_cache_jiffies = SLUICE_FLOW_CACHE_JIFFIES;

/* VIPs: exact (addr, port, proto) and port-0 wildcards. A hash map, so an
 * update replaces a whole element: no packet sees half a VIP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_VIPS);
	__type(key, struct sluice_vip_key);
	__type(value, struct sluice_vip_meta);
} sluice_vips SEC(".maps");

/* The direct-mapped VIP table (dataplane/abi/maps.h): what a packet reads
 * first; sluice_vips only behind a slot marked SLUICE_VIP_SLOT_LOOKUP. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_VIP_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_vip_slot);
} sluice_vip_slots SEC(".maps");

/* Backends at slot id & (SLUICE_MAX_BACKENDS - 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sluice_backend);
} sluice_backends SEC(".maps");

/* One VIP's Maglev lookup table: slot -> backend id (SLUICE_BACKEND_NONE
 * for an empty slot). BPF_F_INNER_MAP lets each VIP's table have its own
 * size M (sluice_vip_meta.table_size). */
struct sluice_maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, SLUICE_MAGLEV_MIN_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

/* Maglev tables by vip_id. A table is never written while packets can see
 * it: the control plane fills a new inner map, then swaps it in with one
 * update of this outer slot (an atomic pointer exchange; the kernel frees
 * the old table after the packets still reading it are done, RCU). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SLUICE_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct sluice_maglev_table);
} sluice_maglev SEC(".maps");

/* Established flows (two or more packets): one hash table shared by all
 * CPUs, so a flow whose packets come to several CPUs finds its entry on
 * each; one value per key. BPF_F_NO_COMMON_LRU gives each CPU its own LRU
 * list holding max_entries / CPUs of the entries, those it inserted, so a
 * CPU evicts only its own entries. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, LB_DEFAULT_FLOWS);
	__type(key, struct sluice_flow_key);
	__type(value, struct sluice_flow_value);
} sluice_flows SEC(".maps");

/* New flows on probation (one packet seen): each CPU owns a run of
 * sluice_probation_slots slots, CPU c's slot i at index
 * c * sluice_probation_slots + i, i = flow hash % sluice_probation_slots
 * (struct sluice_probation_slot); only CPU c's program writes its run. A
 * flood of one-packet flows (spoofed SYNs) only overwrites these slots and
 * can never evict an established flow from sluice_flows. A slot write costs
 * one cache line; an LRU insert (lock, free list, hash insert, eviction)
 * cost hundreds of ns. A plain array rather than a PERCPU_ARRAY: a per-CPU
 * slot lives in the per-CPU allocator's chunks, and reading it from a
 * table of 2^18 slots cost ~130 ns more per new flow than this contiguous
 * run (perf/RESULTS.md, "XDP fast path"). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_DEFAULT_NEW_FLOWS);
	__type(key, __u32);
	__type(value, struct sluice_probation_slot);
} sluice_newflows SEC(".maps");

/* Bound of the walk over every CPU's sluice_flow_cache slot (the kernel's
 * largest NR_CPUS); the walk stops at the last possible CPU. */
#define LB_MAX_CPUS 8192

/* Slots of sluice_flow_cache per CPU: 2^LB_FLOW_CACHE_BITS. */
#define LB_FLOW_CACHE_BITS 10
#define LB_FLOW_CACHE_SLOTS (1u << LB_FLOW_CACHE_BITS)

/* A slot of sluice_flow_cache: an established flow as this CPU last read
 * it from sluice_flows. BPF-private (user space never reads it). key.family
 * 0: empty. 64 bytes, one cache line. */
struct lb_flow_cache_slot {
	struct sluice_flow_key key;     /* the flow */
	struct sluice_flow_value value; /* backend and flow-hash bits, as sluice_flows held them */
	__u32 pad;                      /* zero */
	__u64 synced;                   /* jiffies when this CPU last refreshed the sluice_flows entry */
};

/* A per-CPU, direct-mapped cache in front of sluice_flows: an established
 * flow's packets find their backend here with an inlined array read and
 * no clock helper, and refresh the shared entry (last_seen, LRU recency)
 * only once per sluice_flow_cache_jiffies. lb_lookup.h says why that keeps
 * the shared table's semantics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_flow_cache_slot);
} sluice_flow_cache SEC(".maps");

/* Entries of sluice_frags: datagrams whose later fragments may still come.
 * A datagram's fragments arrive within microseconds to a few ms of each
 * other, so this many covers that many fragmented datagrams in flight at
 * once (56 bytes each with the LRU's overhead aside: under 1 MB). */
#define LB_FRAG_ENTRIES 16384

/* A fragmented datagram: its addresses, protocol and IP identification
 * (IPv4's 16 bits, the IPv6 fragment header's 32), the key of sluice_frags. */
struct lb_frag_key {
	union sluice_ip src;
	union sluice_ip dst;
	__u32 id;    /* host order */
	__u8 family; /* SLUICE_FAMILY_* */
	__u8 proto;  /* the protocol every fragment names (lb_packet.frag_proto): IPv4's
		      * protocol, the IPv6 fragment header's next header */
	__u8 pad[2]; /* zero */
};

/* lb_frag_value.flags */
#define LB_FRAG_DROPPED 0x01 /* the first fragment was dropped: drop the rest */

/* Which VIP a datagram's first fragment found: later fragments carry no
 * ports, so they find the VIP again by this port. */
struct lb_frag_value {
	__u32 vip_id; /* the VIP's id when the first fragment came */
	__be16 port;  /* the first fragment's destination port */
	__u8 flags;   /* LB_FRAG_* */
	__u8 proto;   /* the first fragment's upper-layer protocol (TCP or UDP): a later
		       * fragment may not show it (after IPv6 destination options) */
};

/* The first fragment of each datagram to a VIP (one with a port), so its
 * later fragments, which carry no ports, reach the same VIP and, by the
 * address-only hash, the same backend. One LRU table shared by all CPUs:
 * fragments of one datagram may arrive on different CPUs (veth runs XDP on
 * the sender's CPU, and RSS hashes fragments on addresses only on some
 * NICs and on ports where it can see them on others). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_FRAG_ENTRIES);
	__type(key, struct lb_frag_key);
	__type(value, struct lb_frag_value);
} sluice_frags SEC(".maps");

/* The outer-header config, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_encap_config);
} sluice_encap SEC(".maps");

/* The static next hop, one entry: the fallback of a backend without its
 * own (struct sluice_next_hop says when). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_next_hop);
} sluice_next_hop SEC(".maps");

/* Each backend's own next hop, at its backend slot (struct
 * sluice_backend_hop). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sluice_backend_hop);
} sluice_backend_hops SEC(".maps");

/* Egress interfaces other than the receiving one, for XDP_REDIRECT: key
 * and value are the ifindex. A hash devmap because ifindexes are sparse
 * (an array devmap would need max_entries above the largest ifindex). The
 * loader writes an interface here before any next hop names it. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, SLUICE_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} sluice_tx_ports SEC(".maps");

/* Global counters, per CPU, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_global_stats);
} sluice_stats SEC(".maps");

/* Counters by vip_id, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct sluice_vip_stats);
} sluice_vipstats SEC(".maps");

/* Counters by backend slot, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sluice_backend_stats);
} sluice_bkstats SEC(".maps");
