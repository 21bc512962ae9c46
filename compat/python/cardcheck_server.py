"""Starting and stopping a real `cardcheck serve` process for the compat tests.

The command-line contract used here (docs/cli.md):

* `cardcheck account create NAME --json --data-dir DIR` prints one JSON document
  with at least `account`, `secret_id`, `secret_key`;
* `cardcheck serve --data-dir DIR --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --demo`
  prints `listening on http://127.0.0.1:PORT` as its first stdout line;
* SIGTERM makes the server exit with status 0.

The binary comes from $CARDCHECK_BIN (default: target/debug/cardcheck at the
repository root). It is never built here.
"""

import collections
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Seconds to wait for the `listening on` line / for the exit after SIGTERM /
# for an admin command. Overridable for slow machines.
STARTUP_TIMEOUT_S = float(os.environ.get("COMPAT_START_TIMEOUT", "10"))
SHUTDOWN_TIMEOUT_S = float(os.environ.get("COMPAT_STOP_TIMEOUT", "10"))
ADMIN_TIMEOUT_S = float(os.environ.get("COMPAT_ADMIN_TIMEOUT", "30"))
LISTEN_RE = re.compile(r"^listening on (https?)://(127\.0\.0\.1:(\d+))\s*$")
ADMIN_RE = re.compile(r"^admin on http://(127\.0\.0\.1:\d+)\b")


class CompatError(Exception):
    """A contract violation by the binary; the message says exactly what went wrong."""


def server_binary():
    raw = os.environ.get("CARDCHECK_BIN") or "target/debug/cardcheck"
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file() or not os.access(path, os.X_OK):
        raise CompatError("server binary not found: %s (run `cargo build -p cardcheck` or set CARDCHECK_BIN)"
                          % path)
    return path


