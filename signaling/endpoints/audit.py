"""``GET /api/audit``: the audit trail searched by who, room, item, action and time, as JSON,
JSON lines or CSV. Behind the admin API's token (mounted on its sub-application); every search
is itself recorded. docs/audit.md is the reference."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from mcu.infra.auditlog import AuditTrail, iso_time
from mcu.infra.auditquery import AuditQuery, search, to_csv, to_jsonl
from mcu.infra.httpapi import ApiError, Moment, describe_validation_error

__all__ = ["MAX_EXPORT", "MAX_PAGE", "AuditParams", "setup_audit_api"]

MAX_PAGE = 1000
"Most entries one JSON answer holds (page on with ``offset``)."
MAX_EXPORT = 50_000
"Most entries one JSON-lines or CSV export holds."

Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AuditParams(BaseModel):
    """The query string of ``GET /api/audit``."""

    model_config = ConfigDict(extra="forbid")

    actor: Text | None = None
    room: Text | None = None
    item: Text | None = None
    action: Annotated[str, StringConstraints(pattern=r"^[a-z_]+(\.[a-z_]*)?$")] | None = None
    from_: Moment | date | None = Field(default=None, alias="from")
    to: Moment | date | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_EXPORT)] | None = None
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    format: Literal["json", "jsonl", "csv"] = "json"

    @model_validator(mode="after")
    def _page(self) -> AuditParams:
        if self.format == "json" and self.limit is not None and self.limit > MAX_PAGE:
            raise ValueError(f"limit: at most {MAX_PAGE} with format=json (export jsonl or csv)")
        return self

    def query(self) -> AuditQuery:
        """The search these parameters ask for."""
        limit = self.limit or (100 if self.format == "json" else MAX_EXPORT)
        return AuditQuery(
            actor=self.actor,
            room=self.room,
            item=self.item,
            action=self.action,
            since=_moment(self.from_, next_day=False),
            until=_moment(self.to, next_day=True),
            limit=limit,
            offset=self.offset,
        )


def _moment(value: datetime | date | None, *, next_day: bool) -> str | None:
    """A bound as entries write times; a bare ``to`` date includes that whole UTC day."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        day = value + timedelta(days=1) if next_day else value
        value = datetime.combine(day, time(), UTC)
    return iso_time(value.timestamp())


def _params(request: web.Request) -> AuditParams:
    pairs = list(request.query.items())
    values = dict(pairs)
    if len(values) != len(pairs):
        raise ApiError(400, "bad_request", "a query parameter is repeated")
    try:
        return AuditParams.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["loc"] and first["loc"][0] in ("from", "to"):
            field = first["loc"][0]
            message = f"{field}: must be a date (YYYY-MM-DD) or a time with its zone"
        else:
            message = describe_validation_error(exc)
        raise ApiError(400, "bad_request", message) from None


class _AuditRoutes:
    def __init__(self, audit_dir: Path, audit: AuditTrail) -> None:
        self._dir, self._audit = audit_dir, audit

    async def query(self, request: web.Request) -> web.Response:
        """``GET /api/audit``."""
        params = _params(request)
        query = params.query()
        await self._audit.flush()  # this process's latest entries too (others': within 1 s)
        entries = await asyncio.get_running_loop().run_in_executor(None, search, self._dir, query)
        # Who read the trail, and what they asked for, is itself on the record.
        self._audit.record(
            "audit.read",
            actor="admin",
            address=request.remote,
            details={
                "format": params.format,
                "filters": request.query_string,
                "entries": len(entries),
            },
        )
        if params.format == "jsonl":
            return web.Response(
                text=to_jsonl(entries),
                content_type="application/x-ndjson",
                headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
            )
        if params.format == "csv":
            return web.Response(
                text=to_csv(entries),
                content_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
            )
        return web.json_response({"entries": entries})


def setup_audit_api(api: web.Application, *, audit_dir: Path, audit: AuditTrail) -> None:
    """Add ``GET /audit`` to ``api``, the admin API's sub-application (its token, its errors)."""
    routes = _AuditRoutes(audit_dir, audit)
    api.router.add_get("/audit", routes.query, allow_head=False)
