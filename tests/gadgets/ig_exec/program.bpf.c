// SPDX-License-Identifier: Apache-2.0
/*
 * An exec tracer written the way Inspektor Gadget's trace_exec is: get_path_str() for the
 * executable, its parent's and the working directory, gadget_get_ctime_nanosec_from_inode()
 * for the executable's change time, and (to exercise those headers) an FNV-1a hash of
 * pid and ctime (gadget/fnv1a.h) and a lookup in the socket enrichment map
 * (gadget/sockets-map.h), which nothing fills under ig. tests/ig_compat.rs runs it.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/core_fixes.bpf.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/filesystem.h>
#include <gadget/fnv1a.h>
#define GADGET_TYPE_TRACING
#include <gadget/sockets-map.h>

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	__u64 ctime;
	__u64 pctime;
	__u64 hash;
	bool socket_known;
	char cwd[GADGET_PATH_MAX];
	char exepath[GADGET_PATH_MAX];
	char parent_exepath[GADGET_PATH_MAX];
};

const volatile bool paths = true;
GADGET_PARAM(paths);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(exec, events, event);

SEC("tracepoint/sched/sched_process_exec")
int ig_sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	struct gadget_socket_key key = {};
	struct gadget_socket_value *sv;
	struct event *event;
	struct inode *inode;
	__u64 hash;

	if (gadget_should_discard_data_current())
		return 0;
	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);

	inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
	event->ctime = inode ? gadget_get_ctime_nanosec_from_inode(inode) : 0;
	inode = BPF_CORE_READ(parent, mm, exe_file, f_inode);
	event->pctime = inode ? gadget_get_ctime_nanosec_from_inode(inode) : 0;

	hash = fnv_64a_init();
	fnv_64a_update_u32(&hash, event->proc.pid);
	fnv_64a_update_u64(&hash, event->ctime);
	event->hash = hash;

	/* nothing fills gadget_sockets under ig: not found, the process stays as populated */
	key.netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	key.family = GADGET_SE_AF_INET;
	key.proto = GADGET_SE_NEXTHDR_TCP;
	sv = bpf_map_lookup_elem(&gadget_sockets, &key);
	event->socket_known = sv != NULL;
	gadget_process_populate_from_socket(sv, &event->proc);

	event->cwd[0] = event->exepath[0] = event->parent_exepath[0] = '\0';
	if (paths) {
		struct fs_struct *fs = BPF_CORE_READ(task, fs);
		struct file *exe_file = BPF_CORE_READ(task, mm, exe_file);
		struct file *parent_exe_file = BPF_CORE_READ(parent, mm, exe_file);
		char *s;

		s = get_path_str(&fs->pwd);
		if (s)
			bpf_probe_read_kernel_str(event->cwd, sizeof(event->cwd), s);
		s = get_path_str(&exe_file->f_path);
		if (s)
			bpf_probe_read_kernel_str(event->exepath, sizeof(event->exepath), s);
		s = get_path_str(&parent_exe_file->f_path);
		if (s)
			bpf_probe_read_kernel_str(event->parent_exepath,
						  sizeof(event->parent_exepath), s);
	}
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
