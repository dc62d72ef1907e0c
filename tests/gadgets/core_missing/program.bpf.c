// SPDX-License-Identifier: Apache-2.0
/* A test gadget that needs a kernel field no kernel has: its CO-RE relocation cannot be
 * resolved, and ig must say which type and field, on which kernel. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/gadget.h>

struct task_struct___ig_test {
	int ig_no_such_field;
} __attribute__((preserve_access_index));

struct open_event {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	__s32 value;
};

GADGET_TRACER_MAP(opens, 256 * 1024);
GADGET_TRACER(open, opens, open_event);

SEC("tracepoint/syscalls/sys_enter_openat")
int core_missing_openat(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct___ig_test *task = (void *)bpf_get_current_task();
	__u64 mntns = gadget_get_current_mntns_id();
	struct open_event *e;

	if (gadget_should_discard_mntns_id(mntns))
		return 0;
	e = gadget_reserve_buf(opens, sizeof(*e));
	if (!e)
		return 0;
	e->mntns_id = mntns;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->value = BPF_CORE_READ(task, ig_no_such_field);
	gadget_submit_buf(ctx, opens, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
