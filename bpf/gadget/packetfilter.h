/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Inspektor Gadget's packet filter hook, under its names:
 *
 *   GADGET_PF(name);                                  // once, at file scope (name may be empty)
 *   if (!gadget_pf_matches(name, skb, data, data_end)) // or gadget_pf_matches(skb, data, data_end)
 *           return 0;
 *
 * GADGET_PF defines a __noinline function `gadget_pf_<name>`. Inspektor Gadget replaces its body
 * at load time with a pcap filter expression compiled to BPF (tcpdump's `--pf`); its three skb
 * arguments keep R1-R3 for that code. ig does not compile pcap expressions: the body is left as
 * written here, which matches every packet that has data (data != data_end). So a gadget using
 * it runs unfiltered under ig.
 */
#ifndef __GADGET_PACKETFILTER_H
#define __GADGET_PACKETFILTER_H

#define GADGET_PF(name)								\
	static __noinline bool gadget_pf_##name(void *_skb, void *__skb,	\
						void *___skb, void *data,	\
						void *data_end)			\
	{									\
		return data != data_end && _skb == __skb && __skb == ___skb;	\
	}

/* gadget_pf_matches([name,] skb, data, data_end): 3 or 4 arguments. */
#define __GADGET_PF_NARGS_IMPL(_1, _2, _3, _4, N, ...) N
#define __GADGET_PF_NARGS(...) __GADGET_PF_NARGS_IMPL(__VA_ARGS__, 4, 3, 2, 1)
#define __GADGET_PF_CAT(a, b) __GADGET_PF_CAT2(a, b)
#define __GADGET_PF_CAT2(a, b) a##b
#define __GADGET_PF_MATCHES_1(a) \
	_Static_assert(0, "gadget_pf_matches: give [name,] skb, data, data_end")
#define __GADGET_PF_MATCHES_2(a, b) __GADGET_PF_MATCHES_1(a)
#define __GADGET_PF_MATCHES_3(skb, data, data_end) gadget_pf_(skb, skb, skb, data, data_end)
#define __GADGET_PF_MATCHES_4(name, skb, data, data_end)			\
	gadget_pf_##name(skb, skb, skb, data, data_end)
#define gadget_pf_matches(...)							\
	__GADGET_PF_CAT(__GADGET_PF_MATCHES_, __GADGET_PF_NARGS(__VA_ARGS__))(__VA_ARGS__)

#endif /* __GADGET_PACKETFILTER_H */
