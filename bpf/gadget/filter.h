/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Filters on the common fields, decided in BPF: parameters targ_pid, targ_tid, targ_uid,
 * targ_gid, targ_comm (Inspektor Gadget's names; user-space terms: pid is the thread group id,
 * tid the thread's) and the container selection of gadget/mntns_filter.h.
 */
#ifndef __GADGET_FILTER_H
#define __GADGET_FILTER_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#ifdef __VMLINUX_H__
#include <gadget/mntns.h>
#endif

/* "no filter" for targ_uid and targ_gid */
#define GADGET_INVALID_ID ((gadget_uid)-1)

const volatile gadget_pid targ_pid = 0;
GADGET_PARAM(targ_pid);

const volatile gadget_tid targ_tid = 0;
GADGET_PARAM(targ_tid);

const volatile gadget_uid targ_uid = GADGET_INVALID_ID;
GADGET_PARAM(targ_uid);

const volatile gadget_gid targ_gid = GADGET_INVALID_ID;
GADGET_PARAM(targ_gid);

/* A command name (at most 15 bytes); empty: any. */
const volatile gadget_comm targ_comm[TASK_COMM_LEN] = {};
GADGET_PARAM(targ_comm);

static __always_inline bool gadget_should_discard_pid(gadget_pid pid)
{
	return targ_pid != 0 && targ_pid != pid;
}

static __always_inline bool gadget_should_discard_tid(gadget_tid tid)
{
	return targ_tid != 0 && targ_tid != tid;
}

static __always_inline bool gadget_should_discard_uid(gadget_uid uid)
{
	return targ_uid != GADGET_INVALID_ID && targ_uid != uid;
}

static __always_inline bool gadget_should_discard_gid(gadget_gid gid)
{
	return targ_gid != GADGET_INVALID_ID && targ_gid != gid;
}

/* Compares up to the first NUL of targ_comm (both are NUL-padded comms). */
static __always_inline bool gadget_should_discard_comm(const gadget_comm *comm)
{
	if (targ_comm[0] == '\0')
		return false;
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return true;
		if (comm[i] == '\0')
			break;
	}
	return false;
}

/* Whether to drop an event with these fields. */
static __always_inline bool gadget_should_discard_data(gadget_mntns_id mntns_id, gadget_pid pid,
						       gadget_tid tid, const gadget_comm *comm,
						       gadget_uid uid, gadget_gid gid)
{
	return gadget_should_discard_mntns_id(mntns_id) || gadget_should_discard_pid(pid) ||
	       gadget_should_discard_tid(tid) || gadget_should_discard_uid(uid) ||
	       gadget_should_discard_gid(gid) || gadget_should_discard_comm(comm);
}

#ifdef __VMLINUX_H__
/* Whether to drop an event of the current task; reads only what a set filter needs. */
static __always_inline bool gadget_should_discard_data_current(void)
{
	if (gadget_should_discard_mntns_id(gadget_get_current_mntns_id()))
		return true;
	if (targ_pid != 0 || targ_tid != 0) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		if (gadget_should_discard_pid(pid_tgid >> 32) ||
		    gadget_should_discard_tid((__u32)pid_tgid))
			return true;
	}
	if (targ_uid != GADGET_INVALID_ID || targ_gid != GADGET_INVALID_ID) {
		__u64 uid_gid = bpf_get_current_uid_gid();

		if (gadget_should_discard_uid((__u32)uid_gid) ||
		    gadget_should_discard_gid(uid_gid >> 32))
			return true;
	}
	if (targ_comm[0] != '\0') {
		char comm[TASK_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
		if (gadget_should_discard_comm(comm))
			return true;
	}
	return false;
}
#endif /* __VMLINUX_H__ */

/* Inspektor Gadget's skb variant: without a socket value, drop when any filter is set. */
static __always_inline bool
gadget_should_discard_data_by_skb(struct gadget_socket_value *skb_val)
{
	if (!skb_val)
		return gadget_filter_by_mntns || targ_pid != 0 || targ_tid != 0 ||
		       targ_uid != GADGET_INVALID_ID || targ_gid != GADGET_INVALID_ID ||
		       targ_comm[0] != '\0';
	return gadget_should_discard_data(skb_val->mntns, skb_val->pid_tgid >> 32,
					  (__u32)skb_val->pid_tgid, skb_val->task,
					  (__u32)skb_val->uid_gid, skb_val->uid_gid >> 32);
}

#endif /* __GADGET_FILTER_H */
