"""The inquiry log: exactly one row per disclosing lookup, before the answer, even under concurrency."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from tests.web.conftest import SignedPartner
from web.cli import main
from web.clock import utcnow
from web.consent import revoke_consent
from web.inquiries import count_inquiries, list_inquiries
from web.signing import sign_request


def test_a_disclosing_lookup_writes_one_inquiry_with_what_was_seen(acme: SignedPartner, scored: str,
                                                                   engine: Engine) -> None:
    response = acme.score(scored, headers={"X-Request-Id": "req-1"})
    assert response.status_code == 200
    [row] = list_inquiries(engine, user_id="u1")
    assert row["partner"] == "acme" and row["purpose"] == "loan_underwriting" and row["scope"] == "score"
    assert row["open_id"] == scored and row["request_id"] == "req-1" and row["endpoint"] == "score"
    assert set(row["fields"]) == {"status", "as_of", "model_version", "band", "score", "dimensions",
                                  "reasons"}


def test_a_pass_lookup_records_that_only_passed_was_seen(
        acme: SignedPartner, grant: Callable[..., str], publish: Callable[..., None], engine: Engine) -> None:
    publish({"u5": 700})
    acme.score(grant(acme, "u5", scope="pass"))
    assert list_inquiries(engine, user_id="u5")[0]["fields"] == ["passed"]


def test_concurrent_lookups_write_exactly_one_inquiry_each(acme: SignedPartner, scored: str,
                                                           engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: acme.score(scored).status_code, range(16)))
    assert statuses == [200] * 16
    assert count_inquiries(engine, user_id="u1") == 16


def test_a_repeated_transaction_id_gets_the_first_answer_and_no_second_inquiry(
        acme: SignedPartner, scored: str, engine: Engine, publish: Callable[..., None]) -> None:
    first = acme.score(scored, headers={"X-Transaction-Id": "loan-app-77"})
    publish({"u1": 700})  # a newer score: the repeat must still get the first answer
    again = acme.score(scored, headers={"X-Transaction-Id": "loan-app-77"})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["X-Idempotent-Replay"] == "true"
    assert count_inquiries(engine, user_id="u1") == 1
    assert acme.score(scored).json()["score"] == 700


def test_concurrent_twins_with_one_transaction_id_get_one_answer_and_one_inquiry(
        acme: SignedPartner, scored: str, engine: Engine) -> None:
    def call(_: int) -> tuple[int, str]:
        response = acme.score(scored, headers={"X-Transaction-Id": "twin-1"})
        return response.status_code, response.text

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = set(pool.map(call, range(12)))
    assert len(answers) == 1 and next(iter(answers))[0] == 200
    assert count_inquiries(engine, user_id="u1") == 1


def test_a_transaction_id_reused_for_another_request_is_409(acme: SignedPartner, scored: str,
                                                            engine: Engine) -> None:
    acme.score(scored, headers={"X-Transaction-Id": "t-1"})
    response = acme.score(scored, purpose="account_review", headers={"X-Transaction-Id": "t-1"})
    assert response.status_code == 409
    assert count_inquiries(engine) == 1


def test_transaction_ids_are_per_partner(acme: SignedPartner, scored: str, grant: Callable[..., str],
                                         make_partner: Callable[..., SignedPartner], engine: Engine) -> None:
    other = make_partner("beta")
    theirs = grant(other, "u1")
    acme.score(scored, headers={"X-Transaction-Id": "same"})
    response = other.score(theirs, headers={"X-Transaction-Id": "same"})
    assert response.status_code == 200 and response.json()["open_id"] == theirs
    assert count_inquiries(engine) == 2


def test_a_malformed_transaction_id_is_400(acme: SignedPartner, scored: str, engine: Engine) -> None:
    response = acme.score(scored, headers={"X-Transaction-Id": "x" * 65})
    assert response.status_code == 400
    assert count_inquiries(engine) == 0


def test_when_the_log_cannot_be_written_the_lookup_is_503_and_discloses_nothing(
        acme: SignedPartner, scored: str, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE inquiries"))
    response = acme.score(scored)
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/unavailable"
    text = response.text.replace(response.json()["request_id"], "")  # a random hex id may hold "640"
    assert "640" not in text and "good" not in text


def test_a_batch_writes_one_inquiry_per_disclosed_item(acme: SignedPartner, scored: str,
                                                       engine: Engine) -> None:
    acme.post("/v1/scores:batch", {"purpose": "loan_underwriting", "open_ids": [scored, "nope", scored]})
    rows = list_inquiries(engine, user_id="u1")
    assert len(rows) == 2 and {row["endpoint"] for row in rows} == {"batch"}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, live_server: object, engine: Engine) -> None:
    monkeypatch.setenv("ALTCREDIT_DATABASE_URL", engine.url.render_as_string(hide_password=False))


def test_inquiries_command_prints_one_json_document(acme: SignedPartner, scored: str, cli_env: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    acme.score(scored)
    assert main(["inquiries", "--user", "u1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["user_id"] == "u1"
    assert [row["partner"] for row in document["inquiries"]] == ["acme"]


def test_hostile_ids_are_answered_without_a_server_error(acme: SignedPartner, scored: str,
                                                         engine: Engine) -> None:
    """NUL bytes and oversized ids never reach the database (PostgreSQL refuses NUL outright)."""
    assert acme.score("abc%00def").status_code == 404
    assert acme.score("x" * 500).status_code == 404
    assert acme.get(f"/v1/scores/{scored}?purpose=loan%00underwriting").status_code == 400
    batch = acme.post("/v1/scores:batch", {"purpose": "loan_underwriting",
                                           "open_ids": ["\u0000", "y" * 500, scored]})
    assert [item["status"] for item in batch.json()["results"]] == [404, 404, 200]
    hostile = {"user_id": "\u0000", "event_id": "e", "kind": "agreement"}
    events = acme.post("/v1/events", {"events": [hostile]})
    assert events.status_code == 400
    assert count_inquiries(engine) == 1


def test_a_transaction_id_older_than_the_window_is_answered_afresh(acme: SignedPartner, scored: str,
                                                                   engine: Engine) -> None:
    acme.score(scored, headers={"X-Transaction-Id": "old-1"})
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE partner_transactions SET created_at = :then"),
                           {"then": utcnow() - timedelta(hours=25)})
    again = acme.score(scored, headers={"X-Transaction-Id": "old-1"})
    assert again.status_code == 200 and "X-Idempotent-Replay" not in again.headers
    assert count_inquiries(engine, user_id="u1") == 2


def test_concurrent_replays_of_one_signed_request_disclose_once(acme: SignedPartner, scored: str,
                                                                engine: Engine) -> None:
    target = f"/v1/scores/{scored}?purpose=loan_underwriting"
    headers = sign_request(acme.key, partner=acme.name, method="GET", target=target)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: acme.server.get(target, headers=headers), range(12)))
    assert sorted(response.status_code for response in responses) == [200] + [401] * 11
    refused = [response.json() for response in responses if response.status_code == 401]
    assert all(body["type"] == "/problems/unauthorized" and "score" not in body for body in refused)
    assert count_inquiries(engine, user_id="u1") == 1


def test_a_batch_answers_each_open_id_as_a_single_lookup_does(
        acme: SignedPartner, scored: str, grant: Callable[..., str], publish: Callable[..., None],
        engine: Engine) -> None:
    publish({"u2": 700, "u3": None}, as_of=date(2026, 2, 1))  # u1 keeps its older score
    open_ids = [scored, grant(acme, "u2", scope="pass"), grant(acme, "u3", scope="band"),
                grant(acme, "u4", scope="band"), grant(acme, "u5", purpose="account_review"),
                grant(acme, "u6"), "made-up", scored]
    revoke_consent(engine, user_id="u6", partner=acme.info)
    batch = acme.post("/v1/scores:batch", {"purpose": "loan_underwriting", "open_ids": open_ids})
    assert batch.status_code == 200
    singles = [acme.score(open_id) for open_id in open_ids]
    for item, single in zip(batch.json()["results"], singles, strict=True):
        assert item["status"] == single.status_code
        assert item.get("answer", item.get("problem", {}).get("type")) == (
            single.json() if single.status_code == 200 else single.json()["type"])
    assert [item["status"] for item in batch.json()["results"]] == [200, 200, 200, 200, 403, 403, 404, 200]
    assert count_inquiries(engine) == 2 * 5
