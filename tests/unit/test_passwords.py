"""Argon2id room-password hashing."""

from __future__ import annotations

import asyncio

from mcu.crypto.passwords import (
    hash_password,
    hash_password_sync,
    remembered_matches,
    verify_password,
    verify_password_sync,
)


async def test_hash_then_verify() -> None:
    stored = await hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert await verify_password(stored, "correct horse battery")
    assert not await verify_password(stored, "correct horse batterY")
    assert not await verify_password(stored, "")


def test_same_password_gets_different_salts() -> None:
    first, second = hash_password_sync("same-password"), hash_password_sync("same-password")
    assert first != second
    assert verify_password_sync(first, "same-password")
    assert verify_password_sync(second, "same-password")


async def test_malformed_hashes_are_a_mismatch_not_an_error() -> None:
    stored = hash_password_sync("pw-12345678")
    salt_and_digest = stored.rsplit("$", 2)
    for broken in (
        "",
        "plaintext",
        "$2b$12$abcdefghijklmnopqrstuv",  # bcrypt, not Argon2
        stored[:-10],
        f"{salt_and_digest[0]}$$",
        stored.replace("$argon2id$", "$argon2x$"),
    ):
        assert not verify_password_sync(broken, "pw-12345678"), broken
        assert not await verify_password(broken, "pw-12345678"), broken


async def test_concurrent_verifies_all_complete() -> None:
    stored = hash_password_sync("parallel-pw")
    guesses = ["parallel-pw" if i % 3 == 0 else f"guess-{i}" for i in range(9)]
    results = await asyncio.gather(*(verify_password(stored, guess) for guess in guesses))
    assert results == [i % 3 == 0 for i in range(9)]


async def test_only_matches_are_remembered_and_per_stored_hash() -> None:
    stored = await hash_password("viewer password 1")
    before = remembered_matches()
    assert not await verify_password(stored, "a wrong guess")
    assert remembered_matches() == before  # wrong guesses always pay the full check
    assert await verify_password(stored, "viewer password 1")
    assert remembered_matches() == before + 1
    assert await verify_password(stored, "viewer password 1")  # from memory
    assert remembered_matches() == before + 1
    # The password changed (a new stored hash): the old match does not carry over.
    changed = await hash_password("viewer password 2")
    assert not await verify_password(changed, "viewer password 1")
    assert await verify_password(changed, "viewer password 2")
