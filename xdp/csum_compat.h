/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Internet checksums (RFC 1071) the XDP programs need: the outer IPv4
 * header and the ICMPv6 pseudo-header.
 * TODO(lead): switch to dataplane/abi/csum.h when it lands; the callers use
 * only csum_fold, csum_ipv4_header and csum_ipv6_pseudo. */
#pragma once

#include "types.h"

/* Folds a 64-bit one's-complement accumulator to the 16-bit checksum
 * (complemented, ready to store). The sum is of 16-bit words loaded in host
 * order, so the stored value is right in network order (RFC 1071, 2(B)). */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	return (__u16)~sum;
}

/* The checksum of a 20-byte IPv4 header (no options) whose check field is
 * zero. */
static __always_inline __u16 csum_ipv4_header(const void *hdr)
{
	const __u16 *w = hdr;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* The unfolded sum of the IPv6 pseudo-header (RFC 8200, 8.1): source and
 * destination (16 bytes each, network order), upper-layer length (bytes,
 * host order) and next header. */
static __always_inline __u32 csum_ipv6_pseudo(const __u32 src[4], const __u32 dst[4], __u32 len,
					      __u8 nexthdr)
{
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < 4; i++)
		sum += (__u64)src[i] + dst[i];
	sum += (__u64)sl_htonl(len) + sl_htonl((__u32)nexthdr);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	return (__u32)((sum & 0xffffffffu) + (sum >> 32));
}
