/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Markers the ig runtime finds in BTF. See bpf/README.md. */
#ifndef __GADGET_MACROS_H
#define __GADGET_MACROS_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>

/*
 * Inspektor Gadget's older name for an iterator (deprecated there): the same marker as
 * GADGET_ITER (defined below by the iterator support; expanded only where used).
 */
#define GADGET_SNAPSHOTTER(name, type, ...) GADGET_ITER(name, type, __VA_ARGS__)

/*
 * Ring buffer `name` of `size` bytes (power of 2, page multiple) and its lost counter
 * `gadget_lost__<name>` (.bss). The two functions let gadget/buffer.h's macros take the map
 * as `&name` (Inspektor Gadget's form) or as `name`: see there.
 */
#define GADGET_TRACER_MAP(name, size)					\
	struct {							\
		__uint(type, BPF_MAP_TYPE_RINGBUF);			\
		__uint(max_entries, size);				\
	} name SEC(".maps");						\
	__u64 gadget_lost__##name SEC(".bss");				\
	static __always_inline __attribute__((unused)) void *		\
	name##__gadget_ring(void) { return &name; }			\
	static __always_inline __attribute__((unused)) __u64 *		\
	name##__gadget_lost(void) { return &gadget_lost__##name; }	\
	const void *gadget_map_tracer_##name __attribute__((unused))

/* Tracer `name`: map `map` carries `struct type`; the pointer keeps the struct in BTF. */
#define GADGET_TRACER(name, map, type)					\
	const void *gadget_tracer_##name##___##map##___##type		\
		__attribute__((unused));				\
	const struct type *__gadget_tracer_type__##name			\
		__attribute__((unused))

/* The const volatile global `name` becomes a CLI parameter. */
#define GADGET_PARAM(name)						\
	const volatile void *gadget_param_##name __attribute__((unused))

/*
 * Map and BPF iterators (Inspektor Gadget's names and meaning). Kept as one block.
 *
 * GADGET_MAPITER(name, map): every --map-fetch-interval the runtime reads the whole hash map
 * `map` and deletes what it read (one array of rows per read); the row's fields are the
 * map's key struct's, then its value struct's (both from BTF).
 *
 * GADGET_ITER(name, type, prog[, prog2[, prog3]]): `prog` is a SEC("iter/task"),
 * "iter/task_file", "iter/tcp" or "iter/udp" program that writes `struct type` records with
 * bpf_seq_write(); the runtime reads them as one array (a snapshot). The socket kinds run
 * once per container network namespace.
 */
#define __GADGET_ITER_NARGS_IMPL(_1, _2, _3, N, ...) N
#define __GADGET_ITER_NARGS(...) __GADGET_ITER_NARGS_IMPL(__VA_ARGS__, 3, 2, 1)
#define __GADGET_ITER_CAT(a, b) __GADGET_ITER_CAT2(a, b)
#define __GADGET_ITER_CAT2(a, b) a##b
#define __GADGET_ITER_MARK_1(name, type, p1)				\
	const void *gadget_iter_##name##___##type##___##p1 __attribute__((unused))
#define __GADGET_ITER_MARK_2(name, type, p1, p2)			\
	const void *gadget_iter_##name##___##type##___##p1##___##p2	\
		__attribute__((unused))
#define __GADGET_ITER_MARK_3(name, type, p1, p2, p3)			\
	const void *gadget_iter_##name##___##type##___##p1##___##p2##___##p3 \
		__attribute__((unused))

#define GADGET_ITER(name, type, ...)					\
	const struct type *unusedevent_##name##___##type		\
		__attribute__((unused));				\
	__GADGET_ITER_CAT(__GADGET_ITER_MARK_,				\
			  __GADGET_ITER_NARGS(__VA_ARGS__))(name, type, __VA_ARGS__)

/* Deprecated in Inspektor Gadget in favour of GADGET_ITER; same meaning. */
#ifndef GADGET_SNAPSHOTTER
#define GADGET_SNAPSHOTTER(name, type, ...) GADGET_ITER(name, type, __VA_ARGS__)
#endif

#define GADGET_MAPITER(name, map)					\
	const void *gadget_mapiter_##name##___##map __attribute__((unused))

/*
 * GADGET_ITER_TARGET_MAP(prog, map): the SEC("iter/bpf_map_elem") program `prog` (named in a
 * GADGET_ITER) walks the elements of `map`, a map of this object; the kernel needs that map's
 * fd when the iterator is attached. Marker `gadget_mapelem_iter_target_<prog>___<map>`
 * (Inspektor Gadget's name). The ig runtime does not run bpf_map_elem iterators yet: a
 * gadget with one compiles, and `ig image build`/`ig run` refuse it, naming the program.
 */
#define GADGET_ITER_TARGET_MAP(prog, map)				\
	const void *gadget_mapelem_iter_target_##prog##___##map		\
		__attribute__((unused))

/*
 * GADGET_SK_TARGET_MAP(prog, map): the sk_skb or sk_msg program `prog` is attached to the
 * sockmap or sockhash `map` of this object. Marker `gadget_sk_prog_target_<prog>___<map>`
 * (Inspektor Gadget's name). The ig runtime does not attach sk_skb/sk_msg programs yet.
 */
#define GADGET_SK_TARGET_MAP(prog, map)					\
	const void *gadget_sk_prog_target_##prog##___##map __attribute__((unused))

#endif /* __GADGET_MACROS_H */
