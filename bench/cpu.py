"""CPU time per component, read from /proc: where a benchmark's tickets spend the machine.

Throughput on a shared machine wanders with whatever else runs; the CPU seconds charged to
each of our processes wander much less (contention for caches and hyperthreads still
inflates them: measure on a quiet machine). Dividing them by the tickets processed gives
the cost of a ticket per component, and the number of cores divided by the total cost is
the ceiling this topology can reach here, whatever the load client does. PostgreSQL is
charged with its backends on the benchmark's database and the server's shared writers.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def children(pid: int) -> list[int]:
    """Every live descendant of a process (the broker binary under `jiesu broker`, …)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):  # nothing for a process that is gone
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


SHARED_POSTGRES_PROCESSES = ("walwriter", "checkpointer", "background writer", "autovacuum launcher")


def _postgres_processes() -> dict[int, str]:
    """PostgreSQL's processes on this machine and their titles ("postgres: user db host state", …)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() not in ("postgres", "postmaster"):
                    continue
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return out


def _serves(title: str, database: str) -> bool:
    return f" {database} " in f"{title} "


def postgres_backends(database: str) -> list[int]:
    """The backends (and autovacuum workers) serving `database`."""
    return [pid for pid, title in _postgres_processes().items() if _serves(title, database)]


def postgres_pids(database: str | None = None) -> list[int]:
    """PostgreSQL's processes: with `database`, only its backends (and autovacuum workers) and the
    server's shared writers, so that other databases' clients on the machine are not counted."""
    return [pid for pid, title in _postgres_processes().items()
            if database is None or _serves(title, database) or title.rstrip().endswith(SHARED_POSTGRES_PROCESSES)]


@dataclass
class CpuMeter:
    """Snapshot the CPU of named process trees (and PostgreSQL) before and after a run.

    A thread re-reads every half second, so that a process which exits meanwhile (a
    PostgreSQL backend of a pool's overflow connection …) keeps the CPU it had used.
    """

    trees: dict[str, int]  # component → root pid
    postgres: str | None = None  # the database whose backends to charge
    own: str = "load client"  # what this process is charged as
    _seen: dict[str, dict[int, float]] = field(default_factory=dict)
    _last: dict[str, dict[int, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the sampler and `used` both update _last

    def _read(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, root in self.trees.items():
            out[name] = {pid: process_seconds(pid) for pid in (root, *children(root))}
        if self.postgres:
            out["PostgreSQL"] = {pid: process_seconds(pid) for pid in postgres_pids(self.postgres)}
        out[self.own] = {0: sum(os.times()[:2])}
        return out

    def _remember(self, reading: dict[str, dict[int, float]]) -> None:
        with self._lock:
            for name, pids in reading.items():
                last = self._last.setdefault(name, {})
                for pid, seconds in pids.items():
                    last[pid] = max(seconds, last.get(pid, 0.0))

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self._remember(self._read())

    def start(self) -> None:
        self._seen = self._read()
        if self.postgres and not postgres_backends(self.postgres):
            print("  (no PostgreSQL backends on this machine for the benchmark's database: its CPU is not counted)")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per component since `start` (processes that started meanwhile count from zero)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.used()

    def used(self) -> dict[str, float]:
        """CPU seconds per component from `start` until now, the meter running on."""
        self._remember(self._read())
        with self._lock:
            return {name: sum(max(0.0, t - self._seen.get(name, {}).get(pid, 0.0)) for pid, t in pids.items())
                    for name, pids in self._last.items()}


def report(used: dict[str, float], tickets: int) -> float:
    """Print milliseconds of CPU per ticket by component; answers the system's total (the load client aside)."""
    total = sum(seconds for name, seconds in used.items() if name != "load client")
    parts = ", ".join(f"{name} {seconds * 1000 / tickets:.2f}" for name, seconds in used.items())
    cores = os.cpu_count() or 1
    ceiling = cores / (total / tickets) if total else 0
    print(f"  CPU per ticket (ms): {parts}")
    print(f"  the system's total {total * 1000 / tickets:.2f} ms a ticket → ceiling {ceiling:.0f} tickets/s "
          f"on {cores} cores (the load client aside)")
    return total
