// SPDX-License-Identifier: GPL-2.0
/* trace_exec: process executions, successful and (optionally) failed. */
#include <gadget/gadget.h>
#include <gadget/process.h>

#define ARGS_MAX	4096	/* bytes of argv kept, power of 2 */
#define FAILED_ARGS_MAX	128	/* argv entries read for a failed exec */
#define PATH_LEN	512
#define INVALID_UID	((__u32)-1)

struct event {
	gadget_timestamp timestamp_raw;
	gadget_mntns_id mntns_id;
	gadget_mntns_nsid mntns_nsid;
	gadget_comm comm[16];
	gadget_pid pid;
	gadget_tid tid;
	gadget_ppid ppid;
	gadget_pcomm pcomm[16];
	gadget_uid uid;
	gadget_gid gid;
	gadget_uid loginuid;
	__u32 sessionid;
	gadget_errno error_raw;
	bool upper_layer;
	bool pupper_layer;
	bool args_truncated;
	__u32 args_count;
	__u32 args_size;
	/* lineage (gadget/process.h): exec_id, parent_exec_id in user space */
	gadget_exec_key exec_key;
	gadget_exec_key parent_exec_key;
	gadget_pid parent_pid;
	/* binary properties, at the exec */
	bool setuid;
	bool setgid;
	bool caps_raised;
	bool fileless;
	gadget_strlist args[ARGS_MAX];
	/* last: without --paths a record ends with its args (~100 bytes + args) */
	char cwd[PATH_LEN];
	char file[PATH_LEN];
	char exepath[PATH_LEN];
};

/* Slack lets bounded reads and the args tail's zeroing overrun. */
struct scratch {
	struct event e;
	char slack[ARGS_MAX];
};

/* sys_enter_execve* arguments, for a failed exec */
struct exec_args {
	__u64 filename;
	__u64 argv;
};

/* A process exit: the last thread of a thread group (with --exits). */
struct exit_event {
	gadget_timestamp timestamp_raw;
	gadget_mntns_id mntns_id;
	gadget_mntns_nsid mntns_nsid;
	gadget_comm comm[16];
	gadget_pid pid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_exec_key exec_key;
	__u32 exit_code;
	gadget_signal signal_raw;
	bool core_dumped;
	__u64 duration_ns;
};

/*
 * A new process (fork/clone of a thread group leader; with --parent, --ancestors or --exits):
 * an internal data source the runtime's process cache consumes (gadget.yaml: internal), so an
 * exec whose parent was a fork already gone still gets the parent's details.
 */
struct fork_event {
	gadget_comm comm[16];
	gadget_pid pid;
	gadget_pid parent_pid;
	gadget_exec_key exec_key;
	gadget_exec_key parent_exec_key;
};

const volatile bool ignore_failed = true;
const volatile bool paths = false;
const volatile __u32 targ_uid = INVALID_UID;
/* user space: the parent's / ancestors' fields from the process cache; BPF reads exepath */
const volatile bool parent = false;
const volatile __u32 ancestors = 0;
const volatile bool exits = false;

GADGET_PARAM(ignore_failed);
GADGET_PARAM(paths);
GADGET_PARAM(targ_uid);
GADGET_PARAM(parent);
GADGET_PARAM(ancestors);
GADGET_PARAM(exits);

GADGET_TRACER_MAP(events, 1024 * 1024 * 4);
GADGET_TRACER(exec, events, event);
GADGET_TRACER_MAP(exit_events, 1024 * 256);
GADGET_TRACER(exit, exit_events, exit_event);
GADGET_TRACER_MAP(fork_events, 1024 * 256);
GADGET_TRACER(fork, fork_events, fork_event);

/* LRU: an exec killed after the point of no return never reaches sys_exit */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct exec_args);
} execs SEC(".maps");

/*
 * Per-CPU scratch records: one for sched_process_exec, one for the syscall tracepoints of
 * failed execs. Syscall tracepoints may be preempted on recent kernels (faultable since
 * 6.14); a record they hold must not be the one an exec on the same CPU fills meanwhile.
 */
#define SCRATCH_EXEC	0
#define SCRATCH_FAILED	1

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct scratch);
} heap SEC(".maps");

static __always_inline bool discard(void)
{
	if (gadget_should_discard_mntns_id(gadget_get_current_mntns_id()))
		return true;
	return targ_uid != INVALID_UID && (__u32)bpf_get_current_uid_gid() != targ_uid;
}

