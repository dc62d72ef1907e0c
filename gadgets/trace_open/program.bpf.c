// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * trace_open: openat(2) calls with their result. Written in Inspektor Gadget's gadget API
 * (bpf/README.md): the enter tracepoint notes the arguments per thread, the exit one emits the
 * event with the file descriptor or the error.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define FNAME_MAX 255

struct args {
	const char *fname;
	__u32 flags;
	__u32 mode;
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_mntns_nsid mntns_nsid;
	__s32 fd;			/* -1 when the open failed */
	gadget_errno error_raw;		/* positive errno, 0 on success */
	gadget_file_flags flags_raw;
	gadget_file_mode mode_raw;
	char fname[FNAME_MAX];
};

const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

/* thread id -> the arguments of its openat in progress */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args);
} start SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(open, events, event);

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_openat_e(struct syscall_trace_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args args = {};

	if (gadget_should_discard_data_current())
		return 0;
	args.fname = (const char *)ctx->args[1];
	args.flags = (__u32)ctx->args[2];
	args.mode = (__u32)ctx->args[3];
	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int ig_openat_x(struct syscall_trace_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *event;
	struct args *ap;
	long ret;

	ap = bpf_map_lookup_elem(&start, &tid);
	if (!ap)
		return 0; /* the enter was filtered out, or came before the attach */
	ret = ctx->ret;
	if (targ_failed && ret >= 0)
		goto cleanup;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		goto cleanup;
	gadget_process_populate(&event->proc);
	event->mntns_nsid = gadget_get_current_mntns_nsid();
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->fd = ret >= 0 ? (__s32)ret : -1;
	event->error_raw = ret >= 0 ? 0 : (__s32)-ret;
	event->flags_raw = ap->flags;
	event->mode_raw = ap->mode;
	if (bpf_probe_read_user_str(event->fname, sizeof(event->fname), ap->fname) < 0)
		event->fname[0] = '\0';
	gadget_submit_buf(ctx, &events, event, sizeof(*event));

cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
