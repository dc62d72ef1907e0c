/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What libbpf's bpf_tracing.h gained in 1.2 and later, for a system libbpf that is older
 * (Debian 12 ships 1.1): Inspektor Gadget's gadgets use these and its builder image has a newer
 * libbpf. Each is defined only where libbpf did not define it, with libbpf's meaning:
 *
 * - BPF_UPROBE / BPF_URETPROBE: BPF_KPROBE / BPF_KRETPROBE under the uprobe names;
 * - BPF_KPROBE with a sixth argument;
 * - PT_REGS_PARM6, PT_REGS_PARM6_CORE, PT_REGS_PARM6_SYSCALL, PT_REGS_PARM6_CORE_SYSCALL
 *   (x86_64: r9; arm64: regs[5]).
 */
#ifndef __GADGET_BPF_COMPAT_H
#define __GADGET_BPF_COMPAT_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif

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

#if defined(__TARGET_ARCH_x86)
#define __GADGET_PT_REGS_CAST(x) ((const struct pt_regs *)(x))
#define __GADGET_PT_PARM6_REG r9
#elif defined(__TARGET_ARCH_arm64)
#define __GADGET_PT_REGS_CAST(x) ((const struct user_pt_regs *)(x))
#define __GADGET_PT_PARM6_REG regs[5]
#endif

#ifdef __GADGET_PT_PARM6_REG
#ifndef PT_REGS_PARM6
#define PT_REGS_PARM6(x) (__GADGET_PT_REGS_CAST(x)->__GADGET_PT_PARM6_REG)
#endif
#ifndef PT_REGS_PARM6_CORE
#define PT_REGS_PARM6_CORE(x) BPF_CORE_READ(__GADGET_PT_REGS_CAST(x), __GADGET_PT_PARM6_REG)
#endif
/* The sixth syscall argument is in the same register as a function's sixth on both. */
#ifndef PT_REGS_PARM6_SYSCALL
#define PT_REGS_PARM6_SYSCALL(x) PT_REGS_PARM6(x)
#endif
#ifndef PT_REGS_PARM6_CORE_SYSCALL
#define PT_REGS_PARM6_CORE_SYSCALL(x) PT_REGS_PARM6_CORE(x)
#endif
#ifndef ___bpf_kprobe_args6
#define ___bpf_kprobe_args6(x, args...) ___bpf_kprobe_args5(args), (void *)PT_REGS_PARM6(ctx)
#endif
#endif /* __GADGET_PT_PARM6_REG */

#ifndef BPF_UPROBE
#define BPF_UPROBE(name, args...) BPF_KPROBE(name, ##args)
#endif
#ifndef BPF_URETPROBE
#define BPF_URETPROBE(name, args...) BPF_KRETPROBE(name, ##args)
#endif

#endif /* __GADGET_BPF_COMPAT_H */
