"""Dead letters: list them, and replay them onto their original topic through the outbox."""

from __future__ import annotations

from sqlalchemy import select, update

from jiesu.db import Database
from jiesu.messaging import ServiceStore
from jiesu.runtime import load_spec
from schemas.events import new_event_id, utcnow


async def list_dead(store: ServiceStore, *, pending_only: bool = True) -> list:
    dead = store.tables.dead_letters
    stmt = select(dead).order_by(dead.c.id)
    if pending_only:
        stmt = stmt.where(dead.c.replayed_at.is_(None))
    async with store.db.session() as s:
        return (await s.execute(stmt)).all()


async def replay(store: ServiceStore, ids: list[int] | None = None) -> int:
    """Owe each dead letter again on its original topic (after the cause was fixed)."""
    dead = store.tables.dead_letters
    count = 0
    async with store.transaction() as tx:
        stmt = select(dead).where(dead.c.replayed_at.is_(None))
        if ids:
            stmt = stmt.where(dead.c.id.in_(ids))
        for row in (await tx.session.execute(stmt.order_by(dead.c.id))).all():
            await tx.emit_raw(row.topic, key=(row.key or b"").decode(errors="replace"), value=row.value,
                              event_type="replay", event_id=new_event_id(), ticket_id=None)
            await tx.session.execute(update(dead).where(dead.c.id == row.id).values(replayed_at=utcnow()))
            count += 1
    return count


async def command(settings, service: str, action: str, ids: list[int]) -> int:
    spec = load_spec(service)
    store = ServiceStore(service, Database(settings.database_url(service)), spec.tables)
    try:
        if action == "list":
            rows = await list_dead(store)
            for r in rows:
                print(f"{r.id:>6}  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.topic}[{r.partition}]@{r.offset}  "
                      f"attempts={r.attempts}  {r.error[:120]}")
            print(f"{len(rows)} dead letter(s) waiting / 条死信待处理")
        else:
            n = await replay(store, ids or None)
            print(f"replayed {n} / 已重放 {n} 条 (the running service's outbox relay publishes them)")
    finally:
        await store.db.dispose()
    return 0
