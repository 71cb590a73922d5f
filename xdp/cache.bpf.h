/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The hot-object cache in XDP (DESIGN.md "Hot-object cache"): on a VIP with
 * SLUICE_VIP_CACHE, a cached single-key memcached get over UDP is answered
 * in place (XDP_TX); a write (UDP, or a TCP segment to the VIP) invalidates
 * its key before it is forwarded; a miss is counted in the per-CPU sketch
 * and a key whose count reaches the threshold goes to the control thread.
 *
 * The cache of a UDP VIP is keyed by its vip_id; a TCP VIP on the same
 * address and port carries SLUICE_VIP_CACHE too (the control plane sets
 * it) so that memcached writes over TCP invalidate the UDP VIP's keys.
 *
 * The request parser here is a conservative subset of the core's
 * (dataplane/core/memcached.hpp): it follows ONE request per datagram or
 * segment. Wherever the core would find a written key, this code
 * invalidates that key or the VIP's whole cache (the epoch): a request it
 * cannot follow whole -- a pipeline, an unknown or meta command, a
 * fragment, an IPv6 extension header, a line past the scratch buffer --
 * bumps the epoch. Never a guess that a segment writes nothing.
 *
 * On a VIP with SLUICE_VIP_KEY_HASH the same parse gives the key a UDP
 * get/gets or write of one key is placed by (lb_select_by_key); the cache
 * part then runs only if the VIP has SLUICE_VIP_CACHE as well.
 *
 * Layouts: dataplane/abi/cache.h. The entries live in an array the control
 * plane rewrites a slot only while no index slot names it and no packet can
 * still be reading it (xdp/cache.cpp), so an entry read here is whole. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "cache.h"
#include "csum.h"
#include "lb_lookup.h"

/* Default sizes; the loader sets the configured ones. */
#define LB_CACHE_DEFAULT_ENTRIES 1024
#define LB_CACHE_SCRATCH SLUICE_CACHE_SCRATCH
#define LB_CACHE_RINGBUF_BYTES (256 * 1024)
/* Largest L3 offset: Ethernet and two VLAN tags. */
#define LB_CACHE_MAX_L3_OFF (SLUICE_ETH_HLEN + 2 * SLUICE_VLAN_HLEN)
/* Largest L4 offset of an answerable get: two VLAN tags and an IPv6
 * header without extensions. */
#define LB_CACHE_MAX_L4_OFF (LB_CACHE_MAX_L3_OFF + SLUICE_IPV6_HLEN)

/* Misses of a key, per CPU and period, that make it hot (rodata). */
const volatile __u32 sluice_cache_hot_threshold = 32;

/* The cached responses, by slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_CACHE_DEFAULT_ENTRIES);
	__type(key, __u32);
	__type(value, struct sluice_cache_entry);
} sluice_cache_entries SEC(".maps");

/* Per-key versions (the fill lease) and the index, direct-mapped (struct
 * sluice_cache_slot), shared by all CPUs: a write bumps the version
 * atomically and clears the entry; a hit reads both in one value. Mmap-able
 * so that the control plane stores an entry number without a whole-value
 * update, which could undo a concurrent version bump. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SLUICE_CACHE_VERSION_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_cache_slot);
} sluice_cache_slots SEC(".maps");

/* Per-VIP epochs: bumped when a request to the VIP could not be followed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
} sluice_cache_epochs SEC(".maps");

/* Misses by key, one sketch per CPU; zeroed by the control thread each
 * period. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_cache_sketch);
} sluice_cache_sketch SEC(".maps");

/* Hot keys to the control thread (struct sluice_cache_hot). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LB_CACHE_RINGBUF_BYTES);
} sluice_cache_hot SEC(".maps");

/* Hits per entry slot, per CPU: what eviction ranks by. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_CACHE_DEFAULT_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} sluice_cache_hits SEC(".maps");

/* Cache counters by vip_id, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct sluice_cache_stats);
} sluice_cache_stats SEC(".maps");

/* Per-CPU room for the request's first bytes (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_cache_scratch);
} sluice_cache_scratch SEC(".maps");

/* What one request is, as far as this code follows it. */
#define LB_MC_UNSURE 0 /* cannot tell: invalidate the VIP */
#define LB_MC_GET 1    /* get/gets of one key, the whole payload */
#define LB_MC_WRITE 2  /* writes key; nothing after it in the payload */
#define LB_MC_READ 3   /* changes nothing, nothing after it */

