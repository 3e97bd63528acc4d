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
    CTR_MAX = 4,
};

#endif
