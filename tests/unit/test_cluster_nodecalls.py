"""Calls between nodes at the receiving front: a verified credential makes ``X-Forwarded-For``
and ``X-Mcu-Join-Within`` trusted; a bad one is refused 403; a client's copies are dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from mcu.app.cluster.front import _forward_headers
from mcu.app.cluster.nodecalls import NODE_CALL, node_call_middleware, trusted_join_within
from mcu.contracts.cluster import (
    CALLER_NODE_HEADER,
    FORWARDED_FOR_HEADER,
    HOME_NODE_HEADER,
    HOME_WORKER_HEADER,
    JOIN_WITHIN_HEADER,
    NODE_CREDENTIAL_HEADER,
    WORKER_HEADER,
)
from mcu.crypto.clustercalls import NodeCredentials

SECRET = b"a cluster secret of at least 32 characters"


async def _echo(request: web.Request) -> web.Response:
    call = request.get(NODE_CALL)
    return web.json_response(
        {
            "remote": request.remote,
            "node": call.node if call is not None else None,
            "body": call.body.decode() if call is not None else None,
            "join_within": trusted_join_within(request),
        }
    )


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[node_call_middleware(NodeCredentials(SECRET, "home"))])
    app.router.add_route("*", "/{tail:.*}", _echo)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_verified_call_is_trusted(
    client: TestClient[web.Request, web.Application],
) -> None:
    caller = NodeCredentials(SECRET, "edge")
    path = "/whip/ward?name=Dr%20Li"
    headers = {
        NODE_CREDENTIAL_HEADER: caller.sign("POST", path, b"v=0"),
        FORWARDED_FOR_HEADER: "10.1.2.3",
        JOIN_WITHIN_HEADER: "4.5",
    }
    async with client.post(path, data=b"v=0", headers=headers) as r:
        assert r.status == 200
        assert await r.json() == {
            "remote": "10.1.2.3",
            "node": "edge",
            "body": "v=0",
            "join_within": 4.5,
        }


@pytest.mark.parametrize(
    "credential",
    [
        "forged",
        NodeCredentials(b"another cluster's secret, 32 chars+", "edge").sign("POST", "/x", b"a"),
        NodeCredentials(SECRET, "edge").sign("POST", "/x", b"another body"),
        NodeCredentials(SECRET, "edge").sign("POST", "/elsewhere", b"a"),
    ],
)
async def test_a_bad_credential_is_refused(
    client: TestClient[web.Request, web.Application], credential: str
) -> None:
    headers = {NODE_CREDENTIAL_HEADER: credential, FORWARDED_FOR_HEADER: "10.1.2.3"}
    async with client.post("/x", data=b"a", headers=headers) as r:
        assert r.status == 403
        assert (await r.json())["error"] == "forbidden"


async def test_a_replayed_credential_is_refused(
    client: TestClient[web.Request, web.Application],
) -> None:
    credential = NodeCredentials(SECRET, "edge").sign("GET", "/x")
    statuses = []
    for _ in range(2):
        async with client.get("/x", headers={NODE_CREDENTIAL_HEADER: credential}) as r:
            statuses.append(r.status)
    assert statuses == [200, 403]


async def test_a_client_request_is_not_trusted(
    client: TestClient[web.Request, web.Application],
) -> None:
    headers = {FORWARDED_FOR_HEADER: "10.1.2.3", JOIN_WITHIN_HEADER: "9999"}
    async with client.get("/x", headers=headers) as r:
        reply = await r.json()
    assert reply["remote"] == "127.0.0.1" and reply["node"] is None
    assert reply["join_within"] is None


def test_the_front_drops_internal_headers_a_client_sent() -> None:
    sent = CIMultiDict(
        {
            FORWARDED_FOR_HEADER: "10.1.2.3",
            HOME_WORKER_HEADER: "3",
            JOIN_WITHIN_HEADER: "9999",
            NODE_CREDENTIAL_HEADER: "x",
            CALLER_NODE_HEADER: "0a1b2c3d4e5f",
            WORKER_HEADER: "0",
            HOME_NODE_HEADER: "0a1b2c3d4e5f",
            "Authorization": "Bearer t",
        }
    )
    passed = _forward_headers(sent, "192.0.2.9")
    assert dict(passed) == {"Authorization": "Bearer t", FORWARDED_FOR_HEADER: "192.0.2.9"}