struct lb_mc_req {
	__u32 key_off; /* offset of the key in the scratch buffer */
	__u32 key_len; /* bytes */
	__u32 hash;    /* sluice_cache_key_hash of the key */
	__u8 gets;     /* a gets: the response carries the cas */
};

/* x &= mask, in asm: clang drops a C mask it can prove is a no-op, and
 * the verifier may have seen the bounds check on another register. */
#define LB_MASK(x, mask) asm volatile("%[v] &= %[m]" : [v] "+r"(x) : [m] "i"(mask))

/* One load or store of a field another CPU or the control plane writes. */
#define LB_ONCE(x) (*(volatile __typeof__(x) *)&(x))

/* The byte at pos, or 0 past the n bytes read (0 ends every token). */
static __always_inline __u8 lb_mc_at(const struct sluice_cache_scratch *s, __u32 n, __u32 pos)
{
	__u64 at = pos;

	if (pos >= n || pos >= LB_CACHE_SCRATCH)
		return 0;
	LB_MASK(at, LB_CACHE_SCRATCH - 1);
	return s->buf[at];
}

/* Whether the buffer starts with the len bytes of str (a literal). */
static __always_inline int lb_mc_starts(const struct sluice_cache_scratch *s, __u32 n, const char *str,
					__u32 len)
{
	if (len > n)
		return 0;
#pragma unroll
	for (__u32 i = 0; i < 8; i++)
		if (i < len && s->buf[i] != (__u8)str[i])
			return 0;
	return 1;
}

/* The byte loops below run under bpf_loop (Linux 5.17+): the verifier
 * checks a callback once instead of every length a key can have, which
 * (nested with the other loops) exceeds its budget. */
struct lb_mc_walk {
	const struct sluice_cache_scratch *s;
	const __u8 *cmp; /* lb_mc_same_step: the entry's key */
	__u32 n;         /* bytes read into s */
	__u32 pos;       /* where the walk starts in s */
	__u32 len;       /* key length (lb_mc_key_step's result, the others' bound) */
	__u32 out;       /* line end, key hash, or 1 for "differs" */
};

/* Keys up to this many bytes are scanned inline: a bpf_loop callback costs
 * more than the bytes it reads (an indirect call). Longer ones go on under
 * bpf_loop, LB_MC_KEY_STEP bytes per callback. */
#define LB_MC_KEY_INLINE 16
#define LB_MC_KEY_STEP 16

/* One key byte c at key index k with the hash so far in *h: 0 to go on, 1
 * at the key's end (*len set to k), -1 for a byte no key has. */
static __always_inline int lb_mc_key_byte(__u8 c, __u32 k, __u32 *h, __u32 *len)
{
	if (c == ' ' || c == '\r' || c == '\n') {
		*len = k;
		return 1;
	}
	if (c <= 0x20 || c == 0x7f)
		return -1;
	*h = (*h ^ c) * SLUICE_FNV32_PRIME;
	return 0;
}

static long lb_mc_key_step(__u32 i, void *ctx)
{
	struct lb_mc_walk *w = ctx;
	__u32 first = LB_MC_KEY_INLINE + i * LB_MC_KEY_STEP, h = w->out;

#pragma unroll
	for (__u32 j = 0; j < LB_MC_KEY_STEP; j++) {
		__u32 k = first + j;

		if (k > SLUICE_CACHE_KEY_MAX)
			return 1; /* too long: len stays 0 */
		if (lb_mc_key_byte(lb_mc_at(w->s, w->n, w->pos + k), k, &h, &w->len)) {
			w->out = h; /* len stays 0 after a byte no key has */
			return 1;
		}
	}
	w->out = h;
	return 0;
}

/* The key token at r->key_off: 1..SLUICE_CACHE_KEY_MAX bytes above 0x20
 * but DEL, ended by a space, "\r" or "\n". Sets r->key_len (0: no valid
 * key) and r->hash (sluice_cache_key_hash, seed 0), in one pass. */
static __always_inline void lb_mc_key(const struct sluice_cache_scratch *s, __u32 n,
				      struct lb_mc_req *r)
{
	struct lb_mc_walk w = { .s = s, .n = n, .pos = r->key_off };
	__u32 h = SLUICE_FNV32_BASIS, len = 0;
	int end;

