/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Constants shared by every fast path and the control plane: protocol
 * numbers, parser bounds, table limits. */
#pragma once

#include "types.h"

/* Address families as sluice encodes them in keys (not the libc AF_*
 * values, which differ between systems). */
#define SLUICE_FAMILY_IPV4 4
#define SLUICE_FAMILY_IPV6 6

/* IP protocol numbers (IANA). */
#define SLUICE_IPPROTO_HOPOPTS 0
#define SLUICE_IPPROTO_ICMP 1
#define SLUICE_IPPROTO_IPIP 4
#define SLUICE_IPPROTO_TCP 6
#define SLUICE_IPPROTO_UDP 17
#define SLUICE_IPPROTO_IPV6 41
#define SLUICE_IPPROTO_ROUTING 43
#define SLUICE_IPPROTO_FRAGMENT 44
#define SLUICE_IPPROTO_ICMPV6 58
#define SLUICE_IPPROTO_NONE 59
#define SLUICE_IPPROTO_DSTOPTS 60

/* EtherTypes, host order. */
#define SLUICE_ETH_P_IP 0x0800
#define SLUICE_ETH_P_IPV6 0x86DD
#define SLUICE_ETH_P_8021Q 0x8100
#define SLUICE_ETH_P_8021AD 0x88A8

/* Header sizes, bytes. */
#define SLUICE_ETH_HLEN 14
#define SLUICE_VLAN_HLEN 4
#define SLUICE_IPV4_HLEN 20
#define SLUICE_IPV6_HLEN 40

/* Parser bounds: VLAN tags walked (802.1ad + 802.1Q) and IPv6 extension
 * headers skipped before the parser gives up. */
#define SLUICE_MAX_VLAN_TAGS 2
#define SLUICE_MAX_IPV6_EXT_HDRS 4

/* Maglev lookup table sizes, entries: a prime in this range.
 * Default 65,537 (Eisenbud et al., NSDI '16, section 3.4). */
#define SLUICE_MAGLEV_MIN_SIZE 251
#define SLUICE_MAGLEV_MAX_SIZE 1048573
#define SLUICE_MAGLEV_DEFAULT_SIZE 65537

/* Capacity of the backend array, entries (power of two). A backend id's
 * slot is id & (SLUICE_MAX_BACKENDS - 1). */
#define SLUICE_MAX_BACKENDS 4096
/* Capacity of the VIP table, entries. */
#define SLUICE_MAX_VIPS 512

/* Backend id meaning "none" (no backend chosen / empty table slot). */
#define SLUICE_BACKEND_NONE 0xFFFFFFFFu
