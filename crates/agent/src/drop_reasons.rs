//! Kernel drop reasons to the stable categories users filter on. The table
//! matches on the reason's name (without SKB_DROP_REASON_), so reasons that
//! later kernels add fall into a category by their name's shape, else `other`.

use flowlens_model::vocab::DropCategory;

/// Category of each kernel drop reason (name without SKB_DROP_REASON_), as
/// of Linux 6.18. Reasons not listed fall back on the shape of their name
/// (`fallback_category`), so newer kernels need no code change.
pub const CATEGORY_TABLE: &[(DropCategory, &[&str])] = &[
    (
        DropCategory::PolicyDenied,
        &[
            "NETFILTER_DROP",
            "XFRM_POLICY",
            "BPF_CGROUP_EGRESS",
            "TC_EGRESS",
            "TC_INGRESS",
            "SOCKET_FILTER",
            "SECURITY_HOOK",
            "TCP_AUTH_HDR",
            "TCP_MD5NOTFOUND",
            "TCP_MD5UNEXPECTED",
            "TCP_MD5FAILURE",
            "TCP_AONOTFOUND",
            "TCP_AOUNEXPECTED",
            "TCP_AOKEYNOTFOUND",
            "TCP_AOFAILURE",
            "TCP_MINTTL",
            "TAP_FILTER",
            "TAP_TXFILTER",
            "BRIDGE_INGRESS_STP_STATE",
            "PSP_INPUT",
            "PSP_OUTPUT",
        ],
    ),
    (
        DropCategory::NoSocket,
        &[
            "NO_SOCKET",
            "SOCKET_CLOSE",
            "TCP_CLOSE",
            "TCP_RESET",
            "TCP_ABORT_ON_DATA",
            "UNIX_DISCONNECT",
            "UNIX_SKIP_OOB",
            "PACKET_SOCK_ERROR",
        ],
    ),
    (
        DropCategory::NoRoute,
        &[
            "IP_OUTNOROUTES",
            "IP_INNOROUTES",
            "OTHERHOST",
            "IP_RPFILTER",
            "IP_LOCALNET",
            "IP_INADDRERRORS",
            "IP_INVALID_SOURCE",
            "IP_INVALID_DEST",
            "IP_LOCAL_SOURCE",
            "NEIGH_FAILED",
            "NEIGH_CREATEFAIL",
            "NEIGH_DEAD",
            "NEIGH_HH_FILLFAIL",
            "IPV6DISABLED",
            "UNICAST_IN_L2_MULTICAST",
            "NO_TX_TARGET",
            "VXLAN_VNI_NOT_FOUND",
            "VXLAN_ENTRY_EXISTS",
            "LOCAL_MAC",
            "IPV6_NDISC_NS_OTHERHOST",
        ],
    ),
    (
        DropCategory::Checksum,
        &["TCP_CSUM", "UDP_CSUM", "IP_CSUM", "ICMP_CSUM", "SKB_CSUM"],
    ),
    (
        DropCategory::QueueFull,
        &[
            "SOCKET_RCVBUFF",
            "SOCKET_BACKLOG",
            "PROTO_MEM",
            "TCP_LISTEN_OVERFLOW",
            "TCP_OFO_QUEUE_PRUNE",
            "TCP_OFO_DROP",
            "QDISC_DROP",
            "QDISC_OVERLIMIT",
            "QDISC_CONGESTED",
            "CAKE_FLOOD",
            "FQ_BAND_LIMIT",
            "FQ_HORIZON_LIMIT",
            "FQ_FLOW_LIMIT",
            "CPU_BACKLOG",
            "FULL_RING",
            "NOMEM",
            "NEIGH_QUEUEFULL",
            "QUEUE_PURGE",
            "DEV_READY",
            "PFMEMALLOC",
            "DUALPI2_STEP_DROP",
            "FRAG_REASM_TIMEOUT",
            "RECURSION_LIMIT",
            "TC_RECLASSIFY_LOOP",
        ],
    ),
    (
        DropCategory::Malformed,
        &[
            "PKT_TOO_SMALL",
            "PKT_TOO_BIG",
            "HDR_TRUNC",
            "INVALID_PROTO",
            "IP_NOPROTO",
            "IP_INHDR",
            "TCP_FLAGS",
            "TCP_ZEROWINDOW",
            "TCP_OLD_DATA",
            "TCP_OVERWINDOW",
            "TCP_OFOMERGE",
            "TCP_RFC7323_PAWS",
            "TCP_RFC7323_PAWS_ACK",
            "TCP_RFC7323_TW_PAWS",
            "TCP_RFC7323_TSECR",
            "TCP_OLD_SEQUENCE",
            "TCP_INVALID_SEQUENCE",
            "TCP_INVALID_END_SEQUENCE",
            "TCP_INVALID_ACK_SEQUENCE",
            "TCP_INVALID_SYN",
            "TCP_FASTOPEN",
            "TCP_OLD_ACK",
            "TCP_TOO_OLD_ACK",
            "TCP_ACK_UNSENT_DATA",
            "SKB_GSO_SEG",
            "SKB_UCOPY_FAULT",
            "DEV_HDR",
            "DUP_FRAG",
            "FRAG_TOO_FAR",
            "IPV6_BAD_EXTHDR",
            "IPV6_NDISC_FRAG",
            "IPV6_NDISC_HOP_LIMIT",
            "IPV6_NDISC_BAD_CODE",
            "IPV6_NDISC_BAD_OPTIONS",
            "UNHANDLED_PROTO",
            "VXLAN_INVALID_HDR",
            "MAC_INVALID_SOURCE",
            "MAC_IEEE_MAC_CONTROL",
            "IP_TUNNEL_ECN",
            "CAN_RX_INVALID_FRAME",
            "CANFD_RX_INVALID_FRAME",
            "CANXL_RX_INVALID_FRAME",
            "TC_COOKIE_ERROR",
            "TC_CHAIN_NOTFOUND",
        ],
    ),
];

