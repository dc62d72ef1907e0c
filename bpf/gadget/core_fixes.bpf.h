/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel fields that were renamed, read on any kernel with CO-RE (libbpf-tools' and Inspektor
 * Gadget's names).
 */
#ifndef __GADGET_CORE_FIXES_BPF_H
#define __GADGET_CORE_FIXES_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

/*
 * A call the loader refuses if a program still reaches it after CO-RE resolved the branches
 * guarding it: libbpf poisons calls to this (invalid) helper address, so the verifier rejects
 * the program only when the branch is live.
 */
static void (*bpf_core_unreachable)(void) = (void *)0xbad2310;

/* task_struct::state became __state in 5.14 (commit 2f064a59a1). */
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

struct task_struct___x {
	unsigned int __state;
} __attribute__((preserve_access_index));

static __always_inline __s64 get_task_state(void *task)
{
	struct task_struct___x *t = task;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)task, state);
}

/* bio::bi_disk became bi_bdev->bd_disk in 5.12 (commit 309dca309fc3). */
struct bio___o {
	struct gendisk *bi_disk;
} __attribute__((preserve_access_index));

struct bio___x {
	struct block_device *bi_bdev;
} __attribute__((preserve_access_index));

static __always_inline struct gendisk *get_gendisk(void *bio)
{
	struct bio___x *b = bio;

	if (bpf_core_field_exists(b->bi_bdev))
		return BPF_CORE_READ(b, bi_bdev, bd_disk);
	return BPF_CORE_READ((struct bio___o *)bio, bi_disk);
}

/* The syscall number of user registers (`orig_ax` on x86, `syscallno` on arm64). */
static __always_inline long gadget_get_syscall_nr(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, orig_ax);
#else
	return -1;
#endif
}

#endif /* __GADGET_CORE_FIXES_BPF_H */
