/* PacketDrop (and the policy verdicts of NetworkEvents): every packet the
 * kernel frees with a drop reason, at tp_btf/kfree_skb. The reason's name
 * is resolved by the agent from the running kernel's BTF. */
#ifndef FLOWLENS_DROPS_BPF_H
#define FLOWLENS_DROPS_BPF_H

/* 1: PacketDrop is on, every reason counts; 0: only NetworkEvents is on,
 * only netfilter verdicts count. Set at load time. */
volatile const __u8 drops_all_reasons = 1;
/* SKB_DROP_REASON_NETFILTER_DROP in the running kernel, from its BTF. */
volatile const __u32 netfilter_drop_reason = 0;
/* SKB_DROP_REASON_QUEUE_PURGE in the running kernel, from its BTF. */
volatile const __u32 queue_purge_reason = 0xffffffff;

#define SKB_DROP_REASON_NOT_SPECIFIED_ 2
#define SKB_HEADER_UNSET 0xffff

/* The identity of the flow of a packet held by `skb`, read from its
 * network and transport headers. Returns 0 when it has no IP header. */
static __always_inline int skb_identity(struct sk_buff *skb, struct flow_key *id, __u8 *ttl)
{
    unsigned char *head = skb->head;
    __u16 nh = skb->network_header;
    __u16 th = skb->transport_header;
    __u16 proto = bpf_ntohs(skb->protocol);
    if (!head || nh == SKB_HEADER_UNSET)
        return 0;
    __u8 l4proto;
    __u32 l4off;
    if (proto == ETH_P_IP) {
        struct iphdr ip;
        if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
            return 0;
        if (ip.version != 4)
            return 0;
        ipv4_mapped(id->src_ip, ip.saddr);
        ipv4_mapped(id->dst_ip, ip.daddr);
        l4proto = ip.protocol;
        *ttl = ip.ttl;
        l4off = nh + ip.ihl * 4;
        if (ip.frag_off & bpf_htons(0x1fff))
            l4proto = 0xff; /* no transport header in this fragment */
    } else if (proto == ETH_P_IPV6) {
        struct ipv6hdr ip6;
        if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
            return 0;
        __builtin_memcpy(id->src_ip, &ip6.saddr, 16);
        __builtin_memcpy(id->dst_ip, &ip6.daddr, 16);
        l4proto = ip6.nexthdr;
        *ttl = ip6.hop_limit;
        l4off = nh + sizeof(ip6);
    } else {
        return 0;
    }
    id->eth_protocol = proto;
    id->protocol = l4proto == 0xff ? 0 : l4proto;
    if (l4proto == 0xff)
        return 1;
    /* The stack's own transport offset is right after extension headers. */
    if (th != SKB_HEADER_UNSET && th > nh)
        l4off = th;
    if (l4proto == IPPROTO_TCP || l4proto == IPPROTO_UDP || l4proto == IPPROTO_SCTP) {
        __be16 ports[2];
        if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4off) == 0) {
            id->src_port = bpf_ntohs(ports[0]);
            id->dst_port = bpf_ntohs(ports[1]);
        }
    } else if (l4proto == IPPROTO_ICMP || l4proto == IPPROTO_ICMPV6_) {
        __u8 tc[2];
        if (bpf_probe_read_kernel(tc, sizeof(tc), head + l4off) == 0) {
            id->icmp_type = tc[0];
            id->icmp_code = tc[1];
        }
    }
    return 1;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(flowlens_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
             struct sock *rx_sk)
{
    /* NOT_DROPPED_YET, CONSUMED and NOT_SPECIFIED are not drops to report. */
    if ((__u32)reason <= SKB_DROP_REASON_NOT_SPECIFIED_)
        return 0;
    if (!drops_all_reasons && (__u32)reason != netfilter_drop_reason)
        return 0;
    /* Buffers a closing socket frees were sent already (or never will be):
     * not packets the network lost. */
    if ((__u32)reason == queue_purge_reason)
        return 0;
    if (sampled_out())
        return 0;
    struct flow_key id = {};
    __u8 ttl = 0;
    if (!skb_identity(skb, &id, &ttl))
        return 0;
    struct flow_extra *e = extra_for(&id);
    if (!e)
        return 0;
    __sync_fetch_and_add(&e->drop_packets, 1);
    __sync_fetch_and_add(&e->drop_bytes, skb->len);
    e->drop_latest_reason = reason;
    e->drop_latest_ttl = ttl;
    struct sock *sk = skb->sk;
    __u8 state = 0;
    if (sk && sk->sk_protocol == IPPROTO_TCP)
        state = sk->__sk_common.skc_state;
    e->drop_latest_state = state;
    struct net_device *dev = skb->dev;
    e->drop_latest_if = dev ? dev->ifindex : skb->skb_iif;
    extra_mark(e, EXTRA_DROPS);
    return 0;
}

#endif
