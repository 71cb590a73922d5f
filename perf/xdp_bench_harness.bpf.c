// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
/* The harness that makes BPF_PROG_TEST_RUN's repeat=N measure N packets:
 * before every run it puts the original frame back (repeat re-uses one
 * buffer, so without it run 2 would see run 1's encapsulated output),
 * optionally varies one field to make every run a different flow, and
 * tail-calls the program under test. Its own cost is measured by pointing
 * the tail call at bench_empty with the same frame, and subtracted. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdp_bench_harness.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_frames SEC(".maps");

/* Runs so far on this CPU: the source of the varied field. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_counter SEC(".maps");

/* Slot 0: the program under test. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_target SEC(".maps");

SEC("xdp")
int bench_wrap(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_frame *f = bpf_map_lookup_elem(&bench_frames, &zero);
	__u64 *counter = bpf_map_lookup_elem(&bench_counter, &zero);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len, off;

	if (!f || !counter)
		return XDP_ABORTED;
	len = f->len;
	if (len == 0 || len > BENCH_MAX_FRAME)
		return XDP_ABORTED;
	/* The program under test may have pushed headers in front (an
	 * encapsulation): move the front back; or grown the frame at its tail
	 * (a cache hit's response, f->tail_grows): cut the tail back. Called
	 * with 0 as well, so the harness costs the same whatever the program
	 * did. */
	if (f->tail_grows) {
		if (bpf_xdp_adjust_tail(ctx, (int)len - (int)(data_end - data)))
			return XDP_ABORTED;
	} else if (bpf_xdp_adjust_head(ctx, (int)(data_end - data) - (int)len)) {
		return XDP_ABORTED;
	}
	if (bpf_xdp_store_bytes(ctx, 0, f->bytes, len))
		return XDP_ABORTED;
	if (f->vary == BENCH_VARY_FIELD) {
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		off = f->vary_off & (BENCH_MAX_FRAME - 1);
		if (data + off + sizeof(__u32) > data_end)
			return XDP_ABORTED;
		*(__be32 *)(data + off) = bpf_htonl(f->vary_base + ((__u32)*counter & f->vary_mask));
		*counter += 1;
	}
	bpf_tail_call(ctx, &bench_target, 0);
	return XDP_ABORTED; /* no program in slot 0 */
}

/* The empty program: the harness's and BPF_PROG_TEST_RUN's own cost. */
SEC("xdp")
int bench_empty(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
