"""Click parameter types shared by every command, so a bad date reads the same everywhere."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import click


class DateParam(click.ParamType):
    """A calendar date, YYYY-MM-DD."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


class InstantParam(click.ParamType):
    """A moment in time: YYYY-MM-DD (midnight UTC) or an ISO 8601 timestamp (UTC unless it says)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date or an ISO 8601 time", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


DATE = DateParam()
INSTANT = InstantParam()
