/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The hot-object cache as every fast path and the control plane share it:
 * the memcached key hash, the count-min sketch layout and its indices, the
 * per-key version slots and the XDP cache maps' key and value layouts. */
#pragma once

#include "consts.h"
#include "flow.h"
#include "types.h"

/* memcached's longest key, bytes (KEY_MAX_LENGTH in memcached.h). */
#define SLUICE_CACHE_KEY_MAX 250
/* Room kept for a key in the layouts below, bytes (a multiple of 8). */
#define SLUICE_CACHE_KEY_ROOM 256
/* Largest cached value (the data block), bytes: what fits one UDP datagram
 * at a 1,500-byte MTU with the response's headers around it. */
#define SLUICE_CACHE_VALUE_MAX 1024
/* The 8-byte frame header that starts every memcached UDP datagram
 * (memcached doc/protocol.txt, "UDP protocol"): request id, sequence
 * number, total datagrams, reserved; all 16-bit, network order. */
#define SLUICE_MC_UDP_HDR_LEN 8

/*
 * The key hash: FNV-1a 32 (Fowler, Noll, Vo; the parameters of
 * draft-eastlake-fnv) over the key bytes, with the seed XORed into the
 * offset basis. Byte at a time, so it is the same on every architecture and
 * in BPF, where the loop runs at most SLUICE_CACHE_KEY_MAX times over a
 * buffer of at least that many bytes.
 */
#define SLUICE_FNV32_BASIS 0x811c9dc5u
#define SLUICE_FNV32_PRIME 0x01000193u

SLUICE_INLINE sl_u32 sluice_cache_key_hash(const sl_u8 *key, sl_u32 len, sl_u32 seed)
{
	sl_u32 h = SLUICE_FNV32_BASIS ^ seed;
	sl_u32 i;

	for (i = 0; i < SLUICE_CACHE_KEY_MAX; i++) {
		if (i >= len)
			break;
		h = (h ^ key[i]) * SLUICE_FNV32_PRIME;
	}
	return h;
}

/*
 * Key-affinity routing (a VIP with SLUICE_VIP_KEY_HASH in dataplane/abi/
 * maps.h): a UDP request that names one key is placed by this hash in the
 * VIP's Maglev table, table[hash % M], instead of by its flow hash, so every
 * request for a key meets the pool's shard that owns it. key_hash is
 * sluice_cache_key_hash(key, len, 0), which the fast path computes anyway;
 * seed is the flow hash's (the config's hash_seed). fmix32 spreads FNV-1a's
 * weakly mixed high bits before the modulo.
 */
SLUICE_INLINE sl_u32 sluice_key_route_hash(sl_u32 key_hash, sl_u32 seed)
{
	return sluice_fmix32(key_hash ^ seed);
}

/* h and sluice_fmix32(h) (flow.h; a bijection that spreads every input
 * bit over the output) act as two hashes. */
SLUICE_INLINE sl_u32 sluice_cache_mix(sl_u32 h)
{
	return sluice_fmix32(h);
}

/*
 * The count-min sketch of misses (Cormode and Muthukrishnan, "An improved
 * data stream summary: the count-min sketch and its applications", J.
 * Algorithms 55(1), 2005): DEPTH rows of WIDTH counters; a key adds 1 to
 * one counter per row and its estimate is the least of them. With N misses
 * counted since the last reset, the estimate is never below the true count
 * and exceeds it by more than e/WIDTH * N (0.27% of N here) with
 * probability at most e^-DEPTH (1.8%). Row i's column is
 * (h1 + i * h2) mod WIDTH with h1 the key hash and h2 its mix forced odd
 * (Kirsch and Mitzenmacher, "Less hashing, same performance", ESA 2006).
 * One sketch per core, reset by the control thread every period.
 */
#define SLUICE_CACHE_SKETCH_DEPTH 4
#define SLUICE_CACHE_SKETCH_WIDTH 1024 /* a power of two */

/* One core's sketch. 16 KiB. */
struct sluice_cache_sketch {
	sl_u32 counts[SLUICE_CACHE_SKETCH_DEPTH * SLUICE_CACHE_SKETCH_WIDTH]; /* row-major */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_cache_sketch) == 16384, "sketch is 16 KiB");

/* Index into counts[] of the key with hash h in row `row`. */
SLUICE_INLINE sl_u32 sluice_cache_sketch_index(sl_u32 h, sl_u32 row)
{
	sl_u32 h2 = sluice_cache_mix(h) | 1u;

	return row * SLUICE_CACHE_SKETCH_WIDTH + ((h + row * h2) & (SLUICE_CACHE_SKETCH_WIDTH - 1));
}

/*
 * Per-key versions: the fill lease. A direct-mapped array of version slots;
 * a key of a VIP has slot sluice_cache_version_slot(vip_id, key hash). A
 * fast path that sees a write for a key bumps its slot's version (and
 * stamps the time) before it forwards the write; an entry records the
 * version its fill read before fetching, and is served only while the slot
 * still holds that version. Keys that share a slot invalidate each other:
 * extra misses, never a stale hit.
 */
#define SLUICE_CACHE_VERSION_SLOTS 65536 /* a power of two */

/* One version slot. 8 bytes. */
struct sluice_cache_version {
	sl_u32 version;       /* bumped (atomically) by every write seen for a key of the slot */
	sl_u32 last_write_ms; /* coarse monotonic time of the last such write, ms (wraps) */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_cache_version) == 8, "cache version is 8 bytes");

