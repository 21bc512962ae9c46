"""TLS on the API listener, driven by tccli (issue 9, "Done when").

tccli speaks only HTTPS and verifies the server against its venv's certifi bundle
(it passes `verify=<certifi path>` to requests, so REQUESTS_CA_BUNDLE is ignored:
protocol.md §8 note 11). This test

* makes a throw-away CA and a server certificate for 127.0.0.1 (Python `cryptography`),
* appends the CA to compat/.venv-tccli's certifi bundle (restored afterwards),
* starts `cardcheck serve --tls-cert … --tls-key …` (first stdout line `https://…`),
* runs `tccli faceid BankCard2EVerification --Name 'Wei Xiaobao' --BankCard
  6225768888888888 … --endpoint 127.0.0.1:PORT` and expects Result "0",
* and checks that the certificate is really verified: with the pristine bundle tccli
  refuses the server, and plain HTTP to the TLS port gets no answer.

tccli is installed by compat/install.sh into compat/.venv-tccli (its own venv: it pulls
in the whole Tencent Cloud Python SDK).
"""

import datetime
import http.client
import ipaddress
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardcheck_server import CompatError, create_account, running

TCCLI_VENV = Path(__file__).resolve().parents[1] / ".venv-tccli"
TCCLI = TCCLI_VENV / "bin" / "tccli"
TCCLI_TIMEOUT_S = float(os.environ.get("COMPAT_TCCLI_TIMEOUT", "120"))
NAME = "Wei Xiaobao"
PASS_CARD = "6225768888888888"
MISMATCH_CARD = "6226090210146748"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory):
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it.

    Returns (CA certificate PEM bytes, server certificate path, server key path)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("cardcheck compat test CA"))
        .issuer_name(_name("cardcheck compat test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = Path(directory) / "server.pem"
    key_path = Path(directory) / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_cert.public_bytes(serialization.Encoding.PEM), cert_path, key_path


def certifi_bundle():
    if not TCCLI.is_file():
        raise CompatError("tccli is not installed in %s (run compat/install.sh)" % TCCLI_VENV)
    out = subprocess.run([str(TCCLI_VENV / "bin" / "python"), "-c", "import certifi; print(certifi.where())"],
                         capture_output=True, text=True, timeout=60, check=True)
    return Path(out.stdout.strip())


@pytest.fixture
def trusted_ca():
    """Yields a function that trusts a CA in tccli's certifi bundle (or, given None,
    restores the pristine bundle); the pristine bundle is restored at the end."""
    bundle = certifi_bundle()
    pristine = Path(str(bundle) + ".cardcheck-orig")
    if not pristine.exists():  # installed by an older install.sh
        pristine.write_bytes(bundle.read_bytes())
    original = pristine.read_bytes()

    def trust(ca_pem):
        extra = b"" if ca_pem is None else b"\n# cardcheck compat test CA\n" + ca_pem
        bundle.write_bytes(original + extra)

    yield trust
    bundle.write_bytes(original)


def tccli(home, *args):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TENCENTCLOUD_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["HOME"] = str(home)  # tccli reads and may write ~/.tccli
    try:
        return subprocess.run([str(TCCLI), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, timeout=TCCLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CompatError("tccli %s did not finish within %gs" % (" ".join(args[:2]), TCCLI_TIMEOUT_S)) from None


def verify_args(srv, account, card, secret_key=None):
    return ["faceid", "BankCard2EVerification", "--Name", NAME, "--BankCard", card,
            "--secretId", account["secret_id"], "--secretKey", secret_key or account["secret_key"],
            "--region", "ap-guangzhou", "--endpoint", srv.host]


def test_tccli_over_tls_returns_result_0(tmp_path, trusted_ca):
    data_dir = tmp_path / "data"
    home = tmp_path / "home"
    home.mkdir()
    try:
        account = create_account(data_dir)
        ca_pem, cert, key = make_pki(tmp_path)
        trusted_ca(ca_pem)
        with running(data_dir, account, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]) as srv:
            assert srv.scheme == "https", srv.logs()

            # The doc example: Result "0".
            out = tccli(home, *verify_args(srv, account, PASS_CARD))
            assert out.returncode == 0, "tccli exited %d\nstdout: %s\nstderr: %s\n%s" % (
                out.returncode, out.stdout, out.stderr, srv.logs())
            doc = json.loads(out.stdout)
            assert doc["Result"] == "0", doc
            assert doc["Description"] and doc["RequestId"], doc

            # A business failure is a Result too; an auth failure is tccli's error exit.
            out = tccli(home, *verify_args(srv, account, MISMATCH_CARD))
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["Result"] == "-4"
            out = tccli(home, *verify_args(srv, account, PASS_CARD, secret_key="x" * 32))
            assert out.returncode != 0
            assert "AuthFailure.SignatureFailure" in out.stderr, out.stderr

            # The certificate is really checked: without the CA tccli refuses the server.
            trusted_ca(None)
            out = tccli(home, *verify_args(srv, account, PASS_CARD))
            assert out.returncode != 0, out.stdout
            assert "SSL" in out.stderr or "certificate" in out.stderr.lower(), out.stderr

            # Plain HTTP to the TLS listener is not served (a TLS alert, then the close).
            with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
                urllib.request.urlopen("http://%s/" % srv.host, data=b"{}", timeout=10).read()

            # The admin listener counted the three answered API requests of tccli.
            metrics = urllib.request.urlopen("http://%s/metrics" % srv.admin, timeout=10).read().decode()
            assert 'cardcheck_results_total{result="0",billing="billed"} 1' in metrics, metrics
            assert 'cardcheck_results_total{result="-4",billing="billed"} 1' in metrics, metrics
            assert ('error_code="AuthFailure.SignatureFailure"} 1') in metrics, metrics
    except CompatError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
