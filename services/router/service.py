"""The router's use cases: route what arrives, re-route what is returned, record dispatchers' decisions.

Every decision is written with the event it owes (outbox) in one transaction, and every
assignment is remembered with why it was made, so return rates per unit and per rule
show where the rules and the directory fail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import yaml
from sqlalchemy import and_, func, or_, select, text, update

from jiesu.db import insert_rows, one_of
from jiesu.logging import get_logger
from jiesu.messaging import ServiceStore, Transaction
from jiesu.text import repeat_score
from schemas import topics
from schemas.enums import RETURN_REASONS, Kind, Urgency
from schemas.events import (
    DIRECTORY_ID,
    DirectoryPublished,
    DispatchNeeded,
    Envelope,
    PublicCategory,
    PublicDistrict,
    PublicStreet,
    RoutingReason,
    Suggestion,
    TicketAssigned,
    TicketMerged,
    TicketReceived,
    TicketReopened,
    TicketReturned,
    utcnow,
)
from services.router.domain.decide import SUGGESTED, Classifier, Decision, category_handled_by, decide, ref
from services.router.domain.directory import Directory, DirectoryError, UnknownCode
from services.router.domain.return_reason import NAMED, NamedUnit, named_by_return, units_named
from services.router.domain.rules import TicketFacts
from services.router.store import assignments, decisions, directory_versions, training_examples

log = get_logger(__name__)
PRODUCER = "router"
DUPLICATE_WINDOW = timedelta(days=30)
# jiesu.text.repeat_score from which a call is merged into the caller's open ticket with no one looking: a
# different matter merged away is never handled, so no false merge is allowed. On the 610 labelled real pairs
# (bench/data/repeat_pairs.csv, python -m bench.repeats) it merges 145 of 336 repeats and nothing else; the
# highest different matter scores 0.53. (Bigram Jaccard ≥ 0.35 merged 112 repeats and 3 different matters.)
DUPLICATE_SIMILARITY = 0.6
MAX_AUTOMATIC_RETURNS = 1  # a second return goes to a dispatcher


@dataclass
class RouterState:
    directory: Directory
    phone_key: bytes
    classifier: Classifier | None = None
    threshold: float = 0.6
    directory_version_id: int | None = None
    model_id: int | None = None


class DispatchError(ValueError):
    def __init__(self, status: int, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.status, self.code, self.zh, self.en = status, code, zh, en


def phone_hash(key: bytes, phone: str) -> str | None:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest() if digits else None


def facts_of(row) -> TicketFacts:
    return TicketFacts(subject=row.subject, description=row.description, category=row.category,
                       district=row.district, street=row.street, channel=row.channel, kind=row.kind)


# --- routing what arrives ------------------------------------------------------------------


async def route_received(tx: Transaction, envelope: Envelope, p: TicketReceived, state: RouterState) -> None:
    await route_received_many(tx, [(envelope, p)], state)


async def route_received_many(tx: Transaction, items: list[tuple[Envelope, TicketReceived]],
                              state: RouterState) -> None:
    """Route a run of new tickets: one read of what was decided, one of the callers' open tickets,
    one classifier call, one insert of the decisions and one of the assignments."""
    dialect = tx.session.bind.dialect.name
    decided = set((await tx.session.execute(select(decisions.c.ticket_id).where(
        one_of(decisions.c.ticket_id, [e.ticket_id for e, _ in items], dialect)))).scalars())
    # Decided already, or answered on the call (直接办结: never dispatched).
    todo = [(e, p) for e, p in items if e.ticket_id not in decided and p.answer is None]
    if not todo:
        return
    phones = {e.ticket_id: phone_hash(state.phone_key, p.citizen.phone) for e, p in todo}
    open_tickets = await _open_by_phone(tx, {h for h in phones.values() if h},
                                        min(p.received_at for _, p in todo) - DUPLICATE_WINDOW)
    classifier = state.classifier and Predicted(
        state.classifier, [f"{p.subject} {p.description}" for _, p in todo if not p.category])
    rows, made = [], []
    for envelope, p in todo:
        values = dict(
            ticket_id=envelope.ticket_id, number=p.number, channel=p.channel.value, kind=p.kind.value,
            urgency=p.urgency.value, subject=p.subject, description=p.description, district=p.location.district,
            street=p.location.street, received_at=p.received_at, decided_at=utcnow(), attempt=1, excluded=[],
            returns=0, phone_hash=phones[envelope.ticket_id],
        )
        into = _duplicate_target(envelope.ticket_id, p, open_tickets.get(values["phone_hash"], ()))
        if into is not None:
            target_id, target_number, score, why = into
            rows.append(dict(values, status="merged", category=p.category, lead_code=None, co_handlers=[],
                             suggestions=[], reason={"method": "operator" if p.duplicate_of else "directory",
                                                     "note": why}, why=why))
            await tx.emit(topics.ASSIGNED, Envelope.wrap(
                TicketMerged(number=p.number, into_ticket_id=target_id, into_number=target_number, similarity=score),
                ticket_id=envelope.ticket_id, producer=PRODUCER, trace_id=envelope.trace_id))
            continue
        d = decide(state.directory, facts_of_payload(p), classifier=classifier, threshold=state.threshold,
                   operator_unit=p.suggested_unit)
        rows.append(dict(values, **_decision_values(d), status=_status(d)))
        made.append(await _emit_decision(tx, envelope.ticket_id, d, number=p.number, kind=p.kind,
                                         directory=state.directory, district=p.location.district,
                                         street=p.location.street,
                                         urgency=p.urgency, attempt=1, trace_id=envelope.trace_id))
        if values["phone_hash"]:  # a later call in this run from the same number may repeat this one
            open_tickets.setdefault(values["phone_hash"], []).append(values)
        log.info("routed", outcome=d.outcome, lead=d.lead.code if d.lead else None, why=d.why,
                 ticket_id=str(envelope.ticket_id), event_id=str(envelope.event_id))
    await insert_rows(tx.session, decisions, rows)
    await _record_assignments(tx, made)


class Predicted:
    """The classifier with a run's texts predicted in one call (several times faster than one at a time);
    `decide` then asks it about one text at a time. Each text is predicted once: a return asks about its ticket
    up to three times (decide, decide again without the category, the named units' categories)."""

    def __init__(self, classifier: Classifier, texts: list[str]) -> None:
        self.classifier = classifier
        self.version = classifier.version
        self.known = dict(zip(texts, classifier.predict(texts))) if texts else {}

    def predict(self, texts):
        missing = [t for t in texts if t not in self.known]
        if missing:
            self.known.update(zip(missing, self.classifier.predict(missing)))
        return [self.known[t] for t in texts]

    def explain(self, text: str, label: str | None = None, k: int = 5):
        return self.classifier.explain(text, label, k)


def facts_of_payload(p: TicketReceived) -> TicketFacts:
    return TicketFacts(subject=p.subject, description=p.description, category=p.category,
                       district=p.location.district, street=p.location.street, channel=p.channel.value,
                       kind=p.kind.value)


async def _open_by_phone(tx: Transaction, phones: set[str], since) -> dict[str, list]:
    """Open, unmerged tickets from these (hashed) numbers received since `since`, oldest first, by number."""
    if not phones:
        return {}
    rows = (await tx.session.execute(
        select(decisions.c.ticket_id, decisions.c.number, decisions.c.subject, decisions.c.description,
               decisions.c.received_at, decisions.c.phone_hash)
        .where(one_of(decisions.c.phone_hash, list(phones), tx.session.bind.dialect.name),
               decisions.c.status != "merged", decisions.c.closed_at.is_(None), decisions.c.received_at >= since)
        .order_by(decisions.c.received_at)
    )).mappings().all()
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row["phone_hash"], []).append(row)
    return out


