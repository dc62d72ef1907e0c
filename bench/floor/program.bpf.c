// SPDX-License-Identifier: Apache-2.0
/* The benchmark's floor: empty programs on every syscall's entry and exit, what any tracer of
 * all syscalls pays before doing anything. Its tracer is never written. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/gadget.h>

struct floor_event {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
};

GADGET_TRACER_MAP(floor_events, 4096);
GADGET_TRACER(floor, floor_events, floor_event);

SEC("raw_tracepoint/sys_enter")
int floor_sys_enter(void *ctx)
{
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int floor_sys_exit(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
