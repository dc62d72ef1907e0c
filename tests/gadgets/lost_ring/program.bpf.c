// SPDX-License-Identifier: Apache-2.0
/*
 * Forces ring buffer losses, laid out as Inspektor Gadget's buffer.h lays a tracer out (written
 * out here): a ring buffer of one page and its per-CPU `<map>_lost_samples` counter, which
 * every failed reserve increments. Each exec of a process named `targ_comm` submits `burst`
 * events from one program invocation, so the reader cannot drain between them: about 15 fit,
 * the rest are counted lost. tests/lost_events.rs.
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
	char pad[224];
};

const volatile gadget_comm targ_comm[16] = {};
const void *gadget_param_targ_comm __attribute__((unused));
const volatile __u32 burst = 200;
const void *gadget_param_burst __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} events_lost_samples SEC(".maps");

const void *gadget_tracer_burst___events___event __attribute__((unused));
const struct event *__gadget_tracer_type_burst __attribute__((unused));

SEC("tracepoint/sched/sched_process_exec")
int lost_ring_exec(void *ctx)
{
	char comm[16];
	const __u32 zero = 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;
	__u64 *lost;
	int i;

	bpf_get_current_comm(comm, sizeof(comm));
	for (i = 0; i < 16; i++) {
		if (comm[i] != targ_comm[i])
			return 0;
		if (!comm[i])
			break;
	}
	for (i = 0; i < 1024 && i < burst; i++) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			lost = bpf_map_lookup_elem(&events_lost_samples, &zero);
			if (lost)
				*lost += 1;
			continue;
		}
		e->timestamp_raw = bpf_ktime_get_boot_ns();
		e->pid = pid;
		e->seq = i;
		__builtin_memcpy(e->comm, comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