fn fallback_category(short: &str) -> DropCategory {
    if short.contains("CSUM") || short.contains("CHECKSUM") {
        DropCategory::Checksum
    } else if short.contains("QDISC")
        || short.contains("QUEUE")
        || short.contains("FULL")
        || short.contains("NOMEM")
    {
        DropCategory::QueueFull
    } else if short.contains("ROUTE") || short.contains("NEIGH") {
        DropCategory::NoRoute
    } else if short.contains("INVALID") || short.contains("TRUNC") || short.contains("BAD") {
        DropCategory::Malformed
    } else if short.contains("FILTER") || short.contains("POLICY") {
        DropCategory::PolicyDenied
    } else {
        DropCategory::Other
    }
}

/// The category of a drop reason (`SKB_DROP_REASON_X` or `X`). An IPv4
/// header drop of a packet whose TTL ran out (`ttl` 0 or 1, as ip_forward
/// drops it) is `ttl_exceeded`.
pub fn drop_category(reason_name: &str, ttl: Option<u8>) -> DropCategory {
    let short = reason_name
        .strip_prefix("SKB_DROP_REASON_")
        .unwrap_or(reason_name);
    if short == "IP_INHDR" && matches!(ttl, Some(0 | 1)) {
        return DropCategory::TtlExceeded;
    }
    CATEGORY_TABLE
        .iter()
        .find(|(_, names)| names.contains(&short))
        .map(|(category, _)| *category)
        .unwrap_or_else(|| fallback_category(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_of_common_reasons() {
        assert_eq!(
            drop_category("SKB_DROP_REASON_NETFILTER_DROP", None),
            DropCategory::PolicyDenied
        );
        assert_eq!(drop_category("NO_SOCKET", None), DropCategory::NoSocket);
        assert_eq!(
            drop_category("SKB_DROP_REASON_IP_OUTNOROUTES", None),
            DropCategory::NoRoute
        );
        assert_eq!(
            drop_category("SKB_DROP_REASON_TCP_CSUM", None),
            DropCategory::Checksum
        );
        assert_eq!(
            drop_category("SKB_DROP_REASON_QDISC_DROP", None),
            DropCategory::QueueFull
        );
        assert_eq!(
            drop_category("SKB_DROP_REASON_IP_INHDR", Some(64)),
            DropCategory::Malformed
        );
        assert_eq!(
            drop_category("SKB_DROP_REASON_IP_INHDR", Some(1)),
            DropCategory::TtlExceeded
        );
        assert_eq!(
            drop_category("SKB_DROP_REASON_NEW_QUEUE_THING", None),
            DropCategory::QueueFull
        );
        assert_eq!(
            drop_category("SKB_DROP_REASON_SOMETHING_NEW", None),
            DropCategory::Other
        );
    }
}
