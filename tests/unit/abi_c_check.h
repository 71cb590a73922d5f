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

#ifdef __cplusplus
}
#endif
