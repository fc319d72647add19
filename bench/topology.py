"""Start the system as separate processes: the embedded broker and one process per service instance.

Used by the crash test, the end-to-end benchmark and fault tests. Each service process
is started exactly as production starts it (`jiesu run SERVICE`), configured through
the environment only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from jiesu.embedded_broker import free_port


@dataclass
class ServiceProcess:
    name: str
    port: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Topology:
    workdir: Path
    database_urls: dict[str, str] = field(default_factory=dict)  # service → URL; default SQLite in workdir
    extra_env: dict[str, str] = field(default_factory=dict)
    broker_port: int = 0
    broker: subprocess.Popen | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIESU_")}
        env.update({
            "JIESU_DATA_DIR": str(self.workdir),
            "JIESU_BROKER_URL": f"127.0.0.1:{self.broker_port}",
            "JIESU_SECRET_KEY": "topology-secret",
            "JIESU_LOG_FORMAT": "json",
            "JIESU_OUTBOX_POLL_SECONDS": "0.2",
            "JIESU_RECONCILE_AFTER_SECONDS": "20",
            "JIESU_RECONCILE_EVERY_SECONDS": "5",
            # Quick consumer groups: Tansu holds a group's first join for half the session timeout.
            "JIESU_CONSUMER_SESSION_TIMEOUT_MS": "2000",
            "JIESU_CONSUMER_HEARTBEAT_INTERVAL_MS": "500",
        })
        for name, url in self.database_urls.items():
            env[f"JIESU_{name.upper()}_DATABASE_URL"] = url
        env.update(self.extra_env)
        return env

    def jiesu(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jiesu.cli", *args], env=self.env(), check=check,
                              capture_output=True, text=True, timeout=120)

    def prepare(self, operator: str) -> str:
        """Migrate the databases and create an operator; returns an API token for it (for a load client)."""
        self.jiesu("migrate")
        self.jiesu("user", operator, "operator", "--password", f"{operator}-password")
        return self.jiesu("token", operator, operator).stdout.strip()

    def start_broker(self) -> None:
        self.broker_port = self.broker_port or free_port()
        log = open(self.workdir / "broker.log", "ab")  # noqa: SIM115
        self.broker = subprocess.Popen([sys.executable, "-m", "jiesu.cli", "broker", "--port", str(self.broker_port)],
                                       env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "embedded broker on" in (self.workdir / "broker.log").read_text(errors="replace"):
                return
            if self.broker.poll() is not None:
                raise RuntimeError("broker exited: " + (self.workdir / "broker.log").read_text(errors="replace"))
            time.sleep(0.1)
        raise RuntimeError("broker did not start")

    def restart_broker(self) -> None:
        """Stop the broker and start a new one on the same port: everything it held in memory is gone."""
        if self.broker and self.broker.poll() is None:
            os.killpg(self.broker.pid, signal.SIGTERM)
            self.broker.wait(15)
        (self.workdir / "broker.log").write_text("")
        self.start_broker()

    def start(self, name: str, instance: int = 0, *, service: str | None = None, wait: bool = True) -> ServiceProcess:
        key = f"{name}{instance or ''}"
        proc = self.services.get(key) or ServiceProcess(service or name, free_port(), self.workdir / f"{key}.log")
        log = open(proc.log, "ab")  # noqa: SIM115
        proc.process = subprocess.Popen(
            [sys.executable, "-m", "jiesu.cli", "run", proc.name, "--port", str(proc.port)],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.services[key] = proc
        if wait:
            self.wait_healthy(proc)
        return proc

    def start_all(self, *names: str, instance: int = 0) -> list[ServiceProcess]:
        """Start instance `instance` of several services at once, then wait until each is healthy: their
        start-ups (imports, first-start set-up) overlap instead of queueing. Distinct services only:
        two instances of one service starting together would both do its first-start set-up."""
        assert len(set(names)) == len(names), names
        procs = [self.start(name, instance, wait=False) for name in names]
        for proc in procs:
            self.wait_healthy(proc)
        return procs

    def wait_healthy(self, proc: ServiceProcess, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.process.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{proc.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{proc.name} not healthy in {timeout}s")

    def kill(self, key: str) -> None:
        """SIGKILL: no shutdown hooks, no flushing — a crash."""
        proc = self.services[key]
        if proc.process and proc.process.poll() is None:
            os.killpg(proc.process.pid, signal.SIGKILL)
            proc.process.wait()

    def restart(self, key: str) -> ServiceProcess:
        proc = self.services[key]
        instance = int(key[len(proc.name):] or 0)
        return self.start(proc.name, instance)

    def stop(self) -> None:
        for proc in self.services.values():
            if proc.process and proc.process.poll() is None:
                os.killpg(proc.process.pid, signal.SIGTERM)
        for proc in self.services.values():
            if proc.process:
                try:
                    proc.process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.process.pid, signal.SIGKILL)
        if self.broker and self.broker.poll() is None:
            os.killpg(self.broker.pid, signal.SIGTERM)
            try:
                self.broker.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.broker.pid, signal.SIGKILL)


JIESU_TABLE_PREFIXES = ("intake_", "router_", "tracker_", "identity_", "alembic_version_")


async def _each_jiesu_table(url: str, statement: str) -> None:
    """Run `statement` (with {name}) on each of jiesu's tables (only ours, by prefix), one at a time."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            names = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))).scalars().all()
            for name in names:
                if name.startswith(JIESU_TABLE_PREFIXES):
                    await conn.execute(text(statement.format(name=name)))
    finally:
        await engine.dispose()


