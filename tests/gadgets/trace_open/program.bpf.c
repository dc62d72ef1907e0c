// SPDX-License-Identifier: Apache-2.0
/* A gadget the runtime has never seen: openat calls, with a name filter. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/gadget.h>

struct open_event {
	gadget_timestamp timestamp_raw;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_uid uid;
	gadget_comm comm[16];
	__s32 flags;
	char fname[128];
};

const volatile char targ_comm[16] = {};
const volatile __u32 min_flags = 0;
const volatile bool only_creat = false;
GADGET_PARAM(targ_comm);
GADGET_PARAM(min_flags);
GADGET_PARAM(only_creat);

GADGET_TRACER_MAP(opens, 256 * 1024);
GADGET_TRACER(open, opens, open_event);

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u64 mntns = gadget_get_current_mntns_id();
	struct open_event *e;
	int flags = (int)ctx->args[2];
	char comm[16];

	if (gadget_should_discard_mntns_id(mntns))
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	if (targ_comm[0]) {
		for (int i = 0; i < sizeof(comm); i++) {
			if (comm[i] != targ_comm[i])
				return 0;
			if (!comm[i])
				break;
		}
	}
	if (only_creat && !(flags & 0100))
		return 0;
	if ((__u32)flags < min_flags)
		return 0;
	e = gadget_reserve_buf(opens, sizeof(*e));
	if (!e)
		return 0;
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->mntns_id = mntns;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->flags = flags;
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->fname, sizeof(e->fname), (const char *)ctx->args[1]);
	gadget_submit_buf(ctx, opens, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
