// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
/* The backend-side decapsulator: strips the outer IPv4 or IPv6 header that
 * sluice_lb added (IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6, IPv6-in-IPv4)
 * when the inner destination is one of this backend's VIPs, and passes the
 * inner packet to the stack, with the outer ECN field folded into the inner
 * one (RFC 6040). For kernels (or containers) without tunnel devices.
 * Everything else passes untouched. */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "encap.h"
#include "l2.h"
#include "sluice_decap.h"

/* The VIP addresses this backend serves. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_VIPS);
	__type(key, struct sluice_decap_vip);
	__type(value, __u8);
} sluice_decapvip SEC(".maps");

/* Counters, per CPU, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_decap_stats);
} sluice_decapctr SEC(".maps");

/* The inner header at offset `off` (protocol `proto`, 4 or 41): if its
 * destination is a configured VIP, returns its EtherType (host order), else
 * 0. */
static __always_inline __u16 decap_inner_vip(void *data, void *data_end, __u32 off, __u8 proto)
{
	struct sluice_decap_vip key = {};

	if (proto == SLUICE_IPPROTO_IPIP) {
		struct iphdr *iph = data + off;

		if ((void *)(iph + 1) > data_end || iph->version != 4)
			return 0;
		key.addr.v4 = iph->daddr;
		key.family = SLUICE_FAMILY_IPV4;
	} else if (proto == SLUICE_IPPROTO_IPV6) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return 0;
		__builtin_memcpy(key.addr.bytes, &ip6->daddr, 16);
		key.family = SLUICE_FAMILY_IPV6;
	} else {
		return 0;
	}
	if (!bpf_map_lookup_elem(&sluice_decapvip, &key))
		return 0;
	return key.family == SLUICE_FAMILY_IPV4 ? SLUICE_ETH_P_IP : SLUICE_ETH_P_IPV6;
}

/* What decap_process did with a packet. */
enum decap_verdict {
	DECAP_PASS = 0,     /* not an encapsulated VIP packet: untouched */
	DECAP_STRIPPED = 1, /* outer header gone, inner packet passed on */
	DECAP_ECN_DROP = 2, /* outer CE over a not-ECT inner packet */
};

/* Folds the outer header's ECN field (0-3) into the inner IP header at
 * `off` (EtherType inner_proto, host order) as RFC 6040 section 4.2 says
 * (sluice_ecn_decap), fixing the IPv4 header checksum (RFC 1624). Returns
 * DECAP_STRIPPED, or DECAP_ECN_DROP when the packet must be dropped (the
 * inner header is then unchanged), or DECAP_PASS for an inner header cut
 * short (decap_inner_vip has checked it is not; the verifier needs it). Runs before the outer header is pulled:
 * should the pull fail, the packet passes on with the outer header and a
 * folded inner field, which nothing reads. */
static __always_inline int decap_ecn(void *data, void *data_end, __u32 off, __u16 inner_proto,
				     __u8 outer_ecn)
{
	__u8 *h = data + off;
	__u8 was, now;

	if (inner_proto == SLUICE_ETH_P_IP) {
		if ((void *)(h + SLUICE_IPV4_HLEN) > data_end)
			return DECAP_PASS;
		was = h[1] & SLUICE_ECN_MASK;
		now = sluice_ecn_decap(was, outer_ecn);
		if (now == SLUICE_ECN_DROP)
			return DECAP_ECN_DROP;
		if (now != was) {
			__u16 old_word = (__u16)(h[0] << 8 | h[1]);
			__u16 check = (__u16)(h[10] << 8 | h[11]);

			h[1] = (__u8)((h[1] & ~SLUICE_ECN_MASK) | now);
			check = sluice_csum_update16(check, old_word, (__u16)(h[0] << 8 | h[1]));
			sluice_put_be16(h + 10, check);
		}
		return DECAP_STRIPPED;
	}
	/* IPv6: the traffic class spans bytes 0-1; its ECN bits are bits 4-5
	 * of byte 1. No header checksum. */
	if ((void *)(h + SLUICE_IPV6_HLEN) > data_end)
		return DECAP_PASS;
	was = (h[1] >> 4) & SLUICE_ECN_MASK;
	now = sluice_ecn_decap(was, outer_ecn);
	if (now == SLUICE_ECN_DROP)
		return DECAP_ECN_DROP;
	h[1] = (__u8)((h[1] & ~(SLUICE_ECN_MASK << 4)) | (now << 4));
	return DECAP_STRIPPED;
}

/* Pulls `outer_len` bytes from behind the L2 header. Returns 0, or -1 with
 * the packet unchanged. */
static __always_inline int decap_pull(struct xdp_md *ctx, const struct l2_info *l2,
				      __u32 outer_len, __u16 inner_proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct l2_saved saved;

	if (l2_save(data, data_end, &saved))
		return -1;
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* Cannot fail: the inner IP header follows the new L2 header. */
	if (l2_store(data, data_end, l2->ntags, &saved))
		return -1;
	return l2_set_proto(data, data_end, l2->ntags, inner_proto);
}

/* Strips the outer header if this is an encapsulated VIP packet, folding
 * its ECN field into the inner header first. Returns a decap_verdict. */
static __always_inline int decap_process(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct l2_info l2;
	__u32 outer_len;
	__u8 outer_ecn;
	__u16 inner;
	int ret;

	if (l2_parse(data, data_end, &l2))
		return DECAP_PASS;
	if (l2.proto == SLUICE_ETH_P_IP) {
		struct iphdr *iph = data + l2.l3_off;

		/* sluice_lb's outer IPv4 header is 20 bytes and never a fragment. */
		if ((void *)(iph + 1) > data_end || *(__u8 *)iph != 0x45 ||
		    (bpf_ntohs(iph->frag_off) & 0x3fff))
			return DECAP_PASS;
		outer_len = sizeof(*iph);
		outer_ecn = iph->tos & SLUICE_ECN_MASK;
		inner = decap_inner_vip(data, data_end, l2.l3_off + outer_len, iph->protocol);
	} else if (l2.proto == SLUICE_ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + l2.l3_off;

		/* sluice_lb's outer IPv6 header has no extension headers. */
		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return DECAP_PASS;
		outer_len = sizeof(*ip6);
		outer_ecn = (((__u8 *)ip6)[1] >> 4) & SLUICE_ECN_MASK;
		inner = decap_inner_vip(data, data_end, l2.l3_off + outer_len, ip6->nexthdr);
	} else {
		return DECAP_PASS;
	}
	if (!inner)
		return DECAP_PASS;
	ret = decap_ecn(data, data_end, l2.l3_off + outer_len, inner, outer_ecn);
	if (ret != DECAP_STRIPPED)
		return ret;
	return decap_pull(ctx, &l2, outer_len, inner) == 0 ? DECAP_STRIPPED : DECAP_PASS;
}

SEC("xdp")
int sluice_decap(struct xdp_md *ctx)
{
	struct sluice_decap_stats *s;
	__u32 zero = 0;
	int verdict = decap_process(ctx);

	s = bpf_map_lookup_elem(&sluice_decapctr, &zero);
	if (s) {
		if (verdict == DECAP_STRIPPED)
			s->decap_packets++;
		else if (verdict == DECAP_ECN_DROP)
			s->ecn_dropped++;
		else
			s->pass_packets++;
	}
	return verdict == DECAP_ECN_DROP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
