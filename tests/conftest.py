"""Shared fixtures: settings on temporary SQLite files, the PostgreSQL test database, the embedded broker.

PostgreSQL and browser tests skip when their server or browser is missing, unless
JIESU_REQUIRE_ALL=1 (as in CI), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest

from bench.topology import drop_jiesu_tables
from jiesu.config import Settings
from tests.mandatory import skip_or_fail

PG_URL = os.environ.get("JIESU_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


# Consumer groups that form quickly on the embedded broker. Tansu holds a new group's first join
# for half the session timeout (at least 1 s): with the default 10 s every system under test waited
# 5 s before its first event. An idle fetch held for at most 100 ms instead of 500 ms lets each
# hop between services take ~20 ms instead of ~115 ms, for a few percent of a core while idle.
FAST_GROUPS = {"consumer_session_timeout_ms": 2000, "consumer_heartbeat_interval_ms": 500,
               "consumer_fetch_max_wait_ms": 100}


def _batches_split() -> float:
    from jiesu.consumer import SPLIT

    return sum(sample.value for metric in SPLIT.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


@pytest.fixture(autouse=True)
def batches_stay_whole(request):
    """Fail a test in which a consumer batch failed and was applied again one record at a time.

    The fall-back keeps a service working when one record is poison, and it hides a handler
    bug that every batch trips: each record then succeeds alone, every assertion passes and
    the system runs at a fraction of its speed. Tests that send a poison message on purpose
    say so with `@pytest.mark.splits_batches`.
    """
    before = _batches_split()
    yield
    split = _batches_split() - before
    if split and not request.node.get_closest_marker("splits_batches"):
        pytest.fail(f"{split:.0f} consumer batch(es) failed and were applied one record at a time "
                    "(the log's 'batch failed' line says why); mark the test splits_batches if it means to")


@pytest.fixture
def outgoing():
    """A real SMTP server on a free port that keeps what it is sent (tests/smtp_sink.py): (sink, port). A test makes
    it fail for now (`failures`) or refuse a mailbox (`refused`)."""
    from tests.smtp_sink import mail_server

    with mail_server() as served:
        yield served


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    **FAST_GROUPS, _env_file=None)


def _pg_reachable() -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1):
            return True
    except OSError:
        return False


async def _create_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if template:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    finally:
        await engine.dispose()


async def _drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> str:
    """A database of this test session's own, created beside `test` (which is used when that is not allowed).

    Concurrent test runs on one machine (a developer's and CI's) then never drop each other's tables.
    """
    from sqlalchemy.engine import make_url

    if not _pg_reachable():
        skip_or_fail(f"PostgreSQL not reachable at {PG_URL}")
    name = f"jiesu_t_{os.getpid()}"
    try:
        asyncio.run(_create_database(PG_URL, name))
    except Exception:  # no CREATEDB right: share the configured database
        yield PG_URL
        return
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_drop_database(PG_URL, name))


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database with no jiesu tables: for tests of migrations and of services that migrate
    it themselves (`jiesu migrate` in the process-level tests)."""
    asyncio.run(drop_jiesu_tables(pg_database))
    return pg_database


@pytest.fixture(scope="session")
def pg_template(pg_database: str, tmp_path_factory) -> str | None:
    """A database beside the session's with every service and identity migrated to head once (the router's starter
    model in force, as in `migrated_sqlite`), for `pg_migrated_url` to copy: running the ~250 statements of the
    migrations cost every PostgreSQL test seconds, a copy costs a fraction of one. None when the session shares the
    configured database (no right to create one)."""
    from sqlalchemy.engine import make_url

    from jiesu.migrate import upgrade_all

    if pg_database == PG_URL:
        yield None
        return
    name = f"{make_url(pg_database).database}_head"
    asyncio.run(_create_database(PG_URL, name, template="template0"))
    url = make_url(pg_database).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_all(Settings(data_dir=tmp_path_factory.mktemp("pg-head"), secret_key="test-secret",
                             intake_database_url=url, router_database_url=url, tracker_database_url=url,
                             identity_database_url=url, _env_file=None))
        asyncio.run(_train_starter(url))  # as in `migrated_sqlite`
        yield name
    finally:
        asyncio.run(_drop_database(PG_URL, name))


@pytest.fixture
def pg_migrated_url(request, pg_database: str, pg_template: str | None) -> str:
    """The session's PostgreSQL database at head and empty of data: a fresh copy of `pg_template`."""
    from sqlalchemy.engine import make_url

    if pg_template is None:
        return request.getfixturevalue("pg_url")
    asyncio.run(_create_database(PG_URL, make_url(pg_database).database, template=pg_template))
    return pg_database


def _on_postgres(tmp_path: Path, url: str) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="test-secret", outbox_poll_seconds=0.05, consumer_retries=2,
                    intake_database_url=url, router_database_url=url, tracker_database_url=url,
                    identity_database_url=url, **FAST_GROUPS, _env_file=None)


@pytest.fixture
def pg_settings(tmp_path: Path, pg_migrated_url: str) -> Settings:
    """Every database on the session's PostgreSQL, migrated (tests may run `upgrade_all` again: it finds them at head)."""
    return _on_postgres(tmp_path, pg_migrated_url)


