"""The official Tencent Cloud Python SDK (tencentcloud-sdk-python-common 3.1.195 +
tencentcloud-sdk-python-faceid 3.1.179) against a real cardcheck server.

Only the endpoint differs from a call to Tencent Cloud: plain http on 127.0.0.1:PORT.
"""

import re
import secrets
import string
import time
import types

import pytest

import tencentcloud.common.abstract_client as sdk_abstract_client
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.faceid.v20180301 import faceid_client, models

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CJK_RE = re.compile(r"[\u3400-\u9fff]")

NAME = "Wei Xiaobao"
PASS_CARD = "6225768888888888"
MISMATCH_CARD = "6226090210146748"

# (signMethod, reqMethod): the four wire forms of the acceptance criteria
COMBOS = [
    ("TC3-HMAC-SHA256", "POST"),
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA1", "GET"),
    ("HmacSHA256", "POST"),
]
COMBO_IDS = ["tc3-post", "tc3-get", "hmacsha1-get", "hmacsha256-post"]

# card -> (Result, zh-CN Description)
CARDS = {
    PASS_CARD: ("0", "认证通过"),
    MISMATCH_CARD: ("-4", "持卡人信息有误"),
}

# combos used for the authentication failures (one v3, one v1)
AUTH_COMBOS = [("TC3-HMAC-SHA256", "POST"), ("HmacSHA1", "GET")]
AUTH_COMBO_IDS = ["tc3-post", "hmacsha1-get"]


def make_profile(server, sign_method="TC3-HMAC-SHA256", req_method="POST", language="en-US"):
    http = HttpProfile(protocol="http", endpoint=server.host, reqMethod=req_method, reqTimeout=30)
    return ClientProfile(signMethod=sign_method, httpProfile=http, language=language)


def make_client(server, secret_id=None, secret_key=None, **profile_kw):
    cred = credential.Credential(secret_id or server.secret_id, secret_key or server.secret_key)
    return faceid_client.FaceidClient(cred, "ap-guangzhou", make_profile(server, **profile_kw))


def verify_request(name=NAME, card=PASS_CARD):
    req = models.BankCard2EVerificationRequest()
    if name is not None:
        req.Name = name
    if card is not None:
        req.BankCard = card
    return req


def assert_sdk_error(excinfo, code):
    exc = excinfo.value
    assert exc.code == code, "expected %s, got %s: %s" % (code, exc.code, exc.message)
    assert isinstance(exc.requestId, str) and UUID_RE.match(exc.requestId), \
        "error RequestId is not a lower-case UUID: %r" % (exc.requestId,)
    assert isinstance(exc.message, str) and exc.message.strip(), "empty error Message"
    return exc


def random_secret_id():
    alphabet = string.ascii_letters + string.digits
    return "AKID" + "".join(secrets.choice(alphabet) for _ in range(32))


# ----------------------------------------------------------------- success paths

@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
@pytest.mark.parametrize("card", [PASS_CARD, MISMATCH_CARD], ids=["pass", "mismatch"])
@pytest.mark.parametrize("sign_method,req_method", COMBOS, ids=COMBO_IDS)
def test_bankcard2e_verification(server, sign_method, req_method, card, language):
    client = make_client(server, sign_method=sign_method, req_method=req_method, language=language)
    resp = client.BankCard2EVerification(verify_request(card=card))

    assert isinstance(resp, models.BankCard2EVerificationResponse)
    expected_result, zh_description = CARDS[card]
    assert resp.Result == expected_result
    assert isinstance(resp.Description, str) and resp.Description.strip()
    if language == "zh-CN":
        assert resp.Description == zh_description
    else:
        assert resp.Description.isascii(), "en-US Description is not English: %r" % resp.Description
        assert not CJK_RE.search(resp.Description)
    assert isinstance(resp.RequestId, str) and UUID_RE.match(resp.RequestId), resp.RequestId


def test_request_ids_are_unique(server):
    # Three *different* requests. Identical TC3 requests signed in the same second are
    # byte-identical (TC3 has no nonce) and count as retries of one request, which get
    # the first answer back with its RequestId (verification.md §4; next test).
    requests = [
        (make_client(server), PASS_CARD),
        (make_client(server), MISMATCH_CARD),
        (make_client(server, sign_method="HmacSHA256"), PASS_CARD),
    ]
    ids = {client.BankCard2EVerification(verify_request(card=card)).RequestId for client, card in requests}
    assert len(ids) == 3, ids


