/* SPDX-License-Identifier: BSD-2-Clause */
/* Every dataplane/abi header compiled for BPF (clang -target bpf, see
 * tests/unit/meson.build): no libc, no unsupported builtins, and the hashes
 * inline to code the BPF backend accepts. The functions exist only to make
 * the compiler emit that code. */
#include "dataplane/abi/cache.h"
#include "dataplane/abi/consts.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "dataplane/abi/types.h"

__attribute__((section("xdp"), used))
int sluice_abi_check(struct sluice_flow_key *key, struct sluice_backend *backend)
{
	sl_u32 h = sluice_flow_hash(key, 1);

	h ^= sluice_flow_hash_src(key, 2);
	h ^= sluice_addr_hash(&backend->addr, backend->family, SLUICE_MAGLEV_OFFSET_SEED);
	h ^= sluice_cache_key_hash(backend->addr.bytes, backend->family, 0);
	h ^= sluice_cache_sketch_index(h, 3) ^ sluice_cache_version_slot(key->proto, h);
	return (int)(h % SLUICE_MAGLEV_DEFAULT_SIZE) + (int)sl_ntohs(key->sport);
}
