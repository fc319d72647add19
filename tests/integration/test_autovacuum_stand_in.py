"""The benchmarks' stand-in for autovacuum does what autovacuum's default rules would, to jiesu's tables only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.topology import autovacuum_once

pytestmark = pytest.mark.postgres


async def test_the_stand_in_vacuums_and_analyses_what_autovacuum_would_and_nothing_else(pg_url):
    engine = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            async def run(statement: str) -> None:
                await conn.execute(text(statement))
                await conn.execute(text("SELECT pg_stat_force_next_flush()"))  # counters visible at once

            for name in ("tracker_stand_in_probe", "stand_in_not_ours"):
                await run(f'DROP TABLE IF EXISTS "{name}"')
                await run(f'CREATE TABLE "{name}" (id int PRIMARY KEY, v int)')
                await run(f'ANALYZE "{name}"')
            try:
                for name in ("tracker_stand_in_probe", "stand_in_not_ours"):
                    await run(f'INSERT INTO "{name}" SELECT g, 0 FROM generate_series(1, 1000) g')
                assert await autovacuum_once(conn) == ['ANALYZE "tracker_stand_in_probe"']  # 1,000 > 50 + 10 %
                assert await autovacuum_once(conn) == []

                await run('UPDATE "tracker_stand_in_probe" SET v = 1 WHERE id <= 100')  # 100 dead < 50 + 20 %
                assert await autovacuum_once(conn) == []
                await run('UPDATE "tracker_stand_in_probe" SET v = 2 WHERE id <= 300')  # 400 dead > 250
                assert await autovacuum_once(conn) == ['VACUUM ANALYZE "tracker_stand_in_probe"']
                assert await autovacuum_once(conn) == []
            finally:
                for name in ("tracker_stand_in_probe", "stand_in_not_ours"):
                    await conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        await engine.dispose()
