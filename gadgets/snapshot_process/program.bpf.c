// SPDX-License-Identifier: GPL-2.0
/* snapshot_process: the processes running now, read with a BPF task iterator (iter/task). */
/* bpf_seq_write() is GPL-only. */

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/macros.h>
#include <gadget/types.h>

struct process_entry {
	gadget_mntns_id mntns_id;
	gadget_comm comm[16];
	gadget_pid pid;
	gadget_tid tid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_gid gid;
};

/* Show every thread, not only thread-group leaders. */
const volatile bool show_threads = false;
GADGET_PARAM(show_threads);

GADGET_ITER(processes, process_entry, ig_snap_proc);

SEC("iter/task")
int ig_snap_proc(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct process_entry e = {};

	if (!task)
		return 0;
	if (!show_threads && task->tgid != task->pid)
		return 0;

	e.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	e.pid = task->tgid;
	e.tid = task->pid;
	e.ppid = BPF_CORE_READ(task, real_parent, tgid);
	e.uid = BPF_CORE_READ(task, cred, uid.val);
	e.gid = BPF_CORE_READ(task, cred, gid.val);
	bpf_probe_read_kernel_str(e.comm, sizeof(e.comm), task->comm);

	bpf_seq_write(seq, &e, sizeof(e));
	return 0;
}

char _license[] SEC("license") = "GPL";
