"""A service's store with its messaging and audit tables (the router's, migrated), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.migrate import upgrade
from services.router.store import messaging


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"
    return request.getfixturevalue("pg_url")


async def _router_store(url: str) -> AsyncIterator[ServiceStore]:
    await asyncio.to_thread(upgrade, "router", url)
    store = ServiceStore("router", Database(url), messaging)
    yield store
    await store.db.dispose()


@pytest.fixture
async def store(url):
    async for s in _router_store(url):
        yield s


@pytest.fixture
async def pg_store(pg_url):
    async for s in _router_store(pg_url):
        yield s