@pytest.fixture(params=["sqlite", "postgres"])
def any_settings(request, tmp_path: Path) -> Settings:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_settings")
    return request.getfixturevalue("pg_settings")


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated_settings(request, tmp_path: Path) -> Settings:
    """Run a test on SQLite and on PostgreSQL, every database without a table: for the tests of a data migration,
    which migrate to the revision before it, keep rows as they were kept then, and migrate on."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_settings")
    return _on_postgres(tmp_path, request.getfixturevalue("pg_url"))


# --- a running system and a browser, for end-to-end and browser tests ---------------------

DEMO_PASSWORD = "demo-password-1"


class LiveSystem:
    """The whole system in this process over the real embedded broker, served on a loopback port."""

    def __init__(self, settings: Settings, app, url: str, broker) -> None:
        self.settings = settings
        self.app = app
        self.url = url
        self.broker = broker

    @property
    def runtime(self):
        return self.app.state.runtime

    async def user(self, username: str, role, department: str | None = None) -> str:
        """Create a user (password DEMO_PASSWORD) and return an API token for it."""
        identity = self.runtime.identity
        if await identity.get_user(username) is None:
            await identity.create_user(username, DEMO_PASSWORD, role, department=department,
                                       display_name=username)
        return await identity.create_token(username, "test")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """Every database (services and identity) migrated to head once per session, on SQLite, the router's holding
    the starter model a router trains on its first start (services/router/bootstrap.py). Trained here once, it is
    copied with the file: training it cost 2-5 s of CPU to every system the integration and browser tests start."""
    from jiesu.migrate import upgrade_all

    path = tmp_path_factory.mktemp("migrated")
    upgrade_all(Settings(data_dir=path, secret_key="test-secret", _env_file=None))
    asyncio.run(_train_starter(f"sqlite+aiosqlite:///{path / 'router.db'}"))
    return path


async def _train_starter(url: str) -> None:
    """What the router's first start does to an empty database: the demo city's starter model, in force."""
    from jiesu.db import Database
    from jiesu.messaging import ServiceStore
    from services.router import models
    from services.router.domain.directory import Directory
    from services.router.store import messaging

    store = ServiceStore("router", Database(url), messaging)
    try:
        await models.train_starter(store, Directory.default())
    finally:
        await store.db.dispose()


@pytest.fixture
async def router_store(tmp_path):
    """The router's ServiceStore on a migrated SQLite file of its own."""
    from jiesu.db import Database
    from jiesu.messaging import ServiceStore
    from jiesu.migrate import upgrade
    from services.router.store import messaging

    url = f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"
    await asyncio.to_thread(upgrade, "router", url)
    store = ServiceStore("router", Database(url), messaging)
    yield store
    await store.db.dispose()


def copy_migrated(settings: Settings, template: Path) -> None:
    """Give each database of `settings` still missing from its data_dir a copy of the migrated one.

    Copying a file takes a few milliseconds where running every migration took 0.5-2 s per test;
    `upgrade_all` afterwards finds them at head (and migrates any other database as before).
    """
    from jiesu.migrate import TARGETS

    for name in TARGETS:
        target = settings.data_dir / f"{name}.db"
        if getattr(settings, f"{name}_database_url") is None and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template / f"{name}.db", target)


@pytest.fixture
async def live(sqlite_settings, migrated_sqlite):
    import uvicorn

    from jiesu.app import build_app
    from jiesu.config import SERVICES
    from jiesu.embedded_broker import EmbeddedBroker, free_port
    from jiesu.migrate import upgrade_all

    # Test modules may override `sqlite_settings` (SMTP listener, notification sinks): quick groups for all.
    settings = sqlite_settings.model_copy(update=FAST_GROUPS)
    copy_migrated(settings, migrated_sqlite)
    await asyncio.to_thread(upgrade_all, settings)
    broker = EmbeddedBroker()
    try:
        await broker.start(partitions=3)
        app = build_app(settings, list(SERVICES), bootstrap=broker.bootstrap)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                               access_log=False, lifespan="on"))
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the live system did not start (see the log above)")
                await asyncio.sleep(0.05)
            yield LiveSystem(settings, app, f"http://127.0.0.1:{port}", broker)
        finally:
            server.should_exit = True
            await task
        stuck = app.state.runtime.stuck
        assert not stuck, f"background tasks would not stop: {stuck} (the log above says where they waited)"
    finally:
        broker.kill()  # in memory only, and the test is over: a graceful stop would take ~0.3 s more


def chromium_path() -> str | None:
    import shutil

    return os.environ.get("JIESU_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser():
    path = chromium_path()
    if not path:
        skip_or_fail("Debian chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=path, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield b
        finally:
            await b.close()


async def log_in(page, base_url: str, username: str, password: str = DEMO_PASSWORD) -> None:
    await page.goto(f"{base_url}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    # Wait for the navigation the form's submission starts: a load state alone may be read before it
    # began (the login page is idle already), and the test's next goto would then race the redirect.
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await page.wait_for_load_state("networkidle")


@pytest.fixture
def login():
    """`await login(page, live.url, "username")`: log in through the real form."""
    return log_in
