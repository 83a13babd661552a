"""``altcredit demo`` end to end, as `make demo` runs it (without serving), and its reuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow


def _demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "web.cli", "demo", "--users", "500", "--months", "21",
                           "--no-serve", *args], env={**os.environ, "ALTCREDIT_HOME": str(home)},
                          capture_output=True, text=True, timeout=900)


def test_the_demo_scores_a_population_reuses_it_and_refuses_another(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _demo(home)
    assert first.returncode == 0, first.stderr
    people = json.loads((home / "demo" / "people.json").read_text())
    assert f"altcredit lookup {people['open_id']} --purpose loan_underwriting" in first.stdout
    assert people["email"] in first.stdout and people["password"] in first.stdout
    assert (home / "demo" / "partner_key.pem").stat().st_mode & 0o777 == 0o600

    engine = sa.create_engine(f"sqlite:///{home / 'altcredit.db'}")
    with engine.connect() as connection:
        dates = connection.execute(sa.text(
            "SELECT as_of, count(*) FROM score_history GROUP BY as_of ORDER BY as_of")).all()
        champion = connection.execute(sa.text("SELECT version_id FROM model_roles "
                                              "WHERE role = 'champion'")).scalar()
    engine.dispose()
    assert len(dates) == 4 and all(count == 500 for _, count in dates)
    assert champion

    again = _demo(home)
    assert again.returncode == 0, again.stderr
    assert "reused: simulate, ingest, train, recompute" in " ".join(again.stderr.split())
    assert json.loads((home / "demo" / "people.json").read_text()) == people

    other = _demo(home, "--seed", "8")  # another population would mix with this one's events
    assert other.returncode == 1
    last = other.stderr.strip().splitlines()[-1]
    assert last.startswith("altcredit: the data home") and "another ALTCREDIT_HOME" in last
