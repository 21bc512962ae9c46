#!/usr/bin/env bash
# The benchmark runner (issue 10): builds release, prepares data directories (10k and
# 10M registry rows, cached under bench/.data/), and measures side by side in one run:
# the floor (axum returning a fixed 150-byte JSON), cardcheck on sandbox cards, registry
# hits (10k and 10M rows, durable ledger), encrypted requests (reused and fresh data
# keys, AES-256-CBC and SM4-GCM), v1 HmacSHA1 GET, and WireMock standalone serving a
# canned answer — each at 4 and 64 connections. Prints the table (absolute figures and
# ratios to the floor) and writes it as JSON to bench/results/.
#
# Usage: bench/run.sh            (about 5 minutes once the data dirs are cached)
# Knobs (environment): BENCH_DURATION (s, default 5), BENCH_WARMUP (1),
#   BENCH_FRESH_DURATION (3), BENCH_WIREMOCK_WARMUP (5), BENCH_CONNS ("4 64"),
#   BENCH_ROWS_LARGE (10000000), BENCH_ROWS_SMALL (10000), BENCH_SOAK_REQUESTS (120000),
#   BENCH_REGISTRY_ROUNDS (3: back-to-back 10k/10M pairs per connection count),
#   BENCH_SKIP (any of "fresh soak wiremock" to leave scenarios out), CARGO_TARGET_DIR,
#   BENCH_BIN (a cardcheck binary to measure instead of building this tree's).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
DURATION="${BENCH_DURATION:-5}"
WARMUP="${BENCH_WARMUP:-1}"
FRESH_DURATION="${BENCH_FRESH_DURATION:-3}"
WIREMOCK_WARMUP="${BENCH_WIREMOCK_WARMUP:-5}"
CONNS="${BENCH_CONNS:-4 64}"
ROWS_LARGE="${BENCH_ROWS_LARGE:-10000000}"
ROWS_SMALL="${BENCH_ROWS_SMALL:-10000}"
SKIP="${BENCH_SKIP:-}"
# The registry sizes run as back-to-back pairs, this many times at each connection
# count: the 10M/10k target is judged on the median pair, the other targets on the
# 10M run of median throughput (bench report).
REGISTRY_ROUNDS="${BENCH_REGISTRY_ROUNDS:-3}"
DATA="$HERE/.data"
LOGS="$HERE/.logs"
RESULTS="$HERE/results"
WIREMOCK_VERSION="3.13.2"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# BENCH_BIN: measure this cardcheck binary instead of building one (A/B comparisons).
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/cardcheck}"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }

mkdir -p "$DATA" "$LOGS" "$RESULTS"
rm -f "$LOGS"/*.out "$LOGS"/*.err
JSONL="$LOGS/run-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$JSONL"

# ---------------------------------------------------------------- processes we start
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# start_server NAME CMD...: runs CMD in the background, waits for its first stdout line
# `listening on http://ADDR`; sets SERVER_PID, ENDPOINT and (for cardcheck) ADMIN.
start_server() {
    local name="$1"; shift
    local out="$LOGS/$name.out"
    : > "$out"
    "$@" > "$out" 2> "$LOGS/$name.err" &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        if grep -q '^listening on http://' "$out"; then break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "$name exited: $(tail -5 "$LOGS/$name.err")"
        sleep 0.05
    done
    ENDPOINT="$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$out" | head -1)"
    [[ -n "$ENDPOINT" ]] || die "$name did not start"
    ADMIN="$(sed -n 's/^admin on \(http:\/\/[^ ]*\).*/\1/p' "$out" | head -1)"
    log "$name: pid $SERVER_PID at $ENDPOINT"
}

replays() { curl -sf "$ADMIN/metrics" | awk '$1 == "cardcheck_replays_total" {print $2}'; }
creds() { jq -r '.secret_id, .secret_key' "$1/credentials.json" | paste -sd' '; }