/*
 * Fills what successful and failed execs share; zeroes everything before args.
 * `task` is a BTF pointer: fields are read with plain loads, not helper calls.
 */
static __always_inline struct event *event_init(struct task_struct *task, __u32 scratch,
						__u64 now)
{
	struct task_struct *parent;
	struct event *e;
	__u32 i;
	__u64 id;

	e = bpf_map_lookup_elem(&heap, &scratch);
	if (!e)
		return NULL;
	/*
	 * The scratch is reused: no stale bytes (rounded up: the words may run
	 * into args, written next). volatile keeps clang-14 from calling memset.
	 */
#pragma unroll
	for (i = 0; i < (offsetof(struct event, args) + 7) / 8; i++)
		((volatile __u64 *)e)[i] = 0;

	e->timestamp_raw = now;
	e->mntns_id = gadget_get_current_mntns_id();
	e->mntns_nsid = gadget_get_current_mntns_nsid();
	id = bpf_get_current_pid_tgid();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	id = bpf_get_current_uid_gid();
	e->uid = (__u32)id;
	e->gid = id >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	parent = task->real_parent;
	e->ppid = parent->tgid;
	bpf_probe_read_kernel(e->pcomm, sizeof(e->pcomm), parent->comm);
	if (bpf_core_field_exists(task->loginuid)) {
		e->loginuid = task->loginuid.val;
		e->sessionid = task->sessionid;
	} else {
		e->loginuid = INVALID_UID;
		e->sessionid = INVALID_UID;
	}
	return e;
}

/*
 * Without --paths the record ends with the args; with it, the paths follow the
 * whole args array, whose unused tail is zeroed (a read from NULL fails and
 * zeroes its destination) so no earlier exec's bytes are sent.
 * args_size is read back from the map value so the verifier does not track its origin.
 */
static __always_inline void output(void *ctx, struct event *e)
{
	__u32 used = *(volatile __u32 *)&e->args_size;

	if (used > ARGS_MAX)	/* never: bounds the size for the verifier */
		used = ARGS_MAX;
	if (!paths && !parent && !ancestors) {
		gadget_output_buf(ctx, events, e, offsetof(struct event, args) + used);
		return;
	}
	if (used < ARGS_MAX)
		bpf_probe_read_kernel(&e->args[used], ARGS_MAX - used, NULL);
	gadget_output_buf(ctx, events, e, sizeof(*e));
}

struct count_args_ctx {
	struct event *e;
	__u32 count;
	__u32 kept;
};

#define ONES	0x0101010101010101ULL
#define LOW7	0x7f7f7f7f7f7f7f7fULL

/* One 8-byte word of a cut argument list: its NULs counted, the last one noted. */
static long count_args_step(__u64 i, void *data)
{
	struct count_args_ctx *c = data;
	__u64 w = *(__u64 *)&c->e->args[(i * 8) & (ARGS_MAX - 8)];
	/* 0x80 in each byte of w that is zero, and nowhere else */
	__u64 z = ~(((w & LOW7) + LOW7) | w | LOW7);
	int b;

	if (!z)
		return 0;
	c->count += ((z >> 7) * ONES) >> 56;
	for (b = 7; b >= 0; b--) {
		if (z & (0x80ULL << (b * 8))) {
			c->kept = i * 8 + b + 1;
			break;
		}
	}
	return 0;
}

/*
 * An argument list cut at ARGS_MAX bytes keeps its complete args only: up to
 * the last NUL, counted. bpf_loop: the verifier checks the step once instead
 * of walking every iteration (load time is most of start to first event).
 */
static __always_inline void keep_complete_args(struct event *e)
{
	struct count_args_ctx c = { .e = e };

	bpf_loop(ARGS_MAX / 8, count_args_step, &c, 0);
	e->args_count = c.count;
	e->args_size = c.kept;
}

/*
 * The path fields are zeroed as a whole before any is written: the scratch is reused, and a
 * field a record does not fill (a failed exec has no exepath), or the bytes after a shorter
 * string, would otherwise carry an earlier exec's. A read from NULL fails and zeroes.
 */
static __always_inline void clear_paths(struct event *e)
{
	bpf_probe_read_kernel(e->cwd, sizeof(e->cwd) + sizeof(e->file) + sizeof(e->exepath), NULL);
}

static __always_inline void read_cwd(struct task_struct *task, struct event *e)
{
	gadget_read_path(&task->fs->pwd, e->cwd, sizeof(e->cwd));
}

