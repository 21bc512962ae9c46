#!/usr/bin/env bash
# Installs the official Tencent Cloud SDKs used by the compat tests into
# project-local folders:
#   compat/.venv          Python venv with compat/requirements.txt
#   compat/.venv-tccli    Python venv with compat/requirements-tccli.txt (tccli, which
#                         needs the whole Tencent Cloud Python SDK: ~650 MB, ~1 min)
#   compat/node_modules   npm ci from compat/package-lock.json
# Idempotent: each step writes a stamp file holding a hash of its inputs and is
# skipped when the stamp matches, so a second run is a fast no-op.
set -euo pipefail

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$COMPAT_DIR"

PYTHON="${PYTHON:-python3}"
VENV="$COMPAT_DIR/.venv"
PY_STAMP="$VENV/.cardcheck-install-stamp"
TCCLI_VENV="$COMPAT_DIR/.venv-tccli"
TCCLI_STAMP="$TCCLI_VENV/.cardcheck-install-stamp"
NODE_STAMP="$COMPAT_DIR/node_modules/.cardcheck-install-stamp"

mkdir -p "$COMPAT_DIR/.cache"

# Serialise concurrent installs (two test runs started at once).
exec 9>"$COMPAT_DIR/.cache/install.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

hash_of() {
    # hash of the given files' contents plus extra strings (tool versions)
    { for f in "$@"; do
          if [ -f "$f" ]; then cat "$f"; else printf '%s\n' "$f"; fi
      done; } | sha256sum | cut -d' ' -f1
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- Python SDK
py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
py_hash="$(hash_of requirements.txt "python=$py_version")"
if [ -f "$PY_STAMP" ] && [ "$(cat "$PY_STAMP")" = "$py_hash" ] && "$VENV/bin/python" -c '' 2>/dev/null; then
    echo "install.sh: python venv up to date ($VENV)"
else
    t0=$(now_ms)
    echo "install.sh: creating python venv in $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r requirements.txt
    "$VENV/bin/python" -c 'from tencentcloud.faceid.v20180301 import faceid_client, models; from tencentcloud.common.common_client import CommonClient'
    printf '%s' "$py_hash" > "$PY_STAMP"
    echo "install.sh: python venv ready in $(( $(now_ms) - t0 ))ms"
fi

# ------------------------------------------------------------------- tccli
tccli_hash="$(hash_of requirements-tccli.txt "python=$py_version")"
if [ -f "$TCCLI_STAMP" ] && [ "$(cat "$TCCLI_STAMP")" = "$tccli_hash" ] && "$TCCLI_VENV/bin/python" -c '' 2>/dev/null; then
    echo "install.sh: tccli venv up to date ($TCCLI_VENV)"
else
    t0=$(now_ms)
    echo "install.sh: creating tccli venv in $TCCLI_VENV"
    rm -rf "$TCCLI_VENV"
    "$PYTHON" -m venv "$TCCLI_VENV"
    "$TCCLI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r requirements-tccli.txt
    "$TCCLI_VENV/bin/python" -c 'import certifi, tccli.main, tencentcloud.faceid.v20180301.faceid_client'
    # The TLS test appends its CA to this venv's certifi bundle (tccli passes
    # verify=<certifi path>); keep the pristine bundle to start from each time.
    bundle="$("$TCCLI_VENV/bin/python" -c 'import certifi; print(certifi.where())')"
    cp "$bundle" "$bundle.cardcheck-orig"
    printf '%s' "$tccli_hash" > "$TCCLI_STAMP"
    echo "install.sh: tccli venv ready in $(( $(now_ms) - t0 ))ms"
fi

# ------------------------------------------------------------------ Node SDK
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: node and npm are required (apt-get install nodejs npm)" >&2
    exit 1
fi
lockfile=package-lock.json
[ -f "$lockfile" ] || lockfile=package.json
node_hash="$(hash_of package.json "$lockfile" "node=$(node --version)")"
if [ -f "$NODE_STAMP" ] && [ "$(cat "$NODE_STAMP")" = "$node_hash" ]; then
    echo "install.sh: node_modules up to date ($COMPAT_DIR/node_modules)"
else
    t0=$(now_ms)
    echo "install.sh: installing node_modules in $COMPAT_DIR/node_modules"
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
    node -e 'require("tencentcloud-sdk-nodejs/tencentcloud/services/faceid"); require("tencentcloud-sdk-nodejs/tencentcloud/common/common_client")'
    # hash again: npm install may have written the lockfile
    lockfile=package-lock.json
    [ -f "$lockfile" ] || lockfile=package.json
    printf '%s' "$(hash_of package.json "$lockfile" "node=$(node --version)")" > "$NODE_STAMP"
    echo "install.sh: node_modules ready in $(( $(now_ms) - t0 ))ms"
fi
