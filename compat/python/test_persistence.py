"""Restart and at-rest secrecy, driven by the official Python SDK (issue 4, "Done when"):

* a restart on the same data directory keeps the account and its credentials;
* no file in the data directory holds a card number that was verified or the
  SecretKey in plain text (binary-safe search of every file: database, -wal, -shm,
  key files).

Each test runs its own server on its own data directory (the session server of
test_sdk_python.py is not touched).
"""

import secrets

import pytest

from cardcheck_server import CompatError, create_account, files_containing, run_admin, running
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.faceid.v20180301 import faceid_client, models

NAME = "Wei Xiaobao"
PASS_CARD = "6225768888888888"
MISMATCH_CARD = "6226090210146748"
COMBOS = [
    ("TC3-HMAC-SHA256", "POST"),
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA1", "GET"),
    ("HmacSHA256", "POST"),
]


def verify(host, secret_id, secret_key, name, card, sign_method="TC3-HMAC-SHA256", req_method="POST"):
    http = HttpProfile(protocol="http", endpoint=host, reqMethod=req_method, reqTimeout=30)
    profile = ClientProfile(signMethod=sign_method, httpProfile=http, language="en-US")
    client = faceid_client.FaceidClient(credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)
    req = models.BankCard2EVerificationRequest()
    req.Name = name
    req.BankCard = card
    return client.BankCard2EVerification(req)


def assert_nothing_in_plain_text(data_dir, needles, when):
    hits = files_containing(data_dir, needles)
    assert not hits, "plain text found in the data directory %s: %s" % (
        when, ", ".join("%s contains %r" % (path, needle) for path, needle in hits))


def luhn_complete(prefix):
    """prefix + the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:  # these digits are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def test_restart_keeps_credentials_and_stores_no_secrets(tmp_path):
    data_dir = tmp_path / "data"
    try:
        account = create_account(data_dir)
        sid, skey = account["secret_id"], account["secret_key"]
        needles = [PASS_CARD, MISMATCH_CARD, skey]

        # First run: every sign method, a pass and a mismatch.
        with running(data_dir, account) as srv:
            for sign_method, req_method in COMBOS:
                assert verify(srv.host, sid, skey, NAME, PASS_CARD, sign_method, req_method).Result == "0"
                assert verify(srv.host, sid, skey, NAME, MISMATCH_CARD, sign_method, req_method).Result == "-4"
            assert_nothing_in_plain_text(data_dir, needles, "while the server runs")
        assert_nothing_in_plain_text(data_dir, needles, "after the server stopped")

        # Second run on the same directory: the same credentials still work.
        with running(data_dir, account) as srv:
            for sign_method, req_method in (COMBOS[0], COMBOS[2]):
                resp = verify(srv.host, sid, skey, NAME, PASS_CARD, sign_method, req_method)
                assert resp.Result == "0", "after a restart: %s" % resp.to_json_string()
            assert verify(srv.host, sid, skey, NAME, MISMATCH_CARD).Result == "-4"
        assert_nothing_in_plain_text(data_dir, needles, "after the restart")
    except CompatError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None


def test_registry_card_not_in_plain_text(tmp_path):
    """A card imported into the registry (issue 6's `registry import`) is stored only hashed.

    Skipped while the binary has no `registry import` subcommand (usage error, exit 2).
    """
    data_dir = tmp_path / "data"
    # CCB debit BIN 621700, 19 digits, valid Luhn, outside the sandbox catalogue's
    # 6217000000000000NNC range.
    card = luhn_complete("6217009" + "".join(secrets.choice("0123456789") for _ in range(11)))
    name = "Han Meimei"
    csv_path = tmp_path / "registry.csv"
    csv_path.write_text("name,card,status\n%s,%s,active\n" % (name, card), encoding="utf-8")
    try:
        account = create_account(data_dir)
        sid, skey = account["secret_id"], account["secret_key"]
        imported = run_admin(["registry", "import", str(csv_path)], data_dir)
        if imported.returncode == 2:
            pytest.skip("`cardcheck registry import` not available yet (usage error): %s"
                        % imported.stderr.decode("utf-8", "replace").strip().splitlines()[0][:200])
        assert imported.returncode == 0, "`cardcheck registry import` exited %d: %r" % (
            imported.returncode, imported.stderr)
        needles = [card, skey]
        assert_nothing_in_plain_text(data_dir, needles, "after `registry import`")

        # --no-demo: the registry is the only source (no sandbox catalogue in front of it)
        with running(data_dir, account, demo=False) as srv:
            assert verify(srv.host, sid, skey, name, card).Result == "0"
            assert verify(srv.host, sid, skey, "Li Lei", card).Result == "-4"
        assert_nothing_in_plain_text(data_dir, needles, "after verifying the registry card")
    except CompatError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