def run_admin(args, data_dir):
    """Runs `cardcheck ARGS --data-dir DIR`; returns the CompletedProcess (never raises on exit status)."""
    binary = server_binary()
    try:
        return subprocess.run([str(binary), *args, "--data-dir", str(data_dir)],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=ADMIN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CompatError("`cardcheck %s` did not finish within %gs" % (" ".join(args), ADMIN_TIMEOUT_S)) from None


def create_account(data_dir, name="compat"):
    """`cardcheck account create NAME --json`: returns the parsed JSON document."""
    created = run_admin(["account", "create", name, "--json"], data_dir)
    if created.returncode != 0:
        raise CompatError("`cardcheck account create %s --json` exited %d\nstdout: %r\nstderr: %r"
                          % (name, created.returncode, created.stdout, created.stderr))
    try:
        account = json.loads(created.stdout)
    except ValueError as exc:
        raise CompatError("`cardcheck account create --json` stdout is not one JSON document (%s): %r"
                          % (exc, created.stdout)) from None
    if not isinstance(account, dict):
        raise CompatError("`cardcheck account create --json` did not print a JSON object: %r" % (account,))
    for key in ("account", "secret_id", "secret_key"):
        if not isinstance(account.get(key), str) or not account[key]:
            raise CompatError("`account create --json` output lacks string field %r: %r" % (key, account))
    lift_limits(data_dir, name)
    return account


# The suites send each doc card dozens of times a day from one account, quickly: lift
# the daily attempt limit (default 10 per card, then Result -17) and the rate limit
# (default 20/s, then RequestLimitExceeded) of the test account.
LIFT_LIMITS = ["--daily-attempts", "0", "--qps", "100000"]


def lift_limits(data_dir, name):
    """`cardcheck account set NAME --daily-attempts 0 --qps 100000`; a binary without
    `account set` (usage error, exit 2 with "unrecognized") is let through."""
    out = run_admin(["account", "set", name, *LIFT_LIMITS], data_dir)
    if out.returncode == 2 and b"unrecognized" in out.stderr:
        return
    if out.returncode != 0:
        raise CompatError("`cardcheck account set %s %s` exited %d\nstdout: %r\nstderr: %r"
                          % (name, " ".join(LIFT_LIMITS), out.returncode, out.stdout, out.stderr))


class Server:
    """A running `cardcheck serve`; `host` is "127.0.0.1:PORT"."""

    def __init__(self, proc, data_dir, account=None, secret_id=None, secret_key=None):
        self.proc = proc
        self.host = None
        self.scheme = None
        self.admin = None
        self.data_dir = data_dir
        self.account = account
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.stdout_tail = collections.deque(maxlen=200)
        self.stderr_tail = collections.deque(maxlen=200)
        self.threads = []

    def logs(self):
        return ("--- server stdout (tail) ---\n" + "".join(self.stdout_tail)
                + "--- server stderr (tail) ---\n" + "".join(self.stderr_tail))

    def stop(self):
        """SIGTERM; raises CompatError unless the server exits 0 within SHUTDOWN_TIMEOUT_S."""
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                self._join()
                raise CompatError("server did not exit within %gs of SIGTERM\n%s"
                                  % (SHUTDOWN_TIMEOUT_S, self.logs())) from None
        self._join()
        if proc.returncode != 0:
            raise CompatError("server exited with %r after SIGTERM (expected 0)\n%s"
                              % (proc.returncode, self.logs()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._join()

    def _join(self):
        for t in self.threads:
            t.join(timeout=5)


def _drain(stream, sink, first_lines=None, count=1):
    """Read a pipe to EOF so the server never blocks on a full pipe; the first
    COUNT lines also go to the FIRST_LINES queue."""
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if first_lines is not None and count > 0:
                first_lines.put(line)
                count -= 1
            sink.append(line)
    except (OSError, ValueError):
        pass
    finally:
        if first_lines is not None and count > 0:
            first_lines.put(None)  # EOF before the lines


def start_server(data_dir, account=None, demo=True, extra_args=()):
    """Spawns `cardcheck serve` on DATA_DIR and waits for its `listening on` line.

    `account` (the `account create --json` document) only labels the Server;
    `demo` chooses `--demo` (sandbox cards on) or `--no-demo`; `extra_args` are
    appended (e.g. `--tls-cert`/`--tls-key`, then the line says https://).
    """
    binary = server_binary()
    proc = subprocess.Popen(
        [str(binary), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0", "--demo" if demo else "--no-demo", *extra_args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    account = account or {}
    srv = Server(proc, data_dir, account.get("account"), account.get("secret_id"), account.get("secret_key"))
    first = queue.Queue()
    srv.threads = [
        threading.Thread(target=_drain, args=(proc.stdout, srv.stdout_tail, first, 2), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, srv.stderr_tail), daemon=True),
    ]
    for t in srv.threads:
        t.start()

    try:
        line = first.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
        line = "<no line within %gs>" % STARTUP_TIMEOUT_S
    match = LISTEN_RE.match(line or "")
    if not match:
        srv.kill()
        raise CompatError("`cardcheck serve` did not print `listening on http://127.0.0.1:PORT` as its first "
                          "stdout line within %gs; got %r (exit code %r)\n%s"
                          % (STARTUP_TIMEOUT_S, line, proc.returncode, srv.logs()))
    srv.scheme = match.group(1)
    srv.host = match.group(2)
    try:
        admin = ADMIN_RE.match(first.get(timeout=STARTUP_TIMEOUT_S) or "")
    except queue.Empty:
        admin = None
    srv.admin = admin.group(1) if admin else None
    return srv


def files_containing(data_dir, needles):
    """Every (relative path, needle) where a file under DATA_DIR contains NEEDLE's bytes.

    Binary-safe: reads raw bytes of every regular file (SQLite database, -wal, -shm,
    key files, logs), so plain text anywhere is found.
    """
    hits = []
    root = Path(data_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in needles:
            raw = needle.encode("utf-8") if isinstance(needle, str) else needle
            if raw and raw in data:
                hits.append((str(path.relative_to(root)), needle))
    return hits


@contextlib.contextmanager
def running(data_dir, account=None, demo=True, extra_args=()):
    """`with running(dir, account) as srv:` starts a server and stops it with SIGTERM
    (expecting exit 0) when the block ends normally; kills it when the block raised."""
    srv = start_server(data_dir, account, demo, extra_args)
    try:
        yield srv
    except BaseException:
        srv.kill()
        raise
    srv.stop()
