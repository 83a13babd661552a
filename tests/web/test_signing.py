"""Signed requests: the canonical string, and every way a request is refused, over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.web.conftest import SignedPartner, private_pem
from web.partners import set_disabled
from web.signing import (
    RedisNonceStore,
    SignatureRefused,
    SignedParts,
    canonical_string,
    check_clock,
    parse_headers,
    sign_request,
    verify,
)

_KEY = Ed25519PrivateKey.generate()
REDIS_URL = os.environ.get("ALTCREDIT_TEST_REDIS_URL", "")  # read before the fixtures clear ALTCREDIT_*
REFUSAL = "the request is not signed, or its signature is not accepted"


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    """SQLite only: nothing here depends on the database (test_inquiries covers PostgreSQL)."""
    return sqlite_only


def assert_refused(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/unauthorized"
    assert body["detail"] == REFUSAL  # the same words whatever failed: no hint
    assert "score" not in body


def test_canonical_string_is_five_lines_with_the_body_digest() -> None:
    text = canonical_string("get", "/v1/x?a=1", "1700000000", "nonce-123", b"")
    assert text.decode().split("\n") == [
        "GET", "/v1/x?a=1", "1700000000", "nonce-123",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]


@settings(max_examples=40, deadline=None)
@given(method=st.sampled_from(["GET", "POST"]), target=st.text(min_size=1, max_size=60),
       body=st.binary(max_size=200), flip=st.integers(min_value=0))
def test_a_signature_verifies_only_for_what_was_signed(method: str, target: str, body: bytes,
                                                       flip: int) -> None:
    headers = sign_request(_KEY, partner="p1", method=method, target=target, body=body)
    parts = parse_headers(headers)
    verify(_KEY.public_key(), parts, method=method, target=target, body=body)
    changed = bytearray(body or b"x")
    changed[flip % len(changed)] ^= 0x01
    with pytest.raises(SignatureRefused):
        verify(_KEY.public_key(), parts, method=method, target=target, body=bytes(changed))
    with pytest.raises(SignatureRefused):
        verify(_KEY.public_key(), parts, method=method, target=target + "x", body=body)


def test_a_key_given_as_raw_bytes_verifies_what_the_key_does() -> None:
    headers = sign_request(_KEY, partner="p1", method="GET", target="/v1/scores/x?purpose=p")
    parts = parse_headers(headers)
    raw = _KEY.public_key().public_bytes_raw()
    verify(raw, parts, method="GET", target="/v1/scores/x?purpose=p", body=b"")
    with pytest.raises(SignatureRefused):
        verify(raw, parts, method="GET", target="/v1/scores/y?purpose=p", body=b"")
    with pytest.raises(SignatureRefused):
        verify(Ed25519PrivateKey.generate().public_key(), parts, method="GET",
               target="/v1/scores/x?purpose=p", body=b"")


def test_a_small_order_key_and_its_trivial_signature_are_refused() -> None:
    identity = bytes([1]) + bytes(31)  # the neutral point: "verifies" anything under lax checks
    parts = SignedParts(partner="p1", timestamp=int(time.time()), nonce="nonce-123",
                        signature=identity + bytes(32))
    with pytest.raises(SignatureRefused):
        verify(identity, parts, method="GET", target="/v1/x", body=b"")


def test_a_signed_request_is_answered(acme: SignedPartner, scored: str) -> None:
    assert acme.score(scored).status_code == 200


def test_unsigned_request_is_refused(acme: SignedPartner, scored: str) -> None:
    assert_refused(acme.server.get(f"/v1/scores/{scored}?purpose=loan_underwriting"))


@pytest.mark.parametrize("header", ["X-Partner", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_a_missing_signature_header_is_refused(acme: SignedPartner, scored: str, header: str) -> None:
    target = f"/v1/scores/{scored}?purpose=loan_underwriting"
    headers = sign_request(acme.key, partner=acme.name, method="GET", target=target)
    del headers[header]
    assert_refused(acme.server.get(target, headers=headers))


@pytest.mark.parametrize("header,value", [("X-Signature", "not base64!"), ("X-Timestamp", "soon"),
                                          ("X-Nonce", "short"), ("X-Signature", base64.b64encode(b"x" * 64))])
def test_a_malformed_or_wrong_header_is_refused(acme: SignedPartner, scored: str, header: str,
                                                value: str | bytes) -> None:
    target = f"/v1/scores/{scored}?purpose=loan_underwriting"
    headers = sign_request(acme.key, partner=acme.name, method="GET", target=target)
    headers[header] = value.decode() if isinstance(value, bytes) else value
    assert_refused(acme.server.get(target, headers=headers))


# Over HTTP a future timestamp draws nearer while the request travels (seconds on a loaded
# machine), so the live test keeps a margin; the exact edges are checked against a fixed clock.
@pytest.mark.parametrize("offset", [-301, 360, -10_000])
def test_a_timestamp_outside_the_window_is_refused(acme: SignedPartner, scored: str, offset: int) -> None:
    assert_refused(acme.score(scored, timestamp=int(time.time()) + offset))


@pytest.mark.parametrize(("offset", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_the_clock_window_edges_are_exact(offset: int, accepted: bool) -> None:
    parts = SignedParts(partner="acme", timestamp=1_800_000_000 + offset, nonce="n", signature=b"")
    if accepted:
        check_clock(parts, skew=300, now=1_800_000_000)
    else:
        with pytest.raises(SignatureRefused, match="outside the accepted window"):
            check_clock(parts, skew=300, now=1_800_000_000)


def test_a_timestamp_inside_the_window_is_accepted(acme: SignedPartner, scored: str) -> None:
    assert acme.score(scored, timestamp=int(time.time()) - 250).status_code == 200


def test_replaying_an_identical_signed_request_is_refused(acme: SignedPartner, scored: str) -> None:
    target = f"/v1/scores/{scored}?purpose=loan_underwriting"
    headers = sign_request(acme.key, partner=acme.name, method="GET", target=target)
    assert acme.server.get(target, headers=headers).status_code == 200
    assert_refused(acme.server.get(target, headers=headers))


def test_a_body_changed_after_signing_is_refused(acme: SignedPartner, scored: str) -> None:
    signed_body = b'{"purpose": "loan_underwriting", "open_ids": ["a"]}'
    headers = sign_request(acme.key, partner=acme.name, method="POST", target="/v1/scores:batch",
                           body=signed_body)
    sent = signed_body.replace(b'"a"', f'"{scored}"'.encode())
    response = acme.server.request("POST", "/v1/scores:batch", content=sent,
                                   headers={**headers, "Content-Type": "application/json"})
    assert_refused(response)


def test_a_query_changed_after_signing_is_refused(acme: SignedPartner, scored: str) -> None:
    headers = sign_request(acme.key, partner=acme.name, method="GET",
                           target=f"/v1/scores/{scored}?purpose=account_review")
    assert_refused(acme.server.get(f"/v1/scores/{scored}?purpose=loan_underwriting", headers=headers))


def test_another_partners_key_is_refused(acme: SignedPartner, scored: str,
                                         make_partner: Callable[..., SignedPartner]) -> None:
    other = make_partner("other")
    target = f"/v1/scores/{scored}?purpose=loan_underwriting"
    headers = sign_request(other.key, partner=acme.name, method="GET", target=target)
    assert_refused(acme.server.get(target, headers=headers))


def test_an_unknown_partner_is_refused(acme: SignedPartner, scored: str) -> None:
    target = f"/v1/scores/{scored}?purpose=loan_underwriting"
    headers = sign_request(acme.key, partner="nobody", method="GET", target=target)
    assert_refused(acme.server.get(target, headers=headers))


def test_a_disabled_partner_is_refused_from_its_next_request(acme: SignedPartner, scored: str,
                                                             engine: Engine) -> None:
    assert acme.score(scored).status_code == 200
    set_disabled(engine, acme.name)
    assert_refused(acme.score(scored))


def test_a_refused_request_spends_no_nonce(acme: SignedPartner, scored: str, engine: Engine) -> None:
    with engine.connect() as connection:
        before = connection.execute(sa.text("SELECT count(*) FROM used_nonces")).scalar_one()
    assert_refused(acme.score(scored, timestamp=int(time.time()) - 1000))
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM used_nonces")).scalar_one() == before


@pytest.mark.skipif(not REDIS_URL, reason="set ALTCREDIT_TEST_REDIS_URL")
def test_redis_nonce_store_accepts_a_nonce_once() -> None:
    store = RedisNonceStore(REDIS_URL, keep_seconds=5)
    nonce = uuid.uuid4().hex
    assert store.claim(1, nonce) is True
    assert store.claim(1, nonce) is False
    assert store.claim(2, nonce) is True


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="needs openssl and curl")
def test_the_documented_curl_and_openssl_example_works(acme: SignedPartner, scored: str,
                                                       tmp_path: Path) -> None:
    """Runs the shell example of docs/partner-api.md as written, against the live server."""
    text = (Path(__file__).parents[2] / "docs" / "partner-api.md").read_text()
    script = text.split("### With curl and openssl", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    key_file = tmp_path / "acme-private.pem"
    key_file.write_bytes(private_pem(acme.key))
    script = (script.replace("acme-private.pem", str(key_file))
              .replace("https://scores.example", acme.server.url).replace("OPEN_ID", scored))
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["score"] == 640
