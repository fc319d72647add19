"""Each service's Alembic history builds exactly the tables its models declare."""

import pytest

from jiesu.migrate import TARGETS, pending_changes, upgrade


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
