/* DNSTracking: DNS messages parsed at the TC hooks (UDP and TCP, on the
 * configured ports). Queries wait in `dns_pending` for their response, which
 * gives the latency; the agent reports queries left waiting longer than its
 * timeout as unanswered. */
#ifndef FLOWLENS_DNS_BPF_H
#define FLOWLENS_DNS_BPF_H

volatile const __u8 enable_dns = 0;
/* DNS server ports to watch (0 = unused slot). */
volatile const __u16 dns_ports[4] = {53, 0, 0, 0};

#define DNS_FLAG_RESPONSE 0x8000

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct dns_pending_key);
    __type(value, struct dns_pending);
    __uint(max_entries, 65536);
} dns_pending SEC(".maps");

/* Room for a DNS question, off the 512-byte stack. */
struct dns_scratch {
    __u8 question[DNS_QUESTION_MAX];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct dns_scratch);
    __uint(max_entries, 1);
} dns_scratch SEC(".maps");

struct dns_header {
    __be16 id;
    __be16 flags;
    __be16 qdcount;
    __be16 ancount;
    __be16 nscount;
    __be16 arcount;
};

static __always_inline int is_dns_port(__u16 port)
{
    return port && (port == dns_ports[0] || port == dns_ports[1] || port == dns_ports[2] ||
                    port == dns_ports[3]);
}

static __always_inline void reverse_identity(const struct flow_key *in, struct flow_key *out)
{
    *out = *in;
    __builtin_memcpy(out->src_ip, in->dst_ip, 16);
    __builtin_memcpy(out->dst_ip, in->src_ip, 16);
    out->src_port = in->dst_port;
    out->dst_port = in->src_port;
}

static __always_inline void set_dns(struct flow_extra *e, __u16 id, __u16 flags, const __u8 *question,
                                    __u32 question_len, __u64 latency)
{
    e->dns_id = id;
    e->dns_flags = flags;
    if (question_len) {
        __builtin_memcpy(e->dns_question, question, DNS_QUESTION_MAX);
        e->dns_question_len = question_len;
    }
    __u32 bits = EXTRA_DNS;
    if (latency) {
        e->dns_latency_ns = latency;
        bits |= EXTRA_DNS_LATENCY;
    }
    extra_mark(e, bits);
}

/* `key` is the packet's flow key, `l4_off` the offset of its transport
 * header from the start of the frame. */
static __always_inline void track_dns(struct __sk_buff *skb, const struct flow_key *key, __u32 l4_off)
{
    if (!is_dns_port(key->src_port) && !is_dns_port(key->dst_port))
        return;
    __u32 off;
    if (key->protocol == IPPROTO_UDP) {
        off = l4_off + 8;
    } else if (key->protocol == IPPROTO_TCP) {
        __u8 doff;
        if (bpf_skb_load_bytes(skb, l4_off + 12, &doff, 1))
            return;
        off = l4_off + (doff >> 4) * 4 + 2; /* DNS over TCP: 2-byte length first */
        if (off + sizeof(struct dns_header) > skb->len)
            return; /* a segment without a message (handshake, bare ACK) */
    } else {
        return;
    }
    struct dns_header hdr;
    if (bpf_skb_load_bytes(skb, off, &hdr, sizeof(hdr)))
        return;
    __u32 zero = 0;
    struct dns_scratch *scratch = bpf_map_lookup_elem(&dns_scratch, &zero);
    if (!scratch)
        return;
    __u8 *question = scratch->question;
    __builtin_memset(question, 0, DNS_QUESTION_MAX);
    __u32 question_len = 0;
    if (skb->len > off + sizeof(hdr)) {
        question_len = skb->len - off - sizeof(hdr);
        if (question_len > DNS_QUESTION_MAX)
            question_len = DNS_QUESTION_MAX;
        if (question_len < 1 || bpf_skb_load_bytes(skb, off + sizeof(hdr), question, question_len))
            question_len = 0;
    }
    __u16 flags = bpf_ntohs(hdr.flags);
    __u16 dns_id = bpf_ntohs(hdr.id);
    __u64 now = bpf_ktime_get_ns();
    struct flow_key id = *key;
    id.if_index = 0;
    id.direction = 0;
    struct dns_pending_key pending_key = {};
    pending_key.id = dns_id;
    __u64 latency = 0;
    if (!(flags & DNS_FLAG_RESPONSE)) {
        /* The first hook that sees the query starts the clock. */
        pending_key.query = id;
        struct dns_pending pending = {.sent_mono_ns = now};
        long err = bpf_map_update_elem(&dns_pending, &pending_key, &pending, BPF_NOEXIST);
        if (err && err != -17 /* EEXIST */)
            counter_add(CTR_DNS_PENDING_FULL, 1);
    } else {
        reverse_identity(&id, &pending_key.query);
        struct dns_pending *pending = bpf_map_lookup_elem(&dns_pending, &pending_key);
        if (pending) {
            latency = now - pending->sent_mono_ns;
            if (latency == 0)
                latency = 1;
            bpf_map_delete_elem(&dns_pending, &pending_key);
        }
    }
    struct flow_extra *e = extra_for(&id);
    if (e)
        set_dns(e, dns_id, flags, question, question_len, latency);
    if (latency) {
        /* The query's flow learns its outcome too: the response's code and
         * latency, with the QR bit clear so that it still reads as the
         * query (and a transaction is counted once, on its response). */
        struct flow_extra *q = extra_for(&pending_key.query);
        if (q)
            set_dns(q, dns_id, flags & ~DNS_FLAG_RESPONSE, question, question_len, latency);
    }
}

#endif
