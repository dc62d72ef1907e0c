// SPDX-License-Identifier: GPL-2.0
/* A task iterator in Inspektor Gadget's API style: one record per task of a chosen process. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct task_row {
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_comm comm[16];
	struct {
		__u32 uid;
		__u32 gid;
	} creds;
	__u64 nr_threads;
};

/* Only the tasks of this process (0: all). */
const volatile __u32 only_pid = 0;
GADGET_PARAM(only_pid);

GADGET_ITER(tasks, task_row, dump_tasks);

SEC("iter/task")
int dump_tasks(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct task_row row = {};

	if (!task)
		return 0;
	if (only_pid && task->tgid != only_pid)
		return 0;
	row.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	row.pid = task->tgid;
	row.tid = task->pid;
	bpf_probe_read_kernel_str(row.comm, sizeof(row.comm), task->comm);
	row.creds.uid = BPF_CORE_READ(task, cred, uid.val);
	row.creds.gid = BPF_CORE_READ(task, cred, gid.val);
	row.nr_threads = BPF_CORE_READ(task, signal, nr_threads);
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char _license[] SEC("license") = "GPL";
