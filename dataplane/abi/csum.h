/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The Internet checksum (RFC 1071) and its incremental update (RFC 1624),
 * one definition for the BPF program and the C++ core. */
#pragma once

#include "consts.h"
#include "types.h"

/*
 * Conventions. Sums run over 16-bit words read big-endian (a word's first
 * byte is its high byte), so every value here -- partial sums, checksums,
 * the words handed to the update functions -- is the host-order number of a
 * word as it is on the wire. Store a checksum high byte first.
 *
 * A partial sum is a 64-bit accumulator of such words (16 or 32 bits
 * wide). It cannot overflow below 2^34 bytes of input, so loops never
 * fold; sluice_csum_fold does it once at the end, in a fixed number of
 * steps. Only its folded value is meaningful.
 *
 * A sum of native-order words (such as bpf_csum_diff() returns) is the
 * byte-swap of this one after folding on a little-endian machine (RFC 1071
 * section 2(B), byte-order independence): fold it, then sl_ntohs() it.
 *
 * BPF: every function is always_inline and loop-free except
 * sluice_csum_add_bytes, whose loop runs at most max_len / 2 times; pass a
 * compile-time constant max_len and the verifier sees a bounded loop (Linux
 * 5.3+) or the compiler unrolls it. Over packet memory, check p + max_len
 * against data_end once and pass a constant len too: a variable length
 * added to a packet pointer loses the bound the verifier knows, and the
 * program is rejected. Seen on Linux 6.18 with clang 14 -O2: a 20-byte
 * header and a 1240-byte constant range straight from the packet load; the
 * same range with a variable length does not. For a variable length, copy
 * the bytes to the stack or a map first, or use bpf_csum_diff().
 */

/* Folds a partial sum to 16 bits with end-around carry (RFC 1071 section
 * 4.1). Not complemented: a sum, not yet a checksum. */
SLUICE_INLINE sl_u16 sluice_csum_fold(sl_u64 sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	return (sl_u16)sum;
}

/* The checksum field value for a partial sum: the one's complement of its
 * fold. Host order. */
SLUICE_INLINE sl_u16 sluice_csum_finish(sl_u64 sum)
{
	return (sl_u16)~sluice_csum_fold(sum);
}

/* Adds the first min(len, max_len) bytes at buf to a partial sum, bytes in
 * wire order; an odd last byte counts as the high byte of a word padded
 * with zero (RFC 1071 section 4.1). max_len bounds the loop for the BPF
 * verifier; C++ callers pass the largest length they accept.
 *
 * The loop adds 32-bit big-endian words: since 2^16 = 1 (mod 2^16 - 1),
 * a 32-bit word folds to the sum of its two 16-bit halves (RFC 1071 section
 * 2(C), "parallel summation"), so the result folds to the same checksum
 * with half the iterations (one load and a byte swap each on x86 and ARM).
 * Only the folded value is defined, not the partial sum itself. */
SLUICE_INLINE sl_u64 sluice_csum_add_bytes(sl_u64 sum, const void *buf, sl_u32 len,
					   sl_u32 max_len)
{
	const sl_u8 *p = (const sl_u8 *)buf;
	sl_u32 n = len < max_len ? len : max_len;
	sl_u32 quads = n >> 2;
	sl_u32 at = quads << 2;
	sl_u32 i;

	for (i = 0; i < quads; i++)
		sum += ((sl_u32)p[4 * i] << 24) | ((sl_u32)p[4 * i + 1] << 16) |
		       ((sl_u32)p[4 * i + 2] << 8) | (sl_u32)p[4 * i + 3];
	if (n & 2) {
		sum += ((sl_u32)p[at] << 8) | (sl_u32)p[at + 1];
		at += 2;
	}
	if (n & 1)
		sum += (sl_u32)p[at] << 8;
	return sum;
}

/* The Internet checksum of len bytes (at most max_len), host order. */
SLUICE_INLINE sl_u16 sluice_csum(const void *buf, sl_u32 len, sl_u32 max_len)
{
	return sluice_csum_finish(sluice_csum_add_bytes(0, buf, len, max_len));
}

/* A checksum after one 16-bit word of the data changed from old_word to
 * new_word, all host order: RFC 1624 equation 3, HC' = ~(~HC + ~m + m').
 * Equation 3 (not 2) so the result equals a full recomputation, never the
 * other zero (0xFFFF for 0x0000) when the data is not all zero. */
SLUICE_INLINE sl_u16 sluice_csum_update16(sl_u16 check, sl_u16 old_word, sl_u16 new_word)
{
	sl_u64 sum = (sl_u16)~check;

	sum += (sl_u16)~old_word;
	sum += new_word;
	return sluice_csum_finish(sum);
}

/* The same for an aligned 32-bit field (an IPv4 address), host order of its
 * wire bytes: two word updates in one sum. */
SLUICE_INLINE sl_u16 sluice_csum_update32(sl_u16 check, sl_u32 old_val, sl_u32 new_val)
{
	sl_u64 sum = (sl_u16)~check;

	sum += (sl_u16)~(old_val >> 16);
	sum += (sl_u16)~old_val;
	sum += new_val >> 16;
	sum += new_val & 0xffffu;
	return sluice_csum_finish(sum);
}

/* Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source and
 * destination (16 bytes each, wire order), upper-layer length (bytes, host
 * order) and next header. ICMPv6 (RFC 4443 section 2.3), UDP and TCP over
 * IPv6 all start from it. */
SLUICE_INLINE sl_u64 sluice_csum_ipv6_pseudo(sl_u64 sum, const sl_u8 *saddr, const sl_u8 *daddr,
					     sl_u32 upper_len, sl_u8 next_hdr)
{
	sum = sluice_csum_add_bytes(sum, saddr, 16, 16);
	sum = sluice_csum_add_bytes(sum, daddr, 16, 16);
	sum += upper_len >> 16;
	sum += upper_len & 0xffffu;
	sum += next_hdr;
	return sum;
}

/* Computes and stores the header checksum of a 20-byte IPv4 header (no
 * options) at hdr, bytes 10-11. */
SLUICE_INLINE void sluice_ipv4_csum_fill(sl_u8 *hdr)
{
	sl_u16 c;

	hdr[10] = 0;
	hdr[11] = 0;
	c = sluice_csum(hdr, SLUICE_IPV4_HLEN, SLUICE_IPV4_HLEN);
	hdr[10] = (sl_u8)(c >> 8);
	hdr[11] = (sl_u8)c;
}
