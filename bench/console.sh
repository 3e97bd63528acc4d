#!/usr/bin/env bash
# Console figures (as root): runs `flowlens demo` on a free port, waits
# until its store holds a thousand flows, then runs the console's browser
# checks (console/e2e/console.mjs, headless Chromium), which print the
# figures with their same-run baselines as one JSON line:
#   overview_meaningful_paint_ms  vs first_contentful_paint_ms (same load)
#   table_1000_rows_render_ms     vs baseline_static_table_1000_rows_ms
#   refresh_5s_input_delay_*      vs baseline_no_refresh_input_delay_*
#
#   bench/console.sh [SCREENSHOT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p flowlens
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp)
target/release/flowlens demo --listen "127.0.0.1:$port" >"$out" &
demo=$!
trap 'kill -INT $demo 2>/dev/null; wait $demo 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 120); do
    n=$(target/release/flowlens flows --server "http://127.0.0.1:$port" --since 30m --limit 1000 \
        --output json 2>/dev/null | wc -l || true)
    [ "${n:-0}" -ge 1000 ] && break
    sleep 2
done
# Without the lab's counters the checks read a range that ends 15 s ago:
# let the thousand flows fall into it.
sleep 20
node console/e2e/console.mjs "http://127.0.0.1:$port/" "${1:-target/console-screenshots}" | grep '^FIGURES' |
    sed 's/^FIGURES //'
