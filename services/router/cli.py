"""The router's `jiesu` sub-commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("directory", help="the department directory: import a YAML file as the new version, or export")
    p.add_argument("action", choices=["import", "export", "history"])
    p.add_argument("file", nargs="?", help="YAML file to import")
    p.set_defaults(func=directory_command)


def _store(settings):
    from jiesu.db import Database
    from jiesu.messaging import ServiceStore
    from services.router.store import messaging

    return ServiceStore("router", Database(settings.database_url("router")), messaging)


def directory_command(args, settings) -> int:
    from services.router import service
    from services.router.domain.directory import DirectoryError
    from services.router.store import directory_versions

    async def run() -> int:
        store = _store(settings)
        try:
            if args.action == "import":
                if not args.file:
                    print("需要 YAML 文件 / give the YAML file to import", file=sys.stderr)
                    return 2
                try:
                    version_id, directory, summary = await service.import_directory(
                        store, Path(args.file).read_text(encoding="utf-8"), by="cli")
                except DirectoryError as exc:
                    print(f"目录有误，未导入 / directory rejected, nothing changed:\n{exc}", file=sys.stderr)
                    return 1
                print(f"已导入版本 {directory.version}（#{version_id}）/ imported: {summary}")
            elif args.action == "export":
                from sqlalchemy import select

                async with store.db.session() as s:
                    content = await s.scalar(select(directory_versions.c.content)
                                             .order_by(directory_versions.c.id.desc()).limit(1))
                if content is None:
                    print("尚未导入目录 / no directory imported yet", file=sys.stderr)
                    return 1
                sys.stdout.write(content)
            else:
                from sqlalchemy import select

                async with store.db.session() as s:
                    rows = (await s.execute(select(directory_versions).order_by(directory_versions.c.id))).all()
                for r in rows:
                    print(f"#{r.id}  {r.imported_at:%Y-%m-%d %H:%M}  {r.version:<12} {r.imported_by:<10} {r.summary}")
            return 0
        finally:
            await store.db.dispose()

    return asyncio.run(run())
