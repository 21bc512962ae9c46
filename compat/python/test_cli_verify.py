"""`cardcheck verify` (the project's own client) against the same server as the SDKs.

Issue 4 "Done when": it prints the same Results as the official SDKs, its requests are
accepted with every sign method and HTTP method, and against a closed port it prints
one clear line and exits 1 (docs/cli.md "Client").
"""

import json
import socket
import subprocess

import pytest

from cardcheck_server import ADMIN_TIMEOUT_S, server_binary

NAME = "Wei Xiaobao"
CARDS = {"6225768888888888": "0", "6226090210146748": "-4"}
SIGN_METHODS = ["TC3-HMAC-SHA256", "HmacSHA1", "HmacSHA256"]
HTTP_METHODS = ["POST", "GET"]


def run_verify(*args):
    return subprocess.run([str(server_binary()), "verify", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=ADMIN_TIMEOUT_S)


def credentials(server):
    return ["--endpoint", "http://" + server.host, "--secret-id", server.secret_id,
            "--secret-key", server.secret_key]


@pytest.mark.parametrize("http_method", HTTP_METHODS)
@pytest.mark.parametrize("sign_method", SIGN_METHODS)
@pytest.mark.parametrize("card", list(CARDS), ids=["pass", "mismatch"])
def test_verify_json_result(server, sign_method, http_method, card):
    out = run_verify(*credentials(server), "--name", NAME, "--card", card, "--sign-method", sign_method,
                     "--http-method", http_method, "--json")
    assert out.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (out.returncode, out.stdout, out.stderr)
    resp = json.loads(out.stdout)
    assert resp["Result"] == CARDS[card], resp
    assert resp["RequestId"], resp


@pytest.mark.parametrize("language,expect", [("zh-CN", "认证通过"), ("en-US", None)])
def test_verify_language(server, language, expect):
    out = run_verify(*credentials(server), "--name", NAME, "--card", "6225768888888888", "--language", language,
                     "--json")
    assert out.returncode == 0, out.stderr
    description = json.loads(out.stdout)["Description"]
    if expect:
        assert description == expect
    else:
        assert description.isascii() and description.strip(), description


def test_verify_api_error_exits_1(server):
    wrong = server.secret_key[:-1] + ("A" if server.secret_key[-1] != "A" else "B")
    out = run_verify("--endpoint", "http://" + server.host, "--secret-id", server.secret_id, "--secret-key", wrong,
                     "--name", NAME, "--card", "6225768888888888")
    assert out.returncode == 1, "exit %d\nstdout: %s\nstderr: %s" % (out.returncode, out.stdout, out.stderr)
    assert "AuthFailure.SignatureFailure" in out.stdout + out.stderr


def test_verify_closed_port_one_line_exit_1(server):
    with socket.socket() as s:  # a port that was free a moment ago, and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_verify("--endpoint", "http://127.0.0.1:%d" % port, "--secret-id", server.secret_id,
                     "--secret-key", server.secret_key, "--name", NAME, "--card", "6225768888888888")
    assert out.returncode == 1, "exit %d\nstdout: %s\nstderr: %s" % (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "expected one clear line on stderr, got: %r" % out.stderr
    assert "panick" not in out.stderr and "backtrace" not in out.stderr.lower(), out.stderr
