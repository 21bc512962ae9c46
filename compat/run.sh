#!/usr/bin/env bash
# Runs the SDK compatibility tests: the official Tencent Cloud Python and Node.js
# SDKs against a cardcheck server spawned from $CARDCHECK_BIN.
#
#   cargo build -p cardcheck && compat/run.sh
#
# Env:
#   CARDCHECK_BIN   server binary (default: target/debug/cardcheck at the repo root).
#                   Never built here.
#   COMPAT_ONLY     "python" or "node" to run one suite only.
# Exit status: 0 when every suite passed, 1 otherwise.
set -uo pipefail

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_DIR/.." && pwd)"
cd "$REPO_ROOT" || exit 1

"$COMPAT_DIR/install.sh" || { echo "compat: install.sh failed" >&2; exit 1; }

bin="${CARDCHECK_BIN:-target/debug/cardcheck}"
case "$bin" in /*) ;; *) bin="$REPO_ROOT/$bin" ;; esac
export CARDCHECK_BIN="$bin"
if [ ! -x "$CARDCHECK_BIN" ]; then
    echo "compat: server binary not found: $CARDCHECK_BIN (run \`cargo build -p cardcheck\` or set CARDCHECK_BIN); the tests will fail" >&2
fi

# talk to 127.0.0.1 directly, never through a proxy
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

results="$COMPAT_DIR/.cache/results"
rm -rf "$results"
mkdir -p "$results"
only="${COMPAT_ONLY:-}"

py_rc=0
if [ -z "$only" ] || [ "$only" = python ]; then
    echo "== compat: Python SDK (pytest compat/python)"
    "$COMPAT_DIR/.venv/bin/python" -m pytest "$COMPAT_DIR/python" -q -rfE \
        --junitxml="$results/pytest.xml"
    py_rc=$?
fi

node_rc=0
if [ -z "$only" ] || [ "$only" = node ]; then
    echo "== compat: Node.js SDK (node --test compat/node/)"
    node --test \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$results/node.tap" \
        "$COMPAT_DIR"/node/*.test.mjs
    node_rc=$?
fi

# One combined closing line: "compat: N passed, N failed[, N skipped]".
"$COMPAT_DIR/.venv/bin/python" - "$results" "$py_rc" "$node_rc" <<'PY'
import os, re, sys
import xml.etree.ElementTree as ET
results, py_rc, node_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
passed = failed = skipped = 0
lines = []
xml = os.path.join(results, "pytest.xml")
if os.path.exists(xml):
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    t = sum(int(s.get("tests", 0)) for s in suites)
    f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    s_ = sum(int(s.get("skipped", 0)) for s in suites)
    # errors in fixture teardown are extra entries: never count passes below 0
    p = max(t - s_ - f, 0)
    if py_rc != 0 and f == 0:
        f = 1  # a failure pytest did not attribute to a test (collection, usage)
    lines.append("python: %d passed, %d failed, %d skipped (pytest exit %d)" % (p, f, s_, py_rc))
    passed, failed, skipped = passed + p, failed + f, skipped + s_
elif py_rc != 0:
    failed += 1
    lines.append("python: pytest exit %d, no results" % py_rc)
tap = os.path.join(results, "node.tap")
if os.path.exists(tap):
    text = open(tap, encoding="utf-8", errors="replace").read()
    def count(key):
        m = re.findall(r"^# %s (\d+)$" % key, text, re.M)
        return int(m[-1]) if m else 0
    p, f = count("pass"), count("fail") + count("cancelled")
    s_ = count("skipped") + count("todo")
    if node_rc != 0 and f == 0:
        f = 1  # e.g. a failing after() hook (server did not exit 0 on SIGTERM)
    lines.append("node: %d passed, %d failed, %d skipped (node --test exit %d)" % (p, f, s_, node_rc))
    passed, failed, skipped = passed + p, failed + f, skipped + s_
elif node_rc != 0:
    failed += 1
    lines.append("node: node --test exit %d, no results" % node_rc)
print("== compat summary")
for l in lines:
    print("   " + l)
print("compat: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
PY

if [ "$py_rc" -ne 0 ] || [ "$node_rc" -ne 0 ]; then
    exit 1
fi
exit 0
