/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Ring buffer output with loss accounting and batched wakeups. */
#ifndef __GADGET_BUFFER_H
#define __GADGET_BUFFER_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>
#include <gadget/macros.h>

/* Set by the runtime before load. 0: the kernel's default wakeup policy. */
const volatile __u64 gadget_wakeup_bytes = 0;
/* Set by the runtime: a record also wakes the reader when the last wakeup is older (0: never). */
const volatile __u64 gadget_wakeup_interval_ns = 0;
/* When a record last woke the reader, on any CPU (a lost race costs one wakeup more). */
__u64 gadget__last_wakeup_ns SEC(".bss");

/*
 * The reader is woken by a fill level or by the first record after a quiet
 * interval: an exec on an idle machine shows at once, and a storm costs one
 * wakeup per interval instead of one per record.
 */
static __always_inline __u64 gadget__wakeup_flags(void *map, __u64 size)
{
	__u64 now;

	if (!gadget_wakeup_bytes)
		return 0;
	if (bpf_ringbuf_query(map, BPF_RB_AVAIL_DATA) + size >= gadget_wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	if (!gadget_wakeup_interval_ns)
		return BPF_RB_NO_WAKEUP;
	now = bpf_ktime_get_ns();
	if (now - gadget__last_wakeup_ns < gadget_wakeup_interval_ns)
		return BPF_RB_NO_WAKEUP;
	gadget__last_wakeup_ns = now;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void *gadget__reserve_buf(void *map, __u64 size, __u64 *lost)
{
	void *buf = bpf_ringbuf_reserve(map, size, 0);

	if (!buf)
		__sync_fetch_and_add(lost, 1);
	return buf;
}

static __always_inline long gadget__output_buf(void *map, void *data, __u64 size,
					       __u64 *lost)
{
	long err = bpf_ringbuf_output(map, data, size, gadget__wakeup_flags(map, size));

	if (err)
		__sync_fetch_and_add(lost, 1);
	return err;
}

/*
 * `map` is the map GADGET_TRACER_MAP defined, given as Inspektor Gadget's API
 * gives it (`&events`) or by its name (`events`, this API's older form). Both
 * work because the argument is only ever pasted in front of a suffix naming a
 * function GADGET_TRACER_MAP defined: `(&events__gadget_ring)()` and
 * `(events__gadget_ring)()` are the same call (a function designator and its
 * address are both the function), inlined to `&events`.
 */
#define gadget__ring_of(map)	((map##__gadget_ring)())
#define gadget__lost_of(map)	((map##__gadget_lost)())

#define gadget_reserve_buf(map, size)					\
	gadget__reserve_buf(gadget__ring_of(map), (size), gadget__lost_of(map))

/* A reserved record already counts in BPF_RB_AVAIL_DATA, hence 0. */
#define gadget_submit_buf(ctx, map, buf, size)				\
	(bpf_ringbuf_submit((buf), gadget__wakeup_flags(gadget__ring_of(map), 0)), 0L)

#define gadget_discard_buf(buf)	bpf_ringbuf_discard((buf), 0)

#define gadget_output_buf(ctx, map, data, size)				\
	gadget__output_buf(gadget__ring_of(map), (data), (size), gadget__lost_of(map))

#endif /* __GADGET_BUFFER_H */
