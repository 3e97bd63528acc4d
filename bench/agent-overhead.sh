#!/usr/bin/env bash
# Agent overhead benchmarks (as root). Every figure is a ratio against a
# baseline measured in the same run, because these machines are shared and
# noisy. Prints a Markdown report; docs/benchmarks.md holds the latest one.
#
#   bench/agent-overhead.sh [SECONDS_PER_RUN]
#
# 1. TC program cost per packet (kernel.bpf_stats_enabled: run_time_ns /
#    run_cnt) of the agent's egress program under a small-packet UDP flood
#    with 1 flow and with 10,000 flows, features off and all on, next to the
#    empty program measured the same way.
# 2. iperf3 TCP throughput over a veth pair: no agent, agent with features
#    off, agent with all features on.
# 3. Cost per event of each feature's tracepoint program.
# 4. Agent resident memory and CPU with 100,000 active flows vs idle.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
NS=flbench
IF=flbench0
HOST_IP=198.18.7.1
PEER_IP=198.18.7.2

for tool in iperf3 bpftool jq; do
    command -v $tool >/dev/null || { apt-get install -y -q iperf3 bpftool jq >/dev/null; break; }
done
cargo build --release -q -p flowlens -p flowlens-agent --examples --bins
BIN=target/release
FLOOD=$BIN/examples/udp_flood
EMPTY=$BIN/examples/attach_empty

AGENT_LOG=$(mktemp)
cleanup() {
    rm -f "$AGENT_LOG"
    pkill -f "$EMPTY $IF" 2>/dev/null || true
    pkill -f "flowlens agent --interfaces $IF" 2>/dev/null || true
    ip netns del $NS 2>/dev/null || true
    ip link del $IF 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add $NS
ip link add $IF type veth peer name eth0 netns $NS
ip addr add $HOST_IP/24 dev $IF
ip link set $IF up
ip -n $NS link set lo up
ip -n $NS link set eth0 up
ip -n $NS addr add $PEER_IP/24 dev eth0
ping -c1 -W1 $PEER_IP >/dev/null
sysctl -qw kernel.bpf_stats_enabled=1

# ns per packet of the newest loaded program called $1.
cost_of() {
    bpftool prog show -j | jq -r --arg n "$1" \
        '[.[] | select(.name == $n)] | max_by(.id) | ((.run_time_ns // 0) / ((.run_cnt // 0) + 1e-9) * 100 | round / 100)'
}

# Records go to $AGENT_OUT (JSON lines): their count is the records evicted.
AGENT_OUT=/dev/null
start_agent() {
    $BIN/flowlens agent --interfaces $IF --output json "$@" >"$AGENT_OUT" 2>"$AGENT_LOG" &
    AGENT=$!
    for _ in $(seq 100); do grep -q "attached interface=$IF" "$AGENT_LOG" && return; sleep 0.1; done
    echo "agent did not attach" >&2; exit 1
}

ALL_FEATURES=FlowRTT,DNSTracking,PacketDrop,NetworkEvents,TCPRetransmits,ConnectionTracking
stop_agent() { kill -INT $AGENT; wait $AGENT || true; }

echo "## TC program cost per packet"
echo
echo "| flows | empty program ns/pkt | flowlens, features off | ratio | flowlens, all features on | ratio |"
echo "|---|---|---|---|---|---|"
for flows in 1 10000; do
    $EMPTY $IF >/dev/null & EMPTY_PID=$!
    sleep 0.5
    $FLOOD $PEER_IP $flows $SECS >/dev/null
    empty=$(cost_of flowlens_tc_empty)
    kill $EMPTY_PID; wait $EMPTY_PID 2>/dev/null || true

    start_agent --cache-active-timeout 5s
    $FLOOD $PEER_IP $flows $SECS >/dev/null
    off=$(cost_of flowlens_tc_egress)
    stop_agent

    start_agent --cache-active-timeout 5s --features $ALL_FEATURES
    $FLOOD $PEER_IP $flows $SECS >/dev/null
    on=$(cost_of flowlens_tc_egress)
    stop_agent
    echo "| $flows | $empty | $off | $(echo "scale=2; $off / $empty" | bc) | $on | $(echo "scale=2; $on / $empty" | bc) |"
done
echo

echo "## iperf3 TCP throughput over a veth pair"
echo
ip netns exec $NS iperf3 -s -D -p 5301
sleep 0.5
gbps() { iperf3 -c $PEER_IP -p 5301 -t 3 -J | jq '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100'; }
# Throughput on this shared 2-vCPU machine varies by +-25 % from run to run:
# alternate the three set-ups over many short runs and compare the means.
without=(); off=(); on=()
for round in $(seq 8); do
    without+=("$(gbps)")
    start_agent
    off+=("$(gbps)")
    stop_agent
    start_agent --features $ALL_FEATURES
    on+=("$(gbps)")
    stop_agent
done
mean() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%.2f", s / NR}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }
m0=$(mean "${without[@]}"); m1=$(mean "${off[@]}"); m2=$(mean "${on[@]}")
echo "| set-up (8 alternating runs of 3 s) | mean Gbit/s | range | ratio to no agent |"
echo "|---|---|---|---|"
echo "| no agent | $m0 | $(range "${without[@]}") | 1 |"
echo "| agent, features off | $m1 | $(range "${off[@]}") | $(echo "scale=3; $m1 / $m0" | bc) |"
echo "| agent, all features on | $m2 | $(range "${on[@]}") | $(echo "scale=3; $m2 / $m0" | bc) |"
echo

echo "## Feature hooks: cost per event"
echo
# iperf3 exercises tcp_probe (every received segment) and the state changes;
# a UDP flood to a closed port gives one kfree_skb (NO_SOCKET) per packet;
# refused connects give state changes; TCP retransmissions are rare on veth.
start_agent --features $ALL_FEATURES
iperf3 -c $PEER_IP -p 5301 -t $SECS >/dev/null
$FLOOD $PEER_IP 100 $SECS >/dev/null
for _ in $(seq 200); do (exec 3<>/dev/tcp/$PEER_IP/9) 2>/dev/null || true; done
echo "| program | tracepoint | events | ns per event |"
echo "|---|---|---|---|"
for pair in flowlens_tcp_probe:tcp_probe flowlens_sock_state:inet_sock_set_state \
    flowlens_tcp_retransmit:tcp_retransmit_skb flowlens_kfree_skb:kfree_skb; do
    prog=${pair%%:*}
    events=$(bpftool prog show -j | jq -r --arg n "$prog" '[.[] | select(.name == $n)] | max_by(.id) | (.run_cnt // 0)')
    echo "| $prog | ${pair##*:} | $events | $(cost_of $prog) |"
done
stop_agent
pkill -f "iperf3 -s -D -p 5301" || true
echo

echo "## Agent memory and CPU with 100,000 active flows"
echo
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
rss_kib() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
# The agent's own memory: resident anonymous memory outside the BPF maps it
# mmaps (the flow table is the kernel's, sized by --cache-max-flows).
heap_kib() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6} /^Anonymous:/ {if (name !~ /bpf/) s += $2} END {print s + 0}' /proc/$1/smaps
}
table_kib() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6} /^Rss:/ {if (name ~ /bpf/) s += $2} END {print s + 0}' /proc/$1/smaps
}
AGENT_OUT=$(mktemp)
start_agent --cache-max-flows 250000 --cache-active-timeout 5s
window=$((SECS * 3))
t0=$(cpu_ticks $AGENT); sleep $window; t1=$(cpu_ticks $AGENT)
idle_rss=$(rss_kib $AGENT)
idle_ticks=$((t1 - t0))
idle_cpu=$(echo "scale=2; $idle_ticks * 100 / $clk / $window" | bc)
records0=$(wc -l <"$AGENT_OUT")
t0=$(cpu_ticks $AGENT)
SENT=$(mktemp)
$FLOOD $PEER_IP 100000 $window >"$SENT" &
flood=$!
# The heap's peak, sampled through the flood (evictions come and go).
peak_heap=0
while kill -0 $flood 2>/dev/null; do
    h=$(heap_kib $AGENT)
    [ "$h" -gt $peak_heap ] && peak_heap=$h
    sleep 0.2
