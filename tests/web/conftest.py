"""Fixtures for the partner API: key pairs, partners, consents, published scores, signed calls."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from config.settings import Settings
from scoring.publish import ScoreRecord, publish_scores
from tests.conftest import LiveServer
from web import accounts
from web.consent import grant_consent
from web.partners import PartnerInfo, create_partner
from web.signing import sign_request


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class SignedPartner:
    """A registered partner and its private key: makes signed calls to the live server."""

    info: PartnerInfo
    key: Ed25519PrivateKey
    server: LiveServer

    @property
    def name(self) -> str:
        return self.info.name

    def request(self, method: str, target: str, *, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None, **sign: Any) -> httpx.Response:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        signed = sign_request(self.key, partner=self.name, method=method, target=target, body=payload, **sign)
        extra = {"Content-Type": "application/json"} if payload else {}
        return self.server.request(method, target, content=payload or None,
                                   headers={**extra, **signed, **(headers or {})})

    def get(self, target: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", target, **kwargs)

    def post(self, target: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("POST", target, body=body, **kwargs)

    def score(self, open_id: str, purpose: str = "loan_underwriting", **kwargs: Any) -> httpx.Response:
        return self.get(f"/v1/scores/{open_id}?purpose={purpose}", **kwargs)


@pytest.fixture
def sqlite_only(home: Path) -> str:
    """Use as ``database_url`` in modules whose behaviour does not depend on the database."""
    return f"sqlite:///{home / 'test.db'}"


@pytest.fixture
def engine(live_server: LiveServer) -> Engine:
    engine: Engine = live_server.app.extensions["altcredit"].engine
    return engine


@pytest.fixture
def make_partner(live_server: LiveServer, engine: Engine) -> Callable[..., SignedPartner]:
    """Register a partner with a fresh key pair (name, role, rate limit, redirect URI as asked)."""

    def make(name: str = "acme", *, rate_limit: str = "1000/minute", **options: Any) -> SignedPartner:
        key = Ed25519PrivateKey.generate()
        info = create_partner(engine, name, public_key_pem=public_pem(key), rate_limit=rate_limit, **options)
        return SignedPartner(info, key, live_server)

    return make


@pytest.fixture
def acme(make_partner: Callable[..., SignedPartner]) -> SignedPartner:
    return make_partner("acme", redirect_uri="https://acme.example/back",
                        pass_thresholds={"loan_underwriting": 620})


@pytest.fixture
def grant(engine: Engine) -> Callable[..., str]:
    """Grant a consent and return the partner's open id for the user."""

    def grant_(partner: SignedPartner, user_id: str = "u1", *, purpose: str = "loan_underwriting",
               scope: str = "score", days: int = 30) -> str:
        return grant_consent(engine, user_id=user_id, partner=partner.info, purpose=purpose, scope=scope,
                             days=days).open_id

    return grant_


def score_record(user_id: str, score: int | None, *, band: str | None = "good") -> ScoreRecord:
    """One published-score record, with six reasons (the API shows four)."""
    return ScoreRecord(
        user_id=user_id, score=score, score_unclipped=None if score is None else score + 0.3,
        band_code=band if score is not None else None, base_points=600.0,
        features={"late_payments_12m": -12.5}, dimensions={"credit_history": -12.5, "behaviour": 3.0},
        reasons=[{"code": f"reason_{i}", "text_en": f"Reason {i}", "text_zh": f"原因 {i}",
                  "points": -10.0 + i} for i in range(6)] if score is not None else [],
        tips=[], status="scored" if score is not None else "insufficient_data",
        reason=None if score is not None else "insufficient_data")


@pytest.fixture
def publish(engine: Engine) -> Callable[..., None]:
    """Publish scores: ``publish({"u1": 640, "u2": None}, as_of=date(2026, 1, 1))``."""

    def publish_(scores: dict[str, int | None], *, as_of: date = date(2026, 1, 1),
                 bands: dict[str, str] | None = None) -> None:
        records = [score_record(user, value, band=(bands or {}).get(user, "good"))
                   for user, value in scores.items()]
        publish_scores(engine, as_of=as_of, model_version="m-test", snapshot_id="snap-test", records=records)

    return publish_


@pytest.fixture
def scored(acme: SignedPartner, grant: Callable[..., str], publish: Callable[..., None]) -> Iterator[str]:
    """acme holds a `score` consent of u1 for loan underwriting; u1 scored 640 (good)."""
    publish({"u1": 640})
    yield grant(acme, "u1")


@pytest.fixture
def settings_of(live_server: LiveServer) -> Settings:
    settings: Settings = live_server.app.extensions["altcredit"].settings
    return settings


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with its cost turned down, so that sign-in tests stay fast; the scheme is unchanged."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("dummy"))
