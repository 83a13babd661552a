"""Job schedules: loaded from config/schedules.toml and validated once."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.documents import read_toml, validated

SCHEDULES_FILE = Path(__file__).with_name("schedules.toml")


class ScheduleError(ValueError):
    """The schedules file is invalid; ``str()`` is one line naming the job and key."""


class JobSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    cron: str
    description_en: str = Field(min_length=1)
    description_zh: str = Field(min_length=1)
    misfire_grace_seconds: int = Field(gt=0)
    coalesce: bool

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab line ({exc})") from None
        return value

    def trigger(self) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone="UTC")


@cache
def load_schedules(path: Path = SCHEDULES_FILE) -> dict[str, JobSchedule]:
    """Every job's schedule by name, defaults applied."""
    document = read_toml(path, ScheduleError)
    defaults = document.get("defaults", {})
    return {name: validated(JobSchedule, {"name": name, **defaults, **entry},
                            where=f"{path.name}: job {name}", error=ScheduleError)
            for name, entry in document.get("jobs", {}).items()}
