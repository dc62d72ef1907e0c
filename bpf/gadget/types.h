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

#endif /* __GADGET_TYPES_H */
