"""Definition files are refused the same way whichever they are: one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.documents import read_toml, validated
from config.purposes import PurposesError, load_purposes
from config.schedules import ScheduleError, load_schedules
from config.scorecard import ScorecardError, load_scorecard


def test_a_missing_or_broken_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match=r"^absent\.toml: cannot read"):
        load_scorecard(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[scale\n")
    with pytest.raises(PurposesError, match=r"^broken\.toml: cannot read"):
        load_purposes(broken)
    with pytest.raises(ValueError, match="cannot read"):
        read_toml(broken, ValueError)


def test_a_bad_value_names_the_file_and_the_key(tmp_path: Path) -> None:
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('[defaults]\nmisfire_grace_seconds = 60\ncoalesce = true\n'
                         '[jobs.nightly]\ncron = "61 * * * *"\ndescription_en = "x"\ndescription_zh = "x"\n')
    with pytest.raises(ScheduleError) as caught:
        load_schedules(schedules)
    assert str(caught.value).startswith("schedules.toml: job nightly: cron:")
    assert "\n" not in str(caught.value)


def test_every_shipped_schedule_names_a_job_and_suits_batch_work() -> None:
    from jobs.tasks import TASKS

    schedules = load_schedules()
    assert set(schedules) == set(TASKS)
    for schedule in schedules.values():
        assert schedule.misfire_grace_seconds >= 3600 and schedule.coalesce


def test_validated_reports_the_first_problem() -> None:
    from config.schedules import JobSchedule

    with pytest.raises(ScheduleError, match=r"^here: misfire_grace_seconds: "):
        validated(JobSchedule, {"name": "x", "cron": "* * * * *", "description_en": "a",
                                "description_zh": "b", "misfire_grace_seconds": 0, "coalesce": True},
                  where="here", error=ScheduleError)