# bench LABEL CONNS ARGS...: one measured run appended to the JSON lines.
bench() {
    local label="$1" conns="$2"; shift 2
    log "  $label, $conns connections"
    "$BIN" bench --json --label "$label" -c "$conns" --endpoint "$ENDPOINT" \
        --server-pid "$SERVER_PID" "$@" >> "$JSONL" \
        || die "bench $label failed"
    tail -1 "$JSONL" | jq -r '"    \(.throughput_rps|floor) req/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.error_count), results \(.results|tostring)"' >&2
}

# ---------------------------------------------------------------- build
if [[ -z "${BENCH_BIN:-}" ]]; then
    log "building release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p cardcheck) >&2
fi
[[ -x "$BIN" ]] || die "no cardcheck binary at $BIN"

# ---------------------------------------------------------------- data directories
# prepare ROWS: $DATA/ROWS/{pristine/, credentials.json, sample.csv, rsa.pem, sm2.pem}.
# pristine/ is the data dir as imported, never served from: runs work on a copy
# (fresh_copy), so that ledger rows written by earlier runs do not accumulate.
CACHE_VERSION=4  # 4: the registry keyed by slot (schema 3)
prepare() {
    local rows="$1" dir="$DATA/$1"
    local method="import"
    "$BIN" registry import --help > /dev/null 2>&1 || method="populate"
    if [[ -f "$dir/.ready" && "$(cat "$dir/.ready")" == "$method v$CACHE_VERSION" ]]; then
        log "data dir for $rows rows: cached ($dir)"
        return
    fi
    log "preparing a data dir with $rows registry rows ($method); cached for later runs"
    rm -rf "$dir"
    mkdir -p "$dir"
    "$BIN" account create bench --json --data-dir "$dir/pristine" > "$dir/credentials.json"
    "$BIN" account set bench --qps 1000000 --daily-attempts 0 --data-dir "$dir/pristine" > /dev/null
    local started=$SECONDS
    if [[ "$method" == "import" ]]; then
        "$BIN" registry generate --count "$rows" --output "$dir/registry.csv" --seed 10 >&2
        /usr/bin/time -v "$BIN" registry import "$dir/registry.csv" --data-dir "$dir/pristine" \
            --json --no-progress > "$dir/import.json" 2> "$dir/import.time" \
            || die "import failed: $(tail -5 "$dir/import.time")"
        log "  imported in $((SECONDS - started)) s, peak RSS $(awk -F': ' '/Maximum resident/ {print $2}' "$dir/import.time") KB"
        # name,card sample (at most 200k rows, spread over the file) for --cards.
        awk -F, -v n="$rows" 'BEGIN {k = int(n / 200000); if (k < 1) k = 1}
            NR == 1 {print "name,card"; next}
            (NR - 2) % k == 0 {print $1 "," $2}' "$dir/registry.csv" > "$dir/sample.csv"
        rm -f "$dir/registry.csv"
    else
        "$BIN" bench populate --data-dir "$dir/pristine" --count "$rows" \
            --sample-out "$dir/sample.csv" --sample 200000 >&2
        log "  populated in $((SECONDS - started)) s"
    fi
    "$BIN" key public --algorithm RSA --data-dir "$dir/pristine" > "$dir/rsa.pem"
    "$BIN" key public --algorithm SM2 --data-dir "$dir/pristine" > "$dir/sm2.pem"
    echo "$method v$CACHE_VERSION" > "$dir/.ready"
}

