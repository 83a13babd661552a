"""``altcredit scores``: recompute, list, show and explain, as a user runs them (in process)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.database import dispose_engines, get_engine, upgrade
from config.settings import Settings, load_settings
from scoring.publish import list_scores
from scoring.recompute import recompute
from tests.scoring.test_recompute import AS_OF, LATER, populate, register_champion
from web.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def scored_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A data home with two recomputed dates (built once), and a user scored on both."""
    home = tmp_path_factory.mktemp("scores") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("ALTCREDIT_") and name != "ALTCREDIT_TEST_DATABASE_URL":
                patch.delenv(name)
        patch.setenv("ALTCREDIT_HOME", str(home))
        settings = load_settings(home=home, log_format="text")
        engine = get_engine(settings)
        upgrade(engine)
        populate(settings, home.parent / "sim")
        register_champion(settings)
        for day in (AS_OF, LATER):
            recompute(settings, as_of=day)
        earlier = {s.user_id for s in list_scores(engine, as_of=AS_OF, limit=10_000) if s.score}
        user = next(s.user_id for s in list_scores(engine, as_of=LATER, limit=10_000)
                    if s.score and s.user_id in earlier)
        yield home, user
    dispose_engines()


@pytest.fixture
def published(scored_home: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The user scored on both dates; the CLI reads the shared home."""
    monkeypatch.setenv("ALTCREDIT_HOME", str(scored_home[0]))
    return scored_home[1]


def published_settings(scored_home: tuple[Path, str]) -> Settings:
    return load_settings(home=scored_home[0], log_format="text")


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


def test_bad_input_is_one_line_and_changes_nothing(published: str,
                                                  scored_home: tuple[Path, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(published_settings(scored_home))
    before = list_scores(engine, limit=10_000)
    code, _, err = run(capsys, "scores", "show", "--user", "nobody")
    assert code == 1 and err.strip() == "altcredit: no published score for user nobody"
    code, _, err = run(capsys, "scores", "explain", "--user", published, "--since", "2020-01-01")
    assert code == 1 and "on or before 2020-01-01" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "scores", "recompute", "--as-of", "yesterday")
    assert code == 2 and "is not a date" in err
    assert list_scores(engine, limit=10_000) == before


def test_recompute_without_a_model_says_what_to_do(settings: Settings,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scores", "recompute", "--as-of", AS_OF.isoformat())
    assert code == 1 and "run `altcredit model train` first" in err


def test_recompute_reruns_a_date_and_prints_its_summary(published: str,
                                                        scored_home: tuple[Path, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(published_settings(scored_home))
    before = len(list_scores(engine, as_of=LATER, limit=10_000))
    code, out, err = run(capsys, "scores", "recompute", "--as-of", LATER.isoformat(), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["as_of"] == LATER.isoformat() and summary["n_users"] == before
    assert len(list_scores(engine, as_of=LATER, limit=10_000)) == before