def _duplicate_target(ticket_id: UUID, p: TicketReceived, open_tickets):
    """(ticket id, number, similarity, why) of the open ticket this one repeats, or None."""
    if p.duplicate_of is not None:
        return p.duplicate_of, p.duplicate_of_number or "", 1.0, "话务员认定为重复件"
    since = p.received_at - DUPLICATE_WINDOW
    # Only into a ticket received before this one: tickets travel on partitions of their own, so a later call
    # may be routed first, and the earlier ticket must not then be merged into its own repeat.
    best = max(((repeat_score(p.subject, p.description, r["subject"], r["description"]), r) for r in open_tickets
                if r["ticket_id"] != ticket_id and since <= r["received_at"]
                and (r["received_at"], r["number"]) < (p.received_at, p.number)),
               default=None, key=lambda pair: pair[0])
    if best is None or best[0] < DUPLICATE_SIMILARITY:
        return None
    score, row = best
    return (row["ticket_id"], row["number"], round(score, 3),
            f"同一来电号码 30 日内同一事项（地点与事项相符度 {score:.0%}），并入 {row['number']}")


def _status(d: Decision) -> str:
    return "assigned" if d.outcome == "assign" else "dispatch"


def _decision_values(d: Decision) -> dict:
    return dict(category=d.category, lead_code=d.lead.code if d.lead else None,
                co_handlers=[u.code for u in d.co_handlers], reason=d.reason.model_dump(mode="json"),
                suggestions=[s.model_dump(mode="json") for s in d.suggestions], why=d.why[:500])