done
wait $flood
sent=$(cat "$SENT"); rm -f "$SENT"
t1=$(cpu_ticks $AGENT)
table=$(table_kib $AGENT)
records=$(($(wc -l <"$AGENT_OUT") - records0))
busy_rss=$(rss_kib $AGENT)
busy_cpu=$(echo "scale=2; ($t1 - $t0) * 100 / $clk / $window" | bc)
# CPU beyond idle's, per record evicted (merged and written as JSON).
per_flow_us=$(echo "scale=2; ($t1 - $t0 - $idle_ticks) * 1000000 / $clk / ($records + 1)" | bc)
# After the next eviction (the 5 s active timeout) the flows are gone.
sleep 6
after_heap=$(heap_kib $AGENT)
stop_agent
rm -f "$AGENT_OUT"
echo "| agent state | RSS MiB | CPU % of one core |"
echo "|---|---|---|"
echo "| idle (baseline) | $((idle_rss / 1024)) | $idle_cpu |"
echo "| 100,000 active flows, $sent packets in ${window}s | $((busy_rss / 1024)) | $busy_cpu |"
echo
echo "RSS ratio: $(echo "scale=2; $busy_rss / $idle_rss" | bc)"
echo
echo "Records evicted in the window: $records; CPU per evicted flow beyond idle: $per_flow_us µs"
echo
echo "Heap (resident memory apart from the mmapped BPF maps, $((table / 1024)) MiB): peak $((peak_heap / 1024)) MiB during the flood, $((after_heap / 1024)) MiB after it"
