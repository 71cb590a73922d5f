/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* What the XDP load balancer shares with its user side beyond dataplane/abi:
 * the next hops of encapsulated packets. */
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

/* A next hop: a neighbour reached through one interface. ifindex 0 means
 * the interface the packet came in on, reached with XDP_TX (one-armed);
 * another ifindex is reached with XDP_REDIRECT through sluice_tx_ports
 * (multi-armed), which must hold that ifindex. An all-zero dst_mac means
 * "none": the packet is not sent to a guessed MAC. 16 bytes.
 *
 * Two maps hold next hops. sluice_backend_hops has each backend's own,
 * filled by the loader from the kernel's route and neighbour tables for
 * that backend's address (xdp/next_hop.hpp), so backends in different
 * subnets or behind different interfaces each get theirs. sluice_next_hop
 * holds one static next hop (the operator's gateway MAC), the fallback of
 * a backend without one of its own; with neither, the backend's packets
 * are dropped as SLUICE_DROP_TX_FAILED. */
struct sluice_next_hop {
	sl_u8 dst_mac[6]; /* the neighbour's MAC */
	sl_u8 src_mac[6]; /* the egress interface's MAC */
	sl_u32 ifindex;   /* egress interface, host order; 0 = the receiving one (XDP_TX) */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_next_hop) == 16, "next hop is 16 bytes");

/* A backend's own next hop, at the backend's slot (id & (SLUICE_MAX_BACKENDS
 * - 1)) of sluice_backend_hops. It answers only for the backend id it was
 * resolved for: a slot reused by a new backend falls back to the static
 * next hop until the new one is resolved, never to its predecessor's
 * neighbour. 24 bytes. */
struct sluice_backend_hop {
	struct sluice_next_hop hop; /* all-zero dst_mac: none resolved */
	sl_u32 backend_id;          /* the sluice_backend.id it is for */
	sl_u32 pad;                 /* zero */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_backend_hop) == 24, "backend hop is 24 bytes");