# fresh_copy DIR: DIR/data becomes a copy of DIR/pristine.
fresh_copy() {
    rm -rf "$1/data"
    cp -a "$1/pristine" "$1/data"
    # Write the copy back now, not under the next run's fsyncs.
    sync "$1/data"/*
}

# fresh_ledger DIR: DIR/data gets DIR/pristine's ledger file (the rest stays).
fresh_ledger() {
    rm -f "$1/data/ledger.db" "$1/data/ledger.db-wal" "$1/data/ledger.db-shm"
    cp -a "$1/pristine/ledger.db" "$1/data/ledger.db"
    sync "$1/data/ledger.db"
}

prepare "$ROWS_SMALL"
prepare "$ROWS_LARGE"
SMALL="$DATA/$ROWS_SMALL"
LARGE="$DATA/$ROWS_LARGE"
label_of() { case "$1" in 10000) echo 10k ;; 10000000) echo 10M ;; *) echo "$1" ;; esac; }
SMALL_LABEL="registry-$(label_of "$ROWS_SMALL")"
LARGE_LABEL="registry-$(label_of "$ROWS_LARGE")"

jq -cn --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    --arg cores "$(nproc)" --arg kernel "$(uname -r)" --arg rustc "$(rustc --version)" \
    --arg duration "$DURATION" --arg warmup "$WARMUP" --arg large "$ROWS_LARGE" \
    '{meta: {cpu: $cpu, cores: $cores, kernel: $kernel, rustc: $rustc,
             duration_s: $duration, warmup_s: $warmup, rows_large: $large}}' >> "$JSONL"

TIMING=(-d "$DURATION" --warmup "$WARMUP")

# ---------------------------------------------------------------- (1) the floor
log "scenario: floor (axum, fixed 150-byte JSON)"
start_server floor "$BIN" bench floor-server --listen 127.0.0.1:0
for c in $CONNS; do bench floor "$c" --fixed "${TIMING[@]}"; done
stop_server

# ---------------------------------------------------------------- (2)(3)(4)(6) cardcheck
# Every (scenario, connections) run gets a freshly started server, so that no run
# inherits another's state (replay-cache size, WAL length, warm caches). The `soak`
# run at the end deliberately does not: see below.

# run_cardcheck DATA_DIR LABEL CONNS BENCH_ARGS...
run_cardcheck() {
    local dir="$1" label="$2" conns="$3"; shift 3
    # The small data dir is copied afresh for every run; the large one's registry once
    # (below, 800 MB), its ledger afresh for every run, so that neither size inherits
    # ledger rows from earlier runs.
    if [[ "$dir" == "$SMALL" ]]; then fresh_copy "$dir"; else fresh_ledger "$dir"; fi
    # Both registry sizes are measured with their database in the OS page cache (the
    # 10k one always is): this machine reclaims cold page-cache pages within minutes,
    # and a 780 MB file read back from disk measures the disk, not the lookups (a
    # cold run measured 12k req/s with 24% of server CPU in `pread`).
    [[ "$dir" != "$LARGE" ]] || cat "$dir/data/cardcheck.db" > /dev/null
    start_server "cardcheck-$label-$conns" "$BIN" serve --data-dir "$dir/data" \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --demo
    read -r TENCENTCLOUD_SECRET_ID TENCENTCLOUD_SECRET_KEY <<< "$(creds "$dir")"
    export TENCENTCLOUD_SECRET_ID TENCENTCLOUD_SECRET_KEY
    bench "$label" "$conns" "$@"
    # Distinct signed requests only: the replay cache must not have answered any.
    local replayed
    replayed="$(replays)"
    [[ "${replayed:-0}" == "0" ]] || log "warning: $replayed answers came from the replay cache"
    stop_server
}

# Start-up, then the registry sizes side by side: at each connection count the 10M run
# follows its 10k run at once, so that their ratio (issue 6: >= 80%) is not skewed by
# the machine's load drifting over the minutes between them.
fresh_copy "$LARGE"
log "start-up to ready on the $ROWS_LARGE-row data dir"
"$BIN" bench startup --data-dir "$LARGE/data" --trials 5 --json >> "$JSONL"
tail -1 "$JSONL" | jq -r '"  median \(.median_ms) ms, max \(.max_ms) ms"' >&2

log "scenario: registry hits, $ROWS_SMALL and $ROWS_LARGE rows ($REGISTRY_ROUNDS pairs)"
for c in $CONNS; do
    for _ in $(seq "$REGISTRY_ROUNDS"); do
        run_cardcheck "$SMALL" "$SMALL_LABEL" "$c" --cards "$SMALL/sample.csv" "${TIMING[@]}"
        run_cardcheck "$LARGE" "$LARGE_LABEL" "$c" --cards "$LARGE/sample.csv" "${TIMING[@]}"
    done
done

log "scenario: cardcheck on the $ROWS_SMALL-row data dir"
for c in $CONNS; do run_cardcheck "$SMALL" sandbox "$c" "${TIMING[@]}"; done
for c in $CONNS; do
    run_cardcheck "$SMALL" enc-aes-reused "$c" --cards "$SMALL/sample.csv" \
        --encrypt AES-256-CBC --public-key "$SMALL/rsa.pem" "${TIMING[@]}"
    run_cardcheck "$SMALL" enc-sm4-reused "$c" --cards "$SMALL/sample.csv" \
        --encrypt SM4-GCM --public-key "$SMALL/sm2.pem" "${TIMING[@]}"
done
if ! skipped fresh; then
    for c in $CONNS; do
        run_cardcheck "$SMALL" enc-aes-fresh "$c" --cards "$SMALL/sample.csv" \
            --encrypt AES-256-CBC --public-key "$SMALL/rsa.pem" --fresh-key \
            -d "$FRESH_DURATION" --warmup "$WARMUP"
        run_cardcheck "$SMALL" enc-sm4-fresh "$c" --cards "$SMALL/sample.csv" \
            --encrypt SM4-GCM --public-key "$SMALL/sm2.pem" --fresh-key \
            -d "$FRESH_DURATION" --warmup "$WARMUP"
    done
fi
for c in $CONNS; do
    run_cardcheck "$SMALL" v1-hmacsha1-get "$c" --cards "$SMALL/sample.csv" \
        --sign-method HmacSHA1 --http-method GET "${TIMING[@]}"
done

# Sustained load: one server first answers SOAK_REQUESTS distinct requests (not
# measured), then the sandbox scenario is measured on it. Compare with `sandbox` at
# the same connections: the replay cache holds every answer for 600 s, so this is
# what a server sees after a few minutes above ~170 requests/s.
if ! skipped soak; then
    SOAK_REQUESTS="${BENCH_SOAK_REQUESTS:-120000}"
    SOAK_CONNS="${CONNS##* }"
    log "scenario: sandbox after $SOAK_REQUESTS requests on the same server"
    fresh_copy "$SMALL"
    start_server cardcheck-soak "$BIN" serve --data-dir "$SMALL/data" \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --demo
    read -r TENCENTCLOUD_SECRET_ID TENCENTCLOUD_SECRET_KEY <<< "$(creds "$SMALL")"
    export TENCENTCLOUD_SECRET_ID TENCENTCLOUD_SECRET_KEY
    "$BIN" bench --json -c "$SOAK_CONNS" --endpoint "$ENDPOINT" --requests "$SOAK_REQUESTS" \
        -d 600 --warmup 0 > "$LOGS/soak-preload.json" 2> /dev/null || true
    bench "sandbox-after-$((SOAK_REQUESTS / 1000))k" "$SOAK_CONNS" "${TIMING[@]}"
    stop_server
fi


# ---------------------------------------------------------------- (5) the peer: WireMock
if ! skipped wiremock; then
    if [[ ! -f "$HERE/node_modules/wiremock/package.json" ]]; then
        log "installing WireMock $WIREMOCK_VERSION into bench/node_modules"
        (cd "$HERE" && npm install --no-audit --no-fund --no-save "wiremock@$WIREMOCK_VERSION") >&2
    fi
    JAR="$(ls "$HERE"/node_modules/wiremock/build/wiremock-standalone-*.jar | head -1)"
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    log "scenario: WireMock standalone ($JAR) on port $PORT"
    java -jar "$JAR" --port "$PORT" --bind-address 127.0.0.1 --root-dir "$HERE/wiremock" \
        --no-request-journal --disable-request-logging --disable-banner \
        > "$LOGS/wiremock.out" 2> "$LOGS/wiremock.err" &
    SERVER_PID=$!
    ENDPOINT="http://127.0.0.1:$PORT"
    for _ in $(seq 1 600); do
        curl -sf "$ENDPOINT/__admin/health" > /dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "WireMock exited: $(tail -5 "$LOGS/wiremock.err")"
        sleep 0.1
    done
    for c in $CONNS; do
        bench wiremock "$c" --fixed -d "$DURATION" --warmup "$WIREMOCK_WARMUP"
    done
    stop_server
fi

# ---------------------------------------------------------------- report
"$BIN" bench report "$JSONL" --results-dir "$RESULTS"
