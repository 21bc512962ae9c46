"""Session fixture: a real cardcheck server driven by the official Python SDK.

The server binary comes from $CARDCHECK_BIN (default: target/debug/cardcheck at
the repository root). It is never built here.
"""

import collections
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20
SHUTDOWN_TIMEOUT_S = 20
LISTEN_RE = re.compile(r"^listening on http://(127\.0\.0\.1:(\d+))\s*$")

# The SDKs honour HTTP(S)_PROXY; requests to the local server must go direct.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def server_binary():
    raw = os.environ.get("CARDCHECK_BIN") or "target/debug/cardcheck"
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


class Server:
    def __init__(self, proc, host, account, secret_id, secret_key, data_dir):
        self.proc = proc
        self.host = host  # "127.0.0.1:PORT"
        self.account = account
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.data_dir = data_dir
        self.stdout_tail = collections.deque(maxlen=200)
        self.stderr_tail = collections.deque(maxlen=200)

    def logs(self):
        return ("--- server stdout (tail) ---\n" + "".join(self.stdout_tail)
                + "--- server stderr (tail) ---\n" + "".join(self.stderr_tail))


def _drain(stream, sink, first_line=None):
    """Read a pipe to EOF so the server never blocks on a full pipe."""
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if first_line is not None:
                first_line.put(line)
                first_line = None
            sink.append(line)
    except (OSError, ValueError):
        pass
    finally:
        if first_line is not None:
            first_line.put(None)  # EOF before any line


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = server_binary()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            "server binary not found: %s (run `cargo build -p cardcheck` or set CARDCHECK_BIN)" % binary,
            pytrace=False)

    data_dir = tmp_path_factory.mktemp("cardcheck-data")
    created = subprocess.run(
        [str(binary), "account", "create", "compat", "--json", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if created.returncode != 0:
        pytest.fail("`cardcheck account create compat --json` exited %d\nstdout: %r\nstderr: %r"
                    % (created.returncode, created.stdout, created.stderr), pytrace=False)
    try:
        account = json.loads(created.stdout)
    except ValueError as exc:
        pytest.fail("`cardcheck account create --json` stdout is not one JSON document (%s): %r"
                    % (exc, created.stdout), pytrace=False)
    for key in ("account", "secret_id", "secret_key"):
        if not isinstance(account.get(key), str) or not account[key]:
            pytest.fail("`account create --json` output lacks string field %r: %r" % (key, account),
                        pytrace=False)

    proc = subprocess.Popen(
        [str(binary), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0", "--demo"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    srv = Server(proc, None, account["account"], account["secret_id"], account["secret_key"], data_dir)
    first = queue.Queue()
    threads = [
        threading.Thread(target=_drain, args=(proc.stdout, srv.stdout_tail, first), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, srv.stderr_tail), daemon=True),
    ]
    for t in threads:
        t.start()

    try:
        line = first.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
        line = "<no line within %ds>" % STARTUP_TIMEOUT_S
    match = LISTEN_RE.match(line or "")
    if not match:
        proc.kill()
        proc.wait(timeout=10)
        for t in threads:
            t.join(timeout=5)
        pytest.fail("`cardcheck serve` did not print `listening on http://127.0.0.1:PORT` as its first "
                    "stdout line within %ds; got %r (exit code %r)\n%s"
                    % (STARTUP_TIMEOUT_S, line, proc.returncode, srv.logs()), pytrace=False)
    srv.host = match.group(1)

    yield srv

    # Teardown: SIGTERM must make the server exit 0.
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail("server did not exit within %ds of SIGTERM\n%s" % (SHUTDOWN_TIMEOUT_S, srv.logs()),
                        pytrace=False)
    for t in threads:
        t.join(timeout=5)
    assert proc.returncode == 0, "server exited with %r after SIGTERM (expected 0)\n%s" % (
        proc.returncode, srv.logs())
