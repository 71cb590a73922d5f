/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* What the XDP benchmark harness (xdp_bench_harness.bpf.c) and its driver
 * (xdp_bench.cpp) share: the frame restored before every run of the program
 * under test, and how that frame is varied from one run to the next. */
#pragma once

#include <linux/types.h>

/* Largest frame the harness restores, bytes (a power of two). */
#define BENCH_MAX_FRAME 128

/* bench_frame.vary */
#define BENCH_VARY_NONE 0  /* the same frame every run */
#define BENCH_VARY_FIELD 1 /* a 32-bit big-endian field := base + (counter & mask) */

/* The one entry of bench_frames: the frame the program under test sees at
 * the start of every run. 152 bytes. */
struct bench_frame {
	__u8 bytes[BENCH_MAX_FRAME]; /* the frame */
	__u32 len;                   /* bytes of `bytes` in use, 1..BENCH_MAX_FRAME */
	__u32 vary;                  /* BENCH_VARY_* */
	__u32 vary_off;              /* offset of the varied field in the frame, bytes (+4 <= len) */
	__u32 vary_base;             /* first value of the field, host order */
	__u32 vary_mask;             /* 0xffffffff: a new value every run; 2^k - 1: cycle 2^k values */
	__u32 tail_grows;            /* 1: the program grows the frame at its tail (a cache hit's
				      * response), so the harness cuts the tail back; 0: it pushes
				      * headers in front, so the harness moves the front back */
};
