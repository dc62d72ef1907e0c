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
#include <gadget/bpf_compat.h>

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

/*
 * request::rq_disk went away in 5.17 (commit f3fa33acca9f): the disk is request->q->disk since
 * (commit d152c682f03c added it in 5.14). `request` is a `struct request *`.
 */
struct request_queue___x {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request___x {
	struct request_queue___x *q;
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline struct gendisk *get_disk(void *request)
{
	struct request___x *r = request;

	if (bpf_core_field_exists(r->rq_disk))
		return BPF_CORE_READ(r, rq_disk);
	return BPF_CORE_READ(r, q, disk);
}

/*
 * block_rq_complete's tracepoint struct became trace_event_raw_block_rq_completion in 6.0
 * (commit d5869fdc189f, shared with block_rq_error). True on kernels with the new name.
 */
struct trace_event_raw_block_rq_complete___x {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_completion___x {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
} __attribute__((preserve_access_index));

static __always_inline bool has_block_rq_completion(void)
{
	return bpf_core_type_exists(struct trace_event_raw_block_rq_completion___x);
}

/*
 * Idmapped mounts (5.12, commit 6521f8917082) put a user namespace first in vfs_create() and
 * vfs_unlink() and added renamedata::old_mnt_userns: true on those kernels.
 */
struct renamedata___x {
	struct user_namespace *old_mnt_userns;
} __attribute__((preserve_access_index));

static __always_inline bool renamedata_has_old_mnt_userns_field(void)
{
	return bpf_core_field_exists(struct renamedata___x, old_mnt_userns);
}

/*
 * kmem tracepoints (6.2, commit 3544de8ee6e4): trace_event_raw_kmem_free split into
 * trace_event_raw_kfree and trace_event_raw_kmem_cache_free.
 */
struct trace_event_raw_kmem_free___x {
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kfree___x {
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_free___x {
	const void *ptr;
} __attribute__((preserve_access_index));

static __always_inline bool has_kfree(void)
{
	return bpf_core_type_exists(struct trace_event_raw_kfree___x);
}

static __always_inline bool has_kmem_cache_free(void)
{
	return bpf_core_type_exists(struct trace_event_raw_kmem_cache_free___x);
}

/*
 * tcp_retransmit_skb's tracepoint got a struct of its own (with an `err` field) on some
 * kernels; before, it shares trace_event_raw_tcp_event_sk_skb. These read skbaddr/skaddr from
 * the tracepoint's context either way.
 */
struct trace_event_raw_tcp_retransmit_skb___x {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

/* The shared layout (a flavor: not every vmlinux.h has the tracepoint structs of tcp). */
struct trace_event_raw_tcp_event_sk_skb___gadget {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

static __always_inline const struct sk_buff *gadget_get_tcp_retransmit_skb_skbaddr(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb___x))
		return BPF_CORE_READ((struct trace_event_raw_tcp_retransmit_skb___x *)ctx,
				     skbaddr);
	return BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb___gadget *)ctx, skbaddr);
}

static __always_inline const struct sock *gadget_get_tcp_retransmit_skb_skaddr(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb___x))
		return BPF_CORE_READ((struct trace_event_raw_tcp_retransmit_skb___x *)ctx,
				     skaddr);
	return BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb___gadget *)ctx, skaddr);
}

/*
 * An inode's change time in ns since the epoch (what stat(2) gives as st_ctim), 0 if before
 * the epoch. Where the kernel keeps it moved: `struct timespec64 i_ctime` before 6.6,
 * `__i_ctime` in 6.6-6.10, `i_ctime_sec` + `i_ctime_nsec` since 6.11; since 6.13 the top bit
 * of i_ctime_nsec is a flag (I_CTIME_QUERIED, multigrain timestamps), masked here.
 */
struct inode___gadget_pre66 {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

struct inode___gadget_pre611 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___gadget_611 {
	time64_t i_ctime_sec;
	__u32 i_ctime_nsec;
} __attribute__((preserve_access_index));

#define GADGET_I_CTIME_QUERIED (1U << 31)

static __always_inline __u64 gadget_get_ctime_nanosec_from_inode(struct inode *inode)
{
	struct inode___gadget_611 *i611 = (void *)inode;
	struct inode___gadget_pre611 *i66 = (void *)inode;
	struct inode___gadget_pre66 *iold = (void *)inode;
	__s64 sec;
	__u32 nsec;

	if (bpf_core_field_exists(i611->i_ctime_sec)) {
		sec = BPF_CORE_READ(i611, i_ctime_sec);
		nsec = BPF_CORE_READ(i611, i_ctime_nsec);
	} else if (bpf_core_field_exists(i66->__i_ctime)) {
		sec = BPF_CORE_READ(i66, __i_ctime.tv_sec);
		nsec = BPF_CORE_READ(i66, __i_ctime.tv_nsec);
	} else {
		sec = BPF_CORE_READ(iold, i_ctime.tv_sec);
		nsec = BPF_CORE_READ(iold, i_ctime.tv_nsec);
	}
	if (sec < 0)
		return 0;
	return (__u64)sec * 1000000000ULL + (nsec & ~GADGET_I_CTIME_QUERIED);
}

/*
 * The syscall number of user registers (`orig_ax` on x86, `syscallno` on arm64; a flavor of
 * arm64's pt_regs, so it also relocates when the object was built with x86_64's vmlinux.h).
 */
struct pt_regs___gadget_arm64 {
	__s32 syscallno;
} __attribute__((preserve_access_index));

static __always_inline long gadget_get_syscall_nr(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	return BPF_CORE_READ((struct pt_regs___gadget_arm64 *)regs, syscallno);
#else
	return -1;
#endif
}

/*
 * Argument `arg_id` (1 to 6) of the syscall whose user registers are `regs` (the pt_regs a
 * syscall wrapper gets); 0 for another `arg_id`. Uses libbpf's PT_REGS_PARMn_CORE_SYSCALL
 * (gadget/bpf_compat.h adds the sixth where libbpf is older than 1.2).
 */
static __always_inline unsigned long gadget_get_syscall_arg(struct pt_regs *regs,
							   unsigned int arg_id)
{
	switch (arg_id) {
	case 1:
		return PT_REGS_PARM1_CORE_SYSCALL(regs);
	case 2:
		return PT_REGS_PARM2_CORE_SYSCALL(regs);
	case 3:
		return PT_REGS_PARM3_CORE_SYSCALL(regs);
	case 4:
		return PT_REGS_PARM4_CORE_SYSCALL(regs);
	case 5:
		return PT_REGS_PARM5_CORE_SYSCALL(regs);
	case 6:
		return PT_REGS_PARM6_CORE_SYSCALL(regs);
	}
	return 0;
}

#endif /* __GADGET_CORE_FIXES_BPF_H */
