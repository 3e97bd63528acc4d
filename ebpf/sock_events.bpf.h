/* Socket-level features: FlowRTT (tp_btf/tcp_probe and the handshake at
 * tp_btf/inet_sock_set_state), TCPRetransmits (tp_btf/tcp_retransmit_skb)
 * and ConnectionTracking (tp_btf/inet_sock_set_state). */
#ifndef FLOWLENS_SOCK_EVENTS_BPF_H
#define FLOWLENS_SOCK_EVENTS_BPF_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

volatile const __u8 enable_rtt = 0;
volatile const __u8 enable_conn = 0;

#define AF_INET_ 2
#define AF_INET6_ 10
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3
#define TCP_FIN_WAIT1_ 4
#define TCP_FIN_WAIT2_ 5
#define TCP_CLOSE_ 7
#define TCP_CLOSE_WAIT_ 8
#define TCP_LAST_ACK_ 9
#define TCP_LISTEN_ 10
#define TCP_CLOSING_ 11
#define ECONNRESET_ 104
#define ETIMEDOUT_ 110
#define ECONNREFUSED_ 111
#define EPIPE_ 32

static __always_inline int is_v4_mapped(const __u8 *a)
{
    const __u32 *w = (const __u32 *)a;
    return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

/* The identity of the flow `tp` sends (local -> remote), or with `inbound`
 * the one it receives (remote -> local). Returns 0 for non-IP sockets.
 * Fields are read straight through the BTF-typed pointer: no helper call
 * per field (each call costs tens of nanoseconds on mitigated kernels). */
static __always_inline int sock_identity(const struct tcp_sock *tp, int inbound, struct flow_key *id)
{
    const struct sock_common *skc = &tp->inet_conn.icsk_inet.sk.__sk_common;
    __u16 family = skc->skc_family;
    __u8 local[16], remote[16];
    if (family == AF_INET_) {
        ipv4_mapped(local, skc->skc_rcv_saddr);
        ipv4_mapped(remote, skc->skc_daddr);
        id->eth_protocol = ETH_P_IP;
    } else if (family == AF_INET6_) {
        __builtin_memcpy(local, skc->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
        __builtin_memcpy(remote, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
        /* A dual-stack socket talking IPv4 puts IPv4 packets on the wire. */
        id->eth_protocol = is_v4_mapped(remote) ? ETH_P_IP : ETH_P_IPV6;
    } else {
        return 0;
    }
    /* inet_sport, not skc_num: the latter is zeroed when a closing socket
     * releases its port, before the CLOSE state change is traced. */
    __u16 local_port = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
    __u16 remote_port = bpf_ntohs(skc->skc_dport);
    id->protocol = IPPROTO_TCP;
    if (inbound) {
        __builtin_memcpy(id->src_ip, remote, 16);
        __builtin_memcpy(id->dst_ip, local, 16);
        id->src_port = remote_port;
        id->dst_port = local_port;
    } else {
        __builtin_memcpy(id->src_ip, local, 16);
        __builtin_memcpy(id->dst_ip, remote, 16);
        id->src_port = local_port;
        id->dst_port = remote_port;
    }
    return 1;
}

static __always_inline __u64 srtt_ns(const struct tcp_sock *tp)
{
    /* srtt_us holds 8 times the smoothed RTT in microseconds. */
    return (__u64)(tp->srtt_us >> 3) * 1000;
}

/* RTT goes on the flow the socket receives, as netobserv does: the
 * measurement is of the segments it sent, acknowledged by that flow. */
static __always_inline void record_rtt(const struct tcp_sock *tp, int handshake)
{
    __u64 rtt = srtt_ns(tp);
    if (rtt == 0)
        return;
    struct flow_key id = {};
    if (!sock_identity(tp, 1, &id))
        return;
    struct flow_extra *e = extra_for(&id);
    if (!e)
        return;
    if (handshake) {
        e->handshake_rtt_ns = rtt;
        extra_mark(e, EXTRA_HANDSHAKE_RTT);
        return;
    }
    e->rtt_latest_ns = rtt;
    if (e->rtt_min_ns == 0 || rtt < e->rtt_min_ns)
        e->rtt_min_ns = rtt;
    if (rtt > e->rtt_max_ns)
        e->rtt_max_ns = rtt;
    extra_mark(e, EXTRA_RTT);
}

/* The socket whose RTT this CPU recorded last, and when (agent clock). */
struct rtt_throttle {
    __u64 sk;
    __u64 at_ns;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct rtt_throttle);
    __uint(max_entries, 1);
} rtt_throttle SEC(".maps");

/* A bulk transfer receives tens of thousands of segments a second while its
 * smoothed RTT moves slowly: sample each socket at most once per
 * millisecond on a CPU. */
#define RTT_SAMPLE_NS 1000000

SEC("tp_btf/tcp_probe")
int BPF_PROG(flowlens_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
    __u32 zero = 0;
    struct rtt_throttle *last = bpf_map_lookup_elem(&rtt_throttle, &zero);
    struct agent_state *state = bpf_map_lookup_elem(&agent_state, &zero);
    if (!last || !state)
        return 0;
    __u64 now = state->clock_ns;
    if (last->sk == (__u64)sk && now - last->at_ns < RTT_SAMPLE_NS)
        return 0;
    last->sk = (__u64)sk;
    last->at_ns = now;
    const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
    if (tp)
        record_rtt(tp, 0);
    return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(flowlens_tcp_retransmit, const struct sock *sk, const struct sk_buff *skb, int err)
{
    if (err)
        return 0; /* the retransmission did not leave */
    if (sampled_out())
        return 0;
    const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
    struct flow_key id = {};
    if (!tp || !sock_identity(tp, 0, &id))
        return 0;
    /* One event per skb; the kernel's TcpRetransSegs counts its segments. */
    struct tcp_skb_cb cb;
    __u16 segs = 1;
    if (bpf_probe_read_kernel(&cb, sizeof(cb), (void *)skb->cb) == 0 && cb.tcp_gso_segs > 1)
        segs = cb.tcp_gso_segs;
    struct flow_extra *e = extra_for(&id);
    if (!e)
        return 0;
    __sync_fetch_and_add(&e->retransmits, segs);
    extra_mark(e, EXTRA_RETRANSMITS);
    return 0;
}

/* How a connection that reached CLOSE from `old` ended. */
static __always_inline __u8 close_outcome(const struct sock *sk, int old)
{
    int err = sk->sk_err;
    if (old == TCP_SYN_SENT_) {
        if (err == ECONNREFUSED_)
            return CONN_REFUSED;
        if (err == ETIMEDOUT_)
            return CONN_TIMED_OUT;
        return err ? CONN_ERROR : CONN_ABORTED;
    }
    if (err == ETIMEDOUT_)
        return CONN_TIMED_OUT;
    /* Straight from a synchronized state to CLOSE, skipping the FIN
     * handshake: a reset received (ECONNRESET, EPIPE) or sent (abort). */
    if (old == TCP_ESTABLISHED_ || old == TCP_CLOSE_WAIT_ || old == TCP_SYN_RECV_ || err == ECONNRESET_ ||
        err == EPIPE_)
        return CONN_RESET;
    return CONN_COMPLETED;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(flowlens_sock_state, const struct sock *sk, const int old, const int new)
{
    if (sk->sk_protocol != IPPROTO_TCP)
        return 0;
    const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
    if (!tp)
        return 0;
    if (enable_rtt && new == TCP_ESTABLISHED_)
        record_rtt(tp, 1);
    if (!enable_conn)
        return 0;
    __u8 outcome = CONN_NONE;
    if (new == TCP_ESTABLISHED_ && (old == TCP_SYN_SENT_ || old == TCP_SYN_RECV_))
        outcome = CONN_ESTABLISHED;
    else if (new == TCP_CLOSE_ && old != TCP_CLOSE_ && old != TCP_LISTEN_)
        outcome = close_outcome(sk, old);
    if (outcome == CONN_NONE)
        return 0;
    struct flow_key id = {};
    if (!sock_identity(tp, 0, &id))
        return 0;
    struct flow_extra *e = extra_for(&id);
    if (!e)
        return 0;
    e->outcome = outcome;
    extra_mark(e, EXTRA_OUTCOME);
    return 0;
}

#endif