def place_names(directory: Directory, category: str | None, district: str | None, street: str | None) -> dict:
    """The directory's names of the codes a ticket carries (its category, district and street), for the services
    that keep the codes but not the directory: the tracker's bulletins and charts say 社会保险, not LS.INSURANCE.SOCIAL.
    A code the directory does not know (any more) is left out."""
    return _names(directory, category, placed_district(directory, district, street), street)


def _names(directory: Directory, category: str | None, placed: str | None, street: str | None) -> dict:
    """place_names, the district already placed (placed_district)."""
    names = {}
    for code, look_up in ((category, directory.category), (placed, directory.district), (street, directory.street)):
        if code:
            try:
                names[code] = look_up(code).name
            except UnknownCode:
                pass
    return names


def placed_district(directory: Directory, district: str | None, street: str | None) -> str | None:
    """The district routing places a ticket in: the citizen's, else the one its street lies in (a citizen often
    names only the street); None when neither is known."""
    if district or not street:
        return district
    try:
        return directory.street(street).parent
    except UnknownCode:
        return None


async def _emit_decision(tx: Transaction, ticket_id: UUID, d: Decision, *, number: str, kind, urgency,
                         attempt: int, directory: Directory, district: str | None, street: str | None,
                         trace_id: str | None = None, decided_by: str | None = None) -> dict | None:
    """Owe the decision's event; answers the assignment row to record (for the return rates), if any.
    `district` and `street` are the ticket's as the citizen gave them."""
    row = None
    placed = placed_district(directory, district, street)
    names = _names(directory, d.category, placed, street)
    if d.outcome == "assign":
        payload = TicketAssigned(number=number, kind=kind, urgency=urgency, lead=ref(d.lead),
                                 co_handlers=[ref(u) for u in d.co_handlers], category=d.category,
                                 reason=d.reason, attempt=attempt, names=names, district=placed)
        r = d.reason
        row = dict(ticket_id=ticket_id, attempt=attempt, unit_code=d.lead.code, method=r.method, rule_id=r.rule_id,
                   model_version=r.model_version, score=r.score, decided_by=decided_by, at=utcnow())
    else:
        payload = DispatchNeeded(number=number, suggestions=list(d.suggestions), why=d.why[:500], attempt=attempt,
                                 names=names)
    await tx.emit(topics.ASSIGNED, Envelope.wrap(payload, ticket_id=ticket_id, producer=PRODUCER, trace_id=trace_id))
    return row


async def _record_assignments(tx: Transaction, rows: list[dict | None]) -> None:
    rows = [row for row in rows if row]
    if rows:
        await insert_rows(tx.session, assignments, rows)


# --- returns (退单) --------------------------------------------------------------------------