	r->key_len = 0;
#pragma unroll
	for (__u32 k = 0; k < LB_MC_KEY_INLINE; k++) {
		end = lb_mc_key_byte(lb_mc_at(s, n, r->key_off + k), k, &h, &len);
		if (end < 0)
			return;
		if (end) {
			r->key_len = len;
			r->hash = h;
			return;
		}
	}
	w.out = h;
	bpf_loop((SLUICE_CACHE_KEY_MAX + LB_MC_KEY_STEP - LB_MC_KEY_INLINE) / LB_MC_KEY_STEP,
		 lb_mc_key_step, &w, 0);
	r->key_len = w.len;
	r->hash = w.out;
}

static long lb_mc_line_step(__u32 i, void *ctx)
{
	struct lb_mc_walk *w = ctx;

	if (w->pos + i >= w->n)
		return 1;
	if (lb_mc_at(w->s, w->n, w->pos + i) != '\n')
		return 0;
	w->out = w->pos + i + 1;
	return 1;
}

/* Offset just past the first "\n" at or after pos, or 0 when there is none
 * in the bytes read. */
static __always_inline __u32 lb_mc_line_end(const struct sluice_cache_scratch *s, __u32 n, __u32 pos)
{
	struct lb_mc_walk w = { .s = s, .n = n, .pos = pos };

	bpf_loop(LB_CACHE_SCRATCH, lb_mc_line_step, &w, 0);
	return w.out;
}

/* Key bytes compared per call of lb_mc_same_chunk; a key up to this long
 * is compared inline, a longer one under bpf_loop. */
#define LB_MC_SAME_STEP 32

/* Compares chunk i (LB_MC_SAME_STEP bytes) of the key, 8 at a time: the
 * entry's key is zero past its length, the request's bytes past it are
 * masked off. Returns 1 when they differ. */
static __always_inline int lb_mc_same_chunk(const struct lb_mc_walk *w, __u32 i)
{
#pragma unroll
	for (__u32 j = 0; j < LB_MC_SAME_STEP / 8; j++) {
		__u64 at = (__u64)i * LB_MC_SAME_STEP + j * 8, p, a, b, mask = ~0ull;
		__u32 left;

		if (at >= w->len || at >= SLUICE_CACHE_KEY_ROOM)
			return 0;
		left = w->len - (__u32)at;
		p = w->pos + at;
		LB_MASK(at, SLUICE_CACHE_KEY_ROOM - 8);
		LB_MASK(p, LB_CACHE_SCRATCH - 1);
		if (p > LB_CACHE_SCRATCH - 8)
			return 1;
		__builtin_memcpy(&a, &w->s->buf[p], 8);
		__builtin_memcpy(&b, &w->cmp[at], 8);
		if (left < 8)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			mask = ~0ull << ((8 - left) * 8);
#else
			mask = (1ull << (left * 8)) - 1;
#endif
		if ((a & mask) != b)
			return 1;
	}
	return 0;
}

static long lb_mc_same_step(__u32 i, void *ctx)
{
	struct lb_mc_walk *w = ctx;

	if ((__u64)i * LB_MC_SAME_STEP >= w->len)
		return 1;
	if (!lb_mc_same_chunk(w, i))
		return 0;
	w->out = 1;
	return 1;
}

struct lb_mc_number {
	const struct sluice_cache_scratch *s;
	__u32 n;      /* bytes read into s */
	__u32 pos;    /* the space after the key */
	__u32 field;  /* spaces seen: the field being read */
	__u32 digits; /* digits of the third field so far */
	__s64 v;      /* its value; -1 once the shape is wrong */
	__u8 prev;    /* the previous byte */
};

static long lb_mc_number_step(__u32 i, void *ctx)
{
	struct lb_mc_number *w = ctx;
	__u8 c = lb_mc_at(w->s, w->n, w->pos + i);
	__u8 prev = w->prev;

	w->prev = c;
	if (c == ' ') {
		if (prev == ' ' || w->field == 3)
			goto done;
		w->field++;
		return 0;
	}
	if (w->field < 3) {
		if (c == '\r' || c == '\n' || c == 0)
			goto bad;
		return 0;
	}
	if (c >= '0' && c <= '9') {
		w->v = w->v * 10 + (c - '0');
		w->digits++;
		if (w->v > 0x7ffffffd)
			goto bad;
		return 0;
	}
	if (c == '\r' || c == '\n')
		goto done;
bad:
	w->digits = 0;
done:
	if (!w->digits)
		w->v = -1;
	w->field = 4;
	return 1;
}

