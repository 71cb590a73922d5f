/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Drop reasons and counters, laid out once for every fast path. Counters
 * are per core (per CPU in BPF, per lcore in DPDK); readers sum them. */
#pragma once

#include "types.h"

/* Why a packet was dropped, or passed to the kernel. Every drop in a fast
 * path is counted under one of these at one exit point. */
enum sluice_drop_reason {
	SLUICE_DROP_NONE = 0,          /* not dropped */
	SLUICE_DROP_TRUNCATED,         /* a header runs past the end of the frame */
	SLUICE_DROP_BAD_L2,            /* too many VLAN tags, bad EtherType chain */
	SLUICE_DROP_BAD_IPV4,          /* IHL < 5, version mismatch, bad total length */
	SLUICE_DROP_BAD_IPV6,          /* bad payload length, extension chain too long */
	SLUICE_DROP_BAD_L4,            /* TCP data offset < 5, UDP length mismatch */
	SLUICE_DROP_BAD_ICMP,          /* ICMP error with an unusable embedded header */
	SLUICE_DROP_UNSUPPORTED_L4,    /* VIP traffic that is neither TCP, UDP nor an ICMP error */
	SLUICE_DROP_NO_BACKEND,        /* VIP has no backend configured (empty table) */
	SLUICE_DROP_ENCAP_NO_ROOM,     /* no headroom to add the outer header */
	SLUICE_DROP_TOO_BIG,           /* over the MTU after encapsulation, DF set or IPv6: an ICMP
	                                  too-big sent back where the rules allow one
	                                  (icmp_too_big_sent counts those) */
	SLUICE_DROP_TX_FAILED,         /* transmit queue full or redirect failed */
	/* Appended: the reasons above keep their numbers. */
	SLUICE_DROP_TOO_BIG_DF_CLEAR,  /* IPv4 over the MTU after encapsulation with DF clear: the
	                                  sender did not ask for PMTUD, so no ICMP; no fragmenting */
	SLUICE_DROP_FRAG_OF_DROPPED,   /* a later fragment of a datagram whose first fragment was
	                                  dropped (XDP: its sluice_frags record is marked) */
	SLUICE_DROP_MAX                /* number of reasons; not a reason */
};

/* Per-core global counters, 8-byte each, in packets unless named. */
struct sluice_global_stats {
	sl_u64 rx_packets;                  /* frames seen by the fast path */
	sl_u64 rx_bytes;                    /* their bytes (frame length) */
	sl_u64 tx_packets;                  /* frames sent on (encapsulated) */
	sl_u64 pass_packets;                /* not for a VIP: passed to the kernel */
	sl_u64 flow_hits;                   /* flow-table hits */
	sl_u64 flow_misses;                 /* flow-table misses (Maglev consulted) */
	sl_u64 flow_insert_failed;          /* new flows not stored: bucket full of established flows */
	sl_u64 icmp_too_big_sent;           /* frag-needed / packet-too-big replies */
	sl_u64 drops[SLUICE_DROP_MAX];      /* drops by reason */
	sl_u64 frag_unmatched;              /* later fragments passed: no VIP's first fragment seen */
};

/* Per-core counters of one VIP. */
struct sluice_vip_stats {
	sl_u64 packets;   /* packets forwarded to a backend */
	sl_u64 bytes;     /* their bytes before encapsulation */
	sl_u64 new_flows; /* flow-table misses that chose a backend */
	sl_u64 drops;     /* packets for this VIP dropped (any reason) */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_vip_stats) == 32, "vip stats are 32 bytes");

/* Per-core counters of one backend. */
struct sluice_backend_stats {
	sl_u64 packets;   /* packets sent to this backend */
	sl_u64 bytes;     /* their bytes before encapsulation */
	sl_u64 new_flows; /* flows newly pinned to this backend */
	sl_u64 pad;       /* zero; keeps the struct 32 bytes */
};
SLUICE_STATIC_ASSERT(sizeof(struct sluice_backend_stats) == 32, "backend stats are 32 bytes");
