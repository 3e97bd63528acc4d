// The flow and conversation tables' columns. The defaults follow
// netobserv's flow table: time, the two ends, protocol, bytes, packets,
// plus the columns of the features flowlens adds (RTT, DNS, drops).

import type { FlowRecord } from "./api";
import * as fmt from "./format";

export interface Column {
  id: string;
  header: string;
  /** The record field the column shows (for sorting and the drawer). */
  field: string;
  /** Shown until the user picks columns. */
  default: boolean;
  numeric?: boolean;
  render: (r: FlowRecord) => string;
  /** The value sorted by. */
  sortValue?: (r: FlowRecord) => number | string;
}

const num = (r: FlowRecord, k: string) => (typeof r[k] === "number" ? (r[k] as number) : undefined);
const str = (r: FlowRecord, k: string) => (r[k] === undefined || r[k] === null ? "" : String(r[k]));

/** "namespace/name" when the end is known, else its address. */
function endpoint(r: FlowRecord, side: "Src" | "Dst"): string {
  const name = str(r, `${side}K8S_Name`);
  const ns = str(r, `${side}K8S_Namespace`);
  if (name && ns && ns !== name) return `${ns}/${name}`;
  return name || str(r, `${side}Addr`);
}

function addrPort(r: FlowRecord, side: "Src" | "Dst"): string {
  const addr = str(r, `${side}Addr`);
  const port = num(r, `${side}Port`);
  if (!port) return addr;
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** The kernel's drop reason without its `SKB_DROP_REASON_` prefix. */
const dropCause = (r: FlowRecord) => str(r, "PktDropLatestDropCause").replace(/^SKB_DROP_REASON_/, "");

const bytesOf = (r: FlowRecord) => num(r, "Bytes") ?? (num(r, "Bytes_AB") ?? 0) + (num(r, "Bytes_BA") ?? 0);
const packetsOf = (r: FlowRecord) =>
  num(r, "Packets") ?? (num(r, "Packets_AB") ?? 0) + (num(r, "Packets_BA") ?? 0);
const rttMs = (r: FlowRecord) => {
  const ns = num(r, "TimeFlowRttNs") ?? num(r, "TimeFlowRttAvgNs");
  return ns === undefined ? undefined : ns / 1e6;
};

const sortNum = (f: (r: FlowRecord) => number | undefined) => (r: FlowRecord) => f(r) ?? -1;

export const COLUMNS: Column[] = [
  { id: "end", header: "End time", field: "TimeFlowEndMs", default: true, render: (r) => fmt.time(r.TimeFlowEndMs), sortValue: sortNum((r) => num(r, "TimeFlowEndMs")) },
  { id: "start", header: "Start time", field: "TimeFlowStartMs", default: false, render: (r) => fmt.time(r.TimeFlowStartMs), sortValue: sortNum((r) => num(r, "TimeFlowStartMs")) },
  { id: "src", header: "Source", field: "SrcK8S_Name", default: true, render: (r) => endpoint(r, "Src") },
  { id: "src_addr", header: "Source address", field: "SrcAddr", default: true, render: (r) => addrPort(r, "Src") },
  { id: "dst", header: "Destination", field: "DstK8S_Name", default: true, render: (r) => endpoint(r, "Dst") },
  { id: "dst_addr", header: "Destination address", field: "DstAddr", default: true, render: (r) => addrPort(r, "Dst") },
  { id: "src_ns", header: "Source namespace", field: "SrcK8S_Namespace", default: false, render: (r) => str(r, "SrcK8S_Namespace") },
  { id: "dst_ns", header: "Destination namespace", field: "DstK8S_Namespace", default: false, render: (r) => str(r, "DstK8S_Namespace") },
  { id: "src_host", header: "Source node", field: "SrcK8S_HostName", default: false, render: (r) => str(r, "SrcK8S_HostName") },
  { id: "dst_host", header: "Destination node", field: "DstK8S_HostName", default: false, render: (r) => str(r, "DstK8S_HostName") },
  { id: "proto", header: "Protocol", field: "Proto", default: true, render: (r) => fmt.protocolName(r.Proto) },
  { id: "direction", header: "Direction", field: "FlowDirection", default: false, render: (r) => fmt.directionName(r.FlowDirection) },
  { id: "interfaces", header: "Interfaces", field: "Interfaces", default: false, render: (r) => fmt.plain(r.Interfaces) },
  { id: "bytes", header: "Bytes", field: "Bytes", default: true, numeric: true, render: (r) => fmt.bytes(bytesOf(r)), sortValue: bytesOf },
  { id: "packets", header: "Packets", field: "Packets", default: true, numeric: true, render: (r) => String(packetsOf(r)), sortValue: packetsOf },
  { id: "flags", header: "TCP flags", field: "Flags", default: false, render: (r) => fmt.tcpFlags(r.Flags) },
  { id: "rtt", header: "RTT", field: "TimeFlowRttNs", default: true, numeric: true, render: (r) => { const v = rttMs(r); return v === undefined ? "" : fmt.millis(v); }, sortValue: sortNum(rttMs) },
  { id: "retransmits", header: "Retransmits", field: "TcpRetransmits", default: false, numeric: true, render: (r) => str(r, "TcpRetransmits"), sortValue: sortNum((r) => num(r, "TcpRetransmits")) },
  { id: "outcome", header: "Connection", field: "ConnOutcome", default: false, render: (r) => str(r, "ConnOutcome") || str(r, "CloseCause") },
  { id: "dns_name", header: "DNS name", field: "DnsName", default: true, render: (r) => str(r, "DnsName") },
  { id: "dns_rcode", header: "DNS response", field: "DnsFlagsResponseCode", default: true, render: (r) => str(r, "DnsFlagsResponseCode") },
  { id: "dns_latency", header: "DNS latency", field: "DnsLatencyMs", default: false, numeric: true, render: (r) => { const v = num(r, "DnsLatencyMs"); return v === undefined ? "" : fmt.millis(v); }, sortValue: sortNum((r) => num(r, "DnsLatencyMs")) },
  { id: "drop_packets", header: "Dropped packets", field: "PktDropPackets", default: false, numeric: true, render: (r) => str(r, "PktDropPackets"), sortValue: sortNum((r) => num(r, "PktDropPackets")) },
  { id: "drop_cause", header: "Drop cause", field: "PktDropLatestDropCause", default: true, render: (r) => dropCause(r) },
  { id: "drop_state", header: "Drop TCP state", field: "PktDropLatestState", default: false, render: (r) => str(r, "PktDropLatestState") },
];

/** Conversation records: both directions' counts and the record type. */
export const CONVERSATION_COLUMNS: Column[] = [
  { id: "type", header: "Record", field: "_RecordType", default: true, render: (r) => str(r, "_RecordType") },
  { id: "start", header: "Start time", field: "TimeFlowStartMs", default: true, render: (r) => fmt.time(r.TimeFlowStartMs), sortValue: sortNum((r) => num(r, "TimeFlowStartMs")) },
  { id: "end", header: "Last seen", field: "TimeFlowEndMs", default: true, render: (r) => fmt.time(r.TimeFlowEndMs), sortValue: sortNum((r) => num(r, "TimeFlowEndMs")) },
  { id: "a", header: "Client (A)", field: "SrcAddr", default: true, render: (r) => `${endpoint(r, "Src")} ${addrPort(r, "Src")}` },
  { id: "b", header: "Server (B)", field: "DstAddr", default: true, render: (r) => `${endpoint(r, "Dst")} ${addrPort(r, "Dst")}` },
  { id: "proto", header: "Protocol", field: "Proto", default: true, render: (r) => fmt.protocolName(r.Proto) },
  { id: "bytes_ab", header: "Bytes A→B", field: "Bytes_AB", default: true, numeric: true, render: (r) => fmt.bytes(num(r, "Bytes_AB") ?? 0), sortValue: sortNum((r) => num(r, "Bytes_AB")) },
  { id: "bytes_ba", header: "Bytes B→A", field: "Bytes_BA", default: true, numeric: true, render: (r) => fmt.bytes(num(r, "Bytes_BA") ?? 0), sortValue: sortNum((r) => num(r, "Bytes_BA")) },
  { id: "flows", header: "Flow logs", field: "numFlowLogs", default: true, numeric: true, render: (r) => str(r, "numFlowLogs"), sortValue: sortNum((r) => num(r, "numFlowLogs")) },
  { id: "rtt", header: "RTT avg", field: "TimeFlowRttAvgNs", default: true, numeric: true, render: (r) => { const v = rttMs(r); return v === undefined ? "" : fmt.millis(v); }, sortValue: sortNum(rttMs) },
  { id: "retransmits", header: "Retransmits", field: "TcpRetransmits", default: false, numeric: true, render: (r) => str(r, "TcpRetransmits"), sortValue: sortNum((r) => num(r, "TcpRetransmits")) },
  { id: "close", header: "Close cause", field: "CloseCause", default: true, render: (r) => str(r, "CloseCause") },
  { id: "dns_rcode", header: "DNS response", field: "DnsFlagsResponseCode", default: false, render: (r) => str(r, "DnsFlagsResponseCode") },
  { id: "drop_cause", header: "Drop cause", field: "PktDropLatestDropCause", default: false, render: (r) => dropCause(r) },
];

/** The columns shown: the user's pick, or the defaults. */
export function visibleColumns(all: Column[], picked: string[]): Column[] {
  const chosen = picked.map((id) => all.find((c) => c.id === id)).filter((c): c is Column => !!c);
  return chosen.length ? chosen : all.filter((c) => c.default);
}
