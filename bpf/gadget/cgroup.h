/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The cgroup of the current task, as the names of its kernfs node and its parent. */
#ifndef __GADGET_CGROUP_H
#define __GADGET_CGROUP_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * The unified hierarchy's cgroup; on cgroup v1 (where it is the root), the memory
 * controller's, which every runtime sets up.
 */
static __always_inline struct cgroup *gadget_current_cgroup(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct cgroup *cg = BPF_CORE_READ(task, cgroups, dfl_cgrp);
	struct cgroup_subsys_state *css;
	struct css_set *cset;

	if (cg && BPF_CORE_READ(cg, level) > 0)
		return cg;
	cset = BPF_CORE_READ(task, cgroups);
	if (bpf_core_read(&css, sizeof(css),
			  &cset->subsys[bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id)]))
		return cg;
	return css ? BPF_CORE_READ(css, cgroup) : cg;
}

/* kernfs_node's parent was renamed __parent in 6.15. */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *gadget__kn_parent(struct kernfs_node *kn)
{
	struct kernfs_node___old *old = (void *)kn;

	if (bpf_core_field_exists(old->parent))
		return BPF_CORE_READ(old, parent);
	return BPF_CORE_READ(kn, __parent);
}

/*
 * Writes the names of the current cgroup (`leaf`) and of its parent, NUL-terminated.
 * Returns false, writing nothing, for a root cgroup (which names no container).
 */
static __always_inline bool gadget_current_cgroup_names(char *parent, __u32 parent_size,
							char *leaf, __u32 leaf_size)
{
	struct cgroup *cg = gadget_current_cgroup();
	struct kernfs_node *kn;

	if (!cg || BPF_CORE_READ(cg, level) == 0)
		return false;
	kn = BPF_CORE_READ(cg, kn);
	bpf_probe_read_kernel_str(parent, parent_size, BPF_CORE_READ(gadget__kn_parent(kn), name));
	bpf_probe_read_kernel_str(leaf, leaf_size, BPF_CORE_READ(kn, name));
	return true;
}

#endif /* __GADGET_CGROUP_H */
