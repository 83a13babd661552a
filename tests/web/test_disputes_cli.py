"""``altcredit disputes``: operators list and resolve disputes; an upheld one names the partners
that received the person's score while the event counted; bad input is one line and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import Engine

from config.settings import Settings
from features.ingest import ingest_records
from scoring.disputes import file_dispute, list_disputes
from scoring.publish import publish_scores
from tests.web.conftest import SignedPartner, score_record
from web.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def cli_database(db_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the same data home (set for every test) and the parametrised database."""
    monkeypatch.setenv("ALTCREDIT_HOME", str(db_settings.home))
    if db_settings.database_url:
        monkeypatch.setenv("ALTCREDIT_DATABASE_URL", db_settings.database_url)


def _bill(event_id: str, user_id: str = "u1") -> dict[str, str]:
    return {"source": "grid", "event_id": event_id, "user_id": user_id, "kind": "bill",
            "event_time": "2025-03-01T00:00:00Z", "amount": "88.20", "currency": "CNY",
            "biller_category": "utility", "due_date": "2025-03-15", "account_id": "elec-1"}


def test_an_upheld_dispute_lists_the_partners_that_saw_the_score_while_the_event_counted(
        capsys: pytest.CaptureFixture[str], db_settings: Settings, engine: Engine,
        make_partner: Callable[..., SignedPartner], grant: Callable[..., str]) -> None:
    publish_scores(engine, as_of=date(2025, 11, 1), model_version="test-v1", snapshot_id="s-1",
                   records=[score_record("u1", 700)])
    early, acme = make_partner("early-bank"), make_partner("acme")
    assert early.score(grant(early)).status_code == 200       # before the event was known
    ingest_records(db_settings, [_bill("b-1")])
    assert acme.score(grant(acme)).status_code == 200         # while it counted
    assert acme.score(grant(acme), purpose="loan_underwriting").status_code == 200
    dispute = file_dispute(db_settings, user_id="u1", source="grid", event_id="b-1",
                           reason="not my account")
    capsys.readouterr()
    code, out, _ = run(capsys, "disputes", "resolve", str(dispute.id), "--uphold",
                       "--note", "the biller agreed")
    assert code == 0
    assert f"#{dispute.id} upheld" in out and "notify acme: 2 lookups" in out
    assert "early-bank" not in out
    code, out, _ = run(capsys, "disputes", "list", "--json")
    [document] = json.loads(out)["disputes"]
    assert document["status"] == "upheld" and document["note"] == "the biller agreed"
    assert [(p["partner"], p["lookups"], p["purposes"]) for p in document["notify"]] == [
        ("acme", 2, ["loan_underwriting"])]


def test_list_filters_by_status_user_and_overdue(capsys: pytest.CaptureFixture[str],
                                                 db_settings: Settings, db: Engine) -> None:
    ingest_records(db_settings, [_bill("b-1"), _bill("b-2"), _bill("b-3", user_id="u2")])
    first = file_dispute(db_settings, user_id="u1", source="grid", event_id="b-1", reason="one")
    file_dispute(db_settings, user_id="u1", source="grid", event_id="b-2", reason="two")
    file_dispute(db_settings, user_id="u2", source="grid", event_id="b-3", reason="three")
    code, out, _ = run(capsys, "disputes", "resolve", str(first.id), "--reject", "--note", "paid late")
    assert code == 0 and f"#{first.id} rejected" in out
    listed = {args: [d["id"] for d in json.loads(run(capsys, "disputes", "list", *args, "--json")[1])
                     ["disputes"]]
              for args in [(), ("--status", "open"), ("--user", "u2"), ("--overdue",)]}
    assert listed[()] == [3, 2, 1]
    assert listed[("--status", "open")] == [3, 2]
    assert listed[("--user", "u2")] == [3]
    assert listed[("--overdue",)] == []
    code, out, _ = run(capsys, "disputes", "list", "--user", "u1")
    assert code == 0 and "#2 open" in out and "#1 rejected" in out and "reason: two" in out


@pytest.mark.parametrize(("args", "message"), [
    (("resolve", "1", "--note", "x"), "give exactly one of --uphold and --reject"),
    (("resolve", "1", "--uphold", "--reject", "--note", "x"), "give exactly one of --uphold and --reject"),
    (("resolve", "1", "--uphold", "--note", "  "), "the note is empty"),
    (("resolve", "9", "--uphold", "--note", "x"), "no dispute #9"),
    (("resolve", "2", "--uphold", "--note", "x"), "dispute #2 is already rejected"),
    (("resolve", "1", "--uphold"), "Missing option '--note'"),
    (("resolve", "x", "--uphold", "--note", "n"), "'x' is not a valid integer"),
    (("list", "--status", "closed"), "'closed' is not one of 'open', 'upheld', 'rejected'"),
])
def test_bad_input_is_one_line_a_non_zero_exit_and_changes_nothing(
        capsys: pytest.CaptureFixture[str], db_settings: Settings, db: Engine,
        args: tuple[str, ...], message: str) -> None:
    ingest_records(db_settings, [_bill("b-1"), _bill("b-2")])
    file_dispute(db_settings, user_id="u1", source="grid", event_id="b-1", reason="one")
    second = file_dispute(db_settings, user_id="u1", source="grid", event_id="b-2", reason="two")
    assert run(capsys, "disputes", "resolve", str(second.id), "--reject", "--note", "no")[0] == 0
    before = list_disputes(db_settings)
    code, out, err = run(capsys, "disputes", *args)
    assert code != 0 and out == ""
    assert err.startswith("altcredit: ") and err.count("\n") == 1 and message in err
    assert list_disputes(db_settings) == before
