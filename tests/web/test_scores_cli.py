"""``altcredit scores``: recompute, list, show and explain, as a user runs them (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.database import get_engine, upgrade
from config.settings import Settings
from scoring.publish import list_scores
from tests.scoring.test_recompute import AS_OF, LATER, populate, register_champion
from web.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def published(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Two recomputed dates; returns a user scored on both."""
    upgrade(get_engine(settings))
    populate(settings, tmp_path / "sim")
    register_champion(settings)
    for day in (AS_OF, LATER):
        code, _out, err = run(capsys, "scores", "recompute", "--as-of", day.isoformat())
        assert code == 0, err
    engine = get_engine(settings)
    earlier = {s.user_id for s in list_scores(engine, as_of=AS_OF, limit=10_000) if s.score}
    return next(s.user_id for s in list_scores(engine, as_of=LATER, limit=10_000)
                if s.score and s.user_id in earlier)


def test_explain_json_has_every_part_and_the_change(published: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "scores", "explain", "--user", published, "--since",
                         AS_OF.isoformat(), "--json")
    assert code == 0, err
    document = json.loads(out)
    for key in ("score", "score_unclipped", "base_points", "features", "dimensions", "reasons",
                "tips", "change"):
        assert key in document
    assert document["as_of"] == LATER.isoformat()
    assert document["base_points"] + sum(document["features"].values()) == pytest.approx(
        document["score_unclipped"], abs=1e-6)
    assert set(document["dimensions"]) == {"credit_history", "behaviour", "capacity", "identity",
                                           "connections"}
    for reason in document["reasons"]:
        assert set(reason) >= {"code", "text_en", "text_zh", "points"}
    for tip in document["tips"]:
        assert set(tip) >= {"feature", "from", "to", "points", "text_en", "text_zh"}
    change = document["change"]
    assert change["since"] == AS_OF.isoformat()
    assert change["base_points"] + sum(change["features"].values()) == pytest.approx(
        change["unclipped_difference"], abs=1e-6)


def test_list_and_show_print_one_json_document(published: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scores", "list", "--limit", "5", "--json")
    listed = json.loads(out)
    assert code == 0 and listed["as_of"] == LATER.isoformat() and len(listed["scores"]) == 5
    code, out, _ = run(capsys, "scores", "show", "--user", published, "--as-of",
                       AS_OF.isoformat(), "--json")
    shown = json.loads(out)
    assert code == 0 and shown["user_id"] == published and shown["as_of"] == AS_OF.isoformat()
    code, out, _ = run(capsys, "scores", "explain", "--user", published)
    assert code == 0 and "reasons:" in out


def test_bad_input_is_one_line_and_changes_nothing(published: str, settings: Settings,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = list_scores(get_engine(settings), limit=10_000)
    code, _, err = run(capsys, "scores", "show", "--user", "nobody")
    assert code == 1 and err.strip() == "altcredit: no published score for user nobody"
    code, _, err = run(capsys, "scores", "explain", "--user", published, "--since", "2020-01-01")
    assert code == 1 and "on or before 2020-01-01" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "scores", "recompute", "--as-of", "yesterday")
    assert code == 2 and "is not a date" in err
    assert list_scores(get_engine(settings), limit=10_000) == before


def test_recompute_without_a_model_says_what_to_do(settings: Settings,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scores", "recompute", "--as-of", AS_OF.isoformat())
    assert code == 1 and "run `altcredit model train` first" in err
