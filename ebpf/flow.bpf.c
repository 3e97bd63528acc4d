// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* flowlens flow capture: a TC classifier on ingress and egress of every
 * watched interface that aggregates packets into per-interface flow counters.
 *
 * Eviction without races: the flow table has two halves (generations). The
 * agent flips `agent_state.generation`, waits for an RCU grace period (every
 * program that read the old generation has returned), then drains the old
 * half at leisure. No update can race with the drain, and no packet waits for
 * user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "flow.h"

/* What every program returns: the packet goes on to the next program
 * and its normal path. -1 is TCX_NEXT on a tcx link and TC_ACT_UNSPEC on
 * a clsact filter: either way flowlens observes and never decides — a
 * CNI's or a policy's program attached after it still runs (TC_ACT_OK
 * would end the chain and skip them). */
#define PASS_ON -1
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_ARP 0x0806
#define IPPROTO_ICMPV6_ 58
#define IPV6_EXT_MAX 6

/* Set by the agent at load time: 1 in `sampling` packets is accounted
 * (0 and 1 mean every packet). */
volatile const __u32 sampling = 0;

/* Slots per generation minus one (a power of two minus one), set by the
 * agent at load time; the table holds two generations back to back. */
volatile const __u32 slot_mask = 0;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, struct flow_slot);
    __uint(max_entries, 2);
    __uint(map_flags, BPF_F_MMAPABLE);
} flow_table SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, struct agent_state);
    __uint(max_entries, 1);
    __uint(map_flags, BPF_F_MMAPABLE);
} agent_state SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} flow_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, CTR_MAX);
} agent_counters SEC(".maps");

static __always_inline void counter_add(__u32 slot, __u64 value)
{
    __u64 *c = bpf_map_lookup_elem(&agent_counters, &slot);
    if (c)
        *c += value; /* per-CPU slot: no other writer */
}

