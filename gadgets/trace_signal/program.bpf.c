// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * trace_signal: signals as they are generated (the signal/signal_generate tracepoint: kill(2)
 * and its siblings, the kernel's own SIGCHLD/SIGSEGV/SIGPIPE...), or with --kill-only the
 * kill(2), tkill(2) and tgkill(2) calls with their result. Written in Inspektor Gadget's
 * gadget API (bpf/README.md).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

/* What happened to a generated signal (the tracepoint's `result`, kernel/signal.c). */
enum signal_result {
	delivered = 0,
	ignored = 1,
	already_pending = 2,
	overflow_fail = 3,
	lose_info = 4,
	/* --kill-only: the syscall's result is in `error` */
	syscall = 255,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_mntns_nsid mntns_nsid;
	gadget_pid tpid;		/* target: the thread group (kill) or thread (tkill, tgkill) */
	gadget_comm tcomm[TASK_COMM_LEN];	/* target's command (signal_generate only) */
	gadget_signal sig_raw;
	gadget_errno error_raw;		/* positive errno, 0 on success */
	enum signal_result result;
};

/* thread id -> the kill in progress */
struct pending {
	__u32 tpid;
	__u32 sig;
};

const volatile int target_signal = 0;
const volatile bool failed_only = false;
const volatile bool kill_only = false;
GADGET_PARAM(target_signal);
GADGET_PARAM(failed_only);
GADGET_PARAM(kill_only);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct pending);
} pending SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(signal, events, event);

static __always_inline struct event *new_event(__u32 tpid, __u32 sig, __s32 error)
{
	struct event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return NULL;
	gadget_process_populate(&e->proc);
	e->mntns_nsid = gadget_get_current_mntns_nsid();
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->tpid = tpid;
	e->sig_raw = sig;
	e->error_raw = error;
	e->tcomm[0] = '\0';
	return e;
}

static __always_inline int kill_enter(__u32 tpid, int sig)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending p = { .tpid = tpid, .sig = sig };

	if (!kill_only)
		return 0;
	if (target_signal && sig != target_signal)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

static __always_inline int kill_exit(void *ctx, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending *p;
	struct event *e;

	if (!kill_only)
		return 0;
	p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	if (failed_only && ret >= 0)
		goto cleanup;
	e = new_event(p->tpid, p->sig, ret < 0 ? (__s32)-ret : 0);
	if (!e)
		goto cleanup;
	e->result = syscall;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
cleanup:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_kill")
int ig_sig_kill_e(struct syscall_trace_enter *ctx)
{
	return kill_enter((__u32)ctx->args[0], (int)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_kill")
int ig_sig_kill_x(struct syscall_trace_exit *ctx)
{
	return kill_exit(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_tkill")
int ig_sig_tkill_e(struct syscall_trace_enter *ctx)
{
	return kill_enter((__u32)ctx->args[0], (int)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_tkill")
int ig_sig_tkill_x(struct syscall_trace_exit *ctx)
{
	return kill_exit(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_tgkill")
int ig_sig_tgkill_e(struct syscall_trace_enter *ctx)
{
	return kill_enter((__u32)ctx->args[1], (int)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_tgkill")
int ig_sig_tgkill_x(struct syscall_trace_exit *ctx)
{
	return kill_exit(ctx, ctx->ret);
}

SEC("tracepoint/signal/signal_generate")
int ig_sig_generate(struct trace_event_raw_signal_generate *ctx)
{
	struct event *e;
	int sig = ctx->sig;
	int err = ctx->errno;

	if (kill_only)
		return 0;
	if (target_signal && sig != target_signal)
		return 0;
	if (failed_only && err == 0 && ctx->result == delivered)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	e = new_event(ctx->pid, sig, err < 0 ? -err : err);
	if (!e)
		return 0;
	bpf_probe_read_kernel(e->tcomm, sizeof(e->tcomm), ctx->comm);
	e->result = ctx->result;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
