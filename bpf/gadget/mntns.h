/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The current task's mount namespace (Inspektor Gadget's gadget/mntns.h names). */
#ifndef __GADGET_MNTNS_H
#define __GADGET_MNTNS_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>

/*
 * The inode of the current task's mount namespace (what users compare with /proc/PID/ns/mnt).
 * A BTF pointer is read with plain loads (faulting ones read as 0) instead of a helper call per
 * pointer: this runs on every event of every gadget.
 */
static __always_inline gadget_mntns_id gadget_get_current_mntns_id(void)
{
	return bpf_get_current_task_btf()->nsproxy->mnt_ns->ns.inum;
}

/* Inspektor Gadget's deprecated name for gadget_get_current_mntns_id(). */
static __always_inline __attribute__((unused)) gadget_mntns_id gadget_get_mntns_id(void)
{
	return gadget_get_current_mntns_id();
}

#endif /* __GADGET_MNTNS_H */