static __always_inline void ipv4_mapped(__u8 *dst, __be32 addr)
{
    __builtin_memset(dst, 0, 10);
    dst[10] = 0xff;
    dst[11] = 0xff;
    __builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline __u32 tcp_flags_of(struct tcphdr *th)
{
    __u32 f = ((__u8 *)th)[13];
    if ((f & TCPF_SYN) && (f & TCPF_ACK))
        f |= TCPF_SYN_ACK;
    if ((f & TCPF_FIN) && (f & TCPF_ACK))
        f |= TCPF_FIN_ACK;
    if ((f & TCPF_RST) && (f & TCPF_ACK))
        f |= TCPF_RST_ACK;
    return f;
}

/* Reads the transport header at `l4`: ports, TCP flags, ICMP type/code.
 * Returns 0 when the header is beyond the linear data. */
static __always_inline int parse_l4(void *l4, void *data_end, struct flow_key *key,
                                    __u32 *flags)
{
    switch (key->protocol) {
    case IPPROTO_TCP: {
        struct tcphdr *th = l4;
        if ((void *)(th + 1) > data_end)
            return 0;
        key->src_port = bpf_ntohs(th->source);
        key->dst_port = bpf_ntohs(th->dest);
        *flags = tcp_flags_of(th);
        return 1;
    }
    case IPPROTO_UDP:
    case IPPROTO_SCTP: {
        /* Both start with 16-bit source and destination ports. */
        struct udphdr *uh = l4;
        if ((void *)(uh + 1) > data_end)
            return 0;
        key->src_port = bpf_ntohs(uh->source);
        key->dst_port = bpf_ntohs(uh->dest);
        return 1;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6_: {
        __u8 *icmp = l4;
        if ((void *)(icmp + 2) > data_end)
            return 0;
        key->icmp_type = icmp[0];
        key->icmp_code = icmp[1];
        return 1;
    }
    }
    return 1;
}

static __always_inline int is_ipv6_ext(__u8 nexthdr)
{
    return nexthdr == 0 /* hop-by-hop */ || nexthdr == 43 /* routing */ ||
           nexthdr == 60 /* destination options */ || nexthdr == 44 /* fragment */;
}

/* Fills the key (and TCP flags, DSCP) from the packet. Returns 0 when some
 * header could not be read; the packet is still accounted with what was. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct flow_key *key,
                                        struct flow_metrics *m, __u32 *l4_off)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end) {
        key->eth_protocol = bpf_ntohs(skb->protocol);
        return 0;
    }
    __builtin_memcpy(m->src_mac, eth->h_source, 6);
    __builtin_memcpy(m->dst_mac, eth->h_dest, 6);
    __u16 proto = bpf_ntohs(eth->h_proto);
    void *l3 = eth + 1;
    if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
        struct vlan_hdr *vh = l3;
        if ((void *)(vh + 1) > data_end) {
            key->eth_protocol = proto;
            return 0;
        }
        proto = bpf_ntohs(vh->h_vlan_encapsulated_proto);
        l3 = vh + 1;
    }
    key->eth_protocol = proto;

    if (proto == ETH_P_IP) {
        struct iphdr *ip = l3;
        if ((void *)(ip + 1) > data_end)
            return 0;
        ipv4_mapped(key->src_ip, ip->saddr);
        ipv4_mapped(key->dst_ip, ip->daddr);
        key->protocol = ip->protocol;
        m->dscp = ip->tos >> 2;
        /* Non-first fragments carry no transport header. */
        if (ip->frag_off & bpf_htons(0x1fff))
            return 1;
        __u32 ihl = ip->ihl * 4;
        if (ihl < sizeof(*ip))
            return 0;
        *l4_off = (l3 + ihl) - data;
        return parse_l4(l3 + ihl, data_end, key, &m->flags);
    }
    if (proto == ETH_P_IPV6) {
        struct ipv6hdr *ip6 = l3;
        if ((void *)(ip6 + 1) > data_end)
            return 0;
        __builtin_memcpy(key->src_ip, &ip6->saddr, 16);
        __builtin_memcpy(key->dst_ip, &ip6->daddr, 16);
        m->dscp = ((ip6->priority << 4) | (ip6->flow_lbl[0] >> 4)) >> 2;
        __u8 nexthdr = ip6->nexthdr;
        void *l4 = ip6 + 1;
#pragma unroll
        for (int i = 0; i < IPV6_EXT_MAX; i++) {
            if (!is_ipv6_ext(nexthdr))
                break;
            __u8 *ext = l4;
            if ((void *)(ext + 8) > data_end)
                return 0;
            if (nexthdr == 44) {
                /* Fragment header: only the first fragment has ports. */
                __u16 frag = ((__u16)ext[2] << 8 | ext[3]) & 0xfff8;
                nexthdr = ext[0];
                l4 = ext + 8;
                if (frag) {
                    key->protocol = nexthdr;
                    return 1;
                }
                continue;
            }
            nexthdr = ext[0];
            l4 = ext + ((__u32)ext[1] + 1) * 8;
        }
        key->protocol = nexthdr;
        *l4_off = l4 - data;
        return parse_l4(l4, data_end, key, &m->flags);
    }
    if (proto == ETH_P_ARP) {
        /* Ethernet/IPv4 ARP: the sender and target protocol addresses make
         * the flow, so that who asked whom shows. */
        __u8 *arp = l3;
        if ((void *)(arp + 28) > data_end)
            return 0;
        if (arp[4] == 6 && arp[5] == 4) {
            __be32 spa, tpa;
            __builtin_memcpy(&spa, arp + 14, 4);
            __builtin_memcpy(&tpa, arp + 24, 4);
            ipv4_mapped(key->src_ip, spa);
            ipv4_mapped(key->dst_ip, tpa);
        }
        return 1;
    }
    /* Other non-IP traffic: accounted under its EtherType alone. */
    return 1;
}

/* 64-bit multiply-xorshift over the six words of the key. */
static __always_inline __u32 hash_key(const struct flow_key *key)
{
    const __u64 *w = (const __u64 *)key;
    __u64 h = 0x9E3779B97F4A7C15ULL;
#pragma unroll
    for (int i = 0; i < 6; i++) {
        h ^= w[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return (__u32)h;
}

static __always_inline int key_equal(const struct flow_key *a, const struct flow_key *b)
{
    const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]) |
            (x[5] ^ y[5])) == 0;
}

static __always_inline void send_event(struct flow_key *key, struct flow_metrics *m)
{
    struct flow_event *ev = bpf_ringbuf_reserve(&flow_events, sizeof(*ev), 0);
    if (!ev) {
        counter_add(CTR_LOST_PACKETS, 1);
        counter_add(CTR_LOST_BYTES, m->bytes);
        return;
    }
    __builtin_memcpy(&ev->key, key, sizeof(*key));
    __builtin_memcpy(&ev->metrics, m, sizeof(*m));
    bpf_ringbuf_submit(ev, 0);
    counter_add(CTR_MAP_FULL_PACKETS, 1);
}

