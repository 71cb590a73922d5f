/* SPDX-License-Identifier: BSD-2-Clause */
/* The C-compiled wrappers of abi_c_check.c, callable from C++ tests. */
#pragma once

#include "dataplane/abi/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

sl_u16 sluice_c_csum(const void *buf, sl_u32 len);
sl_u16 sluice_c_csum_update32(sl_u16 check, sl_u32 old_val, sl_u32 new_val);
void sluice_c_ipv4_write_hdr(sl_u8 *hdr, sl_be32 saddr, sl_be32 daddr, sl_u16 payload_len,
			     sl_u8 tos, sl_u16 id, int df, sl_u8 ttl, sl_u8 proto);
void sluice_c_ipv6_write_hdr(sl_u8 *hdr, const union sluice_ip *saddr,
			     const union sluice_ip *daddr, sl_u16 payload_len, sl_u8 tclass,
			     sl_u32 flow_label, sl_u8 hop_limit, sl_u8 next_hdr);
sl_be32 sluice_c_encap4_src(sl_be32 base, sl_u8 entropy_bits, sl_u32 flow_hash);
void sluice_c_encap6_src(union sluice_ip *out, const union sluice_ip *base, sl_u8 entropy_bits,
			 sl_u32 flow_hash);
sl_u16 sluice_c_icmp6_csum(const sl_u8 *saddr, const sl_u8 *daddr, const sl_u8 *msg, sl_u32 len);

#ifdef __cplusplus
}
#endif
