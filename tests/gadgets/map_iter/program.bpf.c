// SPDX-License-Identifier: GPL-2.0
/* A map iterator in Inspektor Gadget's API style: getppid() calls per process. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct call_key {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_comm comm[16];
};

struct call_value {
	__u64 calls;
	__s64 last_ret_placeholder;
	bool seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct call_key);
	__type(value, struct call_value);
} counts SEC(".maps");

GADGET_MAPITER(calls, counts);

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	struct call_key key = {};
	struct call_value zero = {}, *v;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	bpf_probe_read_kernel_str(key.comm, sizeof(key.comm), &leader->comm);
	v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		zero.seen = true;
		zero.last_ret_placeholder = -7;
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&counts, &key);
		if (!v)
			return 0;
	}
	__sync_fetch_and_add(&v->calls, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
