#!/usr/bin/env bash
# The project's test command (README "Test"): everything CI checks, in one run.
#
#   scripts/test.sh            services, fmt, clippy, build, tests, compat
#   scripts/test.sh --quick    ... without compat (the official SDKs)
#   scripts/test.sh --no-lint  ... without fmt and clippy
#   scripts/test.sh --cargo-test   use `cargo test` even when cargo-nextest is installed
#
# Stages:
#   services  PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379)
#             are checked and started when absent; exports CARDCHECK_TEST_DATABASE_URL,
#             CARDCHECK_TEST_REDIS_URL and, when CI=true, CARDCHECK_REQUIRE_SERVICES=1
#             (tests that need a service then fail instead of skipping).
#   fmt       cargo fmt --all --check
#   clippy    cargo clippy --workspace --all-targets -- -D warnings
#   build     cargo build -p cardcheck (debug)
#   tests     cargo nextest run --workspace (+ doc tests), or cargo test --workspace
#             when cargo-nextest is not installed
#   compat    compat/run.sh: the official Python and Node SDKs against the built binary
#             (not run, and counted as failed, when the build failed: it would test a
#             stale binary)
#
# Every stage runs even when an earlier one failed; the summary at the end gives each
# stage's status and time, and the exit status is 1 when any stage failed (2 for a
# usage error). Stage logs are kept in <target-dir>/test-sh/.
set -uo pipefail

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

QUICK=0
LINT=1
USE_NEXTEST=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-lint) LINT=0 ;;
        --cargo-test) USE_NEXTEST=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "scripts/test.sh: unknown option: $arg (try --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

CI="${CI:-}"
in_ci() { [ "$CI" = true ] || [ "$CI" = 1 ]; }

if [ -z "${CARGO_TERM_COLOR:-}" ]; then
    if [ -t 1 ] && ! in_ci; then export CARGO_TERM_COLOR=always; else export CARGO_TERM_COLOR=never; fi
fi
if in_ci; then
    # a clean checkout is built once: incremental artefacts only cost time and disk
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

now_ms() { date +%s%3N; }
fmt_ms() { awk -v ms="$1" 'BEGIN { s = ms / 1000; if (s < 60) printf "%.1fs", s; else printf "%dm%04.1fs", int(s / 60), s - 60 * int(s / 60) }'; }
strip_ansi() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# Where cargo puts its output (honours CARGO_TARGET_DIR and .cargo/config.toml).
TARGET_DIR="$(cargo metadata --no-deps --format-version 1 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null)"
[ -n "$TARGET_DIR" ] || TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
LOG_DIR="$TARGET_DIR/test-sh"
mkdir -p "$LOG_DIR"

STAGES=()      # names, in order
declare -A STATUS=() TIME=() NOTE=()
PASSED=0 FAILED=0 SKIPPED=0   # test counts from the runners' closing lines
T_START=$(now_ms)

header() {
    printf '\n==============================================================================\n'
    printf '== %s\n' "$*"
    printf '==============================================================================\n'
}

# run_stage NAME DESCRIPTION FUNCTION [ARGS...]: runs FUNCTION in this shell (so it
# can export variables), its output shown and copied to $LOG_DIR/NAME.log.
run_stage() {
    local name="$1" desc="$2"
    shift 2
    STAGES+=("$name")
    header "$name: $desc"
    local t0 rc
    t0=$(now_ms)
    "$@" > >(tee "$LOG_DIR/$name.log") 2>&1
    rc=$?
    wait $! 2>/dev/null # let tee finish writing before the log is read
    TIME[$name]=$(( $(now_ms) - t0 ))
    if [ "$rc" -eq 0 ]; then STATUS[$name]=ok; else STATUS[$name]="FAILED (exit $rc)"; fi
    echo "-- $name: ${STATUS[$name]} in $(fmt_ms "${TIME[$name]}")"
}

skip_stage() { # skip_stage NAME WHY [STATUS]
    STAGES+=("$1")
    STATUS[$1]="${3:-skipped}"
    TIME[$1]=0
    NOTE[$1]="$2"
}

# ------------------------------------------------------------------ services

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pg_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 2
    else
        tcp_open 127.0.0.1 5432
    fi
}

redis_ready() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
    else
        tcp_open 127.0.0.1 6379
    fi
}

wait_for() { # wait_for SECONDS CHECK: polls CHECK every 0.5 s
    local i
    for ((i = 0; i < $1 * 2; i++)); do
        "$2" && return 0
        sleep 0.5
    done
    "$2"
}

