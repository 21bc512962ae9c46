#!/usr/bin/env bash
# Registry bulk-import benchmark (issue 6): generate N rows (default 10,000,000), import
# them into a fresh embedded data directory, and print rows/s and peak memory (the
# kernel's peak RSS of the import process, VmHWM via /usr/bin/time or /proc).
# Then: re-import (every row unchanged), `registry stats`, and point-lookup throughput
# against a 10k-row and the N-row registry (the "lookups stay flat" check).
#
#   bench/registry_import.sh [ROWS] [WORKDIR]
#
# Environment: CARGO_TARGET_DIR (build output), SEED (default 1), KEEP=1 keeps WORKDIR.
# Targets (issue 6): >= 300,000 rows/s and < 500 MB peak RSS for 10M rows on the
# 2-core development machine.
set -euo pipefail

ROWS=${1:-10000000}
WORK=${2:-$(mktemp -d "${TMPDIR:-/tmp}/cardcheck-bench.XXXXXX")}
SEED=${SEED:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

cleanup() { if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
mkdir -p "$WORK"

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release -q -p cardcheck --bin cardcheck --example registry_lookup)
BIN=$TARGET/release/cardcheck
LOOKUP=$TARGET/release/examples/registry_lookup

# Runs "$@", printing its peak RSS (KiB) to the file named by $PEAK.
measure() {
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%M' -o "$PEAK" "$@"
    else
        # Fallback: poll VmHWM of the process while it runs.
        "$@" & local pid=$! hwm=0
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
            sleep 0.2
        done
        wait "$pid"
        echo "$hwm" >"$PEAK"
    fi
}
PEAK=$WORK/peak.txt
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
since() { calc "$(date +%s.%N) - $1"; }
json_field() { sed -n "s/^  \"$1\": \([0-9.]*\),\{0,1\}$/\1/p" "$2"; }

echo "== generating $ROWS rows (seed $SEED)" >&2
start=$(date +%s.%N)
"$BIN" registry generate --count "$ROWS" --output "$WORK/registry.csv" --seed "$SEED" >&2
gen_s=$(since "$start")

echo "== importing into a fresh data directory" >&2
start=$(date +%s.%N)
measure "$BIN" registry import "$WORK/registry.csv" --data-dir "$WORK/data" --json --no-progress >"$WORK/import.json"
wall=$(since "$start")
rows=$(json_field rows "$WORK/import.json")
inserted=$(json_field inserted "$WORK/import.json")
peak_kib=$(cat "$PEAK")
csv_bytes=$(stat -c %s "$WORK/registry.csv")
db_bytes=$(stat -c %s "$WORK/data/cardcheck.db")
rate=$(calc "$rows / $wall" 0)

echo "== re-importing the same file (all rows unchanged)" >&2
start=$(date +%s.%N)
measure "$BIN" registry import "$WORK/registry.csv" --data-dir "$WORK/data" --json --no-progress >"$WORK/reimport.json"
re_wall=$(since "$start")
re_peak_kib=$(cat "$PEAK")
unchanged=$(json_field unchanged "$WORK/reimport.json")

echo "== registry stats" >&2
start=$(date +%s.%N)
"$BIN" registry stats --data-dir "$WORK/data" --top 5 >&2
stats_s=$(since "$start")

echo "== point lookups: 10k-row registry vs $ROWS-row registry" >&2
head -n 10001 "$WORK/registry.csv" >"$WORK/small.csv"
"$BIN" registry import "$WORK/small.csv" --data-dir "$WORK/small" --no-progress >/dev/null
small=$("$LOOKUP" "$WORK/small" "$WORK/small.csv" 1000000 | sed -n 's/.*lookups_per_second=\([0-9]*\).*/\1/p')
large=$("$LOOKUP" "$WORK/data" "$WORK/registry.csv" 1000000 | sed -n 's/.*lookups_per_second=\([0-9]*\).*/\1/p')

cat <<EOF
registry import benchmark ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ))
  rows                 $rows (inserted $inserted)
  csv size             $csv_bytes bytes
  generate             ${gen_s} s
  import               ${wall} s wall, $rate rows/s, peak RSS $((peak_kib / 1024)) MiB
  database size        $db_bytes bytes ($((db_bytes / rows)) bytes/row)
  re-import            ${re_wall} s wall, $unchanged unchanged, peak RSS $((re_peak_kib / 1024)) MiB
  stats                ${stats_s} s
  lookups/s            10k rows: $small, $rows rows: $large ($(calc "100 * $large / $small" 0)%)
targets: >= 300000 rows/s, < 500 MiB peak, lookups >= 80% of the 10k figure
EOF
