"""Session fixture: a real cardcheck server driven by the official Python SDK.

The server binary comes from $CARDCHECK_BIN (default: target/debug/cardcheck at
the repository root). It is never built here. Process handling lives in
cardcheck_server.py (shared with test_persistence.py).
"""

import os

import pytest

from cardcheck_server import CompatError, create_account, server_binary, start_server

# The SDKs honour HTTP(S)_PROXY; requests to the local server must go direct.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server for the whole session, with a `compat` account created before it starts.

    A failure here is reported once per test with the same one-paragraph reason
    (pytest caches a failed session fixture), so a missing or broken binary makes
    the suite fail fast and clearly.
    """
    try:
        server_binary()
        data_dir = tmp_path_factory.mktemp("cardcheck-data")
        account = create_account(data_dir)
        srv = start_server(data_dir, account)
    except CompatError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None

    yield srv

    # Teardown: SIGTERM must make the server exit 0.
    try:
        srv.stop()
    except CompatError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
