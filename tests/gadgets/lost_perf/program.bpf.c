// SPDX-License-Identifier: Apache-2.0
/*
 * Forces perf buffer losses: a tracer whose map is a perf event array (as Inspektor Gadget's
 * objects output on kernels without ring buffers). Each exec of a process named `targ_comm`
 * outputs `burst` events of 4 KB from one program invocation; the runtime's per-CPU buffer
 * (64 pages) takes about 64 of them, the kernel counts the rest lost and says so with a
 * PERF_RECORD_LOST before the next record it can write. tests/lost_events.rs.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

typedef __u64 gadget_timestamp;
typedef __u32 gadget_pid;
typedef char gadget_comm;

struct event {
	gadget_timestamp timestamp_raw;
	gadget_pid pid;
	__u32 seq;
	gadget_comm comm[16];
	char pad[4064];
};

const volatile gadget_comm targ_comm[16] = {};
const void *gadget_param_targ_comm __attribute__((unused));
const volatile __u32 burst = 200;
const void *gadget_param_burst __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} gadget_heap SEC(".maps");

const void *gadget_tracer_burst___events___event __attribute__((unused));
const struct event *__gadget_tracer_type_burst __attribute__((unused));

SEC("tracepoint/sched/sched_process_exec")
int lost_perf_exec(void *ctx)
{
	char comm[16];
	const __u32 zero = 0;
	struct event *e;
	int i;

	bpf_get_current_comm(comm, sizeof(comm));
	for (i = 0; i < 16; i++) {
		if (comm[i] != targ_comm[i])
			return 0;
		if (!comm[i])
			break;
	}
	e = bpf_map_lookup_elem(&gadget_heap, &zero);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));
	for (i = 0; i < 1024 && i < burst; i++) {
		e->timestamp_raw = bpf_ktime_get_boot_ns();
		e->seq = i;
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
