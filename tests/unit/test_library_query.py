"""The library's search query string, parsed without a server."""

from __future__ import annotations

import pytest

from mcu.infra.httpapi import ApiError
from mcu.library.search import parse_search


def test_a_day_is_searched_whole() -> None:
    search = parse_search([("from", "2026-01-01"), ("to", "2026-01-01"), ("q", "stroke")])
    assert search.recorded_to is not None and search.recorded_from is not None
    assert search.recorded_to - search.recorded_from == 86_400
    assert search.text == "stroke"


def test_the_last_day_there_is_is_a_400_naming_the_field() -> None:
    # Found with the library_query fuzz target's inputs: the end of 9999-12-31 is past what a
    # datetime holds, and computing it raised OverflowError (a 500). Times are checked to lie in
    # the years 1970-9998, as everywhere in the API.
    for name in ("from", "to"):
        with pytest.raises(ApiError) as caught:
            parse_search([(name, "9999-12-31")])
        assert caught.value.status == 400 and name in caught.value.message


def test_a_repeated_parameter_is_400() -> None:
    with pytest.raises(ApiError) as caught:
        parse_search([("q", "a"), ("q", "b")])
    assert caught.value.status == 400
