"""From nothing to a scored platform: simulate, ingest, train, promote, recompute.

``altcredit demo`` runs this on a simulated population. Each stage records
what it did in ``<home>/demo/state.json``; running again reuses every stage
whose inputs are unchanged (same population parameters, same lake), so a
second ``make demo`` starts serving in seconds instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from config.database import get_engine, upgrade
from config.settings import Settings
from features import lake
from features.ingest import ingest_files
from features.simulate import simulate
from jobs.runner import run_job
from scoring.labels import add_months
from scoring.registry import load_champion

logger = logging.getLogger(__name__)

# (stage, done so far, total or None) -> None
Progress = Callable[[str, int, int | None], None]


class BootstrapError(RuntimeError):
    """The data home cannot take this population; nothing was changed."""


@dataclass(frozen=True)
class Population:
    users: int
    months: int
    seed: int
    end: date

    def key(self) -> str:
        return f"{self.users}x{self.months}@{self.seed}:{self.end.isoformat()}"


@dataclass
class BootstrapSummary:
    population: str
    events_stored: int
    champion: str
    score_dates: list[str]
    reused: list[str]


def bootstrap(settings: Settings, population: Population, *, history_months: int = 3,
              progress: Progress | None = None) -> BootstrapSummary:
    """Bring the platform to published scores for ``population``; stages already done are reused."""
    report = progress or (lambda _stage, _done, _total: None)
    upgrade(get_engine(settings))
    state = _State(settings.path("demo", "state.json"))
    if state.get("population") != population.key():
        if lake.watermark(settings) is not None:
            raise BootstrapError(
                f"the data home {settings.home} already holds events"
                + (f" of the demo population {state.get('population')}" if state.get("population") else "")
                + f"; use another ALTCREDIT_HOME for {population.key()}")
        state.reset(population=population.key())
    reused: list[str] = []

    events_dir = settings.path("demo", "events")
    if state.get("simulated") and any(events_dir.glob("*.parquet")):
        reused.append("simulate")
    else:
        report("simulate", 0, population.users)
        simulate(users=population.users, months=population.months, seed=population.seed,
                 out_dir=events_dir, end=population.end,
                 progress=lambda done: report("simulate", done, population.users))
        state.update(simulated=True, ingested=None)

    if state.get("ingested") and lake.watermark(settings) is not None:
        reused.append("ingest")
        stored = int(state.get("ingested"))
    else:
        files = sorted(path for path in events_dir.glob("*.parquet") if "truth" not in path.name)
        report("ingest", 0, len(files))
        result = ingest_files(settings, files)
        stored = result.stored + result.duplicates
        state.update(ingested=stored)

    champion = load_champion(settings)
    if champion is not None and state.get("champion") == champion.version:
        reused.append("train")
    else:
        report("train", 0, None)
        run_job(settings, "retrain", as_of=population.end)
        champion = load_champion(settings)
        if champion is None:
            raise RuntimeError("training finished without a champion model")
        state.update(champion=champion.version, scored=[])

    dates = score_dates(population.end, history_months)
    scored = set(state.get("scored") or [])
    pending = [day for day in dates if day.isoformat() not in scored]
    if not pending:
        reused.append("recompute")
    for index, as_of in enumerate(pending):
        report("recompute", index, len(pending))
        run_job(settings, "recompute_scores", as_of=as_of)
        scored.add(as_of.isoformat())
        state.update(scored=sorted(scored))
    return BootstrapSummary(population=population.key(), events_stored=stored,
                            champion=champion.version, score_dates=[d.isoformat() for d in dates],
                            reused=reused)


def score_dates(end: date, history_months: int) -> list[date]:
    """Month starts leading up to ``end``, then ``end``: a short score history to look back on."""
    first_of_month = end.replace(day=1)
    months = [add_months(first_of_month, -offset) for offset in range(history_months - 1, -1, -1)]
    return sorted({*months, end})


class _State:
    """A small JSON file of completed stages, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def reset(self, **values: Any) -> None:
        self.data = {}
        self.update(**values)

    def update(self, **values: Any) -> None:
        self.data.update(values, updated_at=datetime.now(UTC).isoformat())
        draft = self.path.with_name(f".{self.path.name}.tmp")
        draft.write_text(json.dumps(self.data, indent=2))
        os.replace(draft, self.path)
