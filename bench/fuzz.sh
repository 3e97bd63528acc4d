#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 300; CI
# runs 30) and prints, per target, the executions and the crashes found.
# New inputs go to fuzz/work/<target> (the committed seeds in
# fuzz/corpus/<target> are read, never written); a crash is saved in
# fuzz/artifacts/<target>/ and makes the script fail. Needs only the stable
# toolchain (no sanitizer: -s none) and installs cargo-fuzz if missing.
#
#   bench/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
shift || true
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
failed=0
printf '%-20s %14s %10s %8s\n' target executions exec/s crashes
for target in "${targets[@]}"; do
    mkdir -p "work/$target" "artifacts/$target"
    log="work/$target.log"
    set +e
    cargo fuzz run -s none "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    crashes=$(find "artifacts/$target" -type f | wc -l)
    printf '%-20s %14s %10s %8s\n' "$target" "${runs:-0}" "${rate:-0}" "$crashes"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        echo "--- $target failed (exit $status), see fuzz/$log:" >&2
        grep -m1 -A2 "panicked at" "$log" >&2 || grep -m3 -E "ERROR|deadly|timeout|out-of-memory" "$log" >&2 || true
        find "artifacts/$target" -type f | sed 's/^/    fuzz\//' >&2
    fi
done
exit $failed
