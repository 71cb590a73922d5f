/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Backends and the Maglev lookup of a new flow (Eisenbud et al., NSDI '16):
 * the control plane builds each VIP's table; the fast path only reads
 * table[hash % M]. */
#pragma once

#include "lb_maps.h"

/* Copies the backend `id` to *out if its slot still holds it: VALID and the
 * same id (a draining backend qualifies; a removed one, or a slot reused by
 * another backend, does not). Returns 0 or -1. */
static __always_inline int lb_get_backend(__u32 id, struct sluice_backend *out)
{
	__u32 slot = id & (SLUICE_MAX_BACKENDS - 1);
	struct sluice_backend *b;

	if (id == SLUICE_BACKEND_NONE)
		return -1;
	b = bpf_map_lookup_elem(&sluice_backends, &slot);
	if (!b || !(b->flags & SLUICE_BACKEND_VALID) || b->id != id)
		return -1;
	*out = *b;
	return 0;
}

/* The backend Maglev gives a new flow of `vip`: slot hash % table_size of
 * the VIP's current table. Returns 0 with *out filled, or -1 when the VIP
 * has no table, the slot is empty or names a backend that is gone. */
static __always_inline int lb_maglev_pick(const struct sluice_vip_meta *vip, __u32 hash,
					  struct sluice_backend *out)
{
	__u32 vip_id = vip->vip_id;
	__u32 slot;
	__u32 *id;
	void *table;

	if (vip->table_size == 0)
		return -1;
	table = bpf_map_lookup_elem(&sluice_maglev, &vip_id);
	if (!table)
		return -1;
	/* A slot past the end of the table (its M lagging the VIP's during a
	 * resize) finds nothing: a counted drop, never another VIP's data. */
	slot = hash % vip->table_size;
	id = bpf_map_lookup_elem(table, &slot);
	if (!id)
		return -1;
	return lb_get_backend(*id, out);
}
