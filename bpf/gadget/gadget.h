/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The gadget API: include this from a gadget's program.bpf.c. */
#ifndef __GADGET_H
#define __GADGET_H

#include <vmlinux.h>

#include <gadget/bpf_compat.h>	/* arm64 register layout when built with x86_64 types */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include <gadget/types.h>
#include <gadget/macros.h>
#include <gadget/buffer.h>
#include <gadget/mntns_filter.h>
#include <gadget/filesystem.h>

#endif /* __GADGET_H */