async def reroute_after_return(tx: Transaction, envelope: Envelope, p: TicketReturned, state: RouterState) -> None:
    row = (await tx.session.execute(select(decisions).where(decisions.c.ticket_id == envelope.ticket_id))).first()
    if row is None:  # returned before we ever saw it (e.g. a restored database): route from what the return says
        await tx.session.execute(decisions.insert().values(
            ticket_id=envelope.ticket_id, number=p.number, status="dispatch", channel="other", kind=Kind.HELP.value,
            urgency=Urgency.NORMAL.value, subject=p.subject or p.number, description=p.description or p.reason,
            received_at=envelope.occurred_at, decided_at=utcnow(), attempt=1, excluded=[], co_handlers=[],
            suggestions=[], returns=0, reason={"method": "reroute"}, why=""))
        row = (await tx.session.execute(select(decisions).where(decisions.c.ticket_id == envelope.ticket_id))).first()
    latest = await tx.session.scalar(
        select(func.max(assignments.c.id)).where(assignments.c.ticket_id == envelope.ticket_id,
                                                 assignments.c.unit_code == p.unit.code))
    if latest is not None:
        await tx.session.execute(update(assignments).where(assignments.c.id == latest).values(
            returned_at=envelope.occurred_at, return_reason_code=p.reason_code, return_reason=p.reason))
    excluded = sorted({*row.excluded, p.unit.code})
    returns = row.returns + 1
    attempt = row.attempt + 1
    facts = _facts_for_reroute(row)
    classifier = state.classifier and Predicted(state.classifier, [])  # asked below up to three times, run once
    d = decide(state.directory, facts, classifier=classifier, threshold=state.threshold,
               exclude=frozenset(excluded))
    if d.outcome == "dispatch" and not d.suggestions and facts.category:  # the category's unit sent it back
        guesses = decide(state.directory, dataclasses.replace(facts, category=None), classifier=classifier,
                         threshold=state.threshold, exclude=frozenset(excluded))
        # With none either, the card says why: the model's categories all belong to units that sent it back.
        why = d.why if guesses.suggestions or state.classifier is None else f"{d.why}；{guesses.why}"
        d = dataclasses.replace(d, suggestions=guesses.suggestions, why=why)
    returned = _returned_by(p)
    # The unit the returning one says is responsible (此事应由市生态环境局办理): a dispatcher confirms it, unless
    # the router, re-routing, sends the ticket there anyway.
    named = units_named(state.directory, p.reason, returned_by=excluded)
    agreed = bool(named) and d.outcome == "assign" and d.lead.code == named[0].unit.code
    categories = {n.unit.code: category_handled_by(state.directory, n.unit, _ranked(classifier, facts), facts)
                  for n in named}
    if returns > MAX_AUTOMATIC_RETURNS:
        why = f"第 {returns} 次退单：{returned}，转人工派单"
        if named:
            why += f"；{_named_why(named)}"
        if not (d.suggestions or d.lead):
            why += f"；{d.why}"
        d = Decision("dispatch", RoutingReason(method="reroute", note=why[:500]), category=d.category,
                     suggestions=_named_first(named, categories, d), why=why)
    elif named and not agreed:
        why = f"{returned}；{_named_why(named)}；{'原拟改派' if d.outcome == 'assign' else '改派'}：{d.why}"
        d = Decision("dispatch", RoutingReason(method="reroute", category=d.category, note=why[:500]),
                     category=d.category, suggestions=_named_first(named, categories, d), why=why)
    elif d.outcome == "assign":
        also = f"；{_named_why(named)}" if agreed else ""
        d = Decision("assign", d.reason.model_copy(update={"method": "reroute", "note": (
            f"{returned}后改派；原依据：{d.why}{also}")[:500]}), d.lead, d.co_handlers,
            d.category, d.suggestions, why=f"退单后改派：{d.why}{also}")
    else:  # no other unit is certain enough: a dispatcher decides, told why the ticket came back
        why = f"{returned}；改派：{d.why}"
        d = Decision("dispatch", RoutingReason(method="reroute", category=d.category, note=why[:500]),
                     category=d.category, suggestions=d.suggestions, why=why)
    await tx.session.execute(update(decisions).where(decisions.c.ticket_id == envelope.ticket_id).values(
        **_decision_values(d), status=_status(d), excluded=excluded, returns=returns, attempt=attempt,
        decided_at=utcnow()))
    await _record_assignments(tx, [await _emit_decision(
        tx, envelope.ticket_id, d, number=row.number, kind=Kind(row.kind), urgency=Urgency(row.urgency),
        attempt=attempt, trace_id=envelope.trace_id, directory=state.directory, district=row.district,
        street=row.street)])
    log.info("re-routed after return", returns=returns, outcome=d.outcome, unit=p.unit.code)


def _facts_for_reroute(row) -> TicketFacts:
    """A returned ticket's facts for routing it again. A category the model or a dispatcher gave it is what they
    made of the text, not what the caller said: kept, it would stop the classifier, and its unit may be the very
    one that sent the ticket back. The operator's category (chosen on the call) stays."""
    reason = row.reason or {}
    guessed = reason.get("model_version") is not None or reason.get("method") == "dispatcher"
    facts = facts_of(row)
    return dataclasses.replace(facts, category=None) if guessed else facts


def _returned_by(p: TicketReturned) -> str:
    """市生态环境局退单（诉求不明确：地址不清）: who sent the ticket back, the reason's label and the unit's words."""
    label = RETURN_REASONS.get(p.reason_code, p.reason_code)
    return f"{p.unit.name}退单（{label}：{p.reason[:80]}）"


def _suggestion_from(d: Decision) -> tuple:
    if d.lead is None:
        return ()
    return (Suggestion(unit=ref(d.lead), category=d.category, score=d.reason.score or 1.0, reason=d.why[:500]),)


