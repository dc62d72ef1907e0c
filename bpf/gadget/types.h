/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Typedefs whose names tell the ig runtime how to decode and enrich a field. */
#ifndef __GADGET_TYPES_H
#define __GADGET_TYPES_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#ifndef __VMLINUX_H__
#include <stdbool.h>
#endif
#include <gadget/bpf_compat.h>

typedef __u64 gadget_mntns_id;		/* mount namespace inode: container */
typedef __u64 gadget_mntns_nsid;	/* mount namespace id (NS_GET_MNTNS_ID): never reused */
typedef __u64 gadget_timestamp;		/* bpf_ktime_get_boot_ns() */
typedef __u32 gadget_uid;		/* user name */
typedef __u32 gadget_gid;		/* group name */
typedef __s32 gadget_errno;		/* positive errno: ENOENT... */
typedef char gadget_comm;
typedef char gadget_pcomm;
typedef __u32 gadget_pid;
typedef __u32 gadget_tid;
typedef __u32 gadget_ppid;
typedef char gadget_strlist;		/* NUL-separated strings */
typedef __u32 gadget_syscall;		/* syscall number: name */
typedef __u32 gadget_cpu;		/* CPU number */

/* Fields of a flight recorder's records (gadget/recorder.h): what the syscall decoder reads. */
typedef __u64 gadget_record_seq;	/* the record's sequence number in its container */
typedef __u8 gadget_record_kind;	/* 0 empty, 1 syscall enter, 2 exit, 3 more data of an enter,
					 * 4 an enter its exit completed (needs gadget_syscall_ret) */
typedef __u64 gadget_syscall_arg;	/* array of up to 6: the arguments (exit: [0] = return value
					 * unless the struct has gadget_syscall_ret) */
typedef __s64 gadget_syscall_ret;	/* the return value of an exit or a completed enter */
typedef __u8 gadget_capture_arg;	/* which argument the captured bytes are (0xff: none) */
typedef __u16 gadget_capture_len;	/* captured bytes (strings: without the NUL) */
typedef __u8 gadget_capture_flags;	/* 1: cut, 2: reading user memory failed */
typedef char gadget_capture;		/* array: the captured bytes */

/*
 * Inspektor Gadget's typedefs and structs of the same header (names and layouts are theirs, so
 * sources written for it compile and their events decode alike). Where a type differs from
 * theirs it is said: gadget_errno is signed here (theirs __u32), gadget_syscall is __u32 here
 * (theirs __u64); the runtime reads a field's size and sign from BTF, so both decode.
 */
#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif

typedef __u32 gadget_netns_id;		/* network namespace inode */
typedef __u32 gadget_signal;		/* signal number: name (SIGKILL) */
typedef __u32 gadget_file_mode;		/* file mode bits: -rw-r--r-- */
typedef __u32 gadget_file_flags;	/* open flags: O_RDONLY|O_CLOEXEC */
typedef __u32 gadget_kernel_stack;	/* a kernel stack id (gadget/kernel_stack_map.h) */
typedef __u32 gadget_ptid;
typedef __u64 gadget_bytes;
typedef __u64 gadget_duration;		/* ns */

typedef __u32 gadget_counter__u32;
typedef __u64 gadget_counter__u64;
typedef __u32 gadget_gauge__u32;
typedef __u64 gadget_gauge__u64;
typedef __u32 gadget_histogram_slot__u32;
typedef __u64 gadget_histogram_slot__u64;

/* An IPv4 or IPv6 address, and L3/L4 endpoints (version: 4 or 6; port in host order). */
union gadget_ip_addr_t {
	__u8 v6[16];
	unsigned __int128 v6_raw;
	__u32 v4;
};

struct gadget_l3endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u8 version;
};

struct gadget_l4endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u16 port;
	__u16 proto_raw;
	__u8 version;
};

/* The process of an event, filled by gadget_process_populate() (gadget/common.h). */
struct gadget_creds {
	gadget_uid uid;
	gadget_gid gid;
};

struct gadget_parent {
	gadget_pcomm comm[TASK_COMM_LEN];
	gadget_ppid pid;
	gadget_ptid tid;
};

struct gadget_process {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
	gadget_mntns_id mntns_id;
	struct gadget_creds creds;
	struct gadget_parent parent;
};

/*
 * A user stack as Inspektor Gadget's user_stack_map.h fills it. ig does not symbolize stacks:
 * gadget/user_stack_map.h leaves it zeroed (layout kept for sources and objects that carry it).
 */
struct gadget_user_stack {
	__u32 major;
	__u32 minor;
	__u64 inode;
	__u64 mtime_sec;
	__u32 mtime_nsec;
	__u32 base_addr_hash;
	__u32 stack_id;
	__u32 tgid_level0;
	__u32 pid_level0;
	__u32 pidns_level0;
	__u32 pid_level1;
	__u32 pidns_level1;
	__u64 otel_correlation_id;
	__u64 boot_timestamp;
};

#define GADGET_SE_PATH_MAX 4096

/*
 * Inspektor Gadget's socket enricher value (gadget/sockets-map.h's map holds it; filter.h's skb
 * helper takes it). Inspektor Gadget marks it preserve_access_index and resolves its CO-RE
 * relocations against its socket enricher's types; ig has no socket enricher and resolves
 * against the kernel's BTF, which has no such struct: so here it is a plain struct (fields at
 * the offsets below; bpf_core_field_exists() on it is false).
 */
struct gadget_socket_value {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[TASK_COMM_LEN];
	char ptask[TASK_COMM_LEN];
	__u64 sock;
	__u64 deletion_timestamp;
	__u32 ppid;
	__u32 ptid;
	char ipv6only;
	char optional_fields_start[0] __attribute__((aligned(8)));
	char cwd[GADGET_SE_PATH_MAX];
	char exepath[GADGET_SE_PATH_MAX];
};

#endif /* __GADGET_TYPES_H */
