"""Start the system as separate processes: the embedded broker and one process per service instance.

Used by the crash test, the end-to-end benchmark and fault tests. Each service process
is started exactly as production starts it (`jiesu run SERVICE`), configured through
the environment only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
