"""Consent and pairwise open ids, and the operator commands for partners and consents."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from tests.web.conftest import SignedPartner
from web.consent import list_consents, revoke_consent, revoke_consent_by_id


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
