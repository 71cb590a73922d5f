/* SPDX-License-Identifier: BSD-2-Clause */
/* Every dataplane/abi header compiled as C (gnu11, the project's C
 * warnings, -Werror): the headers are C first, shared with BPF and DPDK
 * code. Exports layouts and hashes for abi_c_test.cpp to compare with C++. */
#include "tests/unit/abi_c_check.h"

#include "dataplane/abi/consts.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "dataplane/abi/types.h"

#define ABI_C_LAYOUT(tag) { #tag, sizeof(struct tag), _Alignof(struct tag) }

const struct abi_c_layout abi_c_layouts[] = {
	ABI_C_LAYOUT(sluice_flow_key),
	ABI_C_LAYOUT(sluice_vip_key),
	ABI_C_LAYOUT(sluice_vip_meta),
	ABI_C_LAYOUT(sluice_backend),
	ABI_C_LAYOUT(sluice_flow_value),
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
