"""The Encryption parameter (issue 7) as a client builds it with the `cryptography` and
`gmssl` packages — the algorithm of Tencent's encryption helpers (protocol.md §7) — sent
with the official Python SDK: the same Result as the plaintext request, for AES-256-CBC
(RSA-wrapped data key) and SM4-GCM (SM2-wrapped), in TC3 JSON, TC3 GET and v1 form
encodings. The server's public keys come from `cardcheck key public`.
"""

import base64
import os
import subprocess

import pytest
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm2
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.faceid.v20180301 import faceid_client, models

from cardcheck_server import server_binary

NAME = "Wei Xiaobao"
CARDS = {"6225768888888888": "0", "6226090210146748": "-4"}
ENCODINGS = [("TC3-HMAC-SHA256", "POST"), ("TC3-HMAC-SHA256", "GET"), ("HmacSHA256", "POST")]
ENCODING_IDS = ["tc3-json", "tc3-get", "v1-form"]


def public_key(server, algorithm):
    out = subprocess.run(
        [server_binary(), "key", "public", "--algorithm", algorithm, "--data-dir", str(server.data_dir)],
        check=True, capture_output=True, timeout=30,
    )
    return out.stdout


def b64(data):
    return base64.b64encode(data).decode()


def encrypt_aes(pem, fields):
    key, iv = os.urandom(32), os.urandom(16)
    blob = serialization.load_pem_public_key(pem).encrypt(key, padding.PKCS1v15())
    out = {}
    for name, value in fields.items():
        padder = sympad.PKCS7(128).padder()
        data = padder.update(value.encode()) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        out[name] = b64(enc.update(data) + enc.finalize())
    return out, {"Algorithm": "AES-256-CBC", "CiphertextBlob": b64(blob), "Iv": b64(iv),
                 "EncryptList": list(fields)}


def encrypt_sm4(pem, fields):
    # `cryptography` has no SM2 curve: read the SubjectPublicKeyInfo DER by hand; it
    # ends with the uncompressed point 04 || x || y.
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    der = base64.b64decode(body)
    assert der[-65] == 4, "uncompressed SM2 point"
    point = der[-64:].hex()
    key, iv = os.urandom(16), os.urandom(12)
    blob = b"\x04" + sm2.CryptSM2(private_key="", public_key=point, mode=1).encrypt(key)
    out, tags = {}, []
    for name, value in fields.items():
        enc = Cipher(algorithms.SM4(key), modes.GCM(iv)).encryptor()
        out[name] = b64(enc.update(value.encode()) + enc.finalize())
        tags.append(b64(enc.tag))
    return out, {"Algorithm": "SM4-GCM", "CiphertextBlob": b64(blob), "Iv": b64(iv),
                 "EncryptList": list(fields), "TagList": tags}


def client(server, sign_method, req_method):
    http = HttpProfile(protocol="http", endpoint=server.host, reqMethod=req_method, reqTimeout=30)
    profile = ClientProfile(signMethod=sign_method, httpProfile=http, language="en-US")
    return faceid_client.FaceidClient(
        credential.Credential(server.secret_id, server.secret_key), "ap-guangzhou", profile)


def encrypted_request(fields, envelope):
    req = models.BankCard2EVerificationRequest()
    req._deserialize(dict(fields, Encryption=envelope))
    return req


@pytest.mark.parametrize("algorithm,key_algorithm,encrypt",
                         [("AES-256-CBC", "RSA", encrypt_aes), ("SM4-GCM", "SM2", encrypt_sm4)],
                         ids=["aes-256-cbc", "sm4-gcm"])
@pytest.mark.parametrize("sign_method,req_method", ENCODINGS, ids=ENCODING_IDS)
def test_encrypted_request_gets_the_plaintext_result(server, algorithm, key_algorithm, encrypt,
                                                     sign_method, req_method):
    pem = public_key(server, key_algorithm)
    c = client(server, sign_method, req_method)
    for card, expected in CARDS.items():
        fields, envelope = encrypt(pem, {"Name": NAME, "BankCard": card})
        assert fields["BankCard"] != card
        plain = models.BankCard2EVerificationRequest()
        plain.Name, plain.BankCard = NAME, card
        assert c.BankCard2EVerification(plain).Result == expected
        assert c.BankCard2EVerification(encrypted_request(fields, envelope)).Result == expected


def test_a_field_that_may_not_be_encrypted_is_refused(server):
    pem = public_key(server, "RSA")
    fields, envelope = encrypt_aes(pem, {"Name": NAME, "BankCard": "6225768888888888"})
    envelope["EncryptList"] = ["Name", "BankCard", "Region"]
    with pytest.raises(TencentCloudSDKException) as err:
        client(server, "TC3-HMAC-SHA256", "POST").BankCard2EVerification(
            encrypted_request(fields, envelope))
    assert err.value.code in ("InvalidParameter.UnsupportEncryptField", "MissingParameter")