def _named_why(named: tuple[NamedUnit, ...]) -> str:
    """退单理由指明：市生态环境局 (the directory's names: the reason's own words are on the card beside it)."""
    return f"{NAMED}：{'、'.join(n.unit.name for n in named)}"


def _ranked(classifier: Classifier | None, facts: TicketFacts) -> Iterator[str]:
    """The categories a unit the router did not pick may carry, best first: the ticket's own (the operator's, or
    the one it waits in the queue with), then the classifier's ranking, predicted only when read that far. A unit
    takes the first it handles (category_handled_by), or none: a named unit on the dispatch card, or one a
    dispatcher typed; so a dispatcher's choice never teaches the model another unit's category."""
    if facts.category:
        yield facts.category
    if classifier is not None:
        yield from (label for label, _ in classifier.predict([f"{facts.subject} {facts.description}"])[0].top)


def _named_first(named: tuple[NamedUnit, ...], categories: dict[str, str | None],
                 d: Decision) -> tuple[Suggestion, ...]:
    """The units the return reason names, one key each on the dispatch card, then the router's own suggestions
    (or the unit it would have re-routed to); three in all, as the card shows. A named unit's score says nothing
    (the schema wants one): the card shows 退单理由指明 in its place."""
    own = d.suggestions or _suggestion_from(d)
    first = tuple(Suggestion(unit=ref(n.unit), score=1.0, reason=f"{NAMED}“{n.words}”"[:500],
                             category=categories.get(n.unit.code)) for n in named)
    codes = {n.unit.code for n in named}
    return (first + tuple(s for s in own if s.unit.code not in codes))[:SUGGESTED]


# --- dispatchers (派单员) --------------------------------------------------------------------


async def dispatch(store: ServiceStore, state: RouterState, ticket_id: UUID, *, unit_code: str,
                   co_handlers: list[str], category: str | None, by: str) -> tuple[Decision, str]:
    """A dispatcher's decision for a queued ticket: published at once and kept as training data. The decision and
    the ticket's number (for the dispatcher to read back)."""
    directory = state.directory
    for code in (unit_code, *co_handlers):
        if not directory.has_unit(code):
            raise DispatchError(422, "unknown_unit", f"没有代码为 {code} 的承办单位", f"No unit with code {code}")
    if category is not None:
        try:
            directory.category(category)
        except LookupError:
            raise DispatchError(422, "unknown_category", f"没有代码为 {category} 的类别",
                                f"No category with code {category}") from None
    async with store.transaction() as tx:
        row = (await tx.session.execute(select(decisions).where(decisions.c.ticket_id == ticket_id))).first()
        if row is None:
            raise DispatchError(404, "ticket_not_found", "派单队列中没有该工单", "No such ticket in the dispatch queue")
        if row.status != "dispatch":
            raise DispatchError(409, "not_waiting_for_dispatch", "该工单已派出，无需再派",
                                "This ticket is not waiting for a dispatcher")
        lead = directory.unit(unit_code)
        co = tuple(directory.unit(c) for c in co_handlers if c != unit_code)
        taken = next((s for s in row.suggestions if s["unit"]["code"] == unit_code), None)
        if category is None and taken is not None:  # taking a suggestion takes its category too
            category = taken["category"]
        # Any other unit carries a category it handles, or none (a named unit's was found on the return): the
        # ticket's own may be the one that sent it to a unit that returned it, and as training data it would
        # teach the model that mistake. It stays where the unit handles it too (another street office, the same
        # matter).
        if category is None and not (taken is not None and named_by_return(taken["reason"])):
            facts = facts_of(row)
            category = category_handled_by(directory, lead, _ranked(state.classifier, facts), facts)
        d = Decision("assign", RoutingReason(method="dispatcher", category=category, note=f"派单员 {by} 人工派单",
                                             by=by), lead, co, category, why=f"派单员 {by} 派至 {lead.name}")
        attempt = row.attempt if row.attempt > 1 or row.returns == 0 else row.attempt + 1
        await tx.session.execute(update(decisions).where(decisions.c.ticket_id == ticket_id).values(
            **_decision_values(d), status="assigned", attempt=attempt, decided_at=utcnow()))
        await _record_assignments(tx, [await _emit_decision(
            tx, ticket_id, d, number=row.number, kind=Kind(row.kind), urgency=Urgency(row.urgency), attempt=attempt,
            decided_by=by, directory=directory, district=row.district, street=row.street)])
        existing = await tx.session.scalar(select(training_examples.c.id).where(
            training_examples.c.ticket_id == ticket_id))
        example = dict(subject=row.subject, description=row.description, category=d.category, unit_code=unit_code,
                       source="dispatcher", decided_by=by, at=utcnow())
        if existing is None:
            await tx.session.execute(training_examples.insert().values(ticket_id=ticket_id, **example))
        else:
            await tx.session.execute(update(training_examples).where(training_examples.c.id == existing)
                                     .values(**example))
    log.info("dispatched by hand", ticket_id=str(ticket_id), unit=unit_code, by=by)
    return d, row.number