/* The data length of a storage command: the third number after the key
 * (flags, exptime, bytes), one space before each; pos is the space after
 * the key. Returns it, or -1 for any other shape (the caller then
 * invalidates the VIP). */
static __always_inline __s64 lb_mc_data_len(const struct sluice_cache_scratch *s, __u32 n, __u32 pos)
{
	struct lb_mc_number w = { .s = s, .n = n, .pos = pos };

	/* Three fields of at most 11 characters (a sign and 10 digits). */
	bpf_loop(40, lb_mc_number_step, &w, 0);
	return w.field == 4 ? w.v : -1;
}

/* Classifies the request at the start of the scratch buffer (n bytes read
 * of a payload of plen bytes). */
static __always_inline int lb_mc_classify(const struct sluice_cache_scratch *s, __u32 n, __u32 plen,
					  struct lb_mc_req *r)
{
	__u32 end, at;
	__s64 len;

	if (lb_mc_starts(s, n, "get ", 4) || lb_mc_starts(s, n, "gets ", 5)) {
		r->gets = s->buf[3] == 's';
		r->key_off = r->gets ? 5 : 4;
		lb_mc_key(s, n, r);
		at = r->key_off + r->key_len;
		/* The common case without a scan: the key, the line end, the
		 * payload's end. */
		if (r->key_len && ((at + 2 == plen && lb_mc_at(s, n, at) == '\r' &&
				    lb_mc_at(s, n, at + 1) == '\n') ||
				   (at + 1 == plen && lb_mc_at(s, n, at) == '\n')))
			return LB_MC_GET;
		end = lb_mc_line_end(s, n, r->key_off);
		return end && end == plen ? LB_MC_READ : LB_MC_UNSURE;
	}
	if (lb_mc_starts(s, n, "delete ", 7))
		r->key_off = 7;
	else if (lb_mc_starts(s, n, "touch ", 6))
		r->key_off = 6;
	else if (lb_mc_starts(s, n, "incr ", 5) || lb_mc_starts(s, n, "decr ", 5))
		r->key_off = 5;
	else
		r->key_off = 0;
	if (r->key_off) {
		lb_mc_key(s, n, r);
		if (!r->key_len)
			return LB_MC_UNSURE;
		end = lb_mc_line_end(s, n, r->key_off);
		/* Cut short by the payload's end: its key is all it can write.
		 * More after it: a pipeline this code does not follow. */
		if (!end)
			return plen <= n ? LB_MC_WRITE : LB_MC_UNSURE;
		return end == plen ? LB_MC_WRITE : LB_MC_UNSURE;
	}
	if (lb_mc_starts(s, n, "set ", 4) || lb_mc_starts(s, n, "add ", 4) ||
	    lb_mc_starts(s, n, "cas ", 4))
		r->key_off = 4;
	else if (lb_mc_starts(s, n, "append ", 7))
		r->key_off = 7;
	else if (lb_mc_starts(s, n, "replace ", 8) || lb_mc_starts(s, n, "prepend ", 8))
		r->key_off = 8;
	if (r->key_off) {
		lb_mc_key(s, n, r);
		if (!r->key_len)
			return LB_MC_UNSURE;
		end = lb_mc_line_end(s, n, r->key_off);
		if (!end)
			return plen <= n ? LB_MC_WRITE : LB_MC_UNSURE;
		len = lb_mc_data_len(s, n, r->key_off + r->key_len);
		/* The data block may run on into later segments (its key is
		 * all it writes); anything after it is a pipeline. */
		if (len < 0 || (__u64)end + (__u64)len + 2 < plen)
			return LB_MC_UNSURE;
		return LB_MC_WRITE;
	}
	if (lb_mc_starts(s, n, "version", 7) || lb_mc_starts(s, n, "stats", 5)) {
		end = lb_mc_line_end(s, n, 0);
		return end && end == plen ? LB_MC_READ : LB_MC_UNSURE;
	}
	return LB_MC_UNSURE;
}

static __always_inline struct sluice_cache_stats *lb_cache_stats(__u32 vip_id)
{
	return bpf_map_lookup_elem(&sluice_cache_stats, &vip_id);
}

