from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ehass.db import Database
from ehass.main import create_app
from tests.conftest import TEST_ENCRYPTION_KEYS

Api = Callable[..., Awaitable[httpx.Response]]
_addresses = itertools.count(1)


@pytest.fixture
async def api_with(
    app, settings, engine, sessionmaker, clock
) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """`api = await api_with(require_verified_email=True, ip=...)`: the API of an app with
    some settings changed, in the test's transaction and on its clock. Without changes, the
    test's own app (and its counters) seen from another client address."""
    opened: list[tuple[Any | None, httpx.AsyncClient]] = []

    async def build(*, ip: str | None = None, **changes: Any) -> Api:
        # An address of its own unless told: per-address counters outlive tests in Redis.
        ip = ip or f"2001:db8:ffff::{next(_addresses):x}"
        changed = settings.model_copy(
            update={"encryption_keys": SecretStr(TEST_ENCRYPTION_KEYS), **changes}
        )
        built = (
            create_app(changed, clock=clock, database=Database(engine, sessionmaker))
            if changes
            else app
        )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=built, client=(ip, 50000)), base_url="http://t"
        )
        opened.append((built if changes else None, client))

        async def call(
            method: str, path: str, *, token: str | None = None, **kwargs: Any
        ) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

        return call

    yield build
    for built, client in opened:
        await client.aclose()
        if built is not None:
            await built.state.runtime.shared.close()
