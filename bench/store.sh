#!/usr/bin/env bash
# Store benchmarks (no root needed): ingest rate and bytes on disk per flow
# record next to JSON lines, and query times over RECORDS stored flows next
# to a full pass, all measured in the same run. Prints the Markdown that
# docs/benchmarks.md holds.
#
#   bench/store.sh [RECORDS] [DIR]      (default 10,000,000 records)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p flowlens-store --examples
exec target/release/examples/store_bench "${1:-10000000}" ${2:+"$2"}
