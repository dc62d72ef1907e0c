/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Typedefs whose names tell the ig runtime how to decode and enrich a field. */
#ifndef __GADGET_TYPES_H
#define __GADGET_TYPES_H

#include <vmlinux.h>

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

#endif /* __GADGET_TYPES_H */