async def on_closed(tx: Transaction, envelope: Envelope, p) -> None:
    """The tracker closed the ticket: it no longer absorbs repeats of the same matter."""
    await tx.session.execute(update(decisions).where(
        and_(decisions.c.ticket_id == envelope.ticket_id, decisions.c.closed_at.is_(None))
    ).values(closed_at=envelope.occurred_at))


async def on_reopened(tx: Transaction, envelope: Envelope, p: TicketReopened) -> None:
    """重办: the ticket is open again with its lead unit, and absorbs repeats again. A close the tracker made after
    this reopening (a redelivered or late event) stands."""
    await tx.session.execute(update(decisions).where(
        decisions.c.ticket_id == envelope.ticket_id,
        or_(decisions.c.closed_at.is_(None), decisions.c.closed_at <= envelope.occurred_at),
    ).values(closed_at=None, lead_code=p.unit.code))


async def on_reconcile(tx: Transaction, envelope: Envelope, p) -> None:
    """Re-emit our decisions for this ticket (same event ids); consumers skip what they applied."""
    await tx.reemit(envelope.ticket_id, ("TicketAssigned", "DispatchNeeded", "TicketMerged"))


# --- the directory in force --------------------------------------------------------------------


async def latest_directory_id(store: ServiceStore) -> int | None:
    async with store.db.session() as s:
        return await s.scalar(select(directory_versions.c.id).order_by(directory_versions.c.id.desc()).limit(1))


async def current_directory(store: ServiceStore) -> tuple[int, Directory] | None:
    async with store.db.session() as s:
        row = (await s.execute(select(directory_versions).order_by(directory_versions.c.id.desc()).limit(1))).first()
    if row is None:
        return None
    return row.id, Directory.from_data(yaml.safe_load(row.content), source=f"directory version {row.id}")


class DirectoryUnchanged(Exception):
    """The import says nothing the version in force does not: no version is written and nothing is owed."""

    def __init__(self, version_id: int, directory: Directory, *, text_differs: bool) -> None:
        super().__init__(f"same as directory version {version_id}")
        self.version_id, self.directory, self.text_differs = version_id, directory, text_differs

    @property
    def zh(self) -> str:
        """What the page and the CLI say of it."""
        return f"内容与现行版本（{version_label(self.directory, self.version_id)}）相同，未新建版本"


def version_label(directory: Directory, version_id: int | None) -> str:
    """A directory version as people name it: its own version, and the import's number (2026.1 · #3)."""
    return f"{directory.version} · #{version_id}" if version_id else str(directory.version)


class DirectoryChangedMeanwhile(DirectoryError):
    """Another import was activated while this one was checked: nothing is written; check it against that one."""

    def __init__(self, version_id: int | None) -> None:
        super().__init__(f"导入期间目录已被他人更新（现行版本 #{version_id}），本次未导入；请刷新后核对再导入 / "
                         f"the directory changed meanwhile (version #{version_id} is in force): nothing imported; "
                         "check your file against it and import again")
        self.version_id = version_id


# pg_advisory_xact_lock's key for directory imports ("jiesudir").
DIRECTORY_IMPORT_LOCK = int.from_bytes(b"jiesudir", "big")


class UnitsStillHandling(DirectoryError):
    """The import removes units that still handle open tickets; it goes in only when the admin confirms."""


OPEN_TICKET_NUMBERS_SHOWN = 5


