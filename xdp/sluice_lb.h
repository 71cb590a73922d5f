/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* What the XDP load balancer shares with its user side beyond dataplane/abi:
 * the next hop of every encapsulated packet. */
#pragma once

#include "types.h"

/* Entries of sluice_tx_ports: egress interfaces a next hop may name. */
#define SLUICE_MAX_TX_PORTS 64

/* How long a slot of the per-CPU established-flow cache (sluice_flow_cache,
 * xdp/lb_lookup.h) answers for its flow before the flow's packet refreshes
 * the shared entry again: 16 jiffies, at most 160 ms (HZ=100, the slowest
 * tick Linux offers). The shared entry's last_seen lags its flow by less
 * than that, so idle timeouts must be well above it: the loader turns the
 * cache off below SLUICE_FLOW_CACHE_MIN_IDLE_MS. */
#define SLUICE_FLOW_CACHE_JIFFIES 16
#define SLUICE_FLOW_CACHE_MIN_IDLE_MS 1000

/* The next hop of every encapsulated packet: a neighbour (usually the
 * gateway) reached through one interface. ifindex 0 means the interface
 * the packet came in on, reached with XDP_TX (one-armed); another ifindex
 * is reached with XDP_REDIRECT through sluice_tx_ports (multi-armed), which
 * must hold that ifindex. An all-zero dst_mac means "not configured": VIP
 * packets are then dropped as SLUICE_DROP_TX_FAILED rather than sent to a
 * wrong MAC. 16 bytes. The loader fills it from the kernel's route and
 * neighbour tables (xdp/next_hop.hpp) or from the operator's gateway MAC. */
struct sluice_next_hop {
	sl_u8 dst_mac[6]; /* the neighbour's MAC */
	sl_u8 src_mac[6]; /* the egress interface's MAC */
	sl_u32 ifindex;   /* egress interface, host order; 0 = the receiving one (XDP_TX) */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_next_hop) == 16, "next hop is 16 bytes");
