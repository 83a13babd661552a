"""Why ingestion refuses input, in a shape the HTTP layer can answer without guessing.

Every refusal is an :class:`IngestError` with an HTTP-like ``status`` (400 bad
input, 409 conflict, 413 too large) and a list of :class:`RowProblem`; the
partner API maps ``status`` to its problem type and ``problems`` to the
``errors`` member. Nothing here imports anything HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RowProblem:
    """One reason a record or file row is refused: where (``index``), which field, and why.

    ``index`` is the 0-based position in a batch, or the 1-based row number of a
    file (0 when the problem is the file itself, such as an unknown column).
    """

    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class IngestError(Exception):
    """Input was refused and nothing was stored."""

    status = 400

    def __init__(self, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[RowProblem] = list(problems or [])

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The problems as plain dicts (``index``, ``field``, ``reason``), for a problem document."""
        return [problem.as_dict() for problem in self.problems]

    def one_line(self) -> str:
        """The message and the first problem, for a command line."""
        if not self.problems:
            return self.message
        first = self.problems[0]
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.message}: {self.where(first)} {first.field}: {first.reason}{more}"

    def where(self, problem: RowProblem) -> str:
        return f"record {problem.index}"


class InvalidEvents(IngestError):
    """Some records or rows break the taxonomy (400)."""

    status = 400


class InvalidFile(InvalidEvents):
    """A file cannot be read or has bad rows (400); ``path`` names it, rows are 1-based."""

    def __init__(self, path: str, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(f"{path}: {message}", problems)
        self.path = path

    def where(self, problem: RowProblem) -> str:
        return "file" if problem.index == 0 else f"row {problem.index}"


class EventConflict(IngestError):
    """An event id is already stored (or repeated in the input) with different content (409)."""

    status = 409


class BatchTooLarge(IngestError):
    """A batch holds more records than ``ingest_max_batch`` (413)."""

    status = 413
