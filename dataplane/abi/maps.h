/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Key and value layouts of the tables a fast path reads (VIPs, backends,
 * Maglev tables, flows) as the control plane writes them. Every struct has
 * explicit padding so BPF, DPDK and C++ agree byte for byte. */
#pragma once

#include "flow.h"
#include "types.h"

/* A VIP as looked up from a packet: exact (addr, port, proto) first, then
 * the same with port 0 (every port). 24 bytes. */
struct sluice_vip_key {
	union sluice_ip addr; /* VIP address, network order */
	sl_be16 port;         /* VIP port, network order; 0 = every port */
	sl_u8 proto;          /* SLUICE_IPPROTO_TCP or _UDP */
	sl_u8 family;         /* SLUICE_FAMILY_IPV4 or _IPV6 */
	sl_u8 pad[4];         /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_vip_key) == 24, "vip key is 24 bytes");

/* sluice_vip_meta.flags */
#define SLUICE_VIP_HASH_SRC_ONLY (1u << 0) /* hash on the client address only */
#define SLUICE_VIP_CACHE (1u << 1)         /* hot-object cache on (memcached UDP) */
#define SLUICE_VIP_PANIC (1u << 2)         /* every backend failed: table spans all configured ones */
#define SLUICE_VIP_KEY_HASH (1u << 3)      /* hash UDP memcached requests on the key */

/* What a fast path needs to know about a VIP. 16 bytes. */
struct sluice_vip_meta {
	sl_u32 vip_id;     /* index of the VIP's stats and Maglev table, < SLUICE_MAX_VIPS */
	sl_u32 flags;      /* SLUICE_VIP_* */
	sl_u32 table_size; /* Maglev lookup table size M, entries (prime) */
	sl_u32 pad;        /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_vip_meta) == 16, "vip meta is 16 bytes");

/* The direct-mapped VIP table (sluice_vip_slots): a fast path finds a
 * packet's VIP with at most two array reads (exact port, then port 0) and
 * a compare instead of hash lookups, and traffic to no VIP passes after
 * them. A VIP sits in slot sluice_vip_slot_index(address, port, protocol)
 * of its key; when several VIPs share a slot, or while the control plane
 * rewrites it, the slot has SLUICE_VIP_SLOT_LOOKUP and packets that land
 * there look the VIP up in the VIP hash map, which always holds every VIP.
 * So a slot without that flag that holds another key (or none) proves that
 * the packet's (address, port, protocol) is no VIP. */
#define SLUICE_VIP_SLOTS 4096 /* slots, a power of two (8 per VIP at most) */

/* sluice_vip_slot.flags */
#define SLUICE_VIP_SLOT_LOOKUP (1u << 0) /* look the VIP up in the hash map */

/* One slot of the direct-mapped VIP table. 40 bytes. */
struct sluice_vip_slot {
	union sluice_ip addr;        /* VIP address, network order, unused bytes zero */
	sl_be16 port;                /* VIP port, network order; 0 = every port */
	sl_u8 proto;                 /* SLUICE_IPPROTO_TCP or _UDP */
	sl_u8 family;                /* SLUICE_FAMILY_IPV4 or _IPV6; 0: the slot holds no VIP */
	sl_u32 flags;                /* SLUICE_VIP_SLOT_* */
	struct sluice_vip_meta meta; /* the VIP's meta, as in the hash map */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_vip_slot) == 40, "vip slot is 40 bytes");

/* The slot of (address, port, protocol): the address words folded, mixed
 * with port and protocol, Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4) to
 * the top bits. Address and port network order; the same on every
 * architecture. */
SLUICE_INLINE sl_u32 sluice_vip_slot_index(const union sluice_ip *addr, sl_be16 port, sl_u8 proto)
{
	sl_u32 h = sl_load_le32(&addr->bytes[0]) ^ sl_load_le32(&addr->bytes[4]) ^
		   sl_load_le32(&addr->bytes[8]) ^ sl_load_le32(&addr->bytes[12]);

	h ^= (sl_u32)sl_ntohs(port) << 8 ^ proto;
	return (h * 0x9E3779B1u) >> 20; /* 12 bits: SLUICE_VIP_SLOTS */
}
SLUICE_STATIC_ASSERT(SLUICE_VIP_SLOTS == 1u << 12, "sluice_vip_slot_index gives 12 bits");

