/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Markers the ig runtime finds in BTF. See bpf/README.md. */
#ifndef __GADGET_MACROS_H
#define __GADGET_MACROS_H

#include <vmlinux.h>
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

#endif /* __GADGET_MACROS_H */
