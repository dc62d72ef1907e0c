/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A flight recorder: one bounded, overwriting buffer of records per mount namespace, allocated
 * in BPF on the namespace's first record. Nothing streams; the runtime reads a container's
 * buffer when asked (`ig traceloop show`, or at the end of `ig run`). See bpf/README.md.
 *
 * One recorder per object. The gadget names its record struct and records map with
 * GADGET_RECORDER(); everything else here has a fixed name the runtime knows.
 */
#ifndef __GADGET_RECORDER_H
#define __GADGET_RECORDER_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/cgroup.h>

#define GADGET_RECORDER_DEFAULT_RECORDS		16384
#define GADGET_RECORDER_DEFAULT_CONTAINERS	16
/* Syscall numbers the syscall filter covers (power of 2). */
#define GADGET_SYSCALL_MAX_NR			1024

/* Parameters: records kept per container, containers with a buffer at once. */
const volatile __u32 gadget_recorder_records = GADGET_RECORDER_DEFAULT_RECORDS;
const volatile __u32 gadget_recorder_max_containers = GADGET_RECORDER_DEFAULT_CONTAINERS;
GADGET_PARAM(gadget_recorder_records);
GADGET_PARAM(gadget_recorder_max_containers);

/* Set by the runtime when the user names syscalls (fills gadget_syscall_filter_map). */
const volatile bool gadget_filter_syscalls = false;

/* Counters in .bss, read by the runtime. */
__u32 gadget_recorder_next_slot;		/* slots handed out from the counter */
__u64 gadget_recorder_lost_containers;		/* records dropped: no slot left */
__u64 gadget_recorder_lost_records;		/* records dropped: index outside the map */

/* gadget_recorder_slots value; slot GADGET_RECORDER_CLOSED: not recorded (set by the runtime). */
struct gadget_recorder_slot {
	__u32 slot;
	__u32 __pad;
	__u64 first_seq;	/* the slot's head when this namespace got it */
};

#define GADGET_RECORDER_CLOSED	0xffffffff

/*
 * {mntns inode, mntns id} -> slot. Keyed by both: an inode is reused as soon as a namespace
 * dies, the id never is. max_entries = max_containers + closed namespaces the runtime keeps.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_RECORDER_DEFAULT_CONTAINERS);
	__type(key, struct gadget_mntns_key);
	__type(value, struct gadget_recorder_slot);
} gadget_recorder_slots SEC(".maps");

/* slot -> next sequence number. max_entries = max_containers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GADGET_RECORDER_DEFAULT_CONTAINERS);
	__type(key, __u32);
	__type(value, __u64);
} gadget_recorder_heads SEC(".maps");

/* Slots given back by the runtime (a trace closed), reused before the counter. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, GADGET_RECORDER_DEFAULT_CONTAINERS);
	__type(value, __u32);
} gadget_recorder_free_slots SEC(".maps");

/*
 * slot -> the cgroup of the namespace's processes, "parent/leaf" kernfs names (`docker/<id>`,
 * `system.slice/docker-<id>.scope`): names a container that exited before the runtime could
 * ask its runtime. max_entries = max_containers.
 */
struct gadget_recorder_cgroup {
	__u64 mntns_id;		/* owner: a reused slot may hold a previous owner's name */
	char parent[64];
	char leaf[96];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GADGET_RECORDER_DEFAULT_CONTAINERS);
	__type(key, __u32);
	__type(value, struct gadget_recorder_cgroup);
} gadget_recorder_cgroups SEC(".maps");

/* syscall nr -> non-zero: record it (when gadget_filter_syscalls). Filled by the runtime. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GADGET_SYSCALL_MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} gadget_syscall_filter_map SEC(".maps");

/*
 * Recorder `name`: the array map `map` holds the records, `struct rec_struct` each; container
 * `slot` owns [slot * records, (slot + 1) * records). The marker global
 * gadget_recorder_<name>___<map>___<struct> names them (the runtime splits it on `___`); the
 * pointer keeps the struct in BTF. max_entries is set by the runtime before load.
 */
#define GADGET_RECORDER(name, map, rec_struct)					\
	struct {								\
		__uint(type, BPF_MAP_TYPE_ARRAY);				\
		__uint(max_entries, GADGET_RECORDER_DEFAULT_CONTAINERS *	\
				    GADGET_RECORDER_DEFAULT_RECORDS);		\
		__type(key, __u32);						\
		__type(value, struct rec_struct);				\
	} map SEC(".maps");							\
	const void *gadget_recorder_##name##___##map##___##rec_struct		\
		__attribute__((unused));					\
	const struct rec_struct *__gadget_recorder_type__##name			\
		__attribute__((unused))

/* Whether syscall `nr` is recorded (always, unless the runtime set a filter). */
static __always_inline bool gadget_syscall_wanted(__u32 nr)
{
	__u8 *on;

	if (!gadget_filter_syscalls)
		return true;
	on = bpf_map_lookup_elem(&gadget_syscall_filter_map, &nr);
	return on && *on;
}

/*
 * The current task's mount namespace's slot (its inode is `mntns_id`), allocated on first use:
 * first from the free queue, else from the counter. -1 when the namespace is closed or no slot
 * is left (counted in gadget_recorder_lost_containers).
 */
