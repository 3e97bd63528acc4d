#!/usr/bin/env bash
# Pipeline benchmarks (no root needed). Prints a Markdown report;
# docs/benchmarks.md holds the latest one.
#
#   bench/pipeline.sh [RECORDS] [CONVERSATIONS]
#
# 1. Records per second on one core through protobuf decoding, conversion to
#    flow records, enrichment, metrics, conversation tracking and the store's
#    append, next to decoding alone measured in the same run
#    (synthetic_flows throughput).
#    Then the conversation tracker's memory per conversation, alone in a
#    process (synthetic_flows conversation-memory).
# 2. The collector's resident memory idle and with CONVERSATIONS active
#    conversations, fed over gRPC by the synthetic agent (synthetic_flows send).
# Ends with two lines: `decode_records_per_s N` and `pipeline_records_per_s N`.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-2000000}
CONVERSATIONS=${2:-100000}
cargo build --release -q -p flowlens --examples --bins
BIN=target/release

echo "## Pipeline throughput (one core, $RECORDS records, $CONVERSATIONS conversations)"
echo
echo '```'
"$BIN/examples/synthetic_flows" throughput "$RECORDS" "$CONVERSATIONS" | tee /tmp/flowlens-throughput.$$ | grep -v '_per_s '
FIGURES=$(grep '_per_s ' /tmp/flowlens-throughput.$$)
"$BIN/examples/synthetic_flows" conversation-memory "$RECORDS" "$CONVERSATIONS"
rm -f /tmp/flowlens-throughput.$$
echo '```'
echo

GRPC=127.0.0.1:19391
HTTP=127.0.0.1:19390
"$BIN/flowlens" collector --grpc-listen $GRPC --listen $HTTP \
    --log-types EndedConversations --max-connections-tracked $((CONVERSATIONS * 2)) --no-store \
    > /dev/null 2>&1 &
COLLECTOR=$!
trap 'kill $COLLECTOR 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf http://$HTTP/status >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$COLLECTOR/status; }
IDLE=$(rss)
"$BIN/examples/synthetic_flows" send $GRPC "$CONVERSATIONS" >&2
sleep 1
ACTIVE=$(rss)
TRACKED=$(curl -s http://$HTTP/status | sed -n 's/.*"tracked":\([0-9]*\).*/\1/p')
echo "## Collector memory"
echo
echo "| collector state | RSS MiB |"
echo "|---|---|"
echo "| idle (baseline) | $IDLE |"
echo "| $TRACKED active conversations | $ACTIVE |"
echo
echo "RSS ratio: $(echo "scale=2; $ACTIVE / $IDLE" | bc)"

# Last, for scripts: the decode-only baseline and the whole pipeline's
# records/s of the same run, each alone on its line.
echo
echo "$FIGURES"
