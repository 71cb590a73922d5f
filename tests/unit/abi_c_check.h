/* SPDX-License-Identifier: BSD-2-Clause */
/* What abi_c_check.c (the abi headers compiled as C) exports to
 * abi_c_test.cpp, which compares it with the same headers compiled as C++. */
#pragma once

#include <stddef.h>

#include "dataplane/abi/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sizeof and alignof of one abi struct as the C compiler lays it out. */
struct abi_c_layout {
	const char *name; /* struct tag, e.g. "sluice_flow_key" */
	size_t size;      /* bytes */
	size_t align;     /* bytes */
};

extern const struct abi_c_layout abi_c_layouts[];
extern const size_t abi_c_layout_count;

/* The hashes of flow.h, compiled as C. */
sl_u32 abi_c_flow_hash(const struct sluice_flow_key *key, sl_u32 seed);
sl_u32 abi_c_flow_hash_src(const struct sluice_flow_key *key, sl_u32 seed);
sl_u32 abi_c_addr_hash(const union sluice_ip *a, sl_u8 family, sl_u32 seed);

/* Checksums and header builders of csum.h and encap.h, compiled as C. */
sl_u16 abi_c_csum(const void *buf, sl_u32 len);
sl_u16 abi_c_csum_update32(sl_u16 check, sl_u32 old_val, sl_u32 new_val);
void abi_c_ipv4_write_hdr(sl_u8 *hdr, sl_be32 saddr, sl_be32 daddr, sl_u16 payload_len,
			     sl_u8 tos, sl_u16 id, int df, sl_u8 ttl, sl_u8 proto);
void abi_c_ipv6_write_hdr(sl_u8 *hdr, const union sluice_ip *saddr,
			     const union sluice_ip *daddr, sl_u16 payload_len, sl_u8 tclass,
			     sl_u32 flow_label, sl_u8 hop_limit, sl_u8 next_hdr);
sl_be32 abi_c_encap4_src(sl_be32 base, sl_u8 entropy_bits, sl_u32 flow_hash);
void abi_c_encap6_src(union sluice_ip *out, const union sluice_ip *base, sl_u8 entropy_bits,
			 sl_u32 flow_hash);
sl_u16 abi_c_icmp6_csum(const sl_u8 *saddr, const sl_u8 *daddr, const sl_u8 *msg, sl_u32 len);

#ifdef __cplusplus
}
#endif
