"""Reading the definition files of config/: TOML in, validated pydantic models out.

Every definitions file (features, scorecard, reasons, purposes, schedules) is
read and refused the same way, so an operator who breaks one gets the same
kind of one-line error naming the file and the key, whichever it is.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def read_toml(path: Path, error: type[ValueError]) -> dict[str, Any]:
    """The parsed file, or ``error("<file>: cannot read (...)")``."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path.name}: cannot read ({exc})") from None


def validated(model: type[Model], raw: Any, *, where: str, error: type[ValueError]) -> Model:
    """``model`` validated from ``raw``, or ``error("<where>: <key>: <problem>")`` for the first problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "document"
        raise error(f"{where}: {key}: {first['msg']}") from None
