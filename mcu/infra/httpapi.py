"""Shared pieces of the server's JSON HTTP APIs (rooms admin, recordings library).

Errors are ``{"error": code, "message": text}`` with a status; staff requests carry
``Authorization: Bearer <admin token>``; bodies are read with a limit of their own.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, ValidationError

from mcu.infra import jsonnumbers

EARLIEST_YEAR = 1970
"First year (UTC) of a time the APIs accept: stored times are Unix timestamps."
LATEST_YEAR = 9998
"Last year (UTC) of a time the APIs accept, so that a day later still fits in a ``datetime``."


class ApiError(Exception):
    """A refused request, answered as a JSON error."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}


STORE_UNAVAILABLE = "store_unavailable"
"The error of a ``503`` while a cluster's shared store (Redis) does not answer."


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON error reply."""
    response = web.json_response({"error": error, "message": message}, status=status)
    response.headers.update(headers or {})
    return response


def store_unavailable_response() -> web.Response:
    """``503 store_unavailable`` with ``Retry-After: 1``: a cluster's Redis is away or failing
    over (seconds, with Sentinel); the same request will do once it answers."""
    message = "the room store does not answer; try again"
    return error_response(503, STORE_UNAVAILABLE, message, {"Retry-After": "1"})


def plausible_moment(moment: datetime) -> datetime:
    """``moment`` (timezone-aware) if it falls in the years ``EARLIEST_YEAR``..``LATEST_YEAR`` in
    UTC; ``ValueError`` otherwise, for pydantic to report against the field.

    The conversion itself can fail: ``9999-12-31T23:59:59-14:00`` is valid ISO 8601 but falls in
    the year 10000 in UTC, where ``datetime`` raises ``OverflowError``.
    """
    try:
        year = moment.astimezone(UTC).year
    except OverflowError:
        year = None
    if year is None or not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR} in UTC")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(plausible_moment)]
"A request's point in time: ISO 8601 with a zone, within :func:`plausible_moment`'s years."


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first problem of a request body or query."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    prefix = f"{field}: " if field else ""
    kind = first["type"]
    if kind == "json_invalid":
        oversized = _oversized_number(first.get("input"))
        if oversized is not None:
            return f"{oversized}: number out of range"
        return f"malformed JSON: {first['ctx'].get('error', first['msg'])}"
    if kind == "extra_forbidden":
        return f"unknown field {field!r}"
    if kind == "missing":
        return f"{field}: required"
    if kind == "model_type":
        return "body must be a JSON object"
    if kind == "value_error":
        return f"{prefix}{first['ctx']['error']}"
    return f"{prefix}{first['msg']}"


def _oversized_number(document: object) -> str | None:
    """Where a body the JSON parser refused holds an integer too long to read (pydantic's parser
    only says "number out of range" and a column), so the error can name the field."""
    if not isinstance(document, str | bytes):
        return None
    try:
        return jsonnumbers.find_oversized(jsonnumbers.loads(document))
    except (ValueError, RecursionError):  # malformed for another reason too
        return None


def bearer_token(request: web.BaseRequest) -> str | None:
    """The request's bearer credential, None when it sends none."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    token = credentials.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_matches(request: web.BaseRequest, token: bytes) -> bool:
    """Whether the request's bearer credential is ``token`` (compared in constant time)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8"), token)


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read ``/metrics`` and the counts in ``/healthz``: anyone when ``token`` is None,
    else a request bearing it. Liveness itself (``/healthz``'s status, ``/readyz``) stays open
    for load balancers."""

    token: bytes | None

    def allows(self, request: web.BaseRequest) -> bool:
        """Whether ``request`` may read the figures."""
        return self.token is None or bearer_matches(request, self.token)

    def refuse(self) -> web.Response:
        """The 401 for a request that may not."""
        return web.json_response(
            {"error": "unauthorized", "message": "the metrics token is needed"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="mcu-metrics"'},
        )


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (whatever the app allows)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"request body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"request body exceeds {limit} bytes")
    return bytes(body)