async def open_work(store: ServiceStore, unit_codes: set[str]) -> dict[str, tuple[int, int, list[str]]]:
    """Per unit: (open tickets it leads, open tickets it co-handles, some of their numbers), as the router knows them.

    "Open" is the router's own view: the ticket was assigned (the router's last decision) and no TicketClosed
    has come for it, or a TicketReopened (重办) came after it. The router holds the current lead, since every
    assignment and re-assignment is its own, and a reopening names it again.
    """
    if not unit_codes:
        return {}
    async with store.db.session() as s:
        rows = (await s.execute(select(decisions.c.number, decisions.c.lead_code, decisions.c.co_handlers)
                                .where(decisions.c.status == "assigned", decisions.c.closed_at.is_(None))
                                .order_by(decisions.c.received_at))).all()
    work: dict[str, tuple[int, int, list[str]]] = {}
    for row in rows:
        for code in unit_codes & {row.lead_code, *(row.co_handlers or ())}:
            led, co, numbers = work.get(code, (0, 0, []))
            work[code] = (led + (code == row.lead_code), co + (code != row.lead_code), numbers + [row.number])
    return work


def _still_handling(old: Directory, work: dict[str, tuple[int, int, list[str]]]) -> str:
    lines = []
    for code, (led, co, numbers) in sorted(work.items()):
        more = "…" if len(numbers) > OPEN_TICKET_NUMBERS_SHOWN else ""
        shown = "、".join(numbers[:OPEN_TICKET_NUMBERS_SHOWN]) + more
        both = f"（主办 {led} 件，协办 {co} 件）" if co else ""
        lines.append(f"- 单位 {code}（{old.unit(code).name}）仍有 {led + co} 件在办工单{both}：{shown} / "
                     f"unit {code} still has {led + co} open ticket(s)")
    return ("要删除的单位仍有在办工单，不能删除；请先让这些工单办结或退回改派 / "
            "units to be removed still handle open tickets: let them close or return the tickets first:\n"
            + "\n".join(lines))


async def import_directory(store: ServiceStore, content: str, *, by: str,
                           remove_units_with_open_work: bool = False) -> tuple[int, Directory, str]:
    """Validate and activate a new directory version; returns (id, directory, summary of changes).

    Its public part is owed to intake (DirectoryPublished) in the same transaction as the version is
    written, so whoever imports it (the page, `jiesu directory import`, the first start) publishes it
    once, at once, and never writes a version without it. Content equal to the version in force writes
    nothing and owes nothing (DirectoryUnchanged); removing a unit that still handles open tickets is
    refused unless `remove_units_with_open_work` (UnitsStillHandling).
    """
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:  # the parser's text is English either way: give it once
        raise DirectoryError(f"YAML 格式错误 / not valid YAML:\n{exc}") from None
    if not isinstance(data, dict):
        raise DirectoryError("目录文件应为 YAML 映射（version、units、rules…）/ the directory must be a YAML mapping")
    directory = Directory.from_data(data, source="import")  # raises DirectoryError listing every problem
    previous = await current_directory(store)
    if previous is not None and previous[1] == directory:
        async with store.db.session() as s:
            stored = await s.scalar(select(directory_versions.c.content)
                                    .where(directory_versions.c.id == previous[0]))
        raise DirectoryUnchanged(previous[0], previous[1], text_differs=_lines(stored) != _lines(content))
    if previous is not None and not remove_units_with_open_work:
        removed = _unit_codes(previous[1]) - _unit_codes(directory)
        work = await open_work(store, removed)
        if work:
            raise UnitsStillHandling(_still_handling(previous[1], work))
    summary = describe_changes(previous[1] if previous else None, directory)
    async with store.transaction() as tx:
        # The checks above were made against `previous`: another import written since would make them stale (two
        # admins at once). Imports take turns here (SQLite's writers do anyway), and the later one is refused.
        if tx.session.bind.dialect.name == "postgresql":
            await tx.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DIRECTORY_IMPORT_LOCK})
        in_force = await tx.session.scalar(select(func.max(directory_versions.c.id)))
        if in_force != (previous[0] if previous else None):
            raise DirectoryChangedMeanwhile(in_force)
        result = await tx.session.execute(directory_versions.insert().values(
            version=directory.version, content=content, summary=summary, imported_by=by, imported_at=utcnow()))
        version_id = result.inserted_primary_key[0]
        await owe_directory(tx, version_id, directory)
    log.info("directory imported", version=directory.version, version_id=version_id, by=by, changes=summary)
    return version_id, directory, summary


def _unit_codes(directory: Directory) -> set[str]:
    """Departments, utilities, districts and street offices: each may lead or co-handle a ticket."""
    return {u.code for u in (*directory.units, *directory.districts, *directory.streets)}


def _lines(text: str | None) -> list[str]:
    """The text as an admin sees it: a browser sends a textarea back with CRLF line ends."""
    return [line.rstrip() for line in (text or "").strip().splitlines()]


