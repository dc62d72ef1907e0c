// SPDX-License-Identifier: GPL-2.0
/*
 * traceloop: a flight recorder of system calls, one bounded overwriting buffer per container.
 *
 * sys_enter/sys_exit write fixed-size records into the buffer of the container (mount
 * namespace) through the gadget API's flight recorder (<gadget/recorder.h>): the slot is
 * allocated in BPF on the container's first syscall, user space reads a container's window when
 * asked (`traceloop show`). The record's typedefs tell the runtime's syscall decoder what each
 * field is. See README.md.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <gadget/types.h>
#include <gadget/macros.h>
#include <gadget/mntns_filter.h>
#include <gadget/recorder.h>

#define TRACELOOP_DATA_LEN	128	/* captured bytes per record, power of 2 */
#define TRACELOOP_MAX_NR	GADGET_SYSCALL_MAX_NR	/* syscall numbers covered by the tables */
#define NO_DATA_ARG		0xff

enum record_kind {
	RECORD_EMPTY = 0,
	RECORD_ENTER = 1,
	RECORD_EXIT = 2,
	RECORD_ENTER_DATA = 3,	/* one more captured argument of the preceding enter */
	RECORD_COMPLETE = 4,	/* an enter its exit completed in place: ret set */
};

#define DATA_TRUNCATED	1
#define DATA_FAULT	2

/*
 * 256 bytes, 4 cache lines. The typedefs tell the runtime's decoder what each field is
 * (bpf/README.md). The header fills 120 bytes and the capture follows it, so a syscall that
 * captures 8 bytes or fewer writes two cache lines.
 */
struct traceloop_record {
	gadget_record_seq seq;		/* per-container sequence number */
	gadget_timestamp timestamp_raw;	/* of the enter (of the exit in an exit record) */
	gadget_mntns_id mntns_id;
	gadget_syscall_arg args[6];	/* enter: arguments; exit record: zero */
	gadget_syscall_ret ret;		/* exit and complete records */
	gadget_pid pid;
	gadget_tid tid;
	gadget_cpu cpu;
	gadget_syscall syscall_nr;
	gadget_comm comm[16];
	gadget_record_kind kind;	/* enum record_kind; written last */
	gadget_capture_arg data_arg;	/* argument `data` belongs to, NO_DATA_ARG if none */
	gadget_capture_len data_len;	/* bytes in data (strings: without the NUL) */
	gadget_capture_flags data_flags;	/* DATA_TRUNCATED, DATA_FAULT */
	__u8 __pad[3];
	gadget_capture data[TRACELOOP_DATA_LEN];
	__u8 __pad2[8];
};

GADGET_RECORDER(traceloop, traceloop_records, traceloop_record);

/*
 * What to capture for a syscall (indexed by number in traceloop_specs).
 * strings: bit i set: argument i is a NUL-terminated user string, read at enter.
 * enter_buf / exit_buf: 1 + index of a user buffer read at enter (length: argument
 * len_arg - 1) or at exit (length: the return value); 0: none.
 */
struct traceloop_spec {
	__u8 strings;
	__u8 enter_buf;
	__u8 len_arg;
	__u8 exit_buf;
};

#define S(nr, mask)		[nr] = { .strings = (mask) }
#define WBUF(nr, buf, len)	[nr] = { .enter_buf = (buf) + 1, .len_arg = (len) + 1 }
#define RBUF(nr, buf)		[nr] = { .exit_buf = (buf) + 1 }
#define SR(nr, mask, buf)	[nr] = { .strings = (mask), .exit_buf = (buf) + 1 }

/*
 * Compiled-in default; user space may override it before load (it is .rodata).
 * Keep in sync with EXIT_BUFFERS in src/traceloop/decode.rs.
 */
