// SPDX-License-Identifier: GPL-2.0
/* A socket iterator (iter/tcp): the TCP sockets of the namespace it is read in. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct tcp_row {
	__u32 netns_id;
	__u16 family;
	__u16 sport;
	__u8 state;
	__u8 __pad[3];
};

GADGET_ITER(sockets, tcp_row, dump_tcp);

SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_row row = {};

	if (!skc)
		return 0;
	row.netns_id = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	row.family = BPF_CORE_READ(skc, skc_family);
	row.sport = BPF_CORE_READ(skc, skc_num);
	row.state = BPF_CORE_READ(skc, skc_state);
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char _license[] SEC("license") = "GPL";
