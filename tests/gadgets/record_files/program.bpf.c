// SPDX-License-Identifier: GPL-2.0
/*
 * A flight recorder the runtime has never seen: only openat, close, read and write, from the
 * raw_syscalls tracepoints, in a record struct of its own (other field names, another order,
 * fewer arguments, a separate return value, no tid, cpu nor capture flags). The runtime finds
 * it by its GADGET_RECORDER marker and decodes it by the typedefs of its fields.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/gadget.h>
#include <gadget/recorder.h>

#define CAPTURE 64	/* power of 2 */

#if defined(__TARGET_ARCH_x86)
#define NR_READ		0
#define NR_WRITE	1
#define NR_CLOSE	3
#define NR_OPENAT	257
#elif defined(__TARGET_ARCH_arm64)
#define NR_READ		63
#define NR_WRITE	64
#define NR_CLOSE	57
#define NR_OPENAT	56
#else
#error "record_files: unsupported architecture"
#endif

struct file_record {
	gadget_record_kind state;	/* 1 enter, 2 exit; written last */
	gadget_capture_arg which;	/* argument in `bytes`, 0xff: none */
	gadget_capture_len nbytes;
	gadget_syscall call;
	gadget_mntns_id ns;
	gadget_record_seq n;
	gadget_syscall_ret result;
	gadget_timestamp when_raw;
	gadget_pid proc;
	gadget_comm task[16];
	gadget_syscall_arg a[4];
	gadget_capture bytes[CAPTURE];
};

GADGET_RECORDER(files, file_records, file_record);

const volatile __u32 gadget_runtime_tgid = 0;

static __always_inline bool skip(__u64 mntns, long nr)
{
	if (nr != NR_OPENAT && nr != NR_CLOSE && nr != NR_READ && nr != NR_WRITE)
		return true;
	if (gadget_should_discard_mntns_id(mntns))
		return true;
	if (gadget_runtime_tgid && bpf_get_current_pid_tgid() >> 32 == gadget_runtime_tgid)
		return true;
	return !gadget_syscall_wanted(nr);
}

static __always_inline struct file_record *claim(__u64 mntns, __u32 nr, bool exit)
{
	struct file_record *r;
	__u64 seq = 0;
	__s64 slot;

	slot = gadget_recorder_slot(mntns);
	if (slot < 0)
		return NULL;
	/* Names a container gone before its runtime was asked (once per exit is enough). */
	if (exit)
		gadget_recorder_note_cgroup(slot, mntns);
	r = gadget_recorder_claim(file_records, slot, &seq);
	if (!r)
		return NULL;
	r->state = 0;
	r->n = seq;
	r->ns = mntns;
	r->call = nr;
	r->when_raw = bpf_ktime_get_boot_ns();
	r->proc = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r->task, sizeof(r->task));
	r->which = 0xff;
	r->nbytes = 0;
	r->result = 0;
	__builtin_memset(r->a, 0, sizeof(r->a));
	return r;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int files_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 mntns = gadget_get_current_mntns_id();
	long nr = ctx->id;
	struct file_record *r;
	long n;

	if (skip(mntns, nr))
		return 0;
	r = claim(mntns, nr, false);
	if (!r)
		return 0;
	r->a[0] = ctx->args[0];
	r->a[1] = ctx->args[1];
	r->a[2] = ctx->args[2];
	r->a[3] = ctx->args[3];
	if (nr == NR_OPENAT) {
		n = bpf_probe_read_user_str(r->bytes, sizeof(r->bytes), (void *)ctx->args[1]);
		if (n > 0) {
			r->which = 1;
			r->nbytes = n - 1;
		}
	} else if (nr == NR_WRITE) {
		__u64 len = ctx->args[2];
		__u32 want = len > CAPTURE ? CAPTURE : len;

		want &= (CAPTURE * 2 - 1);
		if (want && want <= CAPTURE &&
		    !bpf_probe_read_user(r->bytes, want, (void *)ctx->args[1])) {
			r->which = 1;
			r->nbytes = want;
		}
	}
	r->state = 1;
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int files_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 mntns = gadget_get_current_mntns_id();
	long nr = ctx->id;
	struct file_record *r;

	if (skip(mntns, nr))
		return 0;
	r = claim(mntns, nr, true);
	if (!r)
		return 0;
	r->result = ctx->ret;
	r->state = 2;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
