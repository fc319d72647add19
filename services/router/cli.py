"""The router's `jiesu` sub-commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("directory", help="the department directory: import a YAML file as the new version, or export")
    p.add_argument("action", choices=["import", "export", "history"])
    p.add_argument("file", nargs="?", help="YAML file to import")
    p.add_argument("--remove-units-with-open-work", action="store_true",
                   help="import even if units it removes still handle open tickets")
    p.set_defaults(func=directory_command)
    register_training(sub)


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
                        store, Path(args.file).read_text(encoding="utf-8"), by="cli",
                        remove_units_with_open_work=getattr(args, "remove_units_with_open_work", False))
                except service.DirectoryUnchanged as same:
                    print(f"{same.zh} / same as the version in force (#{same.version_id}): nothing imported")
                    return 0
                except service.UnitsStillHandling as exc:
                    print(f"{exc}\n（确需删除请加 --remove-units-with-open-work / add --remove-units-with-open-work "
                          f"to remove them anyway）", file=sys.stderr)
                    return 1
                except DirectoryError as exc:
                    print(f"目录有误，未导入 / directory rejected, nothing changed:\n{exc}", file=sys.stderr)
                    return 1
                print(f"已导入版本 {service.version_label(directory, version_id)} / imported: {summary}")
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


def register_training(sub) -> None:
    p = sub.add_parser("train-router", help="train the routing classifier and make it the one in force")
    p.add_argument("csv", nargs="*", help="labelled CSVs (id,user,subject,time,body,label; tokens,label; "
                                          "subject,body,category)")
    p.add_argument("--no-demo", action="store_true", help="leave out our example tickets and dispatcher decisions")
    p.add_argument("--holdout", metavar="CSV", help="hold out a stratified 20%% of this CSV (seed 20201122), "
                                                    "train on the rest, and print the evaluation")
    p.add_argument("--out", metavar="DIR", help="also save the model file here")
    p.add_argument("--no-activate", action="store_true", help="do not put the model in force")
    p.set_defaults(func=train_command)

    p = sub.add_parser("eval-router", help="accuracy, macro-F1, per-class F1 and confusion matrix on a labelled CSV")
    p.add_argument("csv")
    p.add_argument("--model", metavar="PATH", help="a saved model file or folder (default: the model in force)")
    p.set_defaults(func=eval_command)


def train_command(args, settings) -> int:
    from services.router import models
    from services.router.domain.classifier import train
    from services.router.training import evaluate, format_report, holdout_split, read_labelled_csv

    async def run() -> int:
        store = _store(settings)
        try:
            texts, labels = [], []
            test = None
            for path in args.csv:
                t, lab = read_labelled_csv(path)
                if args.holdout and Path(path).resolve() == Path(args.holdout).resolve():
                    split = holdout_split(t, lab)
                    t, lab, test = split.train_texts, split.train_labels, (split.test_texts, split.test_labels)
                texts += t
                labels += lab
            if args.holdout and test is None:
                t, lab = read_labelled_csv(args.holdout)
                split = holdout_split(t, lab)
                texts += split.train_texts
                labels += split.train_labels
                test = (split.test_texts, split.test_labels)
            if not args.no_demo:
                t, lab = read_labelled_csv(models.DEMO_EXAMPLES)
                more_t, more_lab = await models.dispatcher_examples(store)
                texts += t + more_t
                labels += lab + more_lab
            print(f"训练样本 {len(texts)} 条，{len(set(labels))} 个类别 / training on {len(texts)} rows, "
                  f"{len(set(labels))} categories", flush=True)
            model = await asyncio.to_thread(train, texts, labels)
            if test is not None:
                report = evaluate(model, *test)
                model.metrics = report.summary()
                print(format_report(report))
            if args.out:
                print(f"saved {model.save(args.out)}")
            if args.no_activate:
                return 0
            from services.router.domain.directory import Directory
            from services.router.service import current_directory

            current = await current_directory(store)
            directory = current[1] if current else Directory.default()
            unknown = models.unknown_labels(labels, directory)
            if unknown:
                print(f"这些类别不在部门目录中，模型未启用 / not activated: labels not in the directory's taxonomy: "
                      f"{', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}", file=sys.stderr)
                return 1
            model_id = await models.activate(store, model, by="cli")
            print(f"已启用模型 {model.version}（#{model_id}），运行中的路由服务将在 10 秒内切换 / "
                  f"model {model.version} is in force; running routers switch within 10 s")
            return 0
        finally:
            await store.db.dispose()

    return asyncio.run(run())


def eval_command(args, settings) -> int:
    from services.router import models
    from services.router.domain.classifier import load
    from services.router.training import evaluate, format_report, read_labelled_csv

    async def run() -> int:
        if args.model:
            model = load(args.model)
        else:
            store = _store(settings)
            try:
                active = await models.active_model(store)
            finally:
                await store.db.dispose()
            if active is None:
                print("尚无启用的模型，请先运行 jiesu train-router / no model in force; run jiesu train-router",
                      file=sys.stderr)
                return 1
            model = active[1]
        texts, labels = read_labelled_csv(args.csv)
        print(f"model {model.version}, {len(texts)} rows from {args.csv}")
        print(format_report(evaluate(model, texts, labels)))
        return 0

    return asyncio.run(run())