/* No request to the VIP may be answered from an entry filled before now. */
static __always_inline void lb_cache_bump_epoch(__u32 vip_id)
{
	struct sluice_cache_stats *cs = lb_cache_stats(vip_id);
	__u32 *epoch = bpf_map_lookup_elem(&sluice_cache_epochs, &vip_id);

	if (epoch)
		__sync_fetch_and_add(epoch, 1);
	if (cs)
		cs->vip_invalidations++;
}

/* A write of the key with hash h is on its way to a backend. */
static __always_inline void lb_cache_invalidate(__u32 vip_id, __u32 h)
{
	__u32 slot = sluice_cache_version_slot(vip_id, h);
	struct sluice_cache_slot *v = bpf_map_lookup_elem(&sluice_cache_slots, &slot);
	struct sluice_cache_stats *cs = lb_cache_stats(vip_id);

	if (v) {
		__sync_fetch_and_add(&v->version, 1);
		v->last_write_ms = (__u32)(bpf_ktime_get_coarse_ns() / 1000000);
		/* The version alone refuses the entry; clearing it tells the
		 * control plane the slot's entry is free. */
		LB_ONCE(v->entry) = 0;
	} else {
		lb_cache_bump_epoch(vip_id); /* cannot happen: slot < max_entries */
	}
	if (cs)
		cs->invalidations++;
}

/* A miss: count it in this CPU's sketch; at the threshold, report the key. */
static __always_inline void lb_cache_miss(__u32 vip_id, __u32 h, const struct sluice_cache_scratch *s,
					  const struct lb_mc_req *r, struct sluice_cache_stats *cs)
{
	__u32 zero = 0;
	struct sluice_cache_sketch *sk = bpf_map_lookup_elem(&sluice_cache_sketch, &zero);
	struct sluice_cache_hot *ev;
	__u32 least = 0xffffffffu;

	if (cs)
		cs->misses++;
	if (!sk)
		return;
#pragma unroll
	for (__u32 row = 0; row < SLUICE_CACHE_SKETCH_DEPTH; row++) {
		__u32 i = sluice_cache_sketch_index(h, row) & (SLUICE_CACHE_SKETCH_DEPTH * SLUICE_CACHE_SKETCH_WIDTH - 1);
		__u32 c = sk->counts[i] + 1;

		sk->counts[i] = c;
		if (c < least)
			least = c;
	}
	if (least != sluice_cache_hot_threshold)
		return;
	ev = bpf_ringbuf_reserve(&sluice_cache_hot, sizeof(*ev), 0);
	if (!ev)
		return;
	ev->vip_id = vip_id;
	ev->key_hash = h;
	ev->key_len = (__u16)r->key_len;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	/* Bytes past key_len are whatever followed the key. */
	if (r->key_off <= 8)
		__builtin_memcpy(ev->key, s->buf + r->key_off, sizeof(ev->key));
	bpf_ringbuf_submit(ev, 0);
	if (cs)
		cs->hot_reports++;
}

/* The entry answering the request, or NULL: one array value gives the
 * key's version and its entry's number (direct-mapped, no hash lookup). */
static __always_inline struct sluice_cache_entry *lb_cache_find(__u32 vip_id, __u32 h,
								 const struct sluice_cache_scratch *s,
								 const struct lb_mc_req *r, __u32 *slot_out)
{
	struct lb_mc_walk w = { .s = s, .pos = r->key_off, .len = r->key_len };
	__u32 vslot = sluice_cache_version_slot(vip_id, h), *epoch;
	struct sluice_cache_entry *e;
	struct sluice_cache_slot *v;
	__u32 entry;

	v = bpf_map_lookup_elem(&sluice_cache_slots, &vslot);
	if (!v)
		return NULL;
	entry = LB_ONCE(v->entry);
	if (!entry)
		return NULL;
	*slot_out = entry - 1;
	e = bpf_map_lookup_elem(&sluice_cache_entries, slot_out);
	if (!e || e->vip_id != vip_id || e->key_hash != h || e->key_len != r->key_len ||
	    e->version != LB_ONCE(v->version))
		return NULL;
	w.cmp = e->key;
	if (r->key_len <= LB_MC_SAME_STEP) {
		if (lb_mc_same_chunk(&w, 0))
			return NULL;
	} else {
		bpf_loop(SLUICE_CACHE_KEY_ROOM / LB_MC_SAME_STEP, lb_mc_same_step, &w, 0);
		if (w.out)
			return NULL;
	}
	if (bpf_ktime_get_coarse_ns() >= e->expires_ns)
		return NULL;
	epoch = bpf_map_lookup_elem(&sluice_cache_epochs, &vip_id);
	if (!epoch || *epoch != e->epoch)
		return NULL;
	return e;
}