const volatile struct traceloop_spec traceloop_specs[TRACELOOP_MAX_NR] = {
#if defined(__TARGET_ARCH_x86)
	WBUF(1, 1, 2),		/* write */
	WBUF(18, 1, 2),		/* pwrite64 */
	WBUF(44, 1, 2),		/* sendto */
	RBUF(0, 1),		/* read */
	RBUF(17, 1),		/* pread64 */
	RBUF(45, 1),		/* recvfrom */
	RBUF(79, 0),		/* getcwd */
	SR(89, 0x1, 1),		/* readlink */
	SR(267, 0x2, 2),	/* readlinkat */
	S(2, 0x1),		/* open */
	S(85, 0x1),		/* creat */
	S(257, 0x2),		/* openat */
	S(437, 0x2),		/* openat2 */
	S(4, 0x1),		/* stat */
	S(6, 0x1),		/* lstat */
	S(262, 0x2),		/* newfstatat */
	S(332, 0x2),		/* statx */
	S(21, 0x1),		/* access */
	S(269, 0x2),		/* faccessat */
	S(439, 0x2),		/* faccessat2 */
	S(59, 0x1),		/* execve */
	S(322, 0x2),		/* execveat */
	S(80, 0x1),		/* chdir */
	S(161, 0x1),		/* chroot */
	S(83, 0x1),		/* mkdir */
	S(258, 0x2),		/* mkdirat */
	S(84, 0x1),		/* rmdir */
	S(87, 0x1),		/* unlink */
	S(263, 0x2),		/* unlinkat */
	S(82, 0x3),		/* rename */
	S(264, 0xa),		/* renameat */
	S(316, 0xa),		/* renameat2 */
	S(86, 0x3),		/* link */
	S(265, 0xa),		/* linkat */
	S(88, 0x3),		/* symlink */
	S(266, 0x5),		/* symlinkat */
	S(90, 0x1),		/* chmod */
	S(268, 0x2),		/* fchmodat */
	S(92, 0x1),		/* chown */
	S(94, 0x1),		/* lchown */
	S(260, 0x2),		/* fchownat */
	S(76, 0x1),		/* truncate */
	S(133, 0x1),		/* mknod */
	S(259, 0x2),		/* mknodat */
	S(280, 0x2),		/* utimensat */
	S(165, 0x7),		/* mount */
	S(166, 0x1),		/* umount2 */
#elif defined(__TARGET_ARCH_arm64)
	WBUF(64, 1, 2),		/* write */
	WBUF(68, 1, 2),		/* pwrite64 */
	WBUF(206, 1, 2),	/* sendto */
	RBUF(63, 1),		/* read */
	RBUF(67, 1),		/* pread64 */
	RBUF(207, 1),		/* recvfrom */
	RBUF(17, 0),		/* getcwd */
	SR(78, 0x2, 2),		/* readlinkat */
	S(56, 0x2),		/* openat */
	S(437, 0x2),		/* openat2 */
	S(79, 0x2),		/* newfstatat */
	S(291, 0x2),		/* statx */
	S(48, 0x2),		/* faccessat */
	S(439, 0x2),		/* faccessat2 */
	S(221, 0x1),		/* execve */
	S(281, 0x2),		/* execveat */
	S(49, 0x1),		/* chdir */
	S(51, 0x1),		/* chroot */
	S(34, 0x2),		/* mkdirat */
	S(35, 0x2),		/* unlinkat */
	S(38, 0xa),		/* renameat */
	S(276, 0xa),		/* renameat2 */
	S(37, 0xa),		/* linkat */
	S(36, 0x5),		/* symlinkat */
	S(53, 0x2),		/* fchmodat */
	S(54, 0x2),		/* fchownat */
	S(45, 0x1),		/* truncate */
	S(33, 0x2),		/* mknodat */
	S(88, 0x2),		/* utimensat */
	S(40, 0x7),		/* mount */
	S(39, 0x1),		/* umount2 */
#endif
};

/*
 * The runtime's own process, set by it before load: not recorded. Its scans and its final dump
 * are thousands of syscalls that would push the host's history out of its buffer.
 */
const volatile __u32 gadget_runtime_tgid = 0;

