/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Integer logarithms for histograms (libbpf-tools' and Inspektor Gadget's names). */
#ifndef __GADGET_BITS_BPF_H
#define __GADGET_BITS_BPF_H

#include <vmlinux.h>

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, val) ((*(volatile typeof(x) *)&(x)) = (val))

/* floor(log2(v)) for v > 0; 0 for 0. Branch-free halvings (no loop for the verifier). */
static __always_inline __u64 log2(__u32 v)
{
	__u32 shift, r;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u64 log2l(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2(hi) + 32 : log2((__u32)v);
}

/* The histogram slot of v: 0 for 0, else floor(log2(v)) + 1. */
static __always_inline __u64 get_slot_idx(__u64 v)
{
	__u32 hi = v >> 32;

	if (v == 0)
		return 0;
	return hi ? log2(hi) + 33 : log2((__u32)v) + 1;
}

#endif /* __GADGET_BITS_BPF_H */
