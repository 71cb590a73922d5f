/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* What the backend-side decapsulator shares with its user side: the key of
 * its VIP set and its counters. */
#pragma once

#include "flow.h"
#include "types.h"

/* A VIP address this backend serves (sluice_decapvip key; the value is a
 * byte, unused). Ports and protocols do not matter here: the load balancer
 * already chose this backend. 20 bytes. */
struct sluice_decap_vip {
	union sluice_ip addr; /* VIP address, network order; IPv4 in the first 4 bytes */
	sl_u8 family;         /* SLUICE_FAMILY_IPV4 or _IPV6 */
	sl_u8 pad[3];         /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_decap_vip) == 20, "decap vip is 20 bytes");

/* Per-CPU counters of the decapsulator, packets. */
struct sluice_decap_stats {
	sl_u64 decap_packets; /* outer header stripped, inner packet passed on */
	sl_u64 pass_packets;  /* not an encapsulated VIP packet: passed untouched */
	sl_u64 ecn_dropped;   /* CE on the outer header of a not-ECT inner packet:
			       * dropped (RFC 6040 section 4.2) */
};
