/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* What the XDP load balancer shares with its user side beyond dataplane/abi:
 * the static next hop of this first step. */
#pragma once

#include "types.h"

/* The next hop of every encapsulated packet: the gateway on the segment the
 * packet came in on, reached with XDP_TX (one-armed). An all-zero dst_mac
 * means "not configured": VIP packets are then dropped as
 * SLUICE_DROP_TX_FAILED rather than sent to a wrong MAC. 12 bytes.
 * The loader fills it from the kernel's route and neighbour tables
 * (xdp/next_hop.hpp) or from the operator's gateway MAC. Multi-armed
 * forwarding (XDP_REDIRECT through a devmap) is not built yet (P2). */
struct sluice_next_hop {
	sl_u8 dst_mac[6]; /* the gateway's MAC */
	sl_u8 src_mac[6]; /* this interface's MAC */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_next_hop) == 12, "next hop is 12 bytes");
