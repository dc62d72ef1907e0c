/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * FNV-1a hashes (Fowler/Noll/Vo; http://www.isthe.com/chongo/tech/comp/fnv/), under the names
 * Inspektor Gadget's header gives them. For every byte: hash ^= byte, then hash *= prime.
 * The update functions feed an integer's bytes least significant first (little-endian order,
 * whatever the CPU), so a hash computed in BPF matches one computed in user space from the
 * same values.
 *
 *   __u64 h = fnv_64a_init();
 *   fnv_64a_update_u32(&h, pid);
 *   fnv_64a_update_u64(&h, mntns_id);
 */
#ifndef __GADGET_FNV1A_H
#define __GADGET_FNV1A_H

#include <bpf/bpf_helpers.h>

#define FNV1_32_INIT ((__u32)0x811c9dc5)		/* offset basis */
#define FNV1_32_PRIME ((__u32)0x01000193)		/* 2^24 + 2^8 + 0x93 */
#define FNV1_64_INIT ((__u64)0xcbf29ce484222325ULL)
#define FNV1_64_PRIME ((__u64)0x00000100000001b3ULL)	/* 2^40 + 2^8 + 0xb3 */

static __always_inline __u32 fnv_32a_init(void)
{
	return FNV1_32_INIT;
}

static __always_inline __u64 fnv_64a_init(void)
{
	return FNV1_64_INIT;
}

/* fn(hash, value): folds the `bytes` low-order bytes of value into *hash, lowest first. */
#define __GADGET_FNV_UPDATE(fn, hash_t, value_t, bytes, prime)			\
	static __always_inline void fn(hash_t *hash, value_t value)		\
	{									\
		hash_t h = *hash;						\
		for (int i = 0; i < (bytes); i++) {				\
			h ^= (hash_t)((value >> (8 * i)) & 0xff);		\
			h *= (prime);						\
		}								\
		*hash = h;							\
	}

__GADGET_FNV_UPDATE(fnv_32a_update_u8, __u32, __u8, 1, FNV1_32_PRIME)
__GADGET_FNV_UPDATE(fnv_32a_update_u16, __u32, __u16, 2, FNV1_32_PRIME)
__GADGET_FNV_UPDATE(fnv_32a_update_u32, __u32, __u32, 4, FNV1_32_PRIME)
__GADGET_FNV_UPDATE(fnv_32a_update_u64, __u32, __u64, 8, FNV1_32_PRIME)
__GADGET_FNV_UPDATE(fnv_64a_update_u8, __u64, __u8, 1, FNV1_64_PRIME)
__GADGET_FNV_UPDATE(fnv_64a_update_u16, __u64, __u16, 2, FNV1_64_PRIME)
__GADGET_FNV_UPDATE(fnv_64a_update_u32, __u64, __u32, 4, FNV1_64_PRIME)
__GADGET_FNV_UPDATE(fnv_64a_update_u64, __u64, __u64, 8, FNV1_64_PRIME)

#undef __GADGET_FNV_UPDATE

#endif /* __GADGET_FNV1A_H */
