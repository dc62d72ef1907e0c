/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The process of an event: struct gadget_process (gadget/types.h) and what fills it. */
#ifndef __GADGET_COMMON_H
#define __GADGET_COMMON_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns.h>

/*
 * Fills `p` with the current task: comm, pid (tgid), tid, mount namespace inode, uid/gid, and
 * its real parent's comm, pid and tid (a task without one leaves them zero).
 */
static __always_inline void gadget_process_populate(struct gadget_process *p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_struct *parent;

	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	bpf_get_current_comm(p->comm, sizeof(p->comm));
	p->creds.uid = (__u32)uid_gid;
	p->creds.gid = uid_gid >> 32;
	p->mntns_id = gadget_get_current_mntns_id();

	parent = BPF_CORE_READ(task, real_parent);
	if (!parent)
		return;
	bpf_probe_read_kernel(p->parent.comm, sizeof(p->parent.comm), parent->comm);
	p->parent.pid = BPF_CORE_READ(parent, tgid);
	p->parent.tid = BPF_CORE_READ(parent, pid);
}

#endif /* __GADGET_COMMON_H */
