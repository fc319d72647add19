"""Shared fixtures: settings on temporary SQLite files, the PostgreSQL test database, the embedded broker.

PostgreSQL and browser tests skip when their server or browser is missing, unless
JIESU_REQUIRE_ALL=1 (as in CI), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from bench.topology import drop_jiesu_tables
from jiesu.config import Settings

REQUIRE_ALL = os.environ.get("JIESU_REQUIRE_ALL") == "1"
PG_URL = os.environ.get("JIESU_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


def skip_or_fail(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (mandatory because JIESU_REQUIRE_ALL=1)")
    pytest.skip(reason)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    _env_file=None)


def _pg_reachable() -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url() -> str:
    if not _pg_reachable():
        skip_or_fail(f"PostgreSQL not reachable at {PG_URL}")
    asyncio.run(drop_jiesu_tables(PG_URL))
    return PG_URL


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    intake_database_url=pg_url, router_database_url=pg_url, tracker_database_url=pg_url,
                    identity_database_url=pg_url, _env_file=None)


@pytest.fixture(params=["sqlite", "postgres"])
def any_settings(request, tmp_path: Path) -> Settings:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_settings")
    return request.getfixturevalue("pg_settings")
