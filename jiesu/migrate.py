"""Alembic migrations, one history per service (and one for identity).

Each service keeps its revisions in `services/<name>/migrations/versions` and records
its position in its own version table, so services can share a database or not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.autogenerate import compare_metadata
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from jiesu.config import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (*SERVICES, "identity")


def script_location(name: str) -> Path:
    return ROOT / "jiesu" / "identity_migrations" if name == "identity" else ROOT / "services" / name / "migrations"


def metadata_of(name: str) -> MetaData:
    if name == "identity":
        from jiesu.identity import IdentityBase

        return IdentityBase.metadata
    from jiesu.runtime import load_spec

    return load_spec(name).metadata


def alembic_config(name: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location(name)))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["jiesu_target"] = name
    return cfg


def upgrade(name: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(name, url), revision)


def upgrade_all(settings: Settings, names: tuple[str, ...] = TARGETS) -> None:
    for name in names:
        url = settings.database_url(name)
        if url.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            db = make_url(url).database
            if db:
                Path(db).parent.mkdir(parents=True, exist_ok=True)
        upgrade(name, url)


def version_table(name: str) -> str:
    return f"alembic_version_{name}"


def pending_changes(name: str, url: str) -> list:
    """Differences between the migrated database and the models (empty when in step)."""

    async def run() -> list:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"version_table": version_table(name)}), metadata_of(name)))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def run_env() -> None:
    """Body of every migrations/env.py: online migrations over an async engine."""
    from alembic import context

    cfg = context.config
    name = cfg.attributes.get("jiesu_target") or Path(cfg.get_main_option("script_location")).parent.name
    metadata = metadata_of(name)
    url = cfg.get_main_option("sqlalchemy.url")

    def do_run(connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, version_table=version_table(name),
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(do_run)
                await conn.commit()
        finally:
            await engine.dispose()

    connection = cfg.attributes.get("connection")
    if connection is not None:
        do_run(connection)
    else:
        asyncio.run(main())
