/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Inspektor Gadget's user stack API, inert: ig does not collect nor symbolize user stacks, so
 * the helpers leave `struct gadget_user_stack` (gadget/types.h) zeroed, which is its "no stack".
 * Sources written for it compile and run.
 */
#ifndef __GADGET_USER_STACK_MAP_H
#define __GADGET_USER_STACK_MAP_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>
#include <gadget/macros.h>
#include <gadget/core_fixes.bpf.h>

#define GADGET_USER_MAX_STACK_DEPTH 127
#define GADGET_USER_STACK_MAP_MAX_ENTRIES 10000

static __always_inline void gadget__no_user_stack(struct gadget_user_stack *ustack)
{
	__builtin_memset(ustack, 0, sizeof(*ustack));
}

static __always_inline void
gadget_get_user_stack_from_tracepoint(void *ctx, struct gadget_user_stack *ustack)
{
	gadget__no_user_stack(ustack);
}

static __always_inline void
gadget_get_user_stack_from_kprobe(struct pt_regs *ctx, struct gadget_user_stack *ustack)
{
	gadget__no_user_stack(ustack);
}

static __always_inline void
gadget_get_user_stack_from_perf_event(struct bpf_perf_event_data *ctx,
				      struct gadget_user_stack *ustack)
{
	gadget__no_user_stack(ustack);
}

/* Any context: there is nothing to read from it. */
#define gadget_get_user_stack(ctx, ustack) gadget__no_user_stack(ustack)

#endif /* __GADGET_USER_STACK_MAP_H */
