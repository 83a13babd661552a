"""The demo's people: a partner with a key pair and a consumer with an account and a consent.

The partner's private key is written to the data home (mode 600) because the
demo prints a command that signs with it; a real partner keeps its key and
registers only the public half. The consumer is a scored user of the
simulated population, chosen so that the explanation has something to say.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from config.settings import Settings
from scoring.publish import latest_published_as_of, list_scores
from web.accounts import AccountError, create_account
from web.consent import grant_consent
from web.partners import create_partner, find_partner

PARTNER = "demo-lender"
PURPOSE = "loan_underwriting"
SCOPE = "score"
EMAIL = "demo@altcredit.example"


@dataclass(frozen=True)
class DemoPeople:
    partner: str
    key_file: str
    purpose: str
    user_id: str
    open_id: str
    email: str
    password: str


def ensure_demo_people(settings: Settings, engine: Engine) -> DemoPeople:
    """Create the demo partner and consumer once; later runs return the same people."""
    saved = settings.path("demo", "people.json")
    if saved.exists():
        people = DemoPeople(**json.loads(saved.read_text()))
        if find_partner(engine, people.partner) is not None:
            return people
    key_file = settings.path("demo", "partner_key.pem")
    partner = find_partner(engine, PARTNER) or create_partner(
        engine, PARTNER, public_key_pem=_write_key_pair(key_file), rate_limit=settings.partner_rate_limit,
        redirect_uri=f"http://{settings.serve_host}:{settings.serve_port}/docs")
    user_id = _pick_consumer(engine)
    password = secrets.token_urlsafe(12)
    try:
        create_account(engine, user_id=user_id, email=EMAIL, password=password)
    except AccountError as exc:
        raise RuntimeError(f"cannot create the demo consumer: {exc}") from None
    consent = grant_consent(engine, user_id=user_id, partner=partner, purpose=PURPOSE, scope=SCOPE,
                            days=settings.consent_default_days)
    people = DemoPeople(partner=PARTNER, key_file=str(key_file), purpose=PURPOSE, user_id=user_id,
                        open_id=consent.open_id, email=EMAIL, password=password)
    _write_private(saved, json.dumps(asdict(people), indent=2))
    return people


def _write_key_pair(private_file: Path) -> str:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    _write_private(private_file, private_pem.decode())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_file.with_suffix(".pub.pem").write_text(public_pem.decode())
    return public_pem.decode()


def _write_private(path: Path, text: str) -> None:
    draft = path.with_name(f".{path.name}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(draft, path)


def _pick_consumer(engine: Engine) -> str:
    """A scored user near the middle of the scale, with reasons to read."""
    as_of = latest_published_as_of(engine)
    if as_of is None:
        raise RuntimeError("no published scores: recompute scores before creating the demo consumer")
    scored = [row for row in list_scores(engine, as_of=as_of, limit=2_000)
              if row.score is not None and row.reasons]
    if not scored:
        raise RuntimeError(f"no scored user with reasons as of {as_of}")
    scored.sort(key=lambda row: row.score or 0)
    return scored[len(scored) // 3].user_id
