/* SPDX-License-Identifier: BSD-2-Clause */
/* Every dataplane/abi header compiled as C (gnu11, the project's C
 * warnings, -Werror): the headers are C first, shared with BPF and DPDK
 * code. Exports layouts, hashes, checksums and header builders for
 * abi_c_test.cpp and csum_test.cpp to compare with C++. */
#include "tests/unit/abi_c_check.h"

#include "dataplane/abi/consts.h"
#include "dataplane/abi/csum.h"
#include "dataplane/abi/encap.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "dataplane/abi/types.h"

#define ABI_C_LAYOUT(tag) { #tag, sizeof(struct tag), _Alignof(struct tag) }

const struct abi_c_layout abi_c_layouts[] = {
	ABI_C_LAYOUT(sluice_flow_key),
	ABI_C_LAYOUT(sluice_vip_key),
	ABI_C_LAYOUT(sluice_vip_meta),
	ABI_C_LAYOUT(sluice_vip_slot),
	ABI_C_LAYOUT(sluice_backend),
	ABI_C_LAYOUT(sluice_flow_value),
	ABI_C_LAYOUT(sluice_probation_slot),
	ABI_C_LAYOUT(sluice_encap_config),
	ABI_C_LAYOUT(sluice_global_stats),
	ABI_C_LAYOUT(sluice_vip_stats),
	ABI_C_LAYOUT(sluice_backend_stats),
};
const size_t abi_c_layout_count = sizeof abi_c_layouts / sizeof abi_c_layouts[0];

sl_u32 abi_c_flow_hash(const struct sluice_flow_key *key, sl_u32 seed)
{
	return sluice_flow_hash(key, seed);
}

sl_u32 abi_c_flow_hash_src(const struct sluice_flow_key *key, sl_u32 seed)
{
	return sluice_flow_hash_src(key, seed);
}

sl_u32 abi_c_addr_hash(const union sluice_ip *a, sl_u8 family, sl_u32 seed)
{
	return sluice_addr_hash(a, family, seed);
}

sl_u16 abi_c_csum(const void *buf, sl_u32 len)
{
	return sluice_csum(buf, len, 0xFFFFu);
}

sl_u16 abi_c_csum_update32(sl_u16 check, sl_u32 old_val, sl_u32 new_val)
{
	return sluice_csum_update32(check, old_val, new_val);
}

void abi_c_ipv4_write_hdr(sl_u8 *hdr, sl_be32 saddr, sl_be32 daddr, sl_u16 payload_len,
			     sl_u8 tos, sl_u16 id, int df, sl_u8 ttl, sl_u8 proto)
{
	sluice_ipv4_write_hdr(hdr, saddr, daddr, payload_len, tos, id, df, ttl, proto);
}

void abi_c_ipv6_write_hdr(sl_u8 *hdr, const union sluice_ip *saddr,
			     const union sluice_ip *daddr, sl_u16 payload_len, sl_u8 tclass,
			     sl_u32 flow_label, sl_u8 hop_limit, sl_u8 next_hdr)
{
	sluice_ipv6_write_hdr(hdr, saddr, daddr, payload_len, tclass, flow_label, hop_limit,
			      next_hdr);
}

sl_be32 abi_c_encap4_src(sl_be32 base, sl_u8 entropy_bits, sl_u32 flow_hash)
{
	return sluice_encap4_src(base, entropy_bits, flow_hash);
}

void abi_c_encap6_src(union sluice_ip *out, const union sluice_ip *base, sl_u8 entropy_bits,
			 sl_u32 flow_hash)
{
	sluice_encap6_src(out, base, entropy_bits, flow_hash);
}

sl_u16 abi_c_icmp6_csum(const sl_u8 *saddr, const sl_u8 *daddr, const sl_u8 *msg, sl_u32 len)
{
	sl_u64 sum = sluice_csum_ipv6_pseudo(0, saddr, daddr, len, SLUICE_IPPROTO_ICMPV6);

	return sluice_csum_finish(sluice_csum_add_bytes(sum, msg, len, 0xFFFFu));
}
