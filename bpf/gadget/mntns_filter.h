/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Container selection by mount namespace, filled by the runtime. */
#ifndef __GADGET_MNTNS_FILTER_H
#define __GADGET_MNTNS_FILTER_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#ifdef __VMLINUX_H__
#include <gadget/cgroup.h>
#include <gadget/mntns.h>
#endif

#ifndef GADGET_MAX_CONTAINERS
#define GADGET_MAX_CONTAINERS 1024
#endif

/*
 * A mount namespace as the runtime keys it. The inode (`mntns_id`, what users compare with
 * /proc/PID/ns/mnt) is reused as soon as a namespace dies; the id is never reused within a
 * boot. nsid 0: the kernel has neither field (the runtime then falls back to the inode).
 */
struct gadget_mntns_key {
	__u64 inum;
	__u64 nsid;
};

/* mount namespace -> verdict: non-zero keep, zero drop */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MAX_CONTAINERS);
	__type(key, struct gadget_mntns_key);
	__type(value, __u8);
} gadget_mntns_filter_map SEC(".maps");

/*
 * What BPF saw of a namespace the runtime had no verdict for: the cgroup of its processes
 * (kernfs names of the cgroup and its parent: `docker/<id>`, `<ns>/<id>`,
 * `system.slice/docker-<id>.scope`). It names the container of a namespace whose processes
 * died before the runtime announced it (a container that lived a few milliseconds).
 */
struct gadget_mntns_note {
	char cgroup_parent[64];
	char cgroup_leaf[96];
	__u64 css_set;		/* the css_set the names were read for */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GADGET_MAX_CONTAINERS);
	__type(key, struct gadget_mntns_key);
	__type(value, struct gadget_mntns_note);
} gadget_mntns_notes SEC(".maps");

/*
 * The host's mount namespace and its verdict (GADGET_HOST_*), so the commonest namespace is
 * decided without hashing a key. The host's namespace (init's) never dies, so its inode is
 * never another namespace's: the inode alone identifies it.
 */
#define GADGET_HOST_UNKNOWN 0
#define GADGET_HOST_KEEP 1
#define GADGET_HOST_DROP 2

struct gadget_host_mntns {
	__u64 inum;
	__u8 verdict;
	__u8 __pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gadget_host_mntns);
} gadget_host_mntns SEC(".maps");

const volatile bool gadget_filter_by_mntns = false;
const volatile bool gadget_drop_unknown_mntns = false;

#ifdef __VMLINUX_H__
/* mnt_namespace.seq before 6.18 (where ns_common.ns_id took its place). */
struct mnt_namespace___seq {
	__u64 seq;
} __attribute__((preserve_access_index));

/*
 * The id of the current mount namespace as NS_GET_MNTNS_ID returns it: ns_common.ns_id
 * (6.18+), else mnt_namespace.seq (every kernel with BTF). Never reused within a boot.
 * ns_id is a plain load through the BTF pointer (no helper call); the older flavour is read
 * with a probe read, which every verifier takes for a cast pointer.
 */
static __always_inline __u64 gadget_get_current_mntns_nsid(void)
{
	struct mnt_namespace *mnt_ns = bpf_get_current_task_btf()->nsproxy->mnt_ns;

	if (bpf_core_field_exists(mnt_ns->ns.ns_id))
		return mnt_ns->ns.ns_id;
	if (bpf_core_field_exists(((struct mnt_namespace___seq *)mnt_ns)->seq))
		return BPF_CORE_READ((struct mnt_namespace___seq *)mnt_ns, seq);
	return 0;
}

/*
 * Notes the cgroup of a namespace's processes, again whenever it changes: runc runs the
 * container's first process in its own cgroup before it moves it into the container's. A
 * css_set is shared by the tasks of one set of cgroups: comparing it costs one load.
 */
static __always_inline void gadget__note_mntns(const struct gadget_mntns_key *key)
{
	static const struct gadget_mntns_note empty = {};
	struct gadget_mntns_note *note;
	__u64 cset = (__u64)bpf_get_current_task_btf()->cgroups;

	note = bpf_map_lookup_elem(&gadget_mntns_notes, key);
	if (note && note->css_set == cset)
		return;
	if (!note) {
		bpf_map_update_elem(&gadget_mntns_notes, key, &empty, BPF_NOEXIST);
		note = bpf_map_lookup_elem(&gadget_mntns_notes, key);
		if (!note)
			return;
	}
	note->css_set = cset;
	if (!gadget_current_cgroup_names(note->cgroup_parent, sizeof(note->cgroup_parent),
					 note->cgroup_leaf, sizeof(note->cgroup_leaf)))
		note->cgroup_leaf[0] = '\0';
}

#endif /* __VMLINUX_H__ */

/*
 * Whether `mntns_id` is the host's and the host is dropped: an early test, without hashing, for
 * programs that look elsewhere before gadget_should_discard_mntns_id().
 */
static __always_inline bool gadget_host_mntns_dropped(__u64 mntns_id)
{
	struct gadget_host_mntns *host;
	__u32 zero = 0;

	if (!gadget_filter_by_mntns)
		return false;
	host = bpf_map_lookup_elem(&gadget_host_mntns, &zero);
	return host && host->verdict == GADGET_HOST_DROP && host->inum == mntns_id;
}

/*
 * Whether to drop an event of mount namespace `mntns_id` (an inode, as read by
 * gadget_get_current_mntns_id()). Verdicts are keyed by inode and namespace id; the id is
 * the current task's when the inode is its namespace's (the usual case), else unknown (0).
 */
static __always_inline bool gadget_should_discard_mntns_id(__u64 mntns_id)
{
	struct gadget_mntns_key key = { .inum = mntns_id };
	struct gadget_host_mntns *host;
	__u32 zero = 0;
	__u8 *verdict;

	if (!gadget_filter_by_mntns)
		return false;
	/* An array lookup with a constant key compiles to an address: no hashing. */
	host = bpf_map_lookup_elem(&gadget_host_mntns, &zero);
	if (host && host->verdict != GADGET_HOST_UNKNOWN && host->inum == mntns_id)
		return host->verdict == GADGET_HOST_DROP;
#ifdef __VMLINUX_H__
	if (mntns_id == gadget_get_current_mntns_id())
		key.nsid = gadget_get_current_mntns_nsid();
#endif
	verdict = bpf_map_lookup_elem(&gadget_mntns_filter_map, &key);
	if (!verdict && key.nsid) {
		/* Where the runtime cannot learn ids (no NS_GET_MNTNS_ID), it keys by inode alone. */
		struct gadget_mntns_key by_inode = { .inum = mntns_id };

		verdict = bpf_map_lookup_elem(&gadget_mntns_filter_map, &by_inode);
	}
	if (verdict)
		return *verdict == 0;
#ifdef __VMLINUX_H__
	if (key.nsid)
		gadget__note_mntns(&key);
#endif
	return gadget_drop_unknown_mntns;
}

#endif /* __GADGET_MNTNS_FILTER_H */