/* sluice_backend.flags */
#define SLUICE_BACKEND_VALID (1u << 0)    /* slot holds a configured backend */
#define SLUICE_BACKEND_DRAINING (1u << 1) /* weight 0: keeps its flows, gets no new ones */

/* A backend (real server) as a fast path sees it: where to encapsulate to.
 * Stored at slot id & (SLUICE_MAX_BACKENDS - 1); a flow entry that names an
 * id whose slot now holds another id (the backend was removed and the slot
 * reused) is a miss. 24 bytes. */
struct sluice_backend {
	union sluice_ip addr; /* backend address, network order */
	sl_u32 id;            /* backend id, unique for the daemon's lifetime */
	sl_u8 family;         /* SLUICE_FAMILY_IPV4 or _IPV6 */
	sl_u8 flags;          /* SLUICE_BACKEND_* */
	sl_u8 pad[2];         /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_backend) == 24, "backend is 24 bytes");

/* sluice_flow_value.state */
#define SLUICE_FLOW_PROBATION 0   /* one packet seen; may be evicted by a new flow */
#define SLUICE_FLOW_ESTABLISHED 1 /* two or more packets seen; evicted only when idle-expired */

/* A flow-table entry's value: the backend a flow is pinned to, and the low
 * SLUICE_FLOW_VALUE_HASH_BITS bits of the flow's hash, which are all the
 * outer header takes from it (up to 16 bits of source entropy, the 20-bit
 * IPv6 flow label): a flow-table hit computes no hash. 12 bytes. */
struct sluice_flow_value {
	sl_u32 backend_id; /* sluice_backend.id */
	sl_u32 last_seen;  /* time of the last packet, ms (wraps; compare by difference) */
	sl_u8 state;       /* SLUICE_FLOW_* */
	sl_u8 hash_hi;     /* flow hash bits 16-23 */
	sl_u16 hash_lo;    /* flow hash bits 0-15, host order */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_flow_value) == 12, "flow value is 12 bytes");

/* Bits of the flow hash a flow entry keeps. */
#define SLUICE_FLOW_VALUE_HASH_BITS 24

/* The kept bits of the flow hash (the hash & 0xFFFFFF). */
SLUICE_INLINE sl_u32 sluice_flow_value_hash(const struct sluice_flow_value *v)
{
	return (sl_u32)v->hash_hi << 16 | v->hash_lo;
}

SLUICE_INLINE void sluice_flow_value_set_hash(struct sluice_flow_value *v, sl_u32 flow_hash)
{
	v->hash_hi = (sl_u8)(flow_hash >> 16);
	v->hash_lo = (sl_u16)flow_hash;
}

/* A slot of the probation table (new flows, one packet seen): a
 * direct-mapped per-CPU array indexed by flow hash % slots, where a new
 * flow overwrites whatever flow held its slot and promotion empties it.
 * key.family 0: the slot is empty. 52 bytes. */
struct sluice_probation_slot {
	struct sluice_flow_key key;     /* the flow */
	struct sluice_flow_value value; /* its backend and first packet's time; state PROBATION */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_probation_slot) == 52, "probation slot is 52 bytes");

/* Outer headers of the encapsulation, per fast path instance. 40 bytes. */
struct sluice_encap_config {
	union sluice_ip src_v4;  /* outer IPv4 source, network order (v4 only) */
	union sluice_ip src_v6;  /* outer IPv6 source, network order */
	sl_u16 mtu;              /* largest outer packet, bytes (IP header included) */
	sl_u8 entropy_bits;      /* low bits of the outer source replaced by the flow hash (0-16) */
	sl_u8 pad[5];            /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_encap_config) == 40, "encap config is 40 bytes");
