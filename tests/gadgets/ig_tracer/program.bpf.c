// SPDX-License-Identifier: Apache-2.0
/*
 * A tracer written the way Inspektor Gadget's gadgets are: its headers' names, `&map` buffer
 * calls, struct gadget_process, filter.h's targ_* parameters (targ_comm: a string), a .kconfig
 * extern. Also compiled with plain clang outside `ig image build` (tests/ig_compat.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/user_stack_map.h>
#include <gadget/kernel_stack_map.h>
#include <gadget/core_fixes.bpf.h>
#include <gadget/bits.bpf.h>
#include <gadget/maps.bpf.h>

#define NAME_MAX 255

extern int LINUX_KERNEL_VERSION __kconfig;

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_file_flags flags_raw;
	gadget_kernel_stack kstack_raw;
	__u32 kversion;
	__u32 flags_log2;
	char fname[NAME_MAX];
};

const volatile bool only_creat = false;
GADGET_PARAM(only_creat);

/* comm -> opens seen (bpf_map_lookup_or_try_init from maps.bpf.h) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(open, events, event);

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_openat_e(struct syscall_trace_enter *ctx)
{
	static const __u64 zero;
	struct event *event;
	__u32 flags = (__u32)ctx->args[2];
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 *count;

	if (gadget_should_discard_data_current())
		return 0;
	if (only_creat && !(flags & 0100))
		return 0;
	count = bpf_map_lookup_or_try_init(&counts, &pid, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	gadget_process_populate(&event->proc);
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->flags_raw = flags;
	event->flags_log2 = log2(flags);
	event->kstack_raw = gadget_get_kernel_stack(ctx);
	event->kversion = LINUX_KERNEL_VERSION;
	bpf_probe_read_user_str(event->fname, sizeof(event->fname), (const char *)ctx->args[1]);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
