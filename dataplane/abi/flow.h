/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The flow key (IPv4/IPv6 5-tuple) and the one flow hash every fast path
 * and the control plane use to pick a flow-table bucket and a Maglev slot. */
#pragma once

#include "consts.h"
#include "types.h"

/* An IPv4 or IPv6 address, network order. IPv4 uses the first 4 bytes
 * (v4 / v6[0]); the other 12 bytes are zero. `bytes` comes first so that an
 * empty initialiser ({} in C++, {0} in C) zeroes all 16 bytes: only a
 * union's first member is initialised. */
union sluice_ip {
	sl_u8 bytes[16]; /* the 16 bytes, for byte-wise access */
	sl_be32 v4;      /* IPv4 address, network order */
	sl_be32 v6[4];   /* IPv6 address, network order */
};

/* A connection's 5-tuple as the client sent it (client -> VIP), 40 bytes.
 * For an ICMP error about a flow, the key of that flow (the embedded header,
 * reversed). For fragments, ports are 0 (they hash on addresses). Unused
 * bytes are zero so keys compare with memcmp. */
struct sluice_flow_key {
	union sluice_ip src; /* client address, network order */
	union sluice_ip dst; /* VIP address, network order */
	sl_be16 sport;       /* client port, network order; 0 if none */
	sl_be16 dport;       /* VIP port, network order; 0 if none */
	sl_u8 proto;         /* SLUICE_IPPROTO_TCP or _UDP (of the flow, also for ICMP errors) */
	sl_u8 family;        /* SLUICE_FAMILY_IPV4 or _IPV6 */
	sl_u8 pad[2];        /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_flow_key) == 40, "flow key is 40 bytes");

/*
 * The flow hash: MurmurHash3_x86_32 (Austin Appleby, public domain,
 * github.com/aappleby/smhasher) over the key's canonical byte string
 *
 *   IPv4: src(4) dst(4) sport(2) dport(2) proto(1)            = 13 bytes
 *   IPv6: src(16) dst(16) sport(2) dport(2) proto(1)          = 37 bytes
 *
 * all in network order, so the result is bit-identical on every
 * architecture and in BPF. 32-bit blocks are read little-endian, as the
 * reference implementation does on x86. The seed comes from the config:
 * instances with the same config make the same choices.
 */
#define SLUICE_MM3_C1 0xcc9e2d51u
#define SLUICE_MM3_C2 0x1b873593u

SLUICE_INLINE sl_u32 sluice_rotl32(sl_u32 x, int r) { return (x << r) | (x >> (32 - r)); }

/* One 4-byte block into the running state. */
SLUICE_INLINE sl_u32 sluice_mm3_block(sl_u32 h, sl_u32 k)
{
	k *= SLUICE_MM3_C1;
	k = sluice_rotl32(k, 15);
	k *= SLUICE_MM3_C2;
	h ^= k;
	h = sluice_rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

/* A tail of 1-3 bytes already packed little-endian into k. */
SLUICE_INLINE sl_u32 sluice_mm3_tail(sl_u32 h, sl_u32 k)
{
	k *= SLUICE_MM3_C1;
	k = sluice_rotl32(k, 15);
	k *= SLUICE_MM3_C2;
	return h ^ k;
}

/* MurmurHash3's finaliser (fmix32): a bijection that spreads every input
 * bit over every output bit. Also the hot-object cache's second hash. */
SLUICE_INLINE sl_u32 sluice_fmix32(sl_u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Finalisation: length in bytes, then fmix32 for full avalanche. */
SLUICE_INLINE sl_u32 sluice_mm3_final(sl_u32 h, sl_u32 len)
{
	return sluice_fmix32(h ^ len);
}

/* The address bytes that count for a family: 1 block (IPv4) or 4 (IPv6). */
SLUICE_INLINE sl_u32 sluice_mm3_addr(sl_u32 h, const union sluice_ip *a, sl_u8 family)
{
	h = sluice_mm3_block(h, sl_load_le32(&a->bytes[0]));
	if (family == SLUICE_FAMILY_IPV6) {
		h = sluice_mm3_block(h, sl_load_le32(&a->bytes[4]));
		h = sluice_mm3_block(h, sl_load_le32(&a->bytes[8]));
		h = sluice_mm3_block(h, sl_load_le32(&a->bytes[12]));
	}
	return h;
}

/* The flow hash of a 5-tuple (see above). 32 bits; the flow table takes its
 * bucket from it and Maglev takes hash % M. */
SLUICE_INLINE sl_u32 sluice_flow_hash(const struct sluice_flow_key *key, sl_u32 seed)
{
	const sl_u8 *ports = (const sl_u8 *)&key->sport;
	sl_u32 h = seed;

	h = sluice_mm3_addr(h, &key->src, key->family);
	h = sluice_mm3_addr(h, &key->dst, key->family);
	/* sport and dport are adjacent in the key: one block in wire order. */
	h = sluice_mm3_block(h, (sl_u32)ports[0] | ((sl_u32)ports[1] << 8) |
				     ((sl_u32)ports[2] << 16) | ((sl_u32)ports[3] << 24));
	h = sluice_mm3_tail(h, key->proto);
	return sluice_mm3_final(h, key->family == SLUICE_FAMILY_IPV6 ? 37 : 13);
}

/* The hash for VIPs that balance on the client address only (hash fields
 * "src"): MurmurHash3_x86_32 of the source address bytes (4 or 16). */
SLUICE_INLINE sl_u32 sluice_flow_hash_src(const struct sluice_flow_key *key, sl_u32 seed)
{
	sl_u32 h = sluice_mm3_addr(seed, &key->src, key->family);
	return sluice_mm3_final(h, key->family == SLUICE_FAMILY_IPV6 ? 16 : 4);
}

/* Seeds of the two hashes that place a backend in a Maglev table (offset
 * and skip, Eisenbud et al., NSDI '16, section 3.4). Fixed, so every
 * instance and every restart builds the same table from the same
 * addresses. */
#define SLUICE_MAGLEV_OFFSET_SEED 0x5A1CE001u
#define SLUICE_MAGLEV_SKIP_SEED 0x5A1CE002u

/* Hash of a backend address (4 or 16 bytes) for the Maglev permutation. */
SLUICE_INLINE sl_u32 sluice_addr_hash(const union sluice_ip *a, sl_u8 family, sl_u32 seed)
{
	sl_u32 h = sluice_mm3_addr(seed, a, family);
	return sluice_mm3_final(h, family == SLUICE_FAMILY_IPV6 ? 16 : 4);
}
