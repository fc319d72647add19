import uuid

import pytest
from pydantic import ValidationError

from schemas import export, topics
from schemas.events import Envelope, TicketClosed, UnknownEvent, parse


def test_committed_json_schemas_match_the_models():
    stale = export.write(check=True)
    assert stale == [], f"run `jiesu schemas export`: stale {stale}"


def test_envelope_round_trips_and_keeps_its_event_id():
    envelope = Envelope.wrap(TicketClosed(outcome="satisfied"), ticket_id=uuid.uuid4(), producer="tracker")
    again, payload = parse(envelope.to_bytes())
    assert again == envelope and payload == TicketClosed(outcome="satisfied")
    assert envelope.event_id.version == 7


def test_unknown_event_version_is_refused_not_guessed():
    envelope = Envelope.wrap(TicketClosed(outcome="satisfied"), ticket_id=uuid.uuid4(), producer="t")
    future = envelope.model_copy(update={"schema_version": 9})
    with pytest.raises(UnknownEvent):
        future.parsed()


def test_naive_timestamps_are_refused():
    data = Envelope.wrap(TicketClosed(outcome="merged"), ticket_id=uuid.uuid4(), producer="t").model_dump()
    data["occurred_at"] = data["occurred_at"].replace(tzinfo=None)
    with pytest.raises(ValidationError):
        Envelope.model_validate(data)


def test_every_topic_has_a_dead_letter_topic():
    assert topics.dlq(topics.RECEIVED) == "tickets.received.dlq"
    assert set(topics.ALL_WITH_DLQ) == {*topics.ALL, *(f"{t}.dlq" for t in topics.ALL)}


def test_asyncapi_document_lists_every_consumed_topic():
    doc = export.asyncapi()
    text = str(doc)
    for topic in (topics.RECEIVED, topics.ASSIGNED, topics.LIFECYCLE, topics.RECONCILE):
        assert topic in text
