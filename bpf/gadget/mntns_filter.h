/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Container selection by mount namespace, filled by the runtime. */
#ifndef __GADGET_MNTNS_FILTER_H
#define __GADGET_MNTNS_FILTER_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef GADGET_MAX_CONTAINERS
#define GADGET_MAX_CONTAINERS 1024
#endif

/* mount namespace inode -> verdict: non-zero keep, zero drop */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MAX_CONTAINERS);
	__type(key, __u64);
	__type(value, __u8);
} gadget_mntns_filter_map SEC(".maps");

const volatile bool gadget_filter_by_mntns = false;
const volatile bool gadget_drop_unknown_mntns = false;

/*
 * A BTF pointer is read with plain loads (faulting ones read as 0) instead of
 * a helper call per pointer: this runs on every event of every gadget.
 */
static __always_inline __u64 gadget_get_current_mntns_id(void)
{
	return bpf_get_current_task_btf()->nsproxy->mnt_ns->ns.inum;
}

static __always_inline bool gadget_should_discard_mntns_id(__u64 mntns_id)
{
	__u8 *verdict;

	if (!gadget_filter_by_mntns)
		return false;
	verdict = bpf_map_lookup_elem(&gadget_mntns_filter_map, &mntns_id);
	if (!verdict)
		return gadget_drop_unknown_mntns;
	return *verdict == 0;
}

#endif /* __GADGET_MNTNS_FILTER_H */
