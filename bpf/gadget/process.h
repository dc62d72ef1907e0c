/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Process lineage: the key of a process image (exec), as Tetragon's exec_id is built.
 *
 * An image is named by its pid (the thread group id, as the initial pid namespace sees it)
 * and its exec key. For an image an exec started while we watched: the process's start in ns
 * since boot (task->group_leader->start_boottime) plus the task's exec count
 * (task->self_exec_id, incremented by every exec before sched_process_exec): read from the
 * task, not from a clock, so every program (two `ig` runs at once) names the same exec alike.
 * For a process that has not exec'd since `ig` started (a clone, or a process already running):
 * its start rounded down to the clock tick USER_HZ (100 Hz: 10 ms) - exactly what
 * /proc/PID/stat field 22 (starttime, in ticks) gives, so a process found by a /proc scan gets
 * the same key from user space and from BPF.
 * User space turns (node, key, pid) into the exec_id string.
 *
 * A field of type gadget_exec_key named `exec_key` goes with the field `pid`, one named
 * `parent_exec_key` with `parent_pid`: the runtime adds `exec_id` / `parent_exec_id`.
 */
#ifndef __GADGET_PROCESS_H
#define __GADGET_PROCESS_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>	/* gadget_signal */

typedef __u64 gadget_exec_key;	/* an image's start, boot ns (see above) */

/* /proc's clock tick: USER_HZ is 100 on every architecture Linux exposes to user space. */
#define GADGET_CLOCK_TICK_NS	10000000ULL

#ifndef GADGET_PROCS_MAX
#define GADGET_PROCS_MAX	32768
#endif

struct gadget_proc {
	gadget_exec_key key;	/* the current image's key */
	__u64 start;		/* start_boottime of the process: tells a reused pid */
	__u64 exec_ns;		/* when the current image began (exec, or the process's start) */
	bool execd;		/* the image was exec'd while we watched */
	__u32 ppid;		/* a recorded fork (!execd): its parent at the fork, */
	gadget_exec_key pkey;	/* and the image that parent ran then */
};

/* Current image per thread group id. LRU: a lost entry falls back to the computed key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GADGET_PROCS_MAX);
	__type(key, __u32);
	__type(value, struct gadget_proc);
} gadget_procs SEC(".maps");

static __always_inline __u64 gadget_tick_round(__u64 ns)
{
	return ns - ns % GADGET_CLOCK_TICK_NS;
}

/* The process's recorded image, if the entry is for this process and not a reused pid's. */
static __always_inline struct gadget_proc *gadget_proc_lookup(struct task_struct *task)
{
	__u32 tgid = task->tgid;
	struct gadget_proc *p = bpf_map_lookup_elem(&gadget_procs, &tgid);

	if (p && p->start == task->group_leader->start_boottime)
		return p;
	return NULL;
}

/* The key of the image `task` runs now. */
static __always_inline gadget_exec_key gadget_proc_key(struct task_struct *task)
{
	struct gadget_proc *p = gadget_proc_lookup(task);

	if (p)
		return p->key;
	return gadget_tick_round(task->group_leader->start_boottime);
}

/*
 * At sched_process_exec: records the new image (returned) and returns its parent: the
 * previous image when this process already exec'd while we watched (as Tetragon does), else
 * the image that forked it when gadget_proc_fork() recorded the fork (so a process whose
 * parent exited and that was reparented before its exec still names the fork's parent), else
 * the real parent's current image.
 */
static __always_inline gadget_exec_key gadget_proc_exec(struct task_struct *task, __u64 now,
							gadget_exec_key *pkey, __u32 *ppid)
{
	struct gadget_proc *p = gadget_proc_lookup(task);
	struct gadget_proc n = {};
	__u32 tgid = task->tgid;

	if (p && p->execd) {
		*pkey = p->key;
		*ppid = tgid;
	} else if (p && p->ppid) {
		*pkey = p->pkey;
		*ppid = p->ppid;
	} else {
		*pkey = gadget_proc_key(task->real_parent);
		*ppid = task->real_parent->tgid;
	}
	n.start = task->group_leader->start_boottime;
	n.key = n.start + task->self_exec_id;
	n.exec_ns = now;
	n.execd = true;
	bpf_map_update_elem(&gadget_procs, &tgid, &n, BPF_ANY);
	return n.key;
}

/*
 * At sched_process_fork, for a new thread group leader (`child->pid == child->tgid`, not a
 * thread): records the clone's image (its key is its start rounded to the tick, as
 * gadget_proc_key() computes it, so every program names it alike) with its parent, the
 * real parent's current image. Returns the clone's key; `pkey`/`ppid` its parent.
 */
static __always_inline gadget_exec_key gadget_proc_fork(struct task_struct *child,
							gadget_exec_key *pkey, __u32 *ppid)
{
	struct task_struct *parent = child->real_parent;
	struct gadget_proc n = {};
	__u32 tgid = child->tgid;

	*pkey = gadget_proc_key(parent);
	*ppid = parent->tgid;
	n.start = child->start_boottime;
	n.key = gadget_tick_round(n.start);
	n.exec_ns = n.start;
	n.pkey = *pkey;
	n.ppid = *ppid;
	bpf_map_update_elem(&gadget_procs, &tgid, &n, BPF_ANY);
	return n.key;
}

/* At the exit of a thread group's last thread: its key and when its image began; forgets it. */
static __always_inline gadget_exec_key gadget_proc_exit(struct task_struct *task, __u64 *began)
{
	struct gadget_proc *p = gadget_proc_lookup(task);
	__u32 tgid = task->tgid;
	gadget_exec_key key;

	if (p) {
		key = p->key;
		*began = p->exec_ns;
	} else {
		*began = task->group_leader->start_boottime;
		key = gadget_tick_round(*began);
	}
	bpf_map_delete_elem(&gadget_procs, &tgid);
	return key;
}

#endif /* __GADGET_PROCESS_H */
