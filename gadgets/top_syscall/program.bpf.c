// SPDX-License-Identifier: GPL-2.0
/*
 * top_syscall: syscalls per process, counted at the raw tracepoint sys_enter (no kprobe) in
 * a hash map that the runtime reads and empties every --map-fetch-interval (GADGET_MAPITER).
 */

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/macros.h>
#include <gadget/types.h>

#define MAX_ENTRIES 10240

struct syscall_key {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	__u32 __pad;
};

struct syscall_stats {
	gadget_comm comm[16];
	__u64 syscalls;
};

/* LRU: when full, the processes seen longest ago make room instead of new ones being lost. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct syscall_key);
	__type(value, struct syscall_stats);
} stats SEC(".maps");

GADGET_MAPITER(syscalls, stats);

SEC("raw_tracepoint/sys_enter")
int ig_top_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct syscall_key key = {};
	struct syscall_stats *s;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);

	s = bpf_map_lookup_elem(&stats, &key);
	if (!s) {
		struct syscall_stats zero = {};
		/* The process's name (its leader's), not the calling thread's. */
		struct task_struct *leader = BPF_CORE_READ(task, group_leader);

		bpf_probe_read_kernel_str(zero.comm, sizeof(zero.comm), &leader->comm);
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &key);
		if (!s)
			return 0;
	}
	__sync_fetch_and_add(&s->syscalls, 1);
	return 0;
}

/* After an exec the process has a new name: the row shows it from then on. */
SEC("raw_tracepoint/sched_process_exec")
int ig_top_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct syscall_key key = {};
	struct syscall_stats *s;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	s = bpf_map_lookup_elem(&stats, &key);
	if (s)
		bpf_get_current_comm(s->comm, sizeof(s->comm));
	return 0;
}

char _license[] SEC("license") = "GPL";
