// SPDX-License-Identifier: Apache-2.0
/*
 * An object laid out as Inspektor Gadget's own headers lay it out (written out here instead of
 * including ours): a perf event array as the tracer's map, its per-CPU `<map>_lost_samples`
 * counter, the `gadget_heap` scratch, an inode-keyed `gadget_mntns_filter_map` (__u64 -> __u32,
 * present means kept) with `gadget_filter_by_mntns`, a `char[]` targ_comm parameter, and a
 * map left unsized for the runtime (max_entries 0, sized by `<map>_max_entries`, as their
 * user_stack_map.h's `ig_build_id`).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

typedef __u64 gadget_mntns_id;
typedef __u64 gadget_timestamp;
typedef __u32 gadget_pid;
typedef char gadget_comm;
typedef __u32 gadget_errno;

struct event {
	gadget_timestamp timestamp_raw;
	gadget_mntns_id mntns_id;
	gadget_comm comm[16];
	gadget_pid pid;
	gadget_errno error_raw;
	char fname[128];
};

const volatile bool gadget_filter_by_mntns = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, gadget_mntns_id);
	__type(value, __u32);
	__uint(max_entries, 1024);
} gadget_mntns_filter_map SEC(".maps");

const volatile gadget_comm targ_comm[16] = {};
const void *gadget_param_targ_comm __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} events_lost_samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 10240);
} gadget_heap SEC(".maps");

const volatile int ig_scratch_max_entries = 16;
const void *gadget_param_ig_scratch_max_entries __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 0);
} ig_scratch SEC(".maps");

const void *gadget_tracer_open___events___event __attribute__((unused));
const struct event *__gadget_tracer_type_open __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_openat_e(struct syscall_trace_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	gadget_mntns_id mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	const int zero = 0;
	struct event *e;

	if (gadget_filter_by_mntns && !bpf_map_lookup_elem(&gadget_mntns_filter_map, &mntns_id))
		return 0;
	e = bpf_map_lookup_elem(&gadget_heap, &zero);
	if (!e)
		return 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (targ_comm[0]) {
		for (int i = 0; i < 16; i++) {
			if (e->comm[i] != targ_comm[i])
				return 0;
			if (!e->comm[i])
				break;
		}
	}
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->mntns_id = mntns_id;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->error_raw = 0;
	bpf_probe_read_user_str(e->fname, sizeof(e->fname), (const char *)ctx->args[1]);
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e))) {
		__u64 *lost = bpf_map_lookup_elem(&events_lost_samples, &zero);

		if (lost)
			*lost += 1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
