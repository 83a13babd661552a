"""Consent and pairwise open ids, and the operator commands for partners and consents."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from tests.web.conftest import SignedPartner
from web.consent import ConsentError, grant_consent, list_consents, revoke_consent, revoke_consent_by_id


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("partners", "consents", "open_ids")}


def test_open_ids_are_pairwise_per_user_and_partner(acme: SignedPartner, grant: Callable[..., str],
                                                    make_partner: Callable[..., SignedPartner]) -> None:
    beta = make_partner("beta")
    ann, bob = "ann@one.example", "bob@two.example"  # '@' and '.' never occur in an open id
    ids = {grant(acme, ann), grant(beta, ann), grant(acme, bob), grant(beta, bob)}
    assert len(ids) == 4
    assert all(len(open_id) >= 32 and "@" not in open_id and "." not in open_id for open_id in ids)


def test_the_open_id_is_stable_across_grants_and_purposes(acme: SignedPartner,
                                                          grant: Callable[..., str]) -> None:
    first = grant(acme, "u1", purpose="loan_underwriting")
    assert grant(acme, "u1", purpose="account_review", scope="pass") == first
    assert grant(acme, "u1", purpose="loan_underwriting", scope="band") == first


def test_a_new_grant_replaces_the_old_one(acme: SignedPartner, grant: Callable[..., str], engine: Engine,
                                          publish: Callable[..., None]) -> None:
    publish({"u1": 640})
    open_id = grant(acme, "u1", scope="score")
    grant(acme, "u1", scope="pass")
    assert set(acme.score(open_id).json()) == {"open_id", "purpose", "scope", "passed"}
    states = [consent.state for consent in list_consents(engine, user_id="u1")]
    assert states == ["active", "revoked"]


def test_revoking_by_id_only_touches_the_users_own_consent(acme: SignedPartner, grant: Callable[..., str],
                                                          engine: Engine) -> None:
    grant(acme, "u1")
    [consent] = list_consents(engine, user_id="u1")
    assert revoke_consent_by_id(engine, user_id="someone-else", consent_id=consent.id) is False
    assert revoke_consent_by_id(engine, user_id="u1", consent_id=consent.id) is True
    assert list_consents(engine, user_id="u1")[0].state == "revoked"
    assert revoke_consent(engine, user_id="u1", partner=acme.info) == 0


@pytest.mark.parametrize("user_id,purpose,scope,days,message", [
    ("", "loan_underwriting", "score", 30, "not a valid user id"),
    ("u1", "gambling", "score", 30, "unknown purpose 'gambling'"),
    ("u1", "loan_underwriting", "everything", 30, "unknown scope 'everything'"),
    ("u1", "loan_underwriting", "score", 0, "days must be between 1 and 3650"),
])
def test_a_bad_grant_is_refused_and_changes_nothing(acme: SignedPartner, engine: Engine, user_id: str,
                                                   purpose: str, scope: str, days: int, message: str) -> None:
    before = table_counts(engine)
    with pytest.raises(ConsentError, match=message):
        grant_consent(engine, user_id=user_id, partner=acme.info, purpose=purpose, scope=scope, days=days)
    assert table_counts(engine) == before
