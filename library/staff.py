"""Who a staff request is, and which items they see.

Staff sign in with the admin token (bootstrap and operations: it sees everything) or with an
access token from the hospital's platform with the role ``staff`` or ``admin``. A staff token's
``department`` scopes the library: such a member sees the items of their department and the
items that have none; a staff token without a department sees only the latter. Admins see all.
An item outside the scope answers 404, as if it did not exist.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from mcu.crypto.accesstokens import AccessRole, AccessTokens, ApiAccess, ApiRefused, api_access
from mcu.infra.httpapi import ApiError, bearer_token
from mcu.recorder.catalogue import LibraryItem

__all__ = ["STAFF_ROLES", "Revoked", "StaffAccess", "may_label", "request_access", "visible"]

STAFF_ROLES: Final[frozenset[AccessRole]] = frozenset({"staff", "admin"})
"Access-token roles the library takes."
_ACCESS_KEY: Final = web.RequestKey("library_access", ApiAccess)

Revoked = Callable[[str, float], Awaitable[bool]]
"Whether an access token id is on the deny list at a time (the room database's)."


def visible(access: ApiAccess, item: LibraryItem) -> bool:
    """Whether ``access`` sees ``item``."""
    if access.role == "admin" or item.department is None:
        return True
    return access.department is not None and _same(access.department, item.department)


def may_label(access: ApiAccess, department: str | None) -> bool:
    """Whether ``access`` may file an item under ``department``: a staff member only under
    their own (else they would hand it to another department, or to every one)."""
    if access.role == "admin":
        return True
    return (
        department is not None
        and access.department is not None
        and _same(access.department, department)
    )


def _same(first: str, second: str) -> bool:
    # As the catalogue's department search matches: case-insensitively.
    return first.casefold() == second.casefold()


def request_access(request: web.Request) -> ApiAccess:
    """Who the staff request is (set by :meth:`StaffAccess.admit`)."""
    return request[_ACCESS_KEY]  # set by the staff middleware before any handler runs


class StaffAccess:
    """Checks staff requests' bearer credentials."""

    def __init__(self, admin_token: str, tokens: AccessTokens, revoked: Revoked) -> None:
        self._admin_token = admin_token.encode("utf-8")
        self._tokens, self._revoked = tokens, revoked

    async def identify(self, request: web.Request) -> ApiAccess:
        """Who the request is; ApiError 401 (no usable credential, or a bad or revoked token)
        or 403 (a token of a role the library does not take)."""
        now = time.time()
        try:
            access = api_access(
                bearer_token(request), self._admin_token, self._tokens, now, STAFF_ROLES
            )
        except ApiRefused as exc:
            status = 403 if exc.code == "role_not_allowed" else 401
            headers = {"WWW-Authenticate": 'Bearer realm="mcu-admin"'} if status == 401 else {}
            raise ApiError(status, exc.code, exc.message, headers) from None
        if access.jti is not None and await self._revoked(access.jti, now):
            raise ApiError(
                401,
                "bad_token",
                "the access token has been revoked",
                {"WWW-Authenticate": 'Bearer realm="mcu-admin"'},
            )
        return access

    async def admit(self, request: web.Request) -> None:
        """Identify the request and remember who it is for the handlers."""
        request[_ACCESS_KEY] = await self.identify(request)
