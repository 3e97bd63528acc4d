#!/usr/bin/env bash
# The collector's throughput from Kafka against from gRPC, in one run (no
# root). Prints a Markdown table; docs/benchmarks.md holds the latest one.
#
#   bench/collector-sources.sh [CONVERSATIONS] [PARTITIONS]
#
# The same 2 x CONVERSATIONS pbflow records reach a release `flowlens
# collector` with a store (write-ahead log synced before any answer or
# commit) two ways:
#   gRPC   `synthetic_flows send` (the agent's batches of 1,000, one call
#          at a time), timed from the first record the pipeline sees to
#          the last;
#   Kafka  first produced to a topic of PARTITIONS partitions by
#          `synthetic_flows produce` (the agent's producer), then consumed
#          by `flowlens collector --kafka`, timed the same way.
# Figures: records per second of wall time, records per CPU second of the
# collector process (and, for Kafka, of the broker while it serves them),
# and Kafka's ratio to gRPC.
# Needs tansu (scripts/test installs it into target/tansu).
set -euo pipefail
cd "$(dirname "$0")/.."
CONVERSATIONS=${1:-200000}
PARTITIONS=${2:-4}
RECORDS=$((CONVERSATIONS * 2))
TANSU=${FLOWLENS_TANSU:-target/tansu/bin/tansu}
[ -x "$TANSU" ] || { echo "no tansu at $TANSU: run scripts/test once (it installs it)" >&2; exit 1; }
cargo build --release -q -p flowlens --examples --bins
BIN=target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# CPU seconds a process has used (utime + stime).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Records the collector's pipeline has taken so far.
seen() { curl -sf "http://$1/status" | sed -n 's/.*"metrics":{[^}]*"flows_received":\([0-9]*\).*/\1/p'; }
now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
wait_ready() { for _ in $(seq 200); do curl -sf "http://$1/status" >/dev/null && return; sleep 0.05; done; echo "collector on $1 not ready" >&2; exit 1; }

# Waits for the first record and then for all of them; prints
# "wall_seconds collector_cpu_seconds" over that span.
time_ingest() {
    local http=$1 pid=$2 n
    until [ "$(seen "$http")" -gt 0 ] 2>/dev/null; do sleep 0.01; done
    local t0 c0 b0
    t0=$(now); c0=$(cpu "$pid"); b0=${3:+$(cpu "$3")}
    while n=$(seen "$http"); [ "${n:-0}" -lt "$RECORDS" ]; do sleep 0.01; done
    echo "$(minus "$(now)" "$t0") $(minus "$(cpu "$pid")" "$c0") ${3:+$(minus "$(cpu "$3")" "$b0")}"
}

# Starts a collector; its pid in COLLECTOR.
collector() {
    local http=$1; shift
    "$BIN/flowlens" collector --listen "$http" --data-dir "$WORK/store-$http" \
        --log-types EndedConversations --max-connections-tracked $((CONVERSATIONS * 2)) "$@" \
        > "$WORK/collector-$http.log" 2>&1 &
    COLLECTOR=$!
    PIDS+=("$COLLECTOR")
}

# gRPC.
HTTP=127.0.0.1:19690
collector $HTTP --grpc-listen 127.0.0.1:19691
wait_ready $HTTP
"$BIN/examples/synthetic_flows" send 127.0.0.1:19691 "$CONVERSATIONS" >&2 &
SENDER=$!
read -r GRPC_WALL GRPC_CPU < <(time_ingest $HTTP "$COLLECTOR")
wait "$SENDER"
kill "$COLLECTOR"

# Kafka: the topic filled first, so the collector's pace is its own.
(cd "$WORK" && "$OLDPWD/$TANSU" broker --listener-url tcp://127.0.0.1:19693 \
    --advertised-listener-url tcp://127.0.0.1:19693 --storage-engine sqlite://tansu.db \
    > broker.log 2>&1) &
sleep 1
BROKER=$(pgrep -f "listener-url tcp://127.0.0.1:19693" | head -1)
PIDS+=("$BROKER")
for _ in $(seq 100); do "$TANSU" topic create bench --partitions "$PARTITIONS" --broker tcp://127.0.0.1:19693 >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/examples/synthetic_flows" produce 127.0.0.1:19693/bench "$CONVERSATIONS" >&2
HTTP=127.0.0.1:19694
collector $HTTP --kafka 127.0.0.1:19693/bench --kafka-group bench
wait_ready $HTTP
read -r KAFKA_WALL KAFKA_CPU BROKER_CPU < <(time_ingest $HTTP "$COLLECTOR" "$BROKER")

rate() { awk -v n="$RECORDS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "## Collector throughput: Kafka against gRPC ($RECORDS records, $PARTITIONS partitions)"
echo
echo "| source | wall s | records/s | collector CPU s | records per collector CPU second | broker CPU s |"
echo "|---|---|---|---|---|---|"
echo "| gRPC (baseline) | $GRPC_WALL | $(rate "$GRPC_WALL") | $GRPC_CPU | $(rate "$GRPC_CPU") | – |"
echo "| Kafka | $KAFKA_WALL | $(rate "$KAFKA_WALL") | $KAFKA_CPU | $(rate "$KAFKA_CPU") | $BROKER_CPU |"
echo
echo "ratio Kafka/gRPC: records per wall second $(ratio "$GRPC_WALL" "$KAFKA_WALL"), per collector CPU second $(ratio "$GRPC_CPU" "$KAFKA_CPU")"
