"""Accounts, limits and metering through the official Python SDK (issue 5): account
statuses and their codes, the 20 requests/s limit with StandardRetryer, temporary
credentials, and `cardcheck usage --format csv` agreeing with what clients received.

One server of its own (its accounts keep the default limits, unlike the shared
`compat` account of conftest.py).
"""

import csv
import io
import itertools
import json
import time

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.retry import StandardRetryer
from tencentcloud.faceid.v20180301 import faceid_client, models

from cardcheck_server import CompatError, run_admin, start_server

PASS_CARD = "6225768888888888"
MISMATCH_CARD = "6226090210146748"
CREDENTIAL_CACHE_S = 2.2  # the server trusts a loaded credential for 2 s


def admin(srv, *args):
    out = run_admin(list(args), srv.data_dir)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout.decode()


def new_account(srv, name, *settings):
    created = json.loads(admin(srv, "account", "create", name, "--json"))
    if settings:
        admin(srv, "account", "set", name, *settings)
    return created


def client(srv, secret_id, secret_key, token=None, retryer=None):
    http = HttpProfile(protocol="http", endpoint=srv.host, reqTimeout=30)
    profile = ClientProfile(httpProfile=http, language="en-US", retryer=retryer)
    cred = credential.Credential(secret_id, secret_key, token)
    return faceid_client.FaceidClient(cred, "ap-guangzhou", profile)


# Distinct requests: every case variant of the name is the same holder after
# normalisation but a different signed request (no replay), in any one second.
NAMES = ("".join(v) for v in itertools.cycle(
    itertools.product(*[(c.lower(), c.upper()) if c != " " else (" ", "  ") for c in "Wei Xiaobao"])))


def verify(c, card=PASS_CARD, name=None):
    req = models.BankCard2EVerificationRequest()
    req.Name = name or next(NAMES)
    req.BankCard = card
    return c.BankCard2EVerification(req)


def usage_rows(srv, account):
    text = admin(srv, "usage", "--account", account, "--format", "csv")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    try:
        s = start_server(tmp_path_factory.mktemp("accounts-data"))
    except CompatError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    yield s
    s.stop()


def test_each_account_status_has_its_error_code(srv):
    acct = new_account(srv, "standing", "--daily-attempts", "0")
    c = client(srv, acct["secret_id"], acct["secret_key"])
    assert verify(c).Result == "0"
    for status, code in [("arrears", "UnauthorizedOperation.Arrears"),
                         ("nonactivated", "UnauthorizedOperation.Nonactivated"),
                         ("unverified", "UnauthorizedOperation.NonAuthorize"),
                         ("charge-exception", "UnauthorizedOperation.ChargeStatusException")]:
        admin(srv, "account", "set", "standing", "--status", status)
        time.sleep(CREDENTIAL_CACHE_S)
        with pytest.raises(TencentCloudSDKException) as err:
            verify(c)
        assert err.value.code == code
    admin(srv, "account", "set", "standing", "--status", "active")
    time.sleep(CREDENTIAL_CACHE_S)
    assert verify(c).Result == "0"


def test_rate_limit_holds_over_ten_seconds_and_spares_other_accounts(srv):
    busy = new_account(srv, "busy", "--daily-attempts", "0")
    calm = new_account(srv, "calm", "--daily-attempts", "0")
    c = client(srv, busy["secret_id"], busy["secret_key"])
    answered, limited, first_second = 0, 0, None
    start = time.monotonic()
    while time.monotonic() - start < 10.0:
        try:
            verify(c)
            answered += 1
        except TencentCloudSDKException as e:
            assert e.code == "RequestLimitExceeded", e
            limited += 1
        if first_second is None and time.monotonic() - start >= 1.0:
            first_second = answered
    assert limited > 0, "the test did not overload the account"
    # Burst 20 plus one second's refill in the first second; 20/s after.
    assert first_second <= 40, first_second
    assert answered <= 20 * 10 + 20 + 20, answered
    assert verify(client(srv, calm["secret_id"], calm["secret_key"])).Result == "0"
    rows = usage_rows(srv, "busy")
    assert sum(int(r["count"]) for r in rows) == answered
    assert all(r["billed"] == "true" for r in rows)  # Result 0 only


class ResettingRetryer(StandardRetryer):
    """StandardRetryer with one fix. In SDK 3.1.195 `StandardRetryer.send_request` sets
    `err = None` once, before its loop: after one RequestLimitExceeded, a later attempt
    that gets a Result is still "retried" and the call finally raises the stale error.
    This subclass clears `err` per attempt and changes nothing else."""

    def send_request(self, fn):
        err = None
        for n in range(self._max_attempts):
            resp, err = None, None
            try:
                resp = fn()
            except TencentCloudSDKException as e:
                err = e
            if not self.should_retry(resp, err):
                if err:
                    raise err
                return resp
            time.sleep(self._backoff_fn(n))
        raise err


def saturate(srv, name):
    acct = new_account(srv, name, "--daily-attempts", "0", "--qps", "2")
    c = client(srv, acct["secret_id"], acct["secret_key"])
    answered = 0
    for _ in range(10):
        try:
            verify(c)
            answered += 1
        except TencentCloudSDKException as e:
            assert e.code == "RequestLimitExceeded"
    assert answered < 10, "not saturated"
    assert sum(int(r["count"]) for r in usage_rows(srv, name)) == answered
    return acct, answered


def test_a_retrying_client_on_a_saturated_account_ends_with_a_result_billed_once(srv):
    # The SDK's own StandardRetryer cannot pass this (its stale-error bug, above): it
    # raises RequestLimitExceeded even after the server answered, and keeps resending.
    acct, before = saturate(srv, "retrying")
    patient = client(srv, acct["secret_id"], acct["secret_key"],
                     retryer=ResettingRetryer(max_attempts=8, backoff_fn=lambda n: 0.3))
    assert verify(patient, card=MISMATCH_CARD, name="Wei Xiaobao").Result == "-4"
    after = sum(int(r["count"]) for r in usage_rows(srv, "retrying"))
    assert after == before + 1


def test_temporary_credentials_work_until_they_expire(srv):
    new_account(srv, "temporary", "--daily-attempts", "0")
    token = json.loads(admin(srv, "key", "token", "temporary", "--ttl", "4s", "--json"))
    for field in ("secret_id", "secret_key", "token", "expires_at"):
        assert token.get(field), token
    c = client(srv, token["secret_id"], token["secret_key"], token["token"])
    assert verify(c).Result == "0"
    without = client(srv, token["secret_id"], token["secret_key"])
    with pytest.raises(TencentCloudSDKException) as err:
        verify(without)
    assert err.value.code == "AuthFailure.TokenFailure"
    time.sleep(max(0.0, token["expires_at"] - time.time()) + 1.0)
    with pytest.raises(TencentCloudSDKException) as err:
        verify(c)
    assert err.value.code == "AuthFailure.TokenFailure"


def test_usage_csv_totals_equal_the_billed_results_received(srv):
    acct = new_account(srv, "meter", "--daily-attempts", "0")
    c = client(srv, acct["secret_id"], acct["secret_key"])
    received = [verify(c).Result for _ in range(3)]
    received += [verify(c, card=MISMATCH_CARD).Result for _ in range(2)]
    received += [verify(c, card="12-34").Result]
    assert received == ["0", "0", "0", "-4", "-4", "-3"]
    rows = usage_rows(srv, "meter")
    billed = sum(int(r["count"]) for r in rows if r["billed"] == "true")
    free = sum(int(r["count"]) for r in rows if r["billed"] == "false")
    assert (billed, free) == (5, 1)