/* Grows the frame by `grow` bytes at the front, for a response bigger than
 * the tailroom: a frame built from an skb (veth, generic mode) has a few
 * bytes past its end at most, while XDP guarantees headroom. The headers
 * up to the end of the memcached frame header (l4_off + 16 bytes) move to
 * the new start; what follows them is overwritten by the response. Returns
 * 0; -1 with the packet unchanged; -2 when it was moved but the headers
 * could not be written back. */
static __always_inline int lb_cache_grow_head(struct xdp_md *ctx, __u32 l4_off, __u32 grow)
{
	__u32 zero = 0, hlen = l4_off + sizeof(struct udphdr) + SLUICE_MC_UDP_HDR_LEN;
	/* The request's bytes are no longer needed: the scratch holds the
	 * headers meanwhile. */
	struct sluice_cache_scratch *s = bpf_map_lookup_elem(&sluice_cache_scratch, &zero);

	if (!s || l4_off > LB_CACHE_MAX_L4_OFF || grow > 0xffff)
		return -1;
	if (bpf_xdp_load_bytes(ctx, 0, s->buf, hlen))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)grow))
		return -1;
	if (bpf_xdp_store_bytes(ctx, 0, s->buf, hlen))
		return -2;
	return 0;
}

/* Turns the request frame into the response: MACs, addresses and ports
 * swapped, the payload after the frame header replaced by the entry's
 * response, lengths and checksums set. Returns 0; -1 with the packet
 * unchanged (forward it); -2 when a step after the frame grew failed (the
 * packet is neither request nor response: drop it; the checks after that
 * point hold for any frame the tail move made long enough). */
