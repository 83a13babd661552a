"""What an app instance owns: its settings, its database engine, its readiness checks.

Kept on ``app.extensions["altcredit"]`` so that nothing is global: two apps
with different settings (as tests build them) never share state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Engine

from config.settings import Settings

# A readiness check answers (ok, detail); /readyz runs them all.
ReadinessCheck = Callable[["AppState"], tuple[bool, str]]


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Register a check that must pass before the app reports itself ready."""
        self.readiness_checks[name] = check


def current_state() -> AppState:
    state: AppState = current_app.extensions["altcredit"]
    return state
