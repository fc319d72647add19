"""The router's use cases on a real (SQLite) database: returns, the dispatch queue, duplicates, the directory."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from schemas.events import Envelope, TicketClosed, TicketReceived, TicketReturned, UnitRef, parse
from services.router import models, service
from services.router.domain.decide import _handles, decide
from services.router.domain.directory import DEMO_CITY, Directory, DirectoryError
from services.router.domain.rules import TicketFacts
from services.router.store import assignments, decisions, messaging, training_examples


@pytest.fixture
def store(router_store):
    return router_store


@pytest.fixture
def state():
    return service.RouterState(directory=Directory.default(), phone_key=b"test-key")


def received(text: str, *, phone: str = "13800001111", days_ago: float = 0, **extra) -> tuple[Envelope, TicketReceived]:
    from schemas.events import utcnow

    payload = TicketReceived.model_validate({
        "number": f"12345-20261122-{uuid.uuid4().int % 999999 + 1:06d}", "channel": "hotline", "kind": "complaint",
        "subject": text[:20], "description": text, "citizen": {"name": "市民", "phone": phone},
        "received_at": (utcnow() - timedelta(days=days_ago)).isoformat(), "source_ref": str(uuid.uuid4()), **extra,
    })
    return Envelope.wrap(payload, ticket_id=uuid.uuid4(), producer="intake"), payload


async def route(store, state, text, **kw):
    envelope, payload = received(text, **kw)
    async with store.transaction() as tx:
        await service.route_received(tx, envelope, payload, state)
        emitted = list(tx.emitted)
    return envelope, emitted


async def give_back(store, state, envelope, unit: str, returns_so_far: int):
    back = TicketReturned(number="x", unit=UnitRef(code=unit, name=unit), reason_code="not_ours",
                          reason="不属于本单位职责", by="dept", returns_so_far=returns_so_far)
    env = Envelope.wrap(back, ticket_id=envelope.ticket_id, producer="tracker")
    async with store.transaction() as tx:
        await service.reroute_after_return(tx, env, back, state)
        return list(tx.emitted)


NOISE = "每天晚上十一点以后工地还在打桩施工，噪音很大，孩子根本睡不着。"


async def test_a_returned_ticket_is_rerouted_without_the_unit_that_returned_it(store, state):
    envelope, first = await route(store, state, NOISE)
    assert first[0].event_type == "TicketAssigned"
    lead = first[0].payload["lead"]["code"]
    emitted = await give_back(store, state, envelope, lead, 1)
    event = emitted[0]
    if event.event_type == "TicketAssigned":
        assert event.payload["lead"]["code"] != lead
        assert event.payload["attempt"] == 2 and event.payload["reason"]["method"] == "reroute"
    else:  # nothing else fits: a dispatcher decides, never the same unit again
        assert event.event_type == "DispatchNeeded"
        assert all(s["unit"]["code"] != lead for s in event.payload["suggestions"])
    async with store.db.session() as s:
        row = (await s.execute(select(decisions).where(decisions.c.ticket_id == envelope.ticket_id))).first()
        returned = (await s.execute(select(assignments).where(assignments.c.returned_at.is_not(None)))).all()
    assert row.excluded == [lead] and row.returns == 1
    assert len(returned) == 1 and returned[0].unit_code == lead and returned[0].return_reason_code == "not_ours"


async def test_a_second_return_goes_to_the_dispatch_queue(store, state):
    envelope, first = await route(store, state, NOISE)
    await give_back(store, state, envelope, first[0].payload["lead"]["code"], 1)
    async with store.db.session() as s:
        row = (await s.execute(select(decisions).where(decisions.c.ticket_id == envelope.ticket_id))).first()
    second_unit = row.lead_code or "M-ZJW"
    emitted = await give_back(store, state, envelope, second_unit, 2)
    assert emitted[0].event_type == "DispatchNeeded"
    assert "第 2 次退单" in emitted[0].payload["why"]
    async with store.db.session() as s:
        row = (await s.execute(select(decisions).where(decisions.c.ticket_id == envelope.ticket_id))).first()
    assert row.status == "dispatch" and row.returns == 2


async def test_a_dispatcher_decision_is_published_and_kept_as_training_data(store, state):
    envelope, emitted = await route(store, state, "有个事情想反映一下，具体说不清楚。")
    assert emitted[0].event_type == "DispatchNeeded"
    d, number = await service.dispatch(store, state, envelope.ticket_id, unit_code="M-CGW", co_handlers=["S-01-03"],
                                       category=None, by="dispatcher1")
    assert number == emitted[0].payload["number"]
    assert d.lead.code == "M-CGW" and [u.code for u in d.co_handlers] == ["S-01-03"]
    async with store.db.session() as s:
        outbox = (await s.execute(select(messaging.outbox.c.value).order_by(messaging.outbox.c.id))).scalars().all()
        example = (await s.execute(select(training_examples))).first()
    last, payload = parse(outbox[-1])
    assert last.event_type == "TicketAssigned" and payload.reason.method == "dispatcher"
    assert example.unit_code == "M-CGW" and example.decided_by == "dispatcher1"
    with pytest.raises(service.DispatchError) as again:
        await service.dispatch(store, state, envelope.ticket_id, unit_code="M-CGW", co_handlers=[], category=None,
                               by="dispatcher1")
    assert again.value.status == 409


async def test_dispatching_to_an_unknown_unit_is_refused_and_changes_nothing(store, state):
    envelope, _ = await route(store, state, "有个事情想反映一下，具体说不清楚。")
    with pytest.raises(service.DispatchError) as refused:
        await service.dispatch(store, state, envelope.ticket_id, unit_code="NOPE", co_handlers=[], category=None,
                               by="d")
    assert refused.value.status == 422 and "NOPE" in refused.value.zh
    async with store.db.session() as s:
        assert (await s.execute(select(decisions.c.status))).scalar() == "dispatch"


async def test_the_same_caller_with_the_same_matter_is_merged_into_the_open_ticket(store, state):
    first, _ = await route(store, state, NOISE, days_ago=3)
    _, emitted = await route(store, state, "晚上十一点以后工地还在打桩，噪音太大了，孩子睡不着觉！")
    assert emitted[0].event_type == "TicketMerged"
    assert emitted[0].payload["into_ticket_id"] == str(first.ticket_id)
    _, other_matter = await route(store, state, "小区门口的路灯坏了一个星期，晚上很黑。")
    assert other_matter[0].event_type != "TicketMerged"
    _, other_caller = await route(store, state, NOISE, phone="13999990000")
    assert other_caller[0].event_type != "TicketMerged"


async def test_a_run_of_tickets_is_routed_as_one_at_a_time_would_be_repeats_within_the_run_included(store, state):
    """The consumer hands the router runs of new tickets; one run, one classifier call, same decisions."""
    _, state.classifier = await models.train_starter(store, state.directory)
    texts = [NOISE, "小区门口的路灯坏了一个星期，晚上很黑。", "晚上十一点以后工地还在打桩，噪音太大了，孩子睡不着觉！",
             "公交车司机态度恶劣，乘客上车还没站稳就急刹车。"]
    run = [received(text, days_ago=0.01 * (len(texts) - i)) for i, text in enumerate(texts)]
    async with store.transaction() as tx:
        await service.route_received_many(tx, run, state)
        emitted = {e.ticket_id: e for e in tx.emitted}
    kinds = [emitted[envelope.ticket_id].event_type for envelope, _ in run]
    assert kinds[2] == "TicketMerged" and emitted[run[2][0].ticket_id].payload["into_ticket_id"] == str(run[0][0].ticket_id)
    assert "TicketMerged" not in kinds[:2] + kinds[3:]
    async with store.db.session() as s:
        rows = {r.ticket_id: r for r in (await s.execute(select(decisions))).all()}
        recorded = {r.ticket_id for r in (await s.execute(select(assignments))).all()}
    assert set(rows) == {envelope.ticket_id for envelope, _ in run}
    assert rows[run[2][0].ticket_id].status == "merged"
    assert recorded == {t for t, e in emitted.items() if e.event_type == "TicketAssigned"}
    for envelope, payload in run[:2] + run[3:]:  # routed alone, each would have gone to the same place
        alone = service.decide(state.directory, service.facts_of_payload(payload), classifier=state.classifier,
                               threshold=state.threshold, operator_unit=payload.suggested_unit)
        assert rows[envelope.ticket_id].lead_code == (alone.lead.code if alone.lead else None)


async def test_no_merge_after_thirty_days_or_once_the_first_ticket_is_closed(store, state):
    await route(store, state, NOISE, days_ago=31)
    _, emitted = await route(store, state, NOISE)
    assert emitted[0].event_type != "TicketMerged"  # the old one is out of the window
    second = emitted
    closed = Envelope.wrap(TicketClosed(outcome="satisfied"), ticket_id=uuid.UUID(second[0].ticket_id.hex),
                           producer="tracker")
    async with store.transaction() as tx:
        await service.on_closed(tx, closed, closed.parsed())
    _, third = await route(store, state, NOISE)
    assert third[0].event_type != "TicketMerged"


async def test_a_broken_directory_is_refused_and_the_one_in_force_stays(store):
    version_id, directory, summary = await service.import_directory(store, DEMO_CITY.read_text(encoding="utf-8"),
                                                                    by="admin")
    assert "初始导入" in summary
    broken = DEMO_CITY.read_text(encoding="utf-8").replace("lead: U-RQ", "lead: U-NOWHERE", 1)
    with pytest.raises(DirectoryError) as error:
        await service.import_directory(store, broken, by="admin")
    assert "U-NOWHERE" in str(error.value)
    with pytest.raises(DirectoryError):
        await service.import_directory(store, "version: [unclosed", by="admin")
    current_id, _ = await service.current_directory(store)
    assert current_id == version_id


async def test_a_directory_change_is_recorded_with_what_changed(store):
    text = DEMO_CITY.read_text(encoding="utf-8")
    await service.import_directory(store, text, by="admin")
    renamed = text.replace("name: 江城自来水集团", "name: 江城水务集团", 1)
    _, directory, summary = await service.import_directory(store, renamed, by="admin")
    assert "修改单位 1：U-ZLS" in summary
    assert directory.unit("U-ZLS").name == "江城水务集团"


class FixedModel:
    """A stand-in classifier with a fixed answer, to test the confidence gate by itself."""

    version = "fixed-1"

    def __init__(self, label: str, score: float) -> None:
        self.label, self.score = label, score

    def predict(self, texts):
        class P:
            pass

        p = P()
        p.label, p.score, p.top = self.label, self.score, [(self.label, self.score)]
        return [p]


def some_local_leaf(directory: Directory) -> str:
    return next(c.code for c in directory.leaves() if directory.scope_of(c.code) == "local")


def test_a_confident_prediction_assigns_and_an_unsure_one_goes_to_a_dispatcher():
    directory = Directory.default()
    leaf = some_local_leaf(directory)
    facts = TicketFacts(subject="说不清的事", description="反映一个情况", street="S-01-03", channel="hotline",
                        kind="complaint")
    sure = decide(directory, facts, classifier=FixedModel(leaf, 0.9), threshold=0.6)
    assert sure.outcome == "assign" and sure.reason.method == "model" and sure.reason.model_version == "fixed-1"
    assert sure.lead.code == "S-01-03"
    unsure = decide(directory, facts, classifier=FixedModel(leaf, 0.4), threshold=0.6)
    assert unsure.outcome == "dispatch" and unsure.suggestions and "阈值" in unsure.why


def test_a_rule_and_a_confident_model_that_disagree_go_to_a_dispatcher():
    directory = Directory.default()
    facts = TicketFacts(subject="工地夜间施工噪音", description=NOISE, street="S-01-03", channel="hotline",
                        kind="complaint")
    by_rule = decide(directory, facts)
    assert by_rule.outcome == "assign" and by_rule.reason.method == "rule"
    elsewhere = next(c.code for c in directory.leaves() if directory.scope_of(c.code) == "citywide"
                     and (a := directory.responsible_unit(c.code, "D-01", "S-01-03")) is not None
                     and a.unit.code not in {by_rule.lead.code, *(u.code for u in by_rule.co_handlers)}
                     and not any(_handles(directory, u, c.code) for u in (by_rule.lead, *by_rule.co_handlers)))
    disagree = decide(directory, facts, classifier=FixedModel(elsewhere, 0.95), threshold=0.6)
    assert disagree.outcome == "dispatch" and "不一致" in disagree.why
    assert {s.unit.code for s in disagree.suggestions} >= {by_rule.lead.code}
    # A model that names a category the rule's unit handles anyway is no disagreement.
    handled = next(c.code for c in directory.leaves() if _handles(directory, by_rule.lead, c.code)
                   and directory.scope_of(c.code) == "citywide")
    agree = decide(directory, facts, classifier=FixedModel(handled, 0.95), threshold=0.6)
    assert agree.outcome == "assign" and agree.lead.code == by_rule.lead.code


async def test_a_repeat_routed_before_the_earlier_call_does_not_take_that_call_in(store, state):
    """Tickets travel on partitions of their own: the later call may be routed first. The earlier one is then
    not merged into its own repeat; each goes its way (a repeat missed, never one turned round)."""
    later, _ = await route(store, state, NOISE, days_ago=0)
    earlier, emitted = await route(store, state, NOISE, days_ago=1)
    assert emitted[0].event_type != "TicketMerged"
    _, third = await route(store, state, NOISE, days_ago=0.5)  # between the two: into the earlier one
    assert third[0].event_type == "TicketMerged" and third[0].payload["into_ticket_id"] == str(earlier.ticket_id)
