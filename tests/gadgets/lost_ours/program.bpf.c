// SPDX-License-Identifier: Apache-2.0
/*
 * Forces ring buffer losses through this API's own counter: GADGET_TRACER_MAP's one-page ring
 * and `gadget_lost__events` (.bss), which gadget_reserve_buf() increments when it returns
 * NULL. Each exec of a process named `targ_comm` (gadget/filter.h's --comm) submits `burst`
 * events from one invocation. tests/lost_events.rs.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct event {
	gadget_timestamp timestamp_raw;
	gadget_pid pid;
	__u32 seq;
	gadget_comm comm[TASK_COMM_LEN];
	char pad[224];
};

const volatile __u32 burst = 200;
GADGET_PARAM(burst);

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(burst, events, event);

SEC("tracepoint/sched/sched_process_exec")
int lost_ours_exec(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;
	int i;

	if (gadget_should_discard_data_current())
		return 0;
	for (i = 0; i < 1024 && i < burst; i++) {
		e = gadget_reserve_buf(&events, sizeof(*e));
		if (!e)
			continue;
		e->timestamp_raw = bpf_ktime_get_boot_ns();
		e->pid = pid;
		e->seq = i;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		gadget_submit_buf(ctx, &events, e, sizeof(*e));
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
