"""What sealing the audit trail costs per row, in the sealing process and in PostgreSQL.

    python -m bench.audit_seal --postgres URL [--rows 1000] [--passes 10] [--sqlite]

Migrates the router's tables into the database (dropping jiesu's tables there first: give it
a scratch database), then, each pass, writes `--rows` audit rows as the unit of work does and
seals them in one pass of the sealer, as a service under load does every second. Prints the
CPU a row cost the sealing process and PostgreSQL's backends (and, with `--sqlite`, the
same on a SQLite file), and what `jiesu audit verify` then costs a row. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench.cpu import postgres_pids, process_seconds
from bench.topology import drop_jiesu_tables
from jiesu import audit
from jiesu.db import Database
from jiesu.migrate import upgrade
from services.router.store import messaging


async def _measure(url: str, rows: int, passes: int, postgres: str | None) -> None:
    db = Database(url)
    table = messaging.audit
    sealing = verifying = server = 0.0
    try:
        for _ in range(passes):
            async with db.session() as s:
                await s.execute(table.insert(), [
                    audit.entry("TicketAssigned", ticket_id=uuid.uuid4(), event_id=uuid.uuid4(),
                                details={"unit": "M-CGW", "attempt": 1}) for _ in range(rows)])
            backends = postgres_pids(postgres) if postgres else []
            before = [process_seconds(pid) for pid in backends]
            started = time.process_time()
            sealed = await audit.seal(db, table, batch=rows, settle=timedelta(0))
            sealing += time.process_time() - started
            server += sum(process_seconds(pid) - b for pid, b in zip(backends, before))
            assert sealed == rows, f"sealed {sealed} of {rows}"
        started = time.process_time()
        result = await audit.verify(db, table)
        verifying = time.process_time() - started
    finally:
        await db.dispose()
    total = rows * passes
    where = "PostgreSQL" if postgres else "SQLite"
    print(f"== {where}: {passes} passes of {rows:,} rows")
    print(f"  sealing: {sealing * 1e6 / total:.1f} µs a row in the sealing process"
          + (f", {server * 1e6 / total:.1f} µs in PostgreSQL" if postgres else ""))
    print(f"  verify: {verifying * 1e6 / result.checked:.1f} µs a row over {result.checked:,} rows"
          f" ({'intact' if result.ok else f'BROKEN at {result.broken_at}'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="a scratch database (jiesu's tables there are dropped)")
    parser.add_argument("--rows", type=int, default=1000, help="rows written and sealed per pass (default 1000)")
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--sqlite", action="store_true", help="measure on a SQLite file too")
    args = parser.parse_args(argv)
    asyncio.run(drop_jiesu_tables(args.postgres))
    upgrade("router", args.postgres)
    database = args.postgres.rsplit("/", 1)[-1].split("?")[0]
    asyncio.run(_measure(args.postgres, args.rows, args.passes, database))
    if args.sqlite:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'router.db'}"
            upgrade("router", url)
            asyncio.run(_measure(url, args.rows, args.passes, None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
