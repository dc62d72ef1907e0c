/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Inspektor Gadget's socket enrichment map, under its names: `gadget_sockets` maps a local
 * socket (network namespace inode, address family, protocol, local port) to the process that
 * owns it (`struct gadget_socket_value`, gadget/types.h), so a program that sees a packet or a
 * `struct sock` but runs outside the owner's context can name the process.
 *
 * How it is filled, and what ig does: in Inspektor Gadget a "socket enricher" (BPF programs of
 * its own, on kprobes/fentry of socket creation, bind and connect) keeps this map and shares it
 * with the gadget. ig has no socket enricher (those hooks do not attach on every kernel, and
 * not on the one ig is tested on): the map is created empty, as declared here, and nothing fills
 * it. So the lookups below always return NULL under ig and the fields a gadget fills from them
 * stay empty (gadget_process_populate_from_socket() leaves the process as it was). The lookups
 * still build the key exactly, so a gadget behaves the same once the map holds entries.
 *
 * Define GADGET_TYPE_NETWORKING (skb programs) or GADGET_TYPE_TRACING (programs with a
 * `struct sock *`) before including, to get that kind's gadget_socket_lookup().
 */
#ifndef __GADGET_SOCKETS_MAP_H
#define __GADGET_SOCKETS_MAP_H

/* vmlinux.h, unless the gadget builds on the kernel's UAPI headers (<linux/types.h>, as
 * Inspektor Gadget's networking gadgets do): the two cannot be mixed. */
#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#include <vmlinux.h>
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <gadget/types.h>

/* Constants of the packet parsing, under Inspektor Gadget's GADGET_SE_ names. */
#define GADGET_SE_PACKET_HOST		0	/* skb->pkt_type: to this host */
#define GADGET_SE_ETH_HLEN		14
#define GADGET_SE_ETH_P_IP		0x0800
#define GADGET_SE_ETH_P_IPV6		0x86DD
#define GADGET_SE_AF_INET		2
#define GADGET_SE_AF_INET6		10
#define GADGET_SE_IPV6_HLEN		40
#define GADGET_SE_IPV6_NEXTHDR_OFFSET	6	/* ipv6hdr.nexthdr */
#define GADGET_SE_TCPHDR_SOURCE_OFFSET	0
#define GADGET_SE_TCPHDR_DEST_OFFSET	2
#define GADGET_SE_UDPHDR_SOURCE_OFFSET	0
#define GADGET_SE_UDPHDR_DEST_OFFSET	2
#define GADGET_SE_NEXTHDR_HOP		0
#define GADGET_SE_NEXTHDR_TCP		6
#define GADGET_SE_NEXTHDR_UDP		17
#define GADGET_SE_NEXTHDR_ROUTING	43
#define GADGET_SE_NEXTHDR_FRAGMENT	44
#define GADGET_SE_NEXTHDR_AUTH		51
#define GADGET_SE_NEXTHDR_NONE		59
#define GADGET_SE_NEXTHDR_DEST		60

/* A local socket: port in host order; proto is IPPROTO_TCP (6) or IPPROTO_UDP (17). */
struct gadget_socket_key {
	__u32 netns;
	__u16 family;
	__u8 proto;
	__u16 port;
};

#define GADGET_MAX_SOCKETS 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MAX_SOCKETS);
	__type(key, struct gadget_socket_key);
	__type(value, struct gadget_socket_value);
} gadget_sockets SEC(".maps");

/* The entry of `key`; for IPv4, else a dual-stack IPv6 socket on the same port. */
static __always_inline struct gadget_socket_value *
__gadget_socket_find(struct gadget_socket_key *key)
{
	struct gadget_socket_value *v = bpf_map_lookup_elem(&gadget_sockets, key);

	if (v || key->family != GADGET_SE_AF_INET)
		return v;
	key->family = GADGET_SE_AF_INET6;
	v = bpf_map_lookup_elem(&gadget_sockets, key);
	if (v && !v->ipv6only)
		return v;
	return NULL;
}

#ifdef GADGET_TYPE_NETWORKING
/*
 * The socket of the packet `skb` (an Ethernet frame; IPv4 or IPv6 with up to 6 extension
 * headers; TCP or UDP): for ingress its destination port is the local one, for egress its
 * source port. The network namespace is skb->cb[0] (Inspektor Gadget's dispatcher puts it
 * there). NULL when not found or not TCP/UDP.
 */
