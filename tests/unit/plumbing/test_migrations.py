"""Each service's Alembic history builds exactly the tables its models declare."""

import re
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from jiesu.migrate import TARGETS, alembic_config, pending_changes, upgrade


@pytest.mark.parametrize("target", TARGETS)
def test_migrations_match_models_on_sqlite(tmp_path, target):
    url = f"sqlite+aiosqlite:///{tmp_path / f'{target}.db'}"
    upgrade(target, url)
    assert pending_changes(target, url) == []


@pytest.mark.postgres
@pytest.mark.parametrize("target", TARGETS)
def test_migrations_match_models_on_postgres(pg_url, target):
    upgrade(target, pg_url)
    assert pending_changes(target, pg_url) == []


def _schema(path: Path) -> dict:
    """What a SQLite file holds: each table, index and trigger as its schema SQL says it, quotes and spacing aside
    (a batch migration that rebuilds a table writes the same table in other spacing)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    return {name: re.sub(r"\s+", "", (sql or "").replace('"', "")) for name, sql in rows}


@pytest.mark.parametrize("target", TARGETS)
def test_every_migration_goes_down_and_up_again_on_sqlite(tmp_path, target):
    """Each revision, from the head down: one step down and up again leaves the schema as it was, and the step down
    changed it. A downgrade that leaves an index or a column behind, or drops what its upgrade did not make, fails."""
    path = tmp_path / f"{target}.db"
    config = alembic_config(target, f"sqlite+aiosqlite:///{path}")
    command.upgrade(config, "head")
    for revision in ScriptDirectory.from_config(config).walk_revisions():  # the head first
        before = _schema(path)
        command.downgrade(config, "-1")
        data_only = getattr(revision.module, "data_only", False)  # rows only: no schema to undo
        assert _schema(path) != before or revision.down_revision is None or data_only, \
            f"{revision.revision} undid nothing"
        command.upgrade(config, "+1")
        assert _schema(path) == before, revision.revision
        command.downgrade(config, "-1")


@pytest.mark.postgres
@pytest.mark.parametrize("target", TARGETS)
def test_every_migration_goes_down_and_up_again_on_postgres(pg_url, target):
    """All the way down and up again on PostgreSQL (its DDL is stricter about what exists)."""
    upgrade(target, pg_url)
    command.downgrade(alembic_config(target, pg_url), "base")
    assert pending_changes(target, pg_url) != []
    upgrade(target, pg_url)
    assert pending_changes(target, pg_url) == []