static __always_inline __s64 gadget_recorder_slot(__u64 mntns_id)
{
	struct gadget_mntns_key ns = {
		.inum = mntns_id,
		.nsid = gadget_get_current_mntns_nsid(),
	};
	struct gadget_recorder_slot *found, value = {};
	struct gadget_recorder_cgroup *cgroup;
	__u64 *head;
	__u32 slot;

	found = bpf_map_lookup_elem(&gadget_recorder_slots, &ns);
	if (found)
		return found->slot == GADGET_RECORDER_CLOSED ? -1 : found->slot;

	if (bpf_map_pop_elem(&gadget_recorder_free_slots, &slot)) {
		slot = __sync_fetch_and_add(&gadget_recorder_next_slot, 1);
		if (slot >= gadget_recorder_max_containers) {
			__sync_fetch_and_add(&gadget_recorder_lost_containers, 1);
			return -1;
		}
	}
	/* records before first_seq are a previous owner's */
	value.slot = slot;
	head = bpf_map_lookup_elem(&gadget_recorder_heads, &slot);
	if (head)
		value.first_seq = *head;
	if (bpf_map_update_elem(&gadget_recorder_slots, &ns, &value, BPF_NOEXIST)) {
		/* Another CPU won the race (or the map is full): give the slot back. */
		bpf_map_push_elem(&gadget_recorder_free_slots, &slot, 0);
		found = bpf_map_lookup_elem(&gadget_recorder_slots, &ns);
		if (found)
			return found->slot == GADGET_RECORDER_CLOSED ? -1 : found->slot;
		__sync_fetch_and_add(&gadget_recorder_lost_containers, 1);
		return -1;
	}
	/* The slot's owner, for the tasks that cache it (its name is noted later). */
	cgroup = bpf_map_lookup_elem(&gadget_recorder_cgroups, &slot);
	if (cgroup) {
		cgroup->leaf[0] = '\0';
		cgroup->mntns_id = mntns_id;
	}
	return slot;
}

/*
 * Claims the next record of `slot` in map `map` (the name given to GADGET_RECORDER, no `&`):
 * its sequence number goes to *seq, which the caller stores in the record's
 * gadget_record_seq field, and its index in the map to *idx. NULL when the index is outside
 * the map (counted).
 */
static __always_inline void *gadget__recorder_claim(void *map, __u32 slot, __u64 *seq,
						    __u32 *idx)
{
	__u64 *head, s;
	void *rec;

	head = bpf_map_lookup_elem(&gadget_recorder_heads, &slot);
	if (!head)
		return NULL;
	s = __sync_fetch_and_add(head, 1);
	*seq = s;
	*idx = slot * gadget_recorder_records + (__u32)(s % gadget_recorder_records);
	rec = bpf_map_lookup_elem(map, idx);
	if (!rec)
		__sync_fetch_and_add(&gadget_recorder_lost_records, 1);
	return rec;
}

#define gadget_recorder_claim(map, slot, seq)	({ __u32 __idx;				\
	gadget__recorder_claim(&(map), (slot), (seq), &__idx); })
#define gadget_recorder_claim_at(map, slot, seq, idx)					\
	gadget__recorder_claim(&(map), (slot), (seq), (idx))

/*
 * Notes the slot's cgroup until a non-root one is seen (runc moves its init late). True once
 * the slot is named (nothing more to note).
 */
static __always_inline bool gadget_recorder_note_cgroup(__u32 slot, __u64 mntns_id)
{
	struct gadget_recorder_cgroup *c = bpf_map_lookup_elem(&gadget_recorder_cgroups, &slot);

	if (!c)
		return false;
	if (c->mntns_id == mntns_id && c->leaf[0])
		return true;
	if (gadget_current_cgroup_names(c->parent, sizeof(c->parent), c->leaf, sizeof(c->leaf)))
		c->mntns_id = mntns_id;
	return false;
}

/*
 * Per task: the slot its mount namespace records into, and the record of the syscall it is
 * in. A syscall then costs no hashing: the slot is found without the filter and slot maps,
 * and the exit completes its enter's record in place (one record per syscall).
 */
struct gadget_recorder_task {
	__u64 mntns_id;		/* the namespace `slot` was found for */
	__u64 pending_seq;	/* the enter's record, while in a syscall */
	__u32 pending_idx;
	__u32 pending_nr;
	__u32 slot;
	__u8 pending;		/* an enter waits for its exit */
	__u8 named;		/* the slot's cgroup is noted: no need to look */
	__u8 __pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct gadget_recorder_task);
} gadget_recorder_tasks SEC(".maps");

/*
 * The current task's cache entry if it holds the slot of `mntns_id` and the slot is still that
 * namespace's. The slot's owner is gadget_recorder_cgroups[slot].mntns_id, set when BPF hands
 * the slot out and cleared by the runtime when it closes the trace, before the slot can be
 * handed out again: a closed trace's tasks find it cleared and take the slow path, which finds
 * their namespace closed.
 */
static __always_inline struct gadget_recorder_task *gadget_recorder_task_get(__u64 mntns_id)
{
	struct gadget_recorder_task *t;
	struct gadget_recorder_cgroup *c;
	__u32 slot;

	t = bpf_task_storage_get(&gadget_recorder_tasks, bpf_get_current_task_btf(), 0, 0);
	if (!t || t->mntns_id != mntns_id)
		return NULL;
	slot = t->slot;
	c = bpf_map_lookup_elem(&gadget_recorder_cgroups, &slot);
	if (!c || c->mntns_id != mntns_id)
		return NULL;
	return t;
}

/* Caches `slot` (just found by gadget_recorder_slot()) as the current task's. */
static __always_inline struct gadget_recorder_task *gadget_recorder_task_set(__u64 mntns_id,
									     __u32 slot)
{
	struct gadget_recorder_task *t;

	t = bpf_task_storage_get(&gadget_recorder_tasks, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t)
		return NULL;
	t->mntns_id = mntns_id;
	t->slot = slot;
	t->pending = 0;
	t->named = 0;
	return t;
}

#endif /* __GADGET_RECORDER_H */
