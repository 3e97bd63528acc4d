/* Shared layout between the eBPF flow programs and the Rust agent
 * (crates/agent/src/kernel_types.rs mirrors every struct here byte for byte).
 */
#ifndef FLOWLENS_FLOW_H
#define FLOWLENS_FLOW_H

/* TC attach point of the program that saw the packet; same numbers as
 * netobserv's IfDirections. */
#define DIRECTION_INGRESS 0
#define DIRECTION_EGRESS 1

/* TCP flags, netobserv's bit layout: the eight header bits plus three
 * synthetic per-packet combinations. */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20
#define TCPF_ECE 0x40
#define TCPF_CWR 0x80
#define TCPF_SYN_ACK 0x100
#define TCPF_FIN_ACK 0x200
#define TCPF_RST_ACK 0x400

/* One direction of a conversation as seen on one interface in one
 * direction. Keying on the interface keeps every interface's counters exact;
 * user space reports one interface's counts per flow (see
 * crates/agent/src/merge.rs), so a packet crossing veth, bridge and veth is
 * counted once. IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). */
struct flow_key {
    __u8 src_ip[16];
    __u8 dst_ip[16];
    __u16 src_port;
    __u16 dst_port;
    __u16 eth_protocol;
    __u8 protocol;
    __u8 direction;
    __u32 if_index;
    __u8 icmp_type;
    __u8 icmp_code;
    __u8 _pad[2];
} __attribute__((aligned(8)));

/* Counters of one flow_key. Updated with atomic adds so every CPU can
 * account a packet of any flow without a lock. */
struct flow_metrics {
    __u64 packets;
    __u64 bytes;
    __u64 start_mono_ns;
    __u64 end_mono_ns;
    /* 32 bits so that atomic OR works on it; netobserv's bits use 11. */
    __u32 flags;
    __u8 src_mac[6];
    __u8 dst_mac[6];
    __u8 dscp;
    __u8 _pad[7];
};

/* A slot of the flow table: an open-addressing hash table in an mmapable
 * array, so that lookups are inlined by the verifier (no helper call) and
 * the agent drains it through shared memory (no syscall per flow). */
#define SLOT_EMPTY 0
#define SLOT_CLAIMED 1 /* a program is writing the key */
#define SLOT_READY 2
/* Slots probed before a packet counts as "table full". */
#define SLOT_PROBES 8

struct flow_slot {
    __u32 state;
    __u32 _pad;
    struct flow_key key;
    struct flow_metrics metrics;
    /* To 128 bytes: the array's values start page-aligned, so every slot
     * is two whole cache lines, a pair the CPU's adjacent-line prefetcher
     * fetches together (112 bytes spanned two or three lines). */
    __u8 _tail[16];
};

/* Shared with the agent through mmap: which half of the flow table packets
 * go to, and a monotonic clock the agent refreshes every millisecond so that
 * packets of known flows need no clock helper call. */
struct agent_state {
    __u32 generation;
    __u32 _pad;
    __u64 clock_ns;
};

/* One packet that could not be aggregated in the flow map (map full):
 * sent to user space through the ring buffer instead. */
struct flow_event {
    struct flow_key key;
    struct flow_metrics metrics;
};

/* Slots of the per-CPU counter array, read by the agent for --stats. */
enum agent_counter {
    /* Packets sent through the ring buffer because the flow map was full. */
    CTR_MAP_FULL_PACKETS = 0,
    /* Packets (and their bytes) lost because the ring buffer was full too. */
    CTR_LOST_PACKETS = 1,
    CTR_LOST_BYTES = 2,
    /* Packets whose headers were truncated or not in the linear skb area:
     * still counted, under the fields that could be read. */
    CTR_TRUNCATED_HEADERS = 3,
    /* Feature events lost because the extras map was full. */
    CTR_EXTRAS_FULL = 4,
    /* DNS queries not tracked for latency because the pending map was full. */
    CTR_DNS_PENDING_FULL = 5,
    CTR_MAX = 6,
};

/* Which parts of a flow_extra hold data. */
#define EXTRA_RTT (1 << 0)
#define EXTRA_HANDSHAKE_RTT (1 << 1)
#define EXTRA_RETRANSMITS (1 << 2)
#define EXTRA_DROPS (1 << 3)
#define EXTRA_OUTCOME (1 << 4)
#define EXTRA_DNS (1 << 5)
#define EXTRA_DNS_LATENCY (1 << 6)

/* Connection outcomes (ConnOutcome). */
enum conn_outcome {
    CONN_NONE = 0,
    CONN_ESTABLISHED = 1,
    CONN_COMPLETED = 2,
    CONN_REFUSED = 3,
    CONN_RESET = 4,
    CONN_TIMED_OUT = 5,
    CONN_ERROR = 6,   /* another socket error ends a connection attempt */
    CONN_ABORTED = 7, /* closed by its owner before it was established */
};

#define DNS_QUESTION_MAX 128

/* What the feature hooks (tracepoints, DNS parsing) learned about a flow
 * during one eviction period, keyed by the flow without its interface
 * (if_index and direction zero). */
struct flow_extra {
    __u32 present; /* EXTRA_* bits */
    __u32 drop_latest_reason;
    __u64 rtt_latest_ns;
    __u64 rtt_min_ns;
    __u64 rtt_max_ns;
    __u64 handshake_rtt_ns;
    __u64 retransmits;
    __u64 drop_packets;
    __u64 drop_bytes;
    __u64 last_mono_ns;
    __u32 drop_latest_if;
    __u8 drop_latest_state;
    __u8 outcome;
    __u8 dns_question_len;
    __u8 drop_latest_ttl; /* IPv4 TTL or IPv6 hop limit of the latest drop */
    __u16 dns_id;
    __u16 dns_flags;
    __u32 _pad2;
    __u64 dns_latency_ns;
    /* The question as on the wire: QNAME labels, QTYPE, QCLASS. */
    __u8 dns_question[DNS_QUESTION_MAX];
};

/* A DNS query waiting for its response. */
struct dns_pending_key {
    struct flow_key query; /* identity of the query's flow */
    __u16 id;
    __u8 _pad[6];
};

struct dns_pending {
    __u64 sent_mono_ns;
};

#endif
