/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Inspektor Gadget's kernel stack API, inert: ig does not collect nor symbolize stacks, so
 * gadget_get_kernel_stack() returns -1 (its "no stack") and no stack map is created. Sources
 * written for it compile and run; their gadget_kernel_stack fields read as -1 (as u32).
 */
#ifndef __GADGET_KERNEL_STACK_MAP_H
#define __GADGET_KERNEL_STACK_MAP_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>

#define GADGET_KERNEL_MAX_STACK_DEPTH 127
#define GADGET_KERNEL_STACK_MAP_MAX_ENTRIES 10000

/* The kernel stack id: non-negative on success, negative on failure (always here). */
static __always_inline long gadget_get_kernel_stack(void *ctx)
{
	return -1;
}

#endif /* __GADGET_KERNEL_STACK_MAP_H */
