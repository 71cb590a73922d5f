/* SPDX-License-Identifier: BSD-2-Clause */
/* Compiles dataplane/abi/csum.h and encap.h as C11 (what the BPF program
 * sees) and exports C-compiled copies of their functions, so csum_test can
 * check that C and C++ give the same bytes. */
#include "dataplane/abi/csum.h"
#include "dataplane/abi/encap.h"
#include "abi_c_check.h"

sl_u16 sluice_c_csum(const void *buf, sl_u32 len)
{
	return sluice_csum(buf, len, 0xFFFFu);
}

sl_u16 sluice_c_csum_update32(sl_u16 check, sl_u32 old_val, sl_u32 new_val)
{
	return sluice_csum_update32(check, old_val, new_val);
}

void sluice_c_ipv4_write_hdr(sl_u8 *hdr, sl_be32 saddr, sl_be32 daddr, sl_u16 payload_len,
			     sl_u8 tos, sl_u16 id, int df, sl_u8 ttl, sl_u8 proto)
{
	sluice_ipv4_write_hdr(hdr, saddr, daddr, payload_len, tos, id, df, ttl, proto);
}

void sluice_c_ipv6_write_hdr(sl_u8 *hdr, const union sluice_ip *saddr,
			     const union sluice_ip *daddr, sl_u16 payload_len, sl_u8 tclass,
			     sl_u32 flow_label, sl_u8 hop_limit, sl_u8 next_hdr)
{
	sluice_ipv6_write_hdr(hdr, saddr, daddr, payload_len, tclass, flow_label, hop_limit,
			      next_hdr);
}

sl_be32 sluice_c_encap4_src(sl_be32 base, sl_u8 entropy_bits, sl_u32 flow_hash)
{
	return sluice_encap4_src(base, entropy_bits, flow_hash);
}

void sluice_c_encap6_src(union sluice_ip *out, const union sluice_ip *base, sl_u8 entropy_bits,
			 sl_u32 flow_hash)
{
	sluice_encap6_src(out, base, entropy_bits, flow_hash);
}

sl_u16 sluice_c_icmp6_csum(const sl_u8 *saddr, const sl_u8 *daddr, const sl_u8 *msg, sl_u32 len)
{
	sl_u64 sum = sluice_csum_ipv6_pseudo(0, saddr, daddr, len, SLUICE_IPPROTO_ICMPV6);

	return sluice_csum_finish(sluice_csum_add_bytes(sum, msg, len, 0xFFFFu));
}