start_postgres() {
    local dir ver started=1
    command -v pg_ctlcluster >/dev/null 2>&1 || { echo "pg_ctlcluster not found: cannot start PostgreSQL"; return 1; }
    for dir in /etc/postgresql/*/; do
        [ -d "$dir" ] || continue
        ver=$(basename "$dir")
        echo "starting PostgreSQL $ver: pg_ctlcluster --skip-systemctl-redirect $ver main start"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start && started=0
    done
    [ "$started" -eq 0 ] || { echo "no PostgreSQL cluster found under /etc/postgresql"; return 1; }
    wait_for 30 pg_ready
}

start_redis() {
    command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found: cannot start Redis"; return 1; }
    local extra=()
    [ -d /var/lib/redis ] && extra+=(--dir /var/lib/redis)
    [ -d /var/log/redis ] && extra+=(--logfile /var/log/redis/ci.log)
    echo "starting Redis: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no ${extra[*]}"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no "${extra[@]}" || return 1
    wait_for 15 redis_ready
}

ensure_test_database() {
    command -v psql >/dev/null 2>&1 || return 0
    if [ "$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null)" = 1 ]; then
        return 0
    fi
    echo "creating database test"
    psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc 'CREATE DATABASE test'
}

stage_services() {
    local ok=0
    if [ -n "${CARDCHECK_TEST_DATABASE_URL:-}" ]; then
        echo "PostgreSQL: using CARDCHECK_TEST_DATABASE_URL from the environment"
    else
        if pg_ready; then
            echo "PostgreSQL: 127.0.0.1:5432 accepting connections"
        elif start_postgres; then
            echo "PostgreSQL: started, 127.0.0.1:5432 accepting connections"
        else
            echo "PostgreSQL: NOT reachable on 127.0.0.1:5432"
            ok=1
        fi
        if [ "$ok" -eq 0 ] && ! ensure_test_database; then
            echo "PostgreSQL: database test is missing and could not be created"
            ok=1
        fi
        export CARDCHECK_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
    fi
    if [ -n "${CARDCHECK_TEST_REDIS_URL:-}" ]; then
        echo "Redis: using CARDCHECK_TEST_REDIS_URL from the environment"
    else
        if redis_ready; then
            echo "Redis: 127.0.0.1:6379 answers PING"
        elif start_redis; then
            echo "Redis: started, 127.0.0.1:6379 answers PING"
        else
            echo "Redis: NOT reachable on 127.0.0.1:6379"
            ok=1
        fi
        export CARDCHECK_TEST_REDIS_URL=redis://127.0.0.1:6379/
    fi
    echo "CARDCHECK_TEST_DATABASE_URL=$CARDCHECK_TEST_DATABASE_URL"
    echo "CARDCHECK_TEST_REDIS_URL=$CARDCHECK_TEST_REDIS_URL"
    if in_ci; then
        export CARDCHECK_REQUIRE_SERVICES=1
        echo "CARDCHECK_REQUIRE_SERVICES=1 (CI: tests needing a service fail when it is unreachable)"
        return "$ok"
    fi
    if [ "$ok" -ne 0 ]; then
        echo "warning: tests that need PostgreSQL or Redis will be skipped (set CI=true to make them fail)"
    fi
    return 0
}

# ------------------------------------------------------------------ cargo stages

stage_fmt() {
    local color=never
    [ "$CARGO_TERM_COLOR" = always ] && color=always
    cargo fmt --all --check -- --color "$color"
}
stage_clippy() { cargo clippy --workspace --all-targets -- -D warnings; }
stage_build() { cargo build -p cardcheck; }

HAVE_NEXTEST=0
if [ "$USE_NEXTEST" -eq 1 ] && cargo nextest --version >/dev/null 2>&1; then HAVE_NEXTEST=1; fi

stage_tests() {
    local rc=0
    if [ "$HAVE_NEXTEST" -eq 1 ]; then
        local profile=()
        in_ci && profile=(--profile ci)
        cargo nextest run --workspace "${profile[@]}" --no-tests=warn || rc=$?
        echo "-- doc tests: cargo test --workspace --doc"
        cargo test --workspace --doc || { local d=$?; [ "$rc" -ne 0 ] || rc=$d; }
    else
        [ "$USE_NEXTEST" -eq 0 ] || echo "cargo-nextest is not installed: using cargo test"
        cargo test --workspace --no-fail-fast || rc=$?
    fi
    return "$rc"
}

stage_compat() {
    CARDCHECK_BIN="$TARGET_DIR/debug/cardcheck" compat/run.sh
}

# Adds the counts of a stage's closing lines to PASSED / FAILED / SKIPPED.
count_tests() { # count_tests STAGE
    local log="$LOG_DIR/$1.log" counts
    [ -f "$log" ] || return 0
    counts=$(strip_ansi <"$log" | python3 -c '
import re, sys
text = sys.stdin.read()
p = f = s = 0
def n(word, line):
    m = re.search(r"(\d+) " + word, line)
    return int(m.group(1)) if m else 0
for line in text.splitlines():
    if re.match(r"^\s*Summary \[", line):                       # nextest
        p += n("passed", line); s += n("skipped", line)
        f += n("failed", line) + n("timed out", line) + n("exec failed", line)
    elif line.startswith("test result: "):                     # cargo test / doc tests
        p += n("passed", line); f += n("failed", line); s += n("ignored", line)
    elif re.match(r"^compat: \d+ passed, \d+ failed", line):   # compat/run.sh
        p += n("passed", line); f += n("failed", line); s += n("skipped", line)
print(p, f, s)
' 2>/dev/null) || return 0
    local p f s
    read -r p f s <<<"$counts"
    PASSED=$((PASSED + ${p:-0})) FAILED=$((FAILED + ${f:-0})) SKIPPED=$((SKIPPED + ${s:-0}))
    NOTE[$1]="${p:-0} passed, ${f:-0} failed, ${s:-0} skipped"
    [ $((${p:-0} + ${f:-0} + ${s:-0})) -gt 0 ] || NOTE[$1]="no test ran"
    # a failed stage that reported no failing test (build error, crash) still counts once
    if [ "${STATUS[$1]}" != ok ] && [ "${f:-0}" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
}

# ------------------------------------------------------------------ run

header "cardcheck tests: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(nproc 2>/dev/null || echo '?') cores; CI=${CI:-unset}"
echo "root: $ROOT"
echo "target dir: $TARGET_DIR (logs in $LOG_DIR)"
echo "$(rustc -V 2>/dev/null); $(cargo -V 2>/dev/null); test runner: $([ "$HAVE_NEXTEST" -eq 1 ] && cargo nextest --version 2>/dev/null | head -n1 || echo 'cargo test')"

run_stage services "PostgreSQL and Redis for the store tests" stage_services
if [ "$LINT" -eq 1 ]; then
    run_stage fmt "cargo fmt --all --check" stage_fmt
    run_stage clippy "cargo clippy --workspace --all-targets -- -D warnings" stage_clippy
else
    skip_stage fmt "--no-lint"
    skip_stage clippy "--no-lint"
fi
run_stage build "cargo build -p cardcheck" stage_build
if [ "$HAVE_NEXTEST" -eq 1 ]; then
    run_stage tests "cargo nextest run --workspace (+ doc tests)" stage_tests
else
    run_stage tests "cargo test --workspace" stage_tests
fi
count_tests tests
if [ "$QUICK" -ne 0 ]; then
    skip_stage compat "--quick"
elif [ "${STATUS[build]}" != ok ]; then
    header "compat: not run"
    echo "the build failed: compat would test a stale binary or none"
    skip_stage compat "not run: the build failed" "FAILED (not run)"
    FAILED=$((FAILED + 1))
else
    run_stage compat "compat/run.sh: official Python and Node SDKs against $TARGET_DIR/debug/cardcheck" stage_compat
    count_tests compat
fi

# ------------------------------------------------------------------ summary

header "summary"
failed_stages=()
for name in "${STAGES[@]}"; do
    printf '  %-9s %-18s %9s  %s\n' "$name" "${STATUS[$name]}" "$(fmt_ms "${TIME[$name]}")" "${NOTE[$name]:-}"
    case "${STATUS[$name]}" in ok | skipped) ;; *) failed_stages+=("$name") ;; esac
done
printf '  %-9s %-18s %9s\n' total "" "$(fmt_ms $(($(now_ms) - T_START)))"
if [ "${#failed_stages[@]}" -eq 0 ]; then
    echo "scripts/test.sh: all stages passed"
else
    echo "scripts/test.sh: FAILED stages: ${failed_stages[*]} (logs in $LOG_DIR)"
fi
# the closing line, in the plain form CI reads
echo "tests: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "${#failed_stages[@]}" -eq 0 ]