#define S_ISUID		0004000
#define S_ISGID		0002000
#define S_IXGRP		0000010

/*
 * What the exec applied, read from the new credentials (bprm->cred is already committed and
 * cleared at sched_process_exec): a set-user-ID or set-group-ID bit that took effect (the new
 * effective id is the file's and differs from the real one), file capabilities that raised
 * privileges (the kernel marked the exec secure, AT_SECURE: bprm->secureexec, which
 * cap_bprm_creds_from_file sets when a non-root caller gains capabilities from the file, for a
 * file without set-id bits, and the caller now holds permitted capabilities), and a file with no
 * name left (i_nlink 0: a memfd, an O_TMPFILE or deleted file).
 */
static __always_inline void binary_properties(struct task_struct *task,
					      struct linux_binprm *bprm, struct event *e)
{
	const struct cred *cred = task->cred;
	struct inode *inode = bprm->file->f_inode;
	__u32 mode = inode->i_mode;
	__u32 euid = cred->euid.val, egid = cred->egid.val;
	__u64 permitted = 0;

	e->setuid = (mode & S_ISUID) && euid == inode->i_uid.val && euid != cred->uid.val;
	e->setgid = (mode & S_ISGID) && (mode & S_IXGRP) && egid == inode->i_gid.val &&
		    egid != cred->gid.val;
	bpf_probe_read_kernel(&permitted, sizeof(permitted), &cred->cap_permitted);
	e->caps_raised = BPF_CORE_READ_BITFIELD(bprm, secureexec) && !(mode & (S_ISUID | S_ISGID)) &&
			 cred->uid.val != 0 && permitted != 0;
	e->fileless = inode->__i_nlink == 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ig_sched_exec, struct task_struct *task, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	unsigned long arg_start, arg_end;
	struct event *e;
	__u32 len;
	__u32 old_tid = old_pid;
	struct file *file;

	__u64 now = bpf_ktime_get_boot_ns();
	gadget_exec_key key, pkey;
	__u32 ppid;

	if (!ignore_failed)
		bpf_map_delete_elem(&execs, &old_tid);
	/* every exec is recorded, selected or not: lineage crosses containers and filters */
	key = gadget_proc_exec(task, now, &pkey, &ppid);
	if (discard())
		return 0;

	e = event_init(task, SCRATCH_EXEC, now);
	if (!e)
		return 0;
	e->exec_key = key;
	e->parent_exec_key = pkey;
	e->parent_pid = ppid;

	/* the new image's argv strings, contiguous and each NUL-terminated */
	arg_start = task->mm->arg_start;
	arg_end = task->mm->arg_end;
	len = arg_end - arg_start;
	if (arg_end - arg_start > ARGS_MAX)
		len = ARGS_MAX;
	barrier_var(len);
	if (len > ARGS_MAX)
		return 0;
	/* unreadable args: the event goes out without them (args_count and args_size 0) */
	if (!bpf_probe_read_user(e->args, len, (void *)arg_start)) {
		if (arg_end - arg_start > ARGS_MAX) {
			e->args_truncated = true;
			keep_complete_args(e);
		} else {
			e->args_count = bprm->argc;
			e->args_size = len;
		}
	}

	file = bprm->file;
	e->upper_layer = gadget_file_upper_layer(file);
	e->pupper_layer = gadget_file_upper_layer(task->real_parent->mm->exe_file);
	binary_properties(task, bprm, e);

	if (paths || parent || ancestors) {
		clear_paths(e);
		/* the process cache needs the binary only */
		if (paths) {
			read_cwd(task, e);
			bpf_probe_read_kernel_str(e->file, sizeof(e->file), bprm->filename);
		}
		gadget_read_path(&file->f_path, e->exepath, sizeof(e->exepath));
	}

	output(ctx, e);
	return 0;
}

