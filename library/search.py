"""The staff API's search, ``GET /api/library?q=...``: its query string parsed into what the
catalogue takes. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from mcu.infra.httpapi import plausible_moment
from mcu.library.params import Label, query_dict, validate

__all__ = ["LibrarySearch", "parse_search"]


class _QueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: Annotated[str, StringConstraints(max_length=200)] = ""
    department: Label | None = None
    from_: float | None = Field(default=None, alias="from")
    "Unix time of the earliest recording (``from``: a date's start, or a time with a zone)."
    to: float | None = None
    "Unix time just after the latest recording (``to``: the next day's start, or a time)."
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _moment(cls, value: object, info: ValidationInfo) -> float:
        if not isinstance(value, str):
            raise ValueError("must be an ISO-8601 date or time")
        return _moment(value, end_of_day=info.field_name == "to")


@dataclass(frozen=True)
class LibrarySearch:
    """A validated ``GET /api/library`` query, as the catalogue takes it."""

    text: str | None
    "Words that must all occur (None: any item)."
    department: str | None
    "Exact department, case-insensitive."
    recorded_from: float | None
    "Unix time, inclusive."
    recorded_to: float | None
    "Unix time, exclusive (a bare date's whole day is included)."
    limit: int
    "Page size."
    offset: int
    "Items skipped."


def parse_search(query: Iterable[tuple[str, str]]) -> LibrarySearch:
    """The search a query string's ``(name, value)`` pairs ask for; ApiError 400 if malformed."""
    params = validate(_QueryParams, query_dict(query))
    return LibrarySearch(
        text=params.q or None,
        department=params.department,
        recorded_from=params.from_,
        recorded_to=params.to,
        limit=params.limit,
        offset=params.offset,
    )


def _moment(text: str, *, end_of_day: bool) -> float:
    """The Unix time a ``from``/``to`` parameter means; ``ValueError`` says what is wrong.

    A bare date means that UTC day (``to`` the start of the next one); a time needs its zone, as
    everywhere in the API.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an ISO-8601 date or time") from None
    if moment.tzinfo is None:
        raise ValueError("a time needs a zone, e.g. 'Z'")
    # Checked before adding a day: the day after 9999-12-31 is not a date.
    plausible_moment(moment)
    if len(text) == 10 and end_of_day:
        moment += timedelta(days=1)
    return moment.timestamp()
