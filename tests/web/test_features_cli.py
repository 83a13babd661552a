"""``altcredit features``: build, list, snapshots and show, as a user runs them."""

from __future__ import annotations

import json

import pytest

from config.feature_definitions import load_feature_definitions
from config.settings import Settings
from features.ingest import ingest_records
from features.online import online_vector
from features.store import SNAPSHOTS
from tests.features.feature_rows import repayment_record
from web.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["features", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def lake_with_events(settings: Settings) -> Settings:
    ingest_records(settings, [repayment_record("u1", 10, 0), repayment_record("u2", 20, 45)])
    return settings


def test_list_json_is_the_whole_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    document = json.loads(out)
    assert code == 0
    assert [row["name"] for row in document["features"]] == load_feature_definitions().names
    first = document["features"][0]
    assert {"name", "dimension", "description_en", "description_zh", "direction",
            "actionable"} <= set(first)
    assert document["definitions_hash"] == load_feature_definitions().hash


def test_build_then_show_the_latest_vector(capsys: pytest.CaptureFixture[str],
                                           lake_with_events: Settings) -> None:
    code, out, _ = run(capsys, "build", "--as-of", "2025-07-01", "--json")
    manifest = json.loads(out)
    assert code == 0 and manifest["row_count"] == 2 and manifest["published_online"] == 2
    code, out, _ = run(capsys, "show", "--user", "u2", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["as_of"] == "2025-07-01"
    assert shown["features"]["repay_days_late_max_90d"] == 45.0
    assert online_vector(lake_with_events, "u2") == shown["features"]
    code, out, _ = run(capsys, "snapshots", "--json")
    assert [s["as_of"] for s in json.loads(out)["snapshots"]] == ["2025-07-01"]


def test_an_older_build_does_not_replace_the_online_vectors(
        capsys: pytest.CaptureFixture[str], lake_with_events: Settings) -> None:
    run(capsys, "build", "--as-of", "2025-07-01")
    code, out, _ = run(capsys, "build", "--as-of", "2025-06-25", "--json")
    assert code == 0 and json.loads(out)["published_online"] is None


@pytest.mark.parametrize(("args", "fragment"), [
    (("show", "--user", "u1"), "no feature snapshot yet"),
    (("show", "--user", "u1", "--as-known-at", "2025-07-01"), "--as-known-at needs --as-of"),
    (("show", "--user", "u1", "--as-of", "2025-07-01"), "no feature snapshot as of 2025-07-01"),
    (("build", "--as-of", "2025-07-01"), "the event lake is empty"),
])
def test_bad_requests_fail_with_one_line_and_write_nothing(
        capsys: pytest.CaptureFixture[str], settings: Settings, args: tuple[str, ...],
        fragment: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err
    assert list(settings.path(*SNAPSHOTS).parent.rglob("*.*")) == []


def test_show_refuses_an_unknown_user(capsys: pytest.CaptureFixture[str],
                                      lake_with_events: Settings) -> None:
    run(capsys, "build", "--as-of", "2025-07-01")
    code, _, err = run(capsys, "show", "--user", "nobody")
    assert code == 1 and "user nobody is not in the snapshot as of 2025-07-01" in err