/* pt_regs flavors: CO-RE matches them to the kernel's struct pt_regs by field name. */
struct pt_regs___x86_tl {
	unsigned long di, si, dx, r10, r8, r9, orig_ax;
} __attribute__((preserve_access_index));

struct pt_regs___arm64_tl {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

/*
 * The syscall's arguments from the registers the kernel saved at entry. The programs are
 * BTF-enabled (tp_btf), so `regs` is a typed kernel pointer: each field is a plain load at its
 * CO-RE offset, no helper call. The registers still hold the arguments at exit (strace reads
 * them there too), so a buffer filled by the call is found again at exit without remembering
 * it per thread.
 */
static __always_inline void read_args(struct pt_regs *regs, __u64 args[6])
{
#if defined(__TARGET_ARCH_x86)
	struct pt_regs___x86_tl *r = (void *)regs;

	args[0] = r->di;
	args[1] = r->si;
	args[2] = r->dx;
	args[3] = r->r10;
	args[4] = r->r8;
	args[5] = r->r9;
#elif defined(__TARGET_ARCH_arm64)
	struct pt_regs___arm64_tl *r = (void *)regs;

	args[0] = r->orig_x0;
	args[1] = r->regs[1];
	args[2] = r->regs[2];
	args[3] = r->regs[3];
	args[4] = r->regs[4];
	args[5] = r->regs[5];
#else
#error "traceloop: unsupported architecture"
#endif
}

static __always_inline __u32 syscall_nr_of(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return ((struct pt_regs___x86_tl *)(void *)regs)->orig_ax;
#else
	return ((struct pt_regs___arm64_tl *)(void *)regs)->syscallno;
#endif
}

/*
 * Claims the next record of the slot and fills the common header (kind still empty); its index
 * in the map goes to *idx, its sequence number to *seq.
 */
static __always_inline struct traceloop_record *
new_record(__u32 slot, __u64 mntns_id, __u32 nr, __u64 ts, __u64 *seq, __u32 *idx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct traceloop_record *rec;
	__u64 *comm;

	rec = gadget_recorder_claim_at(traceloop_records, slot, seq, idx);
	if (!rec)
		return NULL;
	rec->kind = RECORD_EMPTY;
	rec->seq = *seq;
	rec->timestamp_raw = ts;
	rec->mntns_id = mntns_id;
	/* Plain loads through the BTF pointer: no helper call (bpf_get_current_pid_tgid/comm). */
	rec->pid = task->tgid;
	rec->tid = task->pid;
	rec->cpu = bpf_get_smp_processor_id();
	rec->syscall_nr = nr;
	/* The 16 bytes as they are (NUL-padded by the kernel); the decoder stops at the NUL. */
	comm = (__u64 *)rec->comm;
	comm[0] = *(__u64 *)&task->comm[0];
	comm[1] = *(__u64 *)&task->comm[8];
	rec->data_arg = NO_DATA_ARG;
	rec->data_len = 0;
	rec->data_flags = 0;
	return rec;
}

static __always_inline void capture_string(struct traceloop_record *rec, __u8 arg, __u64 ptr)
{
	long n = bpf_probe_read_user_str(rec->data, sizeof(rec->data), (void *)ptr);

	rec->data_arg = arg;
	if (n < 0) {
		rec->data_flags = DATA_FAULT;
		return;
	}
	/* n counts the NUL; a full buffer may have been cut. */
	rec->data_len = n > 0 ? n - 1 : 0;
	if (n >= (long)sizeof(rec->data))
		rec->data_flags = DATA_TRUNCATED;
}

static __always_inline void capture_buf(struct traceloop_record *rec, __u8 arg, __u64 ptr,
					__s64 len)
{
	__u32 n;

	rec->data_arg = arg;
	if (len <= 0)
		return;
	n = len > TRACELOOP_DATA_LEN ? TRACELOOP_DATA_LEN : len;
	if (len > TRACELOOP_DATA_LEN)
		rec->data_flags = DATA_TRUNCATED;
	n &= (TRACELOOP_DATA_LEN * 2 - 1);
	if (n > TRACELOOP_DATA_LEN)
		return;
	if (bpf_probe_read_user(rec->data, n, (void *)ptr)) {
		rec->data_flags |= DATA_FAULT;
		return;
	}
	rec->data_len = n;
}

/*
 * nr (already checked below TRACELOOP_MAX_NR) as an index older verifiers can bound: 6.1's
 * loses the range of a value spilled to the stack, so the mask is applied right before use.
 */
static __always_inline __u32 spec_index(__u32 nr)
{
	barrier_var(nr);
	return nr & (TRACELOOP_MAX_NR - 1);
}

/* The user buffer argument `arg` (1-based, from the syscall's spec) of `regs`, 0 if none. */
static __always_inline __u64 buf_arg(struct pt_regs *regs, __u8 arg)
{
	__u64 args[8] = {}, buf = 0;
	int i;

	read_args(regs, args);
	/* A constant index each: the verifier refuses a variable stack offset. */
#pragma unroll
	for (i = 0; i < 6; i++)
		if (i == arg - 1)
			buf = args[i];
	return buf;
}

/*
 * The slot the current task records into, -1 if none. Its cache entry goes to *task (NULL when
 * it has none). A task seen before finds its slot without hashing; the first syscall of a task
 * (or after it changed namespace, or its trace was closed) takes the filter and the slot map.
 */
static __always_inline __s64 task_slot(__u64 mntns_id, struct gadget_recorder_task **task)
{
	struct gadget_recorder_task *t;
	__s64 slot;

	/* The commonest namespace first: the host's, when it is not recorded. */
	if (gadget_host_mntns_dropped(mntns_id))
		return -1;
	t = gadget_recorder_task_get(mntns_id);
	if (!t) {
		if (gadget_should_discard_mntns_id(mntns_id))
			return -1;
		if (gadget_runtime_tgid && bpf_get_current_pid_tgid() >> 32 == gadget_runtime_tgid)
			return -1;
		slot = gadget_recorder_slot(mntns_id);
		if (slot < 0)
			return -1;
		t = gadget_recorder_task_set(mntns_id, slot);
		if (!t) {
			gadget_recorder_note_cgroup(slot, mntns_id);
			*task = NULL;
			return slot;
		}
	}
	if (!t->named)
		t->named = gadget_recorder_note_cgroup(t->slot, mntns_id);
	*task = t;
	return t->slot;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(traceloop_sys_enter, struct pt_regs *regs, long id)
{
	struct gadget_recorder_task *task;
	struct traceloop_record *rec;
	struct traceloop_spec spec = {};
	__u64 mntns_id, ts, seq = 0, args[8] = {};	/* 8: indexes are masked with & 7 */
	__u32 nr = id, idx = 0;
	__u8 kind = RECORD_ENTER;
	bool has_data = false;
	__s64 slot;
	int i;

	if (!gadget_syscall_wanted(nr))
		return 0;
	mntns_id = gadget_get_current_mntns_id();
	slot = task_slot(mntns_id, &task);
	if (slot < 0)
		return 0;

	ts = bpf_ktime_get_boot_ns();
	read_args(regs, args);
	if (nr < TRACELOOP_MAX_NR) {
		__u32 i = spec_index(nr);

		spec.strings = traceloop_specs[i].strings;
		spec.enter_buf = traceloop_specs[i].enter_buf;
		spec.len_arg = traceloop_specs[i].len_arg;
		spec.exit_buf = traceloop_specs[i].exit_buf;
	}

	rec = new_record(slot, mntns_id, nr, ts, &seq, &idx);
	if (!rec)
		return 0;
	/* The exit completes this record in place. */
	if (task) {
		task->pending_seq = seq;
		task->pending_idx = idx;
		task->pending_nr = nr;
		task->pending = 1;
	}
	__builtin_memcpy(rec->args, args, sizeof(rec->args));
	if (spec.enter_buf && spec.enter_buf <= 6 && spec.len_arg && spec.len_arg <= 6) {
		capture_buf(rec, spec.enter_buf - 1, args[(spec.enter_buf - 1) & 7],
			    args[(spec.len_arg - 1) & 7]);
		has_data = true;
	}

	/* The first captured argument rides in the enter record, the others in continuations. */
#pragma unroll
	for (i = 0; i < 6; i++) {
		if (!(spec.strings & (1 << i)))
			continue;
		if (has_data) {
			rec->kind = kind;
			kind = RECORD_ENTER_DATA;
			rec = new_record(slot, mntns_id, nr, ts, &seq, &idx);
			if (!rec)
				return 0;
			__builtin_memset(rec->args, 0, sizeof(rec->args));
		}
		capture_string(rec, i, args[i]);
		has_data = true;
	}
	rec->kind = kind;
	return 0;
}

/*
 * Completes the enter's record in place: its return value and the buffer the call filled.
 * False when it cannot (overwritten, or its capture already holds an enter argument): the
 * exit then gets a record of its own.
 */
static __always_inline bool complete(struct gadget_recorder_task *t, struct pt_regs *regs,
				     long ret)
{
	struct traceloop_record *rec;
	__u32 nr, idx;
	__u8 arg = 0;

	t->pending = 0;
	nr = syscall_nr_of(regs);
	/* rt_sigreturn's exit reports syscall -1 */
	if (nr != t->pending_nr && nr != (__u32)-1)
		return false;
	idx = t->pending_idx;
	rec = bpf_map_lookup_elem(&traceloop_records, &idx);
	if (!rec || rec->seq != t->pending_seq || rec->kind != RECORD_ENTER)
		return false;
	if (nr < TRACELOOP_MAX_NR)
		arg = traceloop_specs[spec_index(nr)].exit_buf;
	if (arg && arg <= 6) {
		if (rec->data_arg != NO_DATA_ARG)
			return false;
		capture_buf(rec, arg - 1, buf_arg(regs, arg), ret);
	}
	rec->ret = ret;
	rec->kind = RECORD_COMPLETE;
	return true;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(traceloop_sys_exit, struct pt_regs *regs, long ret)
{
	struct gadget_recorder_task *task;
	struct traceloop_record *rec;
	__u64 mntns_id, ts, seq = 0;
	__u32 nr, idx = 0;
	__s64 slot;

	/* Recorded syscalls first: one task-storage lookup finds the enter's record. */
	task = bpf_task_storage_get(&gadget_recorder_tasks, bpf_get_current_task_btf(), 0, 0);
	if (task && task->pending && complete(task, regs, ret))
		return 0;

	/* No enter to complete: a child returning from clone, an enter overwritten. */
	mntns_id = gadget_get_current_mntns_id();
	if (gadget_should_discard_mntns_id(mntns_id))
		return 0;
	if (gadget_runtime_tgid && bpf_get_current_pid_tgid() >> 32 == gadget_runtime_tgid)
		return 0;
	nr = syscall_nr_of(regs);
	if (!gadget_syscall_wanted(nr))
		return 0;
	slot = gadget_recorder_slot(mntns_id);
	if (slot < 0)
		return 0;

	gadget_recorder_note_cgroup(slot, mntns_id);
	ts = bpf_ktime_get_boot_ns();
	rec = new_record(slot, mntns_id, nr, ts, &seq, &idx);
	if (!rec)
		return 0;
	__builtin_memset(rec->args, 0, sizeof(rec->args));
	rec->ret = ret;

	if (nr < TRACELOOP_MAX_NR) {
		__u8 arg = traceloop_specs[spec_index(nr)].exit_buf;

		if (arg && arg <= 6)
			capture_buf(rec, arg - 1, buf_arg(regs, arg), ret);
	}
	rec->kind = RECORD_EXIT;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
