// SPDX-License-Identifier: GPL-2.0
/* trace_exec: process executions, successful and (optionally) failed. */
#include <gadget/gadget.h>

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

const volatile bool ignore_failed = true;
const volatile bool paths = false;
const volatile __u32 targ_uid = INVALID_UID;

GADGET_PARAM(ignore_failed);
GADGET_PARAM(paths);
GADGET_PARAM(targ_uid);

GADGET_TRACER_MAP(events, 1024 * 1024 * 4);
GADGET_TRACER(exec, events, event);

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
static __always_inline struct event *event_init(struct task_struct *task, __u32 scratch)
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

	e->timestamp_raw = bpf_ktime_get_boot_ns();
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
	if (!paths) {
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

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ig_sched_exec, struct task_struct *task, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	unsigned long arg_start, arg_end;
	struct event *e;
	__u32 len;
	__u32 old_tid = old_pid;
	struct file *file;

	if (!ignore_failed)
		bpf_map_delete_elem(&execs, &old_tid);
	if (discard())
		return 0;

	e = event_init(task, SCRATCH_EXEC);
	if (!e)
		return 0;

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

	if (paths) {
		clear_paths(e);
		read_cwd(task, e);
		bpf_probe_read_kernel_str(e->file, sizeof(e->file), bprm->filename);
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
	e = event_init(task, SCRATCH_FAILED);
	if (!e)
		goto cleanup;
	e->error_raw = -ret;

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

char LICENSE[] SEC("license") = "GPL";