static __always_inline struct gadget_socket_value *
gadget_socket_lookup_with_direction(const struct __sk_buff *skb, __u8 is_ingress)
{
	struct gadget_socket_key key = {};
	__u16 h_proto;
	__u8 b, hdrlen;
	int l4, i;

	key.netns = skb->cb[0];
	if (bpf_skb_load_bytes(skb, 12, &h_proto, sizeof(h_proto)) < 0)
		return NULL;

	if (h_proto == bpf_htons(GADGET_SE_ETH_P_IP)) {
		key.family = GADGET_SE_AF_INET;
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN + 9, &key.proto, 1) < 0)
			return NULL;
		/* the low nibble of the first byte: header length in 32-bit words */
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN, &b, 1) < 0)
			return NULL;
		l4 = GADGET_SE_ETH_HLEN + (b & 0x0f) * 4;
	} else if (h_proto == bpf_htons(GADGET_SE_ETH_P_IPV6)) {
		key.family = GADGET_SE_AF_INET6;
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN + GADGET_SE_IPV6_NEXTHDR_OFFSET,
				       &key.proto, 1) < 0)
			return NULL;
		l4 = GADGET_SE_ETH_HLEN + GADGET_SE_IPV6_HLEN;
		for (i = 0; i < 6; i++) {
			if (key.proto == GADGET_SE_NEXTHDR_TCP || key.proto == GADGET_SE_NEXTHDR_UDP)
				break;
			/* every extension header starts with: next header, length */
			if (bpf_skb_load_bytes(skb, l4, &b, 1) < 0)
				return NULL;
			switch (key.proto) {
			case GADGET_SE_NEXTHDR_FRAGMENT:	/* fixed 8 bytes */
				l4 += 8;
				break;
			case GADGET_SE_NEXTHDR_AUTH:		/* (len + 2) 32-bit words */
				if (bpf_skb_load_bytes(skb, l4 + 1, &hdrlen, 1) < 0)
					return NULL;
				l4 += 4 * (hdrlen + 2);
				break;
			case GADGET_SE_NEXTHDR_HOP:		/* (len + 1) 8-byte units */
			case GADGET_SE_NEXTHDR_ROUTING:
			case GADGET_SE_NEXTHDR_DEST:
				if (bpf_skb_load_bytes(skb, l4 + 1, &hdrlen, 1) < 0)
					return NULL;
				l4 += 8 * (hdrlen + 1);
				break;
			default:	/* NEXTHDR_NONE or unknown: no TCP/UDP to find */
				return NULL;
			}
			key.proto = b;
		}
	} else {
		return NULL;
	}

	if (key.proto == GADGET_SE_NEXTHDR_TCP)
		l4 += is_ingress ? GADGET_SE_TCPHDR_DEST_OFFSET : GADGET_SE_TCPHDR_SOURCE_OFFSET;
	else if (key.proto == GADGET_SE_NEXTHDR_UDP)
		l4 += is_ingress ? GADGET_SE_UDPHDR_DEST_OFFSET : GADGET_SE_UDPHDR_SOURCE_OFFSET;
	else
		return NULL;
	if (bpf_skb_load_bytes(skb, l4, &key.port, sizeof(key.port)) < 0)
		return NULL;
	key.port = bpf_ntohs(key.port);
	return __gadget_socket_find(&key);
}

/* As above, the direction from skb->pkt_type (not usable in TC programs: see there). */
static __always_inline struct gadget_socket_value *
gadget_socket_lookup(const struct __sk_buff *skb)
{
	return gadget_socket_lookup_with_direction(skb,
						   skb->pkt_type == GADGET_SE_PACKET_HOST);
}
#endif /* GADGET_TYPE_NETWORKING */

#ifdef GADGET_TYPE_TRACING
/* The entry of the local side of `sk` in network namespace `netns`; NULL if not TCP/UDP. */
static __always_inline struct gadget_socket_value *
gadget_socket_lookup(const struct sock *sk, __u32 netns)
{
	struct gadget_socket_key key = {};
	const struct inet_sock *inet = (const struct inet_sock *)sk;

	key.netns = netns;
	key.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key.proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	if (key.proto != GADGET_SE_NEXTHDR_TCP && key.proto != GADGET_SE_NEXTHDR_UDP)
		return NULL;
	key.port = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	return __gadget_socket_find(&key);
}
#endif /* GADGET_TYPE_TRACING */

/* Fills `p` from a socket entry (nothing when `v` is NULL). */
static __always_inline void
gadget_process_populate_from_socket(const struct gadget_socket_value *v,
				    struct gadget_process *p)
{
	if (!v)
		return;
	__builtin_memcpy(p->comm, v->task, sizeof(p->comm));
	p->pid = v->pid_tgid >> 32;
	p->tid = (__u32)v->pid_tgid;
	p->mntns_id = v->mntns;
	p->creds.uid = (__u32)v->uid_gid;
	p->creds.gid = v->uid_gid >> 32;
	__builtin_memcpy(p->parent.comm, v->ptask, sizeof(p->parent.comm));
	p->parent.pid = v->ppid;
	p->parent.tid = v->ptid;
}

#endif /* __GADGET_SOCKETS_MAP_H */
