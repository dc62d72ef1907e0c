/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Map helpers (libbpf-tools' and Inspektor Gadget's names). */
#ifndef __GADGET_MAPS_BPF_H
#define __GADGET_MAPS_BPF_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>

#ifndef EEXIST
#define EEXIST 17
#endif

/* The value of `key`, inserted as `*init` first when missing; NULL when the map is full. */
static __always_inline void *bpf_map_lookup_or_try_init(void *map, const void *key,
							 const void *init)
{
	void *val = bpf_map_lookup_elem(map, key);
	long err;

	if (val)
		return val;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST)
		return 0;
	return bpf_map_lookup_elem(map, key);
}

#endif /* __GADGET_MAPS_BPF_H */
