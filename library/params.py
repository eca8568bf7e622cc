"""What the library's requests carry: JSON bodies and query strings, validated or refused with a
400 that names the first problem (the admin API's conventions, docs/library.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Final, NoReturn, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from mcu.infra.httpapi import ApiError, describe_validation_error, read_body

__all__ = [
    "MAX_BODY_BYTES",
    "Body",
    "Label",
    "Tags",
    "Title",
    "parse_body",
    "query_dict",
    "validate",
]

MAX_BODY_BYTES: Final = 64 * 1024
"""Largest JSON body accepted by the staff API."""

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=32)]

_M = TypeVar("_M", bound=BaseModel)


class Body(BaseModel):
    """A JSON request body: unknown fields refused, types strict."""

    model_config = ConfigDict(extra="forbid", strict=True)


def query_dict(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A query string's ``(name, value)`` pairs as a dict; ApiError 400 if a name repeats."""
    pairs = list(query)
    values = dict(pairs)
    if len(values) != len(pairs):
        raise ApiError(400, "bad_request", "a query parameter is repeated")
    return values


def _bad_request(exc: ValidationError) -> NoReturn:
    raise ApiError(400, "bad_request", describe_validation_error(exc))


def validate(model: type[_M], values: dict[str, Any]) -> _M:
    """``values`` (e.g. from :func:`query_dict`) as ``model``; ApiError 400 if they do not fit."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        _bad_request(exc)


async def parse_body(request: web.Request, model: type[_M], *, empty_ok: bool = False) -> _M:
    """The request's JSON body as ``model`` (an empty body as ``{}`` when ``empty_ok``);
    ApiError 400 if it does not fit, 413 past :data:`MAX_BODY_BYTES`."""
    body = await read_body(request, MAX_BODY_BYTES)
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        _bad_request(exc)