def public_part(directory: Directory, version_id: int, activated_at) -> DirectoryPublished:
    """What other services may know of a directory: its places and its taxonomy, not its units or rules."""
    return DirectoryPublished(
        version=directory.version, version_id=version_id, activated_at=activated_at, city=directory.city,
        districts=[PublicDistrict(code=d.code, name=d.name, streets=[PublicStreet(code=s.code, name=s.name)
                                                                     for s in directory.streets_of(d.code)])
                   for d in directory.districts],
        categories=[PublicCategory(code=c.code, name=c.name, parent=c.parent) for c in directory.categories])


async def _last_directory_owed(tx: Transaction):
    """(outbox row id, version id, sent at) of the last DirectoryPublished owed, or None."""
    outbox = tx.tables.outbox
    last = (await tx.session.execute(
        select(outbox.c.id, outbox.c.value, outbox.c.sent_at)
        .where(outbox.c.ticket_id == DIRECTORY_ID, outbox.c.event_type == DirectoryPublished.event_type)
        .order_by(outbox.c.id.desc()).limit(1))).first()
    if last is None:
        return None
    return last.id, Envelope.from_bytes(last.value).payload.get("version_id"), last.sent_at


_UNREAD = object()


async def owe_directory(tx: Transaction, version_id: int, directory: Directory, *, last=_UNREAD) -> bool:
    """Owe DirectoryPublished for this version in `tx` unless it or a later one is the last owed; True if owed now.
    `last`: the caller's `_last_directory_owed(tx)`, when it has read it already."""
    if last is _UNREAD:
        last = await _last_directory_owed(tx)
    if last is not None and last[1] is not None and last[1] >= version_id:  # or a later one, not loaded here yet
        return False
    activated_at = await tx.session.scalar(select(directory_versions.c.imported_at)
                                           .where(directory_versions.c.id == version_id))
    if activated_at is None:  # not (yet) a version of this database
        return False
    await tx.emit(topics.DIRECTORY, Envelope.wrap(public_part(directory, version_id, activated_at),
                                                  ticket_id=DIRECTORY_ID, producer=PRODUCER),
                  audit_details={"version": directory.version, "version_id": version_id})
    tx.after_commit(lambda: log.info("directory published", version=directory.version, version_id=version_id))
    return True


async def publish_directory(store: ServiceStore, version_id: int, directory: Directory, *,
                            resend: bool = False) -> bool:
    """Owe DirectoryPublished for this version unless it or a later one is the last owed; True if it is owed now.

    An import owes it itself (import_directory); this is the safety net at start and in the reload
    loop for a version written otherwise (by an older router, or by hand): the versions table is the
    truth, and whichever instance sees such a version first publishes it (two at once owe it twice:
    intake keeps the newest either way). `resend` marks the last one for sending again, with its
    event id, if it was already sent: the embedded broker keeps nothing across restarts.
    """
    async with store.transaction() as tx:
        last = await _last_directory_owed(tx)
        if resend and last is not None and last[1] == version_id and last[2] is not None:
            await tx.session.execute(update(tx.tables.outbox).where(tx.tables.outbox.c.id == last[0])
                                     .values(sent_at=None))
            tx.after_commit(store.outbox_signal.set)
            return False
        return await owe_directory(tx, version_id, directory, last=last)


def describe_changes(old: Directory | None, new: Directory) -> str:
    if old is None:
        return (f"初始导入：{len(new.units)} 个部门/公用事业单位，{len(new.districts)} 个区，{len(new.streets)} 个街道，"
                f"{len(new.categories)} 个类别，{len(new.rules)} 条规则")
    parts = [f"{word}：{before} → {after}" for word, before, after in (("版本号", old.version, new.version),
                                                                    ("城市", old.city, new.city)) if before != after]
    for label, attr, key in (("单位", "units", "code"), ("区", "districts", "code"), ("街道", "streets", "code"),
                             ("类别", "categories", "code"), ("规则", "rules", "id")):
        before = {getattr(x, key): x for x in getattr(old, attr)}
        after = {getattr(x, key): x for x in getattr(new, attr)}
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        for word, items in (("新增", added), ("删除", removed), ("修改", changed)):
            if items:
                parts.append(f"{word}{label} {len(items)}：{'、'.join(items[:10])}{'…' if len(items) > 10 else ''}")
    if [r.id for r in old.rules] != [r.id for r in new.rules] and not any("规则" in p for p in parts):
        parts.append("规则顺序调整")
    return "；".join(parts) or f"无内容变化（版本 {new.version}）"