def test_identical_request_is_a_retry(server, monkeypatch):
    # The same signed request twice (fixed timestamp, so the same TC3 signature): the
    # retry gets the first answer back, same Result and RequestId (verification.md §4).
    fixed = int(time.time())
    monkeypatch.setattr(sdk_abstract_client, "time", types.SimpleNamespace(time=lambda: fixed))
    client = make_client(server)
    first = client.BankCard2EVerification(verify_request(card=MISMATCH_CARD))
    again = client.BankCard2EVerification(verify_request(card=MISMATCH_CARD))
    assert (again.Result, again.RequestId) == (first.Result, first.RequestId) == ("-4", first.RequestId)


def test_call_json_generic_path(server):
    """Positive control for the InvalidAction / NoSuchVersion tests below."""
    client = make_client(server)
    resp = client.call_json("BankCard2EVerification", {"Name": NAME, "BankCard": PASS_CARD})
    assert resp["Response"]["Result"] == "0"
    assert UUID_RE.match(resp["Response"]["RequestId"])

    common = CommonClient("faceid", "2018-03-01", credential.Credential(server.secret_id, server.secret_key),
                          "ap-guangzhou", make_profile(server))
    resp = common.call_json("BankCard2EVerification", {"Name": NAME, "BankCard": MISMATCH_CARD})
    assert resp["Response"]["Result"] == "-4"
    assert UUID_RE.match(resp["Response"]["RequestId"])


# ----------------------------------------------------------------- error paths

@pytest.mark.parametrize("sign_method,req_method", AUTH_COMBOS, ids=AUTH_COMBO_IDS)
def test_wrong_secret_key(server, sign_method, req_method):
    wrong_key = server.secret_key[:-1] + ("A" if server.secret_key[-1] != "A" else "B")
    client = make_client(server, secret_key=wrong_key, sign_method=sign_method, req_method=req_method)
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.BankCard2EVerification(verify_request())
    assert_sdk_error(excinfo, "AuthFailure.SignatureFailure")


@pytest.mark.parametrize("sign_method,req_method", AUTH_COMBOS, ids=AUTH_COMBO_IDS)
def test_unknown_secret_id(server, sign_method, req_method):
    client = make_client(server, secret_id=random_secret_id(), sign_method=sign_method, req_method=req_method)
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.BankCard2EVerification(verify_request())
    assert_sdk_error(excinfo, "AuthFailure.SecretIdNotFound")


@pytest.mark.parametrize("sign_method,req_method", AUTH_COMBOS, ids=AUTH_COMBO_IDS)
def test_timestamp_ten_minutes_old(server, monkeypatch, sign_method, req_method):
    # The SDK stamps X-TC-Timestamp / Timestamp with int(time.time()) from the
    # `time` module imported in tencentcloud.common.abstract_client.
    real_time = time.time
    calls = []

    def old_time():
        calls.append(1)
        return real_time() - 600

    monkeypatch.setattr(sdk_abstract_client, "time", types.SimpleNamespace(time=old_time))
    client = make_client(server, sign_method=sign_method, req_method=req_method)
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.BankCard2EVerification(verify_request())
    assert calls, "the SDK did not read the patched clock"
    assert_sdk_error(excinfo, "AuthFailure.SignatureExpire")


@pytest.mark.parametrize("sign_method,req_method", [COMBOS[0], COMBOS[2]], ids=[COMBO_IDS[0], COMBO_IDS[2]])
def test_missing_name(server, sign_method, req_method):
    client = make_client(server, sign_method=sign_method, req_method=req_method)
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.BankCard2EVerification(verify_request(name=None))
    exc = assert_sdk_error(excinfo, "MissingParameter")
    assert "Name" in exc.message, exc.message


def test_unknown_action(server):
    client = make_client(server)
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.call_json("NoSuchAction", {"Name": NAME, "BankCard": PASS_CARD})
    assert_sdk_error(excinfo, "InvalidAction")


def test_unknown_version(server):
    cred = credential.Credential(server.secret_id, server.secret_key)
    client = CommonClient("faceid", "2017-01-01", cred, "ap-guangzhou", make_profile(server))
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.call_json("BankCard2EVerification", {"Name": NAME, "BankCard": PASS_CARD})
    assert_sdk_error(excinfo, "NoSuchVersion")


@pytest.mark.parametrize("language", ["zh-CN", "en-US"])
def test_error_message_language(server, language):
    wrong_key = server.secret_key[:-1] + ("A" if server.secret_key[-1] != "A" else "B")
    client = make_client(server, secret_key=wrong_key, language=language)
    with pytest.raises(TencentCloudSDKException) as excinfo:
        client.BankCard2EVerification(verify_request())
    exc = assert_sdk_error(excinfo, "AuthFailure.SignatureFailure")
    if language == "zh-CN":
        assert CJK_RE.search(exc.message), "zh-CN error Message is not Chinese: %r" % exc.message
    else:
        assert exc.message.isascii() and not CJK_RE.search(exc.message), \
            "en-US error Message is not English: %r" % exc.message
