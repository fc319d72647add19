"""The `jiesu` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from functools import partial
from pathlib import Path

import uvloop

from jiesu.config import SERVICES, get_settings
from jiesu.logging import configure, get_logger

log = get_logger("jiesu")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jiesu", description="接诉即办: intake, routing and tracking of "
                                     "citizens' requests")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run everything in one process: embedded broker, SQLite, all services")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)

    p = sub.add_parser("run", help="run one service against the configured broker and database")
    p.add_argument("service", choices=SERVICES)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)

    p = sub.add_parser("broker", help="run only the embedded Kafka-protocol broker (for local multi-process runs)")
    p.add_argument("--port", type=int, default=9092)

    sub.add_parser("topics", help="create jiesu's topics (and .dlq topics) on the configured broker")

    p = sub.add_parser("migrate", help="bring the databases up to date (Alembic)")
    p.add_argument("targets", nargs="*", help="intake, router, tracker, identity (default: all)")

    sub.add_parser("seed-demo", help="create the demo users (idempotent) and print them")

    p = sub.add_parser("user", help="create a user")
    p.add_argument("username")
    p.add_argument("role", choices=["operator", "dispatcher", "department", "visitor", "supervisor", "admin"])
    p.add_argument("--department", default=None)
    p.add_argument("--name", default="")
    p.add_argument("--password", required=True)

    p = sub.add_parser("token", help="API tokens of machine clients: create one (printed once), list or revoke them")
    p.add_argument("username")
    p.add_argument("name", nargs="?", help="the token's name (which client holds it)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the user's tokens")
    action.add_argument("--revoke", action="store_true", help="revoke the user's tokens of this name")

    p = sub.add_parser("schemas", help="event schemas")
    p.add_argument("action", choices=["export", "check", "asyncapi"])

    p = sub.add_parser("audit", help="the audit trail: seal new rows into the hash chain and verify it")
    p.add_argument("action", choices=["verify"])
    p.add_argument("services", nargs="*", choices=[[], *SERVICES], default=[])

    p = sub.add_parser("dlq", help="dead-lettered messages: list or replay")
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("service", choices=SERVICES)
    p.add_argument("ids", nargs="*", type=int)

    p = sub.add_parser("bench", help="end-to-end benchmark: post tickets to intake, wait until tracked")
    p.add_argument("--tickets", type=int, default=1000)
    p.add_argument("--mode", choices=["embedded", "services"], default="embedded")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--postgres", default=None,
                   help="PostgreSQL URL: the services' database in --mode services (default SQLite), and the "
                        "floor's (jiesu's tables there are dropped first)")
    p.add_argument("--routers", type=int, default=1, help="router processes (--mode services)")
    p.add_argument("--trackers", type=int, default=1, help="tracker processes (--mode services)")
    p.add_argument("--no-floor", action="store_true", help="skip the floor (broker → PostgreSQL, no logic)")

    from jiesu.runtime import load_spec

    for name in SERVICES:  # each service adds its own commands (train-router, calendar, report …)
        spec = load_spec(name)
        if spec.cli:
            spec.cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure(settings.log_format, settings.log_level)
    handler = getattr(args, "func", None) or globals()[f"cmd_{args.command.replace('-', '_')}"]
    return handler(args, settings) or 0


def cmd_topics(args, settings) -> int:
    from jiesu.embedded_broker import ensure_topics
    from schemas import topics

    if settings.embedded_broker:
        print("JIESU_BROKER_URL is 'embedded': `jiesu up` creates the topics itself / nothing to do", file=sys.stderr)
        return 2
    asyncio.run(ensure_topics(settings.broker_url, settings.topic_partitions))
    print(f"topics ready on {settings.broker_url}: {', '.join(topics.ALL_WITH_DLQ)} "
          f"({settings.topic_partitions} partitions, 1 for .dlq)")
    return 0


def cmd_migrate(args, settings) -> int:
    from jiesu.migrate import TARGETS, upgrade_all

    targets = tuple(args.targets) or TARGETS
    unknown = set(targets) - set(TARGETS)
    if unknown:
        print(f"未知的迁移目标 / unknown targets: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    upgrade_all(settings, targets)
    print(f"数据库已是最新 / databases up to date: {', '.join(targets)}")
    return 0


DEMO_PASSWORD = "jiesu-demo-2026"


def demo_users() -> list[tuple[str, str, str, str | None]]:
    """(username, display name, role, department) of the demo log-ins."""
    return [
        ("operator", "话务员 王丽", "operator", None),
        ("dispatcher", "派单员 李强", "dispatcher", None),
        ("visitor", "回访员 赵敏", "visitor", None),
        ("supervisor", "督查室 陈刚", "supervisor", None),
        ("admin", "系统管理员", "admin", None),
    ]


def cmd_seed_demo(args, settings) -> int:
    from jiesu.db import Database
    from jiesu.identity import IdentityStore
    from schemas.enums import Role
    from services.router.domain.directory import Directory

    directory = Directory.from_yaml(settings.directory_file) if settings.directory_file else Directory.default()
    users = demo_users()
    # Department staff: a log-in for every municipal unit, utility and district, and the streets of one district.
    for unit in [*directory.units, *directory.districts, *directory.streets_of(directory.districts[0].code)]:
        users.append((f"dept-{unit.code.lower()}", f"{unit.name} 承办人", "department", unit.code))

    async def run() -> list[tuple]:
        store = IdentityStore(Database(settings.database_url("identity")))
        created = []
        try:
            for username, name, role, dept in users:
                if await store.get_user(username) is None:
                    await store.create_user(username, DEMO_PASSWORD, Role(role), display_name=name, department=dept)
                created.append((username, name, role, dept))
        finally:
            await store.db.dispose()
        return created

    rows = asyncio.run(run())
    print(f"演示账号（密码均为 {DEMO_PASSWORD}）/ demo log-ins (password {DEMO_PASSWORD}):")
    for username, name, role, dept in rows:
        if role != "department":
            print(f"  {username:<12} {name}")
    depts = [r for r in rows if r[2] == "department"]
    print(f"  dept-<单位代码>  承办单位账号 {len(depts)} 个 / {len(depts)} department log-ins, e.g. "
          + "、".join(f"{u} ({n.removesuffix(' 承办人')})" for u, n, _, _ in depts if u in ("dept-m-cgw", "dept-u-zls")))
    return 0


def cmd_user(args, settings) -> int:
    from jiesu.db import Database
    from jiesu.identity import IdentityStore
    from schemas.enums import Role

    async def run():
        store = IdentityStore(Database(settings.database_url("identity")))
        try:
            return await store.create_user(args.username, args.password, Role(args.role), display_name=args.name,
                                           department=args.department)
        finally:
            await store.db.dispose()

    try:
        user = asyncio.run(run())
    except ValueError as exc:
        print(f"无法创建用户 / cannot create user: {exc}", file=sys.stderr)
        return 2
    print(f"created {user.username} ({user.role.value})")
    return 0


def cmd_token(args, settings) -> int:
    from jiesu.db import Database
    from jiesu.identity import TOKEN_CACHE_SECONDS, IdentityStore

    if not args.list and not args.name:
        print("请给出令牌名称 / give the token's name", file=sys.stderr)
        return 2

    async def run():
        store = IdentityStore(Database(settings.database_url("identity")))
        try:
            if args.list:
                return await store.tokens(args.username)
            if args.revoke:
                return await store.revoke_tokens_named(args.username, args.name)
            return await store.create_token(args.username, args.name)
        finally:
            await store.db.dispose()

    try:
        out = asyncio.run(run())
    except LookupError:
        print(f"没有此用户 / no such user: {args.username}", file=sys.stderr)
        return 2
    if args.list:
        from zoneinfo import ZoneInfo

        from jiesu.web import localtime

        at = partial(localtime, tz=ZoneInfo(settings.timezone))
        print(f"{'name':<24} {'created':<16}  {'last used':<16}  revoked")
        for t in out:
            print(f"{t.name:<24} {at(t.created_at):<16}  {at(t.last_used_at):<16}  {at(t.revoked_at)}")
    elif args.revoke:
        if not out:
            print(f"{args.username} 没有名为 {args.name} 的有效令牌 / no token of that name in use", file=sys.stderr)
            return 2
        print(f"已吊销 {out} 个令牌 / revoked {out} token(s); running services refuse them within "
              f"{TOKEN_CACHE_SECONDS:g} s")
    else:
        print(out)
    return 0


def cmd_schemas(args, settings) -> int:
    from schemas import export

    if args.action == "asyncapi":
        print(json.dumps(export.asyncapi(), ensure_ascii=False, indent=2))
        return 0
    stale = export.write(check=args.action == "check")
    if args.action == "check" and stale:
        print("JSON Schema 文件已过期，请运行 `jiesu schemas export` / stale schema files: " + ", ".join(stale),
              file=sys.stderr)
        return 1
    print("schemas/json: " + ("up to date" if not stale else f"wrote {len(stale)} file(s)"))
    return 0


def cmd_broker(args, settings) -> int:
    import signal

    from jiesu.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(broker.start(partitions=settings.topic_partitions))
        print(f"embedded broker on {broker.bootstrap}; Ctrl-C stops it", flush=True)
        broker.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")


def _listening(args, settings):
    """The settings with `--host` and `--port` in force: links in mails and rating links are built from them
    (unless JIESU_PUBLIC_URL says otherwise), so they must name where this server really listens. Listening on
    every address names none a citizen can reach: say so at the start."""
    settings = settings.model_copy(update={"host": args.host or settings.host, "port": args.port or settings.port})
    if settings.host in WILDCARD_HOSTS and not settings.public_url:
        print(f"警告：监听 {settings.host or '所有地址'} 而未设置 JIESU_PUBLIC_URL，邮件和评价链接中的地址市民无法访问 / "
              f"warning: listening on {settings.host or 'every address'} without JIESU_PUBLIC_URL: links in mails "
              "and rating links will name an address citizens cannot reach", file=sys.stderr)
    return settings


def cmd_up(args, settings) -> int:
    from jiesu.app import build_app, exit_if_stuck, serve
    from jiesu.embedded_broker import EmbeddedBroker, ensure_topics
    from jiesu.migrate import upgrade_all

    settings = _listening(args, settings)
    host, port = settings.host, settings.port
    upgrade_all(settings)

    async def run() -> None:
        broker = None
        if settings.embedded_broker:
            broker = EmbeddedBroker(log_file=Path(settings.data_dir) / "broker.log")
            await broker.start(partitions=settings.topic_partitions)
            bootstrap = broker.bootstrap
        else:
            bootstrap = settings.broker_url
            await ensure_topics(bootstrap, settings.topic_partitions)
        app = build_app(settings, list(SERVICES), bootstrap=bootstrap)

        def ready() -> None:
            print(f"\n  jiesu 接诉即办 is running: open http://{host}:{port}/\n"
                  f"  API docs: http://{host}:{port}/docs   broker: {bootstrap}   data: {settings.data_dir}/\n"
                  f"  Ctrl-C stops it.\n", flush=True)

        try:
            await serve(app, host, port, on_ready=ready)
        finally:
            if broker:
                broker.stop()
        exit_if_stuck(app)

    uvloop.run(run())
    return 0


def cmd_run(args, settings) -> int:
    from jiesu.app import build_app, exit_if_stuck, serve

    if settings.embedded_broker:
        print("`jiesu run` needs JIESU_BROKER_URL (host:port of Kafka); `jiesu up` runs the embedded broker. / "
              "set JIESU_BROKER_URL to your Kafka bootstrap servers", file=sys.stderr)
        return 2
    settings = _listening(args, settings)
    host, port = settings.host, settings.port
    app = build_app(settings, [args.service])

    async def run() -> None:
        await serve(app, host, port, on_ready=lambda: print(
            f"jiesu {args.service} on http://{host}:{port}/ (broker {settings.broker_url})", flush=True))
        exit_if_stuck(app)

    uvloop.run(run())
    return 0


def cmd_audit(args, settings) -> int:
    from jiesu.audit import seal_all, verify
    from jiesu.db import Database
    from jiesu.runtime import load_spec

    async def run() -> int:
        broken = 0
        for name in args.services or SERVICES:
            table = load_spec(name).tables.audit
            if table is None:
                print(f"{name}: 无审计表 / no audit trail")
                continue
            db = Database(settings.database_url(name))
            try:
                await seal_all(db, table)
                result = await verify(db, table)
            finally:
                await db.dispose()
            if result.ok:
                print(f"{name}: 完整 / intact — {result.checked} rows chained, {result.unsealed} too recent to seal")
            else:
                broken += 1
                print(f"{name}: 被篡改 / BROKEN at row {result.broken_at} (after {result.checked} good rows)")
        return 1 if broken else 0

    return asyncio.run(run())


def cmd_dlq(args, settings) -> int:
    from jiesu import dlq

    return asyncio.run(dlq.command(settings, args.service, args.action, args.ids))


def cmd_bench(args, settings) -> int:
    from bench import e2e

    return e2e.main(args, settings)


if __name__ == "__main__":
    sys.exit(main())
