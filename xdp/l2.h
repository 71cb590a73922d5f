/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* The L2 header of both XDP programs: Ethernet with up to
 * SLUICE_MAX_VLAN_TAGS 802.1Q / 802.1ad tags, parsed, kept across
 * bpf_xdp_adjust_head when an outer header is pushed or pulled, re-typed. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "stats.h"

/* One VLAN tag as it follows the MAC addresses. */
struct l2_vlan_tag {
	__be16 tci;   /* priority, DEI, VLAN id */
	__be16 proto; /* the next EtherType */
};

/* What l2_parse found. */
struct l2_info {
	__u32 l3_off; /* offset of the L3 header = bytes of the L2 header (14, 18 or 22) */
	__u16 proto;  /* EtherType of the L3 header, host order */
	__u8 ntags;   /* VLAN tags walked (0..SLUICE_MAX_VLAN_TAGS) */
};

static __always_inline int l2_is_vlan(__be16 proto)
{
	return proto == bpf_htons(SLUICE_ETH_P_8021Q) || proto == bpf_htons(SLUICE_ETH_P_8021AD);
}

/* Walks Ethernet and its VLAN tags. Returns 0 with *l2 filled, or
 * -SLUICE_DROP_TRUNCATED (frame ends inside the L2 header) or
 * -SLUICE_DROP_BAD_L2 (more than SLUICE_MAX_VLAN_TAGS tags). */
static __always_inline int l2_parse(void *data, void *data_end, struct l2_info *l2)
{
	struct ethhdr *eth = data;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return -SLUICE_DROP_TRUNCATED;
	proto = eth->h_proto;
	l2->ntags = 0;
#pragma unroll
	for (int i = 0; i < SLUICE_MAX_VLAN_TAGS; i++) {
		struct l2_vlan_tag *tag = data + SLUICE_ETH_HLEN + i * SLUICE_VLAN_HLEN;

		if (!l2_is_vlan(proto))
			break;
		if ((void *)(tag + 1) > data_end)
			return -SLUICE_DROP_TRUNCATED;
		proto = tag->proto;
		l2->ntags++;
	}
	if (l2_is_vlan(proto))
		return -SLUICE_DROP_BAD_L2;
	l2->l3_off = SLUICE_ETH_HLEN + l2->ntags * SLUICE_VLAN_HLEN;
	l2->proto = bpf_ntohs(proto);
	return 0;
}

/* An L2 header held aside while bpf_xdp_adjust_head moves the packet's
 * front: save it, adjust, store it at the new front. Nothing in the packet
 * changes if the adjustment fails. */
struct l2_saved {
	__u8 bytes[SLUICE_ETH_HLEN + SLUICE_MAX_VLAN_TAGS * SLUICE_VLAN_HLEN];
};

/* Copies the largest L2 header, SLUICE_ETH_HLEN + SLUICE_MAX_VLAN_TAGS *
 * SLUICE_VLAN_HLEN bytes, at data into *s, whatever the frame's own tag
 * count: every frame that reaches it holds at least an IP header after its
 * L2 header, so it has those bytes. Copying all of them means l2_store
 * never reads a byte of *s that was not written here; a copy of only
 * "i < ntags" tags made the verifier (which cannot tie that branch to
 * l2_store's) explore a restore of unwritten stack, and reject programs
 * where the compiler had spilled a pointer to that slot. Returns 0, or -1
 * if the frame is shorter than that. */
static __always_inline int l2_save(void *data, void *data_end, struct l2_saved *s)
{
	if (data + sizeof(s->bytes) > data_end)
		return -1;
	__builtin_memcpy(s->bytes, data, sizeof(s->bytes));
	return 0;
}

/* Writes a saved L2 header (ntags tags) at data. Returns 0, or -1 if the
 * frame is too short. */
static __always_inline int l2_store(void *data, void *data_end, __u8 ntags,
				    const struct l2_saved *s)
{
	if (data + SLUICE_ETH_HLEN > data_end)
		return -1;
	__builtin_memcpy(data, s->bytes, SLUICE_ETH_HLEN);
#pragma unroll
	for (int i = 0; i < SLUICE_MAX_VLAN_TAGS; i++) {
		__u32 off = SLUICE_ETH_HLEN + i * SLUICE_VLAN_HLEN;

		if (i < ntags) {
			if (data + off + SLUICE_VLAN_HLEN > data_end)
				return -1;
			__builtin_memcpy(data + off, s->bytes + off, SLUICE_VLAN_HLEN);
		}
	}
	return 0;
}

/* Sets the EtherType of the L3 header (the last one in a tagged header),
 * proto in host order. Returns 0, or -1 if the frame is too short. */
static __always_inline int l2_set_proto(void *data, void *data_end, __u8 ntags, __u16 proto)
{
	__be16 *type = data + SLUICE_ETH_HLEN - 2 + (ntags & 3) * SLUICE_VLAN_HLEN;

	if ((void *)(type + 1) > data_end)
		return -1;
	*type = bpf_htons(proto);
	return 0;
}