static __always_inline int lb_cache_reply(struct xdp_md *ctx, const struct lb_packet *p,
					  __u32 l4_off, const struct sluice_cache_entry *e, __u8 gets)
{
	__u32 l3_off = p->l3_off;
	__u32 head = e->head_len, cas = gets ? e->cas_len : 0;
	__u32 body = e->body_len, at;
	__u32 ulen, sum16;
	void *data, *data_end;
	struct udphdr *uh;
	__u8 mac[6];
	__u64 sum;
	int delta, ret;

	if (head == 0 || head > SLUICE_CACHE_HEAD_MAX || body == 0 || body > SLUICE_CACHE_BODY_MAX ||
	    cas > SLUICE_CACHE_CAS_MAX)
		return -1;
	ulen = sizeof(struct udphdr) + SLUICE_MC_UDP_HDR_LEN + head + cas + body;
	if (l4_off > LB_CACHE_MAX_L4_OFF || l3_off > LB_CACHE_MAX_L3_OFF)
		return -1;
	delta = (int)(l4_off + ulen) - (int)p->frame_len;
	if (bpf_xdp_adjust_tail(ctx, delta)) {
		if (delta <= 0)
			return -1;
		ret = lb_cache_grow_head(ctx, l4_off, (__u32)delta);
		if (ret)
			return ret;
	}
	at = l4_off + sizeof(*uh) + SLUICE_MC_UDP_HDR_LEN;
	if (!gets) {
		/* A get's response sits whole in text: one copy. */
		if (bpf_xdp_store_bytes(ctx, at, (void *)e->text, head + body))
			return -2;
	} else if (bpf_xdp_store_bytes(ctx, at, (void *)e->text, head) ||
		   (cas && bpf_xdp_store_bytes(ctx, at + head, (void *)e->cas, cas)) ||
		   bpf_xdp_store_bytes(ctx, at + head + cas, (void *)e->text + head, body)) {
		return -2;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	uh = data + l4_off;
	if ((void *)(uh + 1) + SLUICE_MC_UDP_HDR_LEN > data_end || data + SLUICE_ETH_HLEN > data_end)
		return -2;

	__builtin_memcpy(mac, data, 6);
	__builtin_memcpy(data, data + 6, 6);
	__builtin_memcpy(data + 6, mac, 6);

	sum = 0;
	if (p->key.family == SLUICE_FAMILY_IPV4) {
		struct iphdr *iph = data + l3_off;
		__be32 a;

		if ((void *)(iph + 1) > data_end)
			return -2;
		a = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = a;
		iph->tot_len = bpf_htons((__u16)(SLUICE_IPV4_HLEN + ulen));
		iph->ttl = 64;
		sluice_ipv4_csum_fill((__u8 *)iph);
		sum = sluice_csum_add_bytes(0, &iph->saddr, 8, 8);
	} else {
		struct ipv6hdr *ip6 = data + l3_off;
		struct in6_addr a;

		if ((void *)(ip6 + 1) > data_end)
			return -2;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		ip6->payload_len = bpf_htons((__u16)ulen);
		ip6->hop_limit = 64;
		sum = sluice_csum_add_bytes(0, &ip6->saddr, 32, 32);
	}
	sum16 = uh->source;
	uh->source = uh->dest;
	uh->dest = (__u16)sum16;
	uh->len = bpf_htons((__u16)ulen);
	uh->check = 0;
	/* Pseudo header (protocol, UDP length), the UDP header, the frame
	 * header (request id, 0, 1, 0) and the response the entry summed. */
	sum += SLUICE_IPPROTO_UDP + ulen;
	sum += sluice_csum_add_bytes(0, uh, sizeof(*uh) + SLUICE_MC_UDP_HDR_LEN,
				     sizeof(*uh) + SLUICE_MC_UDP_HDR_LEN);
	sum += gets ? e->sum_gets : e->sum_get;
	sum16 = sluice_csum_finish(sum);
	uh->check = bpf_htons((__u16)(sum16 ? sum16 : 0xffff));
	return 0;
}

/* What lb_cache read for key-affinity routing (SLUICE_VIP_KEY_HASH). */
struct lb_mc_route {
	__u32 key_hash; /* sluice_cache_key_hash(key, len, 0) of the request's one key */
	__u8 keyed;     /* a UDP request of one key: place it by key_hash */
};

/* The memcached part of a packet to a VIP with SLUICE_VIP_CACHE or
 * SLUICE_VIP_KEY_HASH (vip_flags): the cache (only with SLUICE_VIP_CACHE)
 * and the key a UDP get/gets or write of one key is routed by (*route;
 * what mc::routing_key in dataplane/core/memcached.hpp gives, for the
 * requests this parser follows). Returns XDP_TX when the packet became the
 * response, 0 to forward it, or -SLUICE_DROP_TX_FAILED when a response
 * could not be finished. */
static __always_inline int lb_cache(struct xdp_md *ctx, struct lb_state *st, __u32 vip_flags,
				    struct lb_mc_route *route)
{
	const struct lb_packet *p = &st->pkt;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 vip_id = st->vip_id;
	struct sluice_cache_stats *cs;
	struct sluice_cache_entry *e;
	struct sluice_cache_scratch *s;
	__u32 l3_off, l4_off, off, plen, n, h, slot = 0, zero = 0;
	__u8 frame[SLUICE_MC_UDP_HDR_LEN];
	struct lb_mc_req r = {};
	__u64 *hits, nread;
	int kind, ret;

	if (p->flags & LB_PKT_ICMP_ERR)
		return 0;
	/* A TCP VIP with the flag is the twin of a cached UDP VIP on the same
	 * address and port: its writes invalidate that VIP's keys. */
	if (p->key.proto == SLUICE_IPPROTO_TCP) {
		struct sluice_flow_key twin = p->key;
		struct sluice_vip_meta m;

		twin.proto = SLUICE_IPPROTO_UDP;
		if (lb_lookup_vip(&twin, &m) || !(m.flags & SLUICE_VIP_CACHE))
			return 0;
		vip_id = m.vip_id;
	}
	if (p->flags & LB_PKT_FRAGMENT)
		goto unsure;
	/* The parser's bound, said again for the verifier. */
	l3_off = p->l3_off;
	if (l3_off > LB_CACHE_MAX_L3_OFF)
		return 0;
	if (p->key.family == SLUICE_FAMILY_IPV4) {
		struct iphdr *iph = data + l3_off;

		if ((void *)(iph + 1) > data_end)
			return 0;
		l4_off = l3_off + iph->ihl * 4;
	} else {
		struct ipv6hdr *ip6 = data + l3_off;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		if (ip6->nexthdr != p->key.proto)
			goto unsure;
		l4_off = l3_off + SLUICE_IPV6_HLEN;
	}
	if (p->key.proto == SLUICE_IPPROTO_UDP) {
		off = l4_off + sizeof(struct udphdr) + SLUICE_MC_UDP_HDR_LEN;
	} else {
		struct tcphdr *th = data + l4_off;

		if ((void *)(th + 1) > data_end)
			return 0;
		off = l4_off + th->doff * 4;
	}
	if (off > p->l3_off + p->ip_len)
		goto unsure; /* a UDP datagram too short for the frame header */
	plen = p->l3_off + p->ip_len - off;
	if (plen == 0)
		return 0; /* a bare TCP segment (ACK, FIN): nothing written */
	if (p->key.proto == SLUICE_IPPROTO_UDP) {
		const __u8 *fh = data + l4_off + sizeof(struct udphdr);

		/* Straight from the packet: a helper call costs more than the
		 * copy; the helper only for a frame whose header is not in
		 * the linear part. */
		if ((void *)(fh + SLUICE_MC_UDP_HDR_LEN) <= data_end)
			__builtin_memcpy(frame, fh, sizeof(frame));
		else if (bpf_xdp_load_bytes(ctx, off - SLUICE_MC_UDP_HDR_LEN, frame, sizeof(frame)))
			goto unsure;
	}
	s = bpf_map_lookup_elem(&sluice_cache_scratch, &zero);
	if (!s)
		goto unsure;
	nread = plen;
	LB_MASK(nread, 0xffff); /* the verifier lost plen's bounds in the subtraction */
	if (nread > LB_CACHE_SCRATCH)
		nread = LB_CACHE_SCRATCH;
	if (nread == 0 || bpf_xdp_load_bytes(ctx, off, s->buf, nread))
		goto unsure;
	n = (__u32)nread;
	kind = lb_mc_classify(s, n, plen, &r);
	if (kind == LB_MC_READ)
		return 0;
	if (kind == LB_MC_UNSURE)
		goto unsure;
	h = r.hash;
	if (p->key.proto == SLUICE_IPPROTO_UDP) {
		route->key_hash = h;
		route->keyed = 1;
	}
	if (!(vip_flags & SLUICE_VIP_CACHE))
		return 0;
	if (kind == LB_MC_WRITE) {
		lb_cache_invalidate(vip_id, h);
		return 0;
	}
	/* A get: answerable over UDP only, from one datagram. */
	cs = lb_cache_stats(vip_id);
	if (p->key.proto != SLUICE_IPPROTO_UDP)
		return 0;
	if (frame[2] | frame[3] | frame[4] | (frame[5] ^ 1) | frame[6] | frame[7] ||
	    l4_off != l3_off + (p->key.family == SLUICE_FAMILY_IPV4 ? SLUICE_IPV4_HLEN : SLUICE_IPV6_HLEN)) {
		if (cs)
			cs->bypassed++;
		return 0;
	}
	e = lb_cache_find(vip_id, h, s, &r, &slot);
	if (!e) {
		lb_cache_miss(vip_id, h, s, &r, cs);
		return 0;
	}
	ret = lb_cache_reply(ctx, p, l4_off, e, r.gets);
	if (ret == -2)
		return -SLUICE_DROP_TX_FAILED;
	if (ret) {
		if (cs)
			cs->bypassed++;
		return 0;
	}
	if (cs)
		cs->hits++;
	hits = bpf_map_lookup_elem(&sluice_cache_hits, &slot);
	if (hits)
		(*hits)++;
	return XDP_TX;

unsure:
	if (vip_flags & SLUICE_VIP_CACHE)
		lb_cache_bump_epoch(vip_id);
	return 0;
}

/* Places a UDP request routed by its key (SLUICE_VIP_KEY_HASH): the VIP's
 * Maglev table at sluice_key_route_hash, never the flow table -- one client
 * socket sends many keys, each to the shard that owns it. Returns 0 with
 * *out and *hash (the route hash, also the outer header's entropy) filled,
 * or -SLUICE_DROP_NO_BACKEND. */
static __always_inline int lb_select_by_key(const struct sluice_vip_meta *vip, __u32 key_hash,
					    struct sluice_backend *out, __u32 *hash)
{
	*hash = sluice_key_route_hash(key_hash, sluice_hash_seed);
	return lb_maglev_pick(vip, *hash, out) ? -SLUICE_DROP_NO_BACKEND : 0;
}