static __always_inline int enter_exec(__u64 filename, __u64 argv)
{
	struct exec_args args = { .filename = filename, .argv = argv };
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (ignore_failed || discard())
		return 0;
	bpf_map_update_elem(&execs, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int ig_execve_e(struct trace_event_raw_sys_enter *ctx)
{
	return enter_exec(ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int ig_execveat_e(struct trace_event_raw_sys_enter *ctx)
{
	return enter_exec(ctx->args[1], ctx->args[2]);
}

static __always_inline int exit_exec(void *ctx, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct exec_args *args;
	struct event *e;
	volatile __u32 *size;
	const char *argp;
	__u32 off;
	long n;
	int i;

	if (ignore_failed)
		return 0;
	args = bpf_map_lookup_elem(&execs, &tid);
	if (!args)
		return 0;
	if (ret >= 0 || discard())
		goto cleanup;

	task = bpf_get_current_task_btf();
	e = event_init(task, SCRATCH_FAILED, bpf_ktime_get_boot_ns());
	if (!e)
		goto cleanup;
	e->error_raw = -ret;
	/* the image that tried, still running */
	e->exec_key = gadget_proc_key(task);

	/* the running offset is kept in e->args_size: see output() */
	size = &e->args_size;
	for (i = 0; i < FAILED_ARGS_MAX && args->argv; i++) {
		if (bpf_probe_read_user(&argp, sizeof(argp), (void *)args->argv + i * sizeof(argp)))
			break;
		if (!argp)
			break;
		off = *size;
		/* may run into the slack; only complete args within ARGS_MAX are kept */
		n = bpf_probe_read_user_str(&e->args[off & (ARGS_MAX - 1)], ARGS_MAX, argp);
		if (n <= 0)
			break;
		if (off + n > ARGS_MAX) {
			e->args_truncated = true;
			break;
		}
		*size = off + n;
		e->args_count++;
	}
	if (i == FAILED_ARGS_MAX &&
	    !bpf_probe_read_user(&argp, sizeof(argp), (void *)args->argv + i * sizeof(argp)) && argp)
		e->args_truncated = true;

	if (paths) {
		clear_paths(e);
		read_cwd(task, e);
		bpf_probe_read_user_str(e->file, sizeof(e->file), (void *)args->filename);
	}

	output(ctx, e);
cleanup:
	bpf_map_delete_elem(&execs, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int ig_execve_x(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int ig_execveat_x(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx, ctx->ret);
}

/*
 * A thread group's end: the last thread's exit (signal->live already counted down). Always
 * attached, so the lineage map forgets the process; an event only with --exits.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ig_sched_exit, struct task_struct *task)
{
	struct exit_event *e;
	__u64 began, now;
	gadget_exec_key key;
	__u32 code;
	__u64 id;

	if (task->signal->live.counter != 0)
		return 0;
	key = gadget_proc_exit(task, &began);
	if (!exits || discard())
		return 0;
	e = gadget_reserve_buf(exit_events, sizeof(*e));
	if (!e)
		return 0;
	now = bpf_ktime_get_boot_ns();
	e->timestamp_raw = now;
	e->mntns_id = gadget_get_current_mntns_id();
	e->mntns_nsid = gadget_get_current_mntns_nsid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->pid = task->tgid;
	e->ppid = task->real_parent->tgid;
	id = bpf_get_current_uid_gid();
	e->uid = (__u32)id;
	e->gid = id >> 32;
	e->exec_key = key;
	/* wait(2)'s status: the signal in the low 7 bits, the core flag, the code above */
	code = task->exit_code;
	e->signal_raw = code & 0x7f;
	e->core_dumped = !!(code & 0x80);
	e->exit_code = e->signal_raw ? 0 : (code >> 8) & 0xff;
	e->duration_ns = now > began ? now - began : 0;
	gadget_submit_buf(ctx, exit_events, e, sizeof(*e));
	return 0;
}

/*
 * A new process (not a thread). Only with the process cache on: gadget.yaml's loadWhen leaves
 * it out of a plain trace_exec run (a tp_btf program costs its trampoline on every fork even
 * when it returns at once). The fork is recorded in
 * gadget_procs, so its exec names the image that forked it even after a reparenting.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(ig_sched_fork, struct task_struct *forker, struct task_struct *child)
{
	struct fork_event *e;
	gadget_exec_key key, pkey;
	__u32 ppid;

	if (!parent && !ancestors && !exits)
		return 0;
	if (child->pid != child->tgid)
		return 0;
	key = gadget_proc_fork(child, &pkey, &ppid);
	if (discard())
		return 0;
	e = gadget_reserve_buf(fork_events, sizeof(*e));
	if (!e)
		return 0;
	bpf_probe_read_kernel(e->comm, sizeof(e->comm), child->comm);
	e->pid = child->tgid;
	e->parent_pid = ppid;
	e->exec_key = key;
	e->parent_exec_key = pkey;
	gadget_submit_buf(ctx, fork_events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
