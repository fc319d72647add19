"""Two admins import directory versions at the same moment, each checked against the version in force: one is
activated, the other is refused (DirectoryChangedMeanwhile) and writes nothing, on SQLite and PostgreSQL. Without
taking turns both went in, the later one checked against a version no longer in force."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.migrate import upgrade
from services.router import service
from services.router.store import directory_versions, messaging
from tests.integration.test_directory_import_review import counts, demo


@pytest.fixture
async def store(any_settings):
    url = any_settings.database_url("router")
    await asyncio.to_thread(upgrade, "router", url)
    store = ServiceStore("router", Database(url), messaging)
    await service.import_directory(store, demo(), by="system")
    yield store
    await store.db.dispose()


def version(name: str) -> str:
    text = demo()
    line = next(line for line in text.splitlines() if line.startswith("version:"))
    return text.replace(line, f"version: {name}", 1)


async def test_two_imports_at_once_activate_one_and_refuse_the_other(store, monkeypatch):
    read_first = service.current_directory
    both_read = asyncio.Event()
    readers = []

    async def current_directory(s):  # both imports check against the same version before either writes
        found = await read_first(s)
        readers.append(found[0])
        if len(readers) == 2:
            both_read.set()
        await asyncio.wait_for(both_read.wait(), 10)
        return found

    monkeypatch.setattr(service, "current_directory", current_directory)
    results = await asyncio.gather(service.import_directory(store, version("2026-A"), by="admin1"),
                                   service.import_directory(store, version("2026-B"), by="admin2"),
                                   return_exceptions=True)
    assert readers == [1, 1]
    written = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, service.DirectoryChangedMeanwhile)]
    assert len(written) == 1 and len(refused) == 1, results
    assert refused[0].version_id == written[0][0] == 2
    assert "已被他人更新" in str(refused[0]) and "changed meanwhile" in str(refused[0])
    assert await counts(store) == (2, 2)  # the first version and one more, each owed to intake once
    async with store.db.session() as s:
        assert await s.scalar(select(func.max(directory_versions.c.id))) == 2