async def drop_jiesu_tables(url: str) -> None:
    """Remove jiesu's tables from a PostgreSQL database: a clean slate for a run."""
    await _each_jiesu_table(url, 'DROP TABLE IF EXISTS "{name}" CASCADE')


async def analyze(url: str) -> None:
    """ANALYZE jiesu's tables, as autovacuum does on a live server (and does not where it is off)."""
    await _each_jiesu_table(url, 'ANALYZE "{name}"')


# autovacuum's defaults: a table is analysed again once more rows than 50 + 10 % of it changed since
# the last time, and vacuumed once more than 50 + 20 % of it are dead row versions.
ANALYZE_THRESHOLD, ANALYZE_SCALE_FACTOR = 50, 0.1
VACUUM_THRESHOLD, VACUUM_SCALE_FACTOR = 50, 0.2


async def autovacuum_once(conn) -> list[str]:
    """What one autovacuum round would do to jiesu's tables, on `conn` (autocommit): VACUUM ANALYZE
    those with more dead row versions than its rule allows, ANALYZE those that changed by more; answers
    the statements run."""
    from sqlalchemy import text

    due = (await conn.execute(text(
        # The factors typed, or PostgreSQL takes them for integers like n_live_tup and rounds them to 0.
        "SELECT relname, n_dead_tup > :vt + CAST(:vf AS float8) * n_live_tup "
        "FROM pg_stat_user_tables WHERE schemaname = current_schema() "
        "AND (n_mod_since_analyze > :at + CAST(:af AS float8) * n_live_tup "
        "     OR n_dead_tup > :vt + CAST(:vf AS float8) * n_live_tup)"),
        {"at": ANALYZE_THRESHOLD, "af": ANALYZE_SCALE_FACTOR, "vt": VACUUM_THRESHOLD,
         "vf": VACUUM_SCALE_FACTOR})).all()
    done = []
    for name, dead in due:
        if name.startswith(JIESU_TABLE_PREFIXES):
            statement = f'{"VACUUM ANALYZE" if dead else "ANALYZE"} "{name}"'
            await conn.execute(text(statement))
            done.append(statement)
    return done


class AutovacuumStandIn:
    """While a run lasts, do autovacuum's work on a server where it is off (as on this machine).

    A fresh database's tables grow from nothing during a run. The plans each connection caches
    for its prepared statements are made while a table is small, where a scan is cheapest, and
    are made again only when the table's statistics change; without that, a look-up of a
    batch's ids scans a table of tens of thousands of rows, each batch, and a run measures that
    instead of the system (seen in the soak: 100 ms a look-up, p99 of 8 s in its first minute).
    It vacuums too, as autovacuum would: each outbox row is updated once it is sent, and the
    tracker's ticket rows when they are assigned, leaving dead versions behind.
    Every `every` seconds this does what an autovacuum round would (`autovacuum_once`), more
    often than autovacuum's default one-minute nap, so that the first minute of a run is not
    spent on an empty database's plans. Nothing happens where autovacuum is on.
    """

    def __init__(self, url: str | None, every: float = 10.0) -> None:
        self.url = url
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AutovacuumStandIn:
        if self.url and asyncio.run(_autovacuum_off(self.url)):
            print("  autovacuum is off on this server: the run vacuums and analyses the tables in its place "
                  f"(autovacuum's rules, checked every {self.every:g} s)", flush=True)
            self._thread = threading.Thread(target=self._run, name="autovacuum stand-in", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.run(self._analyse_until_stopped())

    async def _analyse_until_stopped(self) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        # One connection for the whole run: its backend lives long enough for CpuMeter to charge it.
        engine = create_async_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                while not await asyncio.to_thread(self._stop.wait, self.every):
                    try:
                        await autovacuum_once(conn)
                    except Exception as exc:  # noqa: BLE001 - a benchmark's helper: say so and try again
                        print(f"  (autovacuum stand-in: {exc!r})", flush=True)
        finally:
            await engine.dispose()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(60)


async def _autovacuum_off(url: str) -> bool:
    from jiesu.db import Database

    db = Database(url)
    try:
        return await db.autovacuum_off()
    finally:
        await db.dispose()
