"""The Python client and `altcredit lookup` against the live server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.web.conftest import SignedPartner, private_pem
from web.cli import main
from web.client import ApiError, Client
from web.inquiries import count_inquiries


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    return sqlite_only


@pytest.fixture
def client(acme: SignedPartner) -> Client:
    return Client(acme.server.url, acme.name, private_pem(acme.key))


def test_the_client_signs_a_lookup(client: Client, scored: str) -> None:
    answer = client.score(scored, "loan_underwriting")
    assert answer["score"] == 640 and answer["open_id"] == scored


def test_the_client_asks_in_chinese(acme: SignedPartner, scored: str) -> None:
    client = Client(acme.server.url, acme.name, acme.key, language="zh")
    assert client.score(scored, "loan_underwriting")["band"]["name"] == "良好"


def test_the_client_batches_and_reads_history(client: Client, acme: SignedPartner, grant: Callable[..., str],
                                              publish: Callable[..., None]) -> None:
    publish({"u1": 640})
    open_id = grant(acme, "u1", scope="score_history")
    batch = client.scores([open_id, "nope"], "loan_underwriting")
    assert [item["status"] for item in batch["results"]] == [200, 404]
    assert [item["score"] for item in client.history(open_id, "loan_underwriting")["history"]] == [640]


def test_the_client_sends_events(client: Client, scored: str) -> None:
    event = {"event_id": "c-1", "user_id": scored, "kind": "agreement", "event_time": "2026-01-10T08:30:00Z",
             "agreement_type": "pay_later", "outcome": "broken", "amount": "99.00", "currency": "CNY"}
    assert client.send_events([event])["stored"] == 1


def test_a_refusal_raises_api_error_with_the_problem(client: Client, scored: str) -> None:
    with pytest.raises(ApiError) as refused:
        client.score(scored, "telecom_contract")
    assert refused.value.status == 403
    assert refused.value.problem["type"] == "/problems/forbidden"


def test_a_transaction_id_makes_the_client_lookup_idempotent(client: Client, scored: str,
                                                             engine: Engine) -> None:
    first = client.score(scored, "loan_underwriting", transaction_id="app-9")
    assert client.score(scored, "loan_underwriting", transaction_id="app-9") == first
    assert count_inquiries(engine) == 1


@pytest.mark.parametrize("args,message", [
    (("https://x.example", "", b""), "partner"),
    (("ftp://x.example", "acme", b""), "base_url"),
])
def test_the_client_refuses_bad_arguments(args: tuple[str, str, bytes], message: str,
                                          acme: SignedPartner) -> None:
    with pytest.raises(ValueError, match=message):
        Client(args[0], args[1], acme.key)


def test_lookup_command_prints_the_answer(acme: SignedPartner, scored: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "acme.pem"
    key.write_bytes(private_pem(acme.key))
    code = main(["lookup", scored, "--purpose", "loan_underwriting", "--partner", "acme", "--key", str(key),
                 "--url", acme.server.url])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["score"] == 640


def test_lookup_command_reports_a_refusal_in_one_line(acme: SignedPartner, scored: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "acme.pem"
    key.write_bytes(private_pem(acme.key))
    code = main(["lookup", "nope", "--purpose", "loan_underwriting", "--partner", "acme", "--key", str(key),
                 "--url", acme.server.url])
    err = capsys.readouterr().err
    assert code == 1 and "lookup refused: 404" in err and len(err.strip().splitlines()) == 1


def test_lookup_command_refuses_a_missing_key_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lookup", "x", "--purpose", "loan_underwriting", "--partner", "acme",
                 "--key", "/no/such.pem"])
    assert code == 1 and "cannot use key /no/such.pem" in capsys.readouterr().err
