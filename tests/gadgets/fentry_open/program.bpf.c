// SPDX-License-Identifier: Apache-2.0
/* A test gadget on an fentry hook: opens seen at do_sys_openat2's entry. On kernels without
 * fentry (BPF trampolines) it must fail with the loader's clear error. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <gadget/gadget.h>

struct open_event {
	gadget_timestamp timestamp_raw;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_comm comm[16];
	char fname[128];
};

GADGET_TRACER_MAP(opens, 256 * 1024);
GADGET_TRACER(open, opens, open_event);

SEC("fentry/do_sys_openat2")
int BPF_PROG(fentry_openat2, int dfd, const char *filename)
{
	__u64 mntns = gadget_get_current_mntns_id();
	struct open_event *e;

	if (gadget_should_discard_mntns_id(mntns))
		return 0;
	e = gadget_reserve_buf(opens, sizeof(*e));
	if (!e)
		return 0;
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->mntns_id = mntns;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->fname, sizeof(e->fname), filename);
	gadget_submit_buf(ctx, opens, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
