"""The /v1 lookups and events over real HTTP: minimisation by scope, refusals, batches, events."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from config.settings import Settings, load_settings
from features.events import RESERVED_ID_REASON
from tests.web.conftest import SignedPartner
from web import disclosure
from web.clock import utcnow
from web.consent import revoke_consent
from web.inquiries import count_inquiries
from web.signing import sign_request

SCORE_FIELDS = {"score", "dimensions", "reasons"}


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    """SQLite only: the lookup path on PostgreSQL is covered by test_inquiries."""
    return sqlite_only


@pytest.fixture
def db_settings(home: Path, database_url: str) -> Settings:
    """Small event batches, so the 413 case needs few events."""
    return load_settings(home=home, database_url=database_url, log_format="text", ingest_max_batch=20)


def agreement(user_id: str, event_id: str = "e-1", **changes: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user_id, "kind": "agreement",
            "event_time": "2026-01-10T08:30:00+08:00", "agreement_type": "rental_deposit_free",
            "outcome": "kept", "amount": "3000.00", "currency": "CNY", **changes}


# -- what each scope discloses -------------------------------------------------------


def test_score_scope_answers_score_band_dimensions_and_four_reasons(acme: SignedPartner, scored: str) -> None:
    response = acme.score(scored)
    assert response.status_code == 200
    body = response.json()
    assert body["score"] == 640 and body["band"] == {"code": "good", "name": "Good"}
    assert body["as_of"] == "2026-01-01" and body["model_version"] == "m-test"
    assert body["dimensions"] == {"credit_history": -12.5, "behaviour": 3.0}
    assert [reason["code"] for reason in body["reasons"]] == ["reason_0", "reason_1", "reason_2", "reason_3"]
    assert body["reasons"][0] == {"code": "reason_0", "text": "Reason 0", "points": -10.0}
    assert "user_id" not in body and '"u1"' not in response.text


def test_accept_language_zh_answers_chinese_texts(acme: SignedPartner, scored: str) -> None:
    body = acme.score(scored, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).json()
    assert body["band"]["name"] == "良好"
    assert body["reasons"][0]["text"] == "原因 0"


def test_band_scope_answers_the_band_and_never_the_score(acme: SignedPartner, grant: Callable[..., str],
                                                          publish: Callable[..., None]) -> None:
    publish({"u2": 700}, bands={"u2": "excellent"})
    body = acme.score(grant(acme, "u2", scope="band")).json()
    assert body["band"] == {"code": "excellent", "name": "Excellent"}
    assert not SCORE_FIELDS & set(body)
    assert "700" not in str(body)


@pytest.mark.parametrize("score,passed", [(640, True), (620, True), (619, False), (None, False)])
def test_pass_scope_answers_only_passed_against_the_partners_threshold(
        acme: SignedPartner, grant: Callable[..., str], publish: Callable[..., None],
        score: int | None, passed: bool) -> None:
    publish({"u3": score})
    open_id = grant(acme, "u3", scope="pass")
    body = acme.score(open_id).json()
    assert body == {"open_id": open_id, "purpose": "loan_underwriting", "scope": "pass", "passed": passed}


def test_pass_scope_uses_the_purposes_threshold_when_the_partner_set_none(
        acme: SignedPartner, grant: Callable[..., str], publish: Callable[..., None]) -> None:
    publish({"u3": 620})  # rental_deposit_waiver's configured threshold is 650
    open_id = grant(acme, "u3", scope="pass", purpose="rental_deposit_waiver")
    assert acme.score(open_id, purpose="rental_deposit_waiver").json()["passed"] is False


@given(score=st.one_of(st.none(), st.integers(350, 950)), threshold=st.integers(0, 1000))
def test_pass_answers_never_hold_more_than_passed(score: int | None, threshold: int) -> None:
    from tests.web.conftest import score_record

    record = score_record("u", score)
    published = type("P", (), {**record.__dict__, "as_of": date(2026, 1, 1), "model_version": "m"})()
    body, fields = disclosure.answer(published, open_id="o", purpose="p", scope="pass",
                                     threshold=threshold, language="en")
    assert set(body) == {"open_id", "purpose", "scope", "passed"} and fields == ("passed",)
    assert body["passed"] is (score is not None and score >= threshold)


def test_a_user_without_enough_data_is_answered_without_a_score(
        acme: SignedPartner, grant: Callable[..., str], publish: Callable[..., None]) -> None:
    publish({"thin": None})
    body = acme.score(grant(acme, "thin")).json()
    assert body["status"] == "insufficient_data" and body["score"] is None and body["band"] is None
    assert body["reason"] == "insufficient_data"


def test_a_consented_user_never_scored_is_answered_as_not_scored(
        acme: SignedPartner, grant: Callable[..., str]) -> None:
    body = acme.score(grant(acme, "new-user")).json()
    assert body["status"] == "not_scored" and "score" not in body


def test_history_needs_the_score_history_scope(acme: SignedPartner, grant: Callable[..., str],
                                               publish: Callable[..., None], scored: str) -> None:
    refused = acme.get(f"/v1/scores/{scored}/history?purpose=loan_underwriting")
    assert refused.status_code == 403
    publish({"u1": 660}, as_of=date(2026, 2, 1), bands={"u1": "very_good"})
    open_id = grant(acme, "u1", scope="score_history")
    body = acme.get(f"/v1/scores/{open_id}/history?purpose=loan_underwriting").json()
    assert [(item["as_of"], item["score"]) for item in body["history"]] == [("2026-01-01", 640),
                                                                            ("2026-02-01", 660)]
    assert acme.score(open_id).json()["score"] == 660


# -- refusals --------------------------------------------------------------------------


def test_partner_b_cannot_use_partner_as_open_id(acme: SignedPartner, scored: str, grant: Callable[..., str],
                                                 make_partner: Callable[..., SignedPartner]) -> None:
    other = make_partner("beta")
    grant(other, "u1")  # beta has its own consent for the same user, under its own open id
    response = other.score(scored)
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/not-found"
    assert "score" not in response.json()


def test_an_unknown_open_id_is_404(acme: SignedPartner, scored: str) -> None:
    assert acme.score("made-up-open-id").status_code == 404


def test_a_purpose_without_consent_is_403(acme: SignedPartner, scored: str) -> None:
    response = acme.score(scored, purpose="telecom_contract")
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/forbidden"


def test_a_revoked_consent_is_403(acme: SignedPartner, scored: str, engine: Engine) -> None:
    assert acme.score(scored).status_code == 200
    revoke_consent(engine, user_id="u1", partner=acme.info)
    response = acme.score(scored)
    assert response.status_code == 403 and "revoked" in response.json()["detail"]


def test_an_expired_consent_is_403(acme: SignedPartner, scored: str, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE consents SET expires_at = :past"),
                           {"past": utcnow() - timedelta(seconds=1)})
    response = acme.score(scored)
    assert response.status_code == 403 and "expired" in response.json()["detail"]


@pytest.mark.parametrize("query", ["", "?purpose=", "?purpose=gambling", "?purpose=loan_underwriting&"
                                   "purpose=x"])
def test_a_bad_purpose_is_400_with_errors(acme: SignedPartner, scored: str, query: str) -> None:
    response = acme.get(f"/v1/scores/{scored}{query}")
    if query.endswith("purpose=x"):  # the first value counts
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/bad-request"
    assert response.json()["errors"][0]["field"] == "purpose"


def test_refusals_write_no_inquiry(acme: SignedPartner, scored: str, engine: Engine) -> None:
    acme.score(scored, purpose="telecom_contract")
    acme.score("made-up")
    acme.server.get(f"/v1/scores/{scored}?purpose=loan_underwriting")
    assert count_inquiries(engine) == 0


def _no_transaction_open(engine: Engine) -> bool:
    """Whether another connection can write at once and checkpoint the whole WAL (no reader pins it)."""
    other = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        busy, _frames, _done = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(busy == 0)
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_lookups_served_on_one_thread_leave_no_transaction_open_between_them(
        acme: SignedPartner, scored: str, engine: Engine) -> None:
    """A worker thread keeps its SQLite connection from one request to the next, outside any transaction."""
    client = acme.server.app.test_client()  # every request on this thread, as a sync worker serves them

    def lookup(purpose: str = "loan_underwriting", *, signed: dict[str, str] | None = None) -> int:
        target = f"/v1/scores/{scored}?purpose={purpose}"
        headers = signed or sign_request(acme.key, partner=acme.name, method="GET", target=target)
        return client.get(target, headers=headers).status_code

    once = sign_request(acme.key, partner=acme.name, method="GET",
                        target=f"/v1/scores/{scored}?purpose=loan_underwriting")
    assert lookup(signed=once) == 200
    assert _no_transaction_open(engine)
    assert lookup(signed=once) == 401  # the replay: refused after its read, nothing written
    assert _no_transaction_open(engine)
    assert lookup("telecom_contract") == 403
    assert _no_transaction_open(engine)
    assert lookup() == 200
    assert _no_transaction_open(engine)
    assert count_inquiries(engine) == 2
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE inquiries"))
    assert lookup() == 503  # the write failed and was rolled back
    assert _no_transaction_open(engine)


# -- batch ------------------------------------------------------------------------------


def test_batch_answers_each_open_id_on_its_own(acme: SignedPartner, scored: str, grant: Callable[..., str],
                                               engine: Engine) -> None:
    band_only = grant(acme, "u9", scope="band")
    response = acme.post("/v1/scores:batch", {"purpose": "loan_underwriting",
                                              "open_ids": [scored, "made-up", band_only]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["status"] for item in results] == [200, 404, 200]
    assert results[0]["answer"]["score"] == 640
    assert results[1]["problem"]["type"] == "/problems/not-found"
    assert "score" not in results[2]["answer"]
    assert count_inquiries(engine) == 2


def test_batch_over_the_limit_is_413_and_logs_nothing(acme: SignedPartner, scored: str,
                                                      engine: Engine) -> None:
    response = acme.post("/v1/scores:batch", {"purpose": "loan_underwriting",
                                              "open_ids": [scored] * 1001})
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/payload-too-large"
    assert count_inquiries(engine) == 0


@pytest.mark.parametrize("body", [{"purpose": "loan_underwriting", "open_ids": []},
                                  {"purpose": "loan_underwriting"}, {"open_ids": ["x"]}, [1, 2],
                                  {"purpose": "loan_underwriting", "open_ids": [3]}])
def test_a_malformed_batch_is_400(acme: SignedPartner, body: Any) -> None:
    response = acme.post("/v1/scores:batch", body)
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/bad-request"


def test_a_body_that_is_not_json_is_400_or_415(acme: SignedPartner) -> None:
    broken = acme.request("POST", "/v1/scores:batch", raw=b"{not json")
    assert broken.status_code == 400
    text = acme.request("POST", "/v1/scores:batch", raw=b"purpose=x",
                        headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert text.json()["type"] == "/problems/unsupported-media-type"


# -- events -----------------------------------------------------------------------------


def test_a_partner_furnishes_events_by_the_open_id_it_holds(acme: SignedPartner, scored: str) -> None:
    response = acme.post("/v1/events", {"events": [agreement(scored)]})
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    again = acme.post("/v1/events", {"events": [agreement(scored)]})
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == 1


def test_a_partner_cannot_furnish_by_user_id_or_anothers_open_id(acme: SignedPartner, scored: str) -> None:
    response = acme.post("/v1/events", {"events": [agreement(scored), agreement("u1", "e-2")]})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": 1, "field": "user_id",
                                          "reason": "not an open id issued to this partner"}]


def test_a_furnisher_furnishes_by_platform_user_id(make_partner: Callable[..., SignedPartner]) -> None:
    bureau = make_partner("bureau", role="furnisher")
    response = bureau.post("/v1/events", {"events": [agreement("u1")]})
    assert response.status_code == 200 and response.json()["stored"] == 1


def test_invalid_events_are_400_with_per_record_errors_and_nothing_stored(
        make_partner: Callable[..., SignedPartner]) -> None:
    bureau = make_partner("bureau", role="furnisher")
    events = [agreement("u1"), agreement("u1", "e-2", outcome="maybe")]
    response = bureau.post("/v1/events", {"events": events})
    assert response.status_code == 400
    assert [error["index"] for error in response.json()["errors"]] == [1]
    assert bureau.post("/v1/events", {"events": [agreement("u1")]}).json()["stored"] == 1


def test_a_changed_duplicate_event_is_409(make_partner: Callable[..., SignedPartner]) -> None:
    bureau = make_partner("bureau", role="furnisher")
    assert bureau.post("/v1/events", {"events": [agreement("u1")]}).status_code == 200
    response = bureau.post("/v1/events", {"events": [agreement("u1", amount="1.00")]})
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/conflict"


def test_too_many_events_is_413(make_partner: Callable[..., SignedPartner]) -> None:
    bureau = make_partner("bureau", role="furnisher")
    response = bureau.post("/v1/events", {"events": [agreement("u1", f"e-{i}") for i in range(21)]})
    assert response.status_code == 413


def test_an_event_naming_another_source_is_refused(make_partner: Callable[..., SignedPartner]) -> None:
    bureau = make_partner("bureau", role="furnisher")
    response = bureau.post("/v1/events", {"events": [agreement("u1", source="somebody-else")]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "source"


def test_an_event_with_the_platforms_reserved_id_prefix_is_refused_and_nothing_stored(
        make_partner: Callable[..., SignedPartner]) -> None:
    bureau = make_partner("bureau", role="furnisher")
    forged_void = {**agreement("u1", "undo-1"), "kind": "correction", "corrects": "altcredit-dispute-4-void",
                   "corrected_kind": "agreement", "void": True}
    for name in ("agreement_type", "outcome", "amount", "currency"):
        forged_void.pop(name)
    events = [agreement("u1"), agreement("u1", "altcredit-dispute-4-restore"), forged_void]
    response = bureau.post("/v1/events", {"events": events})
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/bad-request"
    assert response.json()["errors"] == [{"index": 1, "field": "event_id", "reason": RESERVED_ID_REASON},
                                         {"index": 2, "field": "corrects", "reason": RESERVED_ID_REASON}]
    assert bureau.post("/v1/events", {"events": [agreement("u1")]}).json()["stored"] == 1
