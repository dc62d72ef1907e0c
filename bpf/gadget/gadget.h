/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The gadget API: include this from a gadget's program.bpf.c. */
#ifndef __GADGET_H
#define __GADGET_H

#include <vmlinux.h>

/* An arm64 object compiled against the x86_64 vmlinux.h (when there is no arm64 one; the build
 * then defines IG_VMLINUX_X86_64_FALLBACK) lacks arm64's register layout, which bpf_tracing.h's
 * PT_REGS_* macros (BPF_KPROBE's arguments) cast the context to. It is user ABI
 * (arch/arm64/include/uapi/asm/ptrace.h) and fixed, so it is written out here. */
#if defined(__TARGET_ARCH_arm64) && defined(IG_VMLINUX_X86_64_FALLBACK)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include <gadget/types.h>
#include <gadget/macros.h>
#include <gadget/buffer.h>
#include <gadget/mntns_filter.h>
#include <gadget/filesystem.h>

#endif /* __GADGET_H */