SLUICE_INLINE sl_u32 sluice_cache_version_slot(sl_u32 vip_id, sl_u32 key_hash)
{
	return (key_hash ^ (vip_id * 0x9E3779B1u)) & (SLUICE_CACHE_VERSION_SLOTS - 1);
}

/*
 * The XDP program's index, direct-mapped on the version slots: array slot
 * sluice_cache_version_slot(vip_id, key hash) holds that slot's version
 * (as struct sluice_cache_version does) and the entry caching a key of it,
 * so a hit reads its version and finds its entry in one array value, with
 * no hash-map lookup. A version slot caches one key at a time; the entry's
 * stored key decides. The fast path bumps version and clears entry on a
 * write; the control plane sets entry alone (a 4-byte atomic store into the
 * mmap-ed array), never the version. 16 bytes.
 */
struct sluice_cache_slot {
	sl_u32 version;       /* bumped (atomically) by every write seen for a key of the slot */
	sl_u32 last_write_ms; /* coarse monotonic time of the last such write, ms (wraps) */
	sl_u32 entry;         /* 1 + the entry slot holding a key of this slot; 0: none */
	sl_u32 pad;           /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_cache_slot) == 16, "cache slot is 16 bytes");

/* A cached response: "VALUE <key> <flags> <bytes>" (the head) then, for
 * gets only, " <cas>"; then "\r\n<data>\r\nEND\r\n" (the body). Bytes. */
#define SLUICE_CACHE_HEAD_MAX 320
#define SLUICE_CACHE_CAS_MAX 24
#define SLUICE_CACHE_BODY_MAX 1040
SLUICE_STATIC_ASSERT(SLUICE_CACHE_BODY_MAX >= SLUICE_CACHE_VALUE_MAX + 9, "body holds a value");

/*
 * One cached response, in an array slot of the XDP entries map, built
 * by the control plane (dataplane/core/memcached.hpp) and read by the fast
 * path. text holds the head and the body back to back, so a get answers
 * text[0, head_len + body_len) in one copy; a gets answers the head, then
 * cas[0, cas_len), then the body. The control plane rewrites a slot only
 * while no index slot names it and no packet is still reading it.
 * 1,680 bytes.
 */
struct sluice_cache_entry {
	sl_u32 vip_id;     /* the VIP it belongs to */
	sl_u32 key_hash;   /* sluice_cache_key_hash of key */
	sl_u32 version;    /* the key's version slot when the fill began */
	sl_u32 epoch;      /* the VIP's epoch when the fill began */
	sl_u64 expires_ns; /* coarse monotonic time (CLOCK_MONOTONIC_COARSE) after which it is a miss, ns */
	sl_u16 key_len;    /* bytes of key, 1..SLUICE_CACHE_KEY_MAX */
	sl_u16 head_len;   /* bytes of "VALUE <key> <flags> <bytes>" */
	sl_u16 cas_len;    /* bytes of " <cas>" */
	sl_u16 body_len;   /* bytes of "\r\n<data>\r\nEND\r\n" */
	sl_u16 sum_get;    /* folded one's-complement sum of the get response (head, body), as it sits after the frame header */
	sl_u16 sum_gets;   /* the same for the gets response (head, cas, body) */
	sl_u8 pad[4];      /* zero */
	sl_u8 key[SLUICE_CACHE_KEY_ROOM];   /* the key, unused bytes zero */
	sl_u8 cas[SLUICE_CACHE_CAS_MAX];    /* " <cas>" */
	sl_u8 text[SLUICE_CACHE_HEAD_MAX + SLUICE_CACHE_BODY_MAX]; /* head then body */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_cache_entry) == 1680, "cache entry is 1680 bytes");

/* A hot key, sent by a fast path to the control thread when its estimated
 * misses in the current period reach the threshold. 272 bytes. */
struct sluice_cache_hot {
	sl_u32 vip_id;   /* the VIP */
	sl_u32 key_hash; /* sluice_cache_key_hash(key, key_len, 0) */
	sl_u16 key_len;  /* bytes of key */
	sl_u8 pad[6];    /* zero */
	sl_u8 key[SLUICE_CACHE_KEY_ROOM]; /* the key; bytes past key_len undefined */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_cache_hot) == 272, "cache hot event is 272 bytes");

/* Bytes of a request the XDP program copies out of the packet to parse:
 * a write command, a 250-byte key and the numbers after it fit. */
#define SLUICE_CACHE_SCRATCH 512

/* The XDP program's per-CPU copy of a request's first bytes (too big for
 * the BPF stack); no other reader. */
struct sluice_cache_scratch {
	sl_u8 buf[SLUICE_CACHE_SCRATCH]; /* the first min(payload, 512) bytes of the request */
};

/* Per-core cache counters of one VIP, in requests. */
struct sluice_cache_stats {
	sl_u64 hits;              /* gets answered from the cache */
	sl_u64 misses;            /* cacheable gets forwarded (no entry, stale or expired) */
	sl_u64 invalidations;     /* writes that invalidated their key */
	sl_u64 vip_invalidations; /* requests the fast path could not follow: whole VIP invalidated */
	sl_u64 hot_reports;       /* keys sent to the control thread as hot */
	sl_u64 bypassed;          /* gets not looked up: multi-key, IP options, fragment */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_cache_stats) == 48, "cache stats are 48 bytes");