/* 1 in `sampling` packets is accounted. The counters a flow carries
 * (packets, bytes, drops, retransmits) are all sampled alike, so a consumer
 * multiplies each by Sampling; measurements (RTT, DNS, outcomes) are not. */
static __always_inline int sampled_out(void)
{
    return sampling > 1 && (bpf_get_prandom_u32() % sampling) != 0;
}

#include "extras.bpf.h"
#include "sock_events.bpf.h"
#include "drops.bpf.h"
#include "dns.bpf.h"

static __always_inline int account(struct __sk_buff *skb, __u8 direction)
{
    /* Without DNSTracking a packet left out by sampling is not even parsed;
     * with it, DNS messages are tracked before sampling so that no query
     * loses its response. */
    if (!enable_dns && sampled_out())
        return PASS_ON;

    struct flow_key key = {};
    struct flow_metrics fresh = {};
    __u32 l4_off = 0;
    key.if_index = skb->ifindex;
    key.direction = direction;
    if (!parse_packet(skb, &key, &fresh, &l4_off))
        counter_add(CTR_TRUNCATED_HEADERS, 1);
    if (enable_dns && l4_off)
        track_dns(skb, &key, l4_off);
    if (enable_dns && sampled_out())
        return PASS_ON;

    __u32 zero = 0;
    struct agent_state *state = bpf_map_lookup_elem(&agent_state, &zero);
    if (!state)
        return PASS_ON;
    __u32 base = state->generation ? slot_mask + 1 : 0;
    __u32 hash = hash_key(&key);
#pragma unroll
    for (int i = 0; i < SLOT_PROBES; i++) {
        __u32 index = base + ((hash + i) & slot_mask);
        struct flow_slot *slot = bpf_map_lookup_elem(&flow_table, &index);
        if (!slot)
            break;
        __u32 slot_state = *(volatile __u32 *)&slot->state;
        if (slot_state == SLOT_READY) {
            if (!key_equal(&slot->key, &key))
                continue;
            struct flow_metrics *m = &slot->metrics;
            __sync_fetch_and_add(&m->packets, 1);
            __sync_fetch_and_add(&m->bytes, skb->len);
            /* The agent's clock (ms-fresh); start times use the real clock. */
            __u64 now = state->clock_ns;
            if (now > m->end_mono_ns)
                m->end_mono_ns = now;
            if (fresh.flags && (m->flags | fresh.flags) != m->flags)
                __sync_fetch_and_or(&m->flags, fresh.flags);
            return PASS_ON;
        }
        /* A slot being claimed by another CPU may be for this very key: we
         * then use another slot, and the agent sums the two entries. */
        if (slot_state == SLOT_EMPTY &&
            __sync_val_compare_and_swap(&slot->state, SLOT_EMPTY, SLOT_CLAIMED) == SLOT_EMPTY) {
            __u64 now = bpf_ktime_get_ns();
            fresh.packets = 1;
            fresh.bytes = skb->len;
            fresh.start_mono_ns = now;
            fresh.end_mono_ns = now;
            __builtin_memcpy(&slot->key, &key, sizeof(key));
            __builtin_memcpy(&slot->metrics, &fresh, sizeof(fresh));
            /* Full barrier: the key and metrics are visible before READY. */
            __sync_lock_test_and_set(&slot->state, SLOT_READY);
            return PASS_ON;
        }
    }
    /* No slot within SLOT_PROBES: hand the packet to user space. */
    fresh.packets = 1;
    fresh.bytes = skb->len;
    fresh.start_mono_ns = bpf_ktime_get_ns();
    fresh.end_mono_ns = fresh.start_mono_ns;
    send_event(&key, &fresh);
    return PASS_ON;
}

SEC("classifier")
int flowlens_tc_ingress(struct __sk_buff *skb)
{
    return account(skb, DIRECTION_INGRESS);
}

SEC("classifier")
int flowlens_tc_egress(struct __sk_buff *skb)
{
    return account(skb, DIRECTION_EGRESS);
}

/* The baseline of the per-packet cost benchmark: returns at once. */
SEC("classifier")
int flowlens_tc_empty(struct __sk_buff *skb)
{
    return PASS_ON;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
