/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/* Fixed-width and byte-order types shared by the BPF program, the DPDK path
 * and the control plane; no libc in BPF builds. */
#pragma once

#if defined(__bpf__)
#include <linux/types.h>
typedef __u8 sl_u8;
typedef __u16 sl_u16;
typedef __u32 sl_u32;
typedef __u64 sl_u64;
#else
#include <stdint.h>
typedef uint8_t sl_u8;
typedef uint16_t sl_u16;
typedef uint32_t sl_u32;
typedef uint64_t sl_u64;
#endif

/* Network byte order (big endian) values. Plain integers to the compiler;
 * the name says which order the bytes are in. */
typedef sl_u16 sl_be16;
typedef sl_u32 sl_be32;

#if defined(__cplusplus)
#define SLUICE_INLINE static inline __attribute__((always_inline))
#define SLUICE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define SLUICE_INLINE static inline __attribute__((always_inline))
#define SLUICE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SLUICE_BIG_ENDIAN 1
#else
#define SLUICE_BIG_ENDIAN 0
#endif

/* Host <-> network order. */
SLUICE_INLINE sl_be16 sl_htons(sl_u16 v)
{
#if SLUICE_BIG_ENDIAN
	return v;
#else
	return __builtin_bswap16(v);
#endif
}

SLUICE_INLINE sl_be32 sl_htonl(sl_u32 v)
{
#if SLUICE_BIG_ENDIAN
	return v;
#else
	return __builtin_bswap32(v);
#endif
}

SLUICE_INLINE sl_u16 sl_ntohs(sl_be16 v) { return sl_htons(v); }
SLUICE_INLINE sl_u32 sl_ntohl(sl_be32 v) { return sl_htonl(v); }

/* Little-endian 32-bit load from bytes: the same value on every
 * architecture, which is what makes the flow hash portable. Compilers turn
 * it into one load on little-endian machines. */
SLUICE_INLINE sl_u32 sl_load_le32(const sl_u8 *p)
{
	return (sl_u32)p[0] | ((sl_u32)p[1] << 8) | ((sl_u32)p[2] << 16) | ((sl_u32)p[3] << 24);
}
