"""Stream events other than decisions: what a region actor publishes on ``prices``, ``instances`` and
``alerts``, kept as the JSON text it sent so a resuming client receives exactly the live bytes.

The store does not interpret a payload; it checks, before any write, what would otherwise fail in one
backend and not the other or come back different: a string, shaped as a JSON object (``{...}``), no NUL
character (PostgreSQL's text refuses it, SQLite keeps it), valid UTF-8 (no lone surrogates). A full JSON
parse would cost ~90 µs per 9 KB prices event on the tick's hot path; the actor produces payloads with
``json.dumps``, so the shape check catches a wrong argument without paying for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.store.errors import InvalidRecordError
from actors.store.fields import check_epoch, check_seq
from actors.topics import DECISIONS_TOPIC, EVENT_TOPICS

_EVENT_TOPICS = frozenset(EVENT_TOPICS)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a stream's topic: ``seq`` > 0 per (account, region, topic), ``at_s`` the tick time it
    belongs to, ``payload`` the JSON object text a WebSocket message carries as ``data``."""

    topic: str
    seq: int
    at_s: float
    payload: str


def check_topic(topic: Any, where: str = "topic") -> str:
    """``topic`` if it is one of :data:`EVENT_TOPICS`, else an InvalidRecordError naming ``where``.

    >>> check_topic("prices")
    'prices'
    >>> check_topic("decisions")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    actors.store.errors.InvalidRecordError: topic: 'decisions' is not an event topic (...); decisions have...
    """
    if type(topic) is str and topic in _EVENT_TOPICS:
        return topic
    hint = "; decisions have their own table" if topic == DECISIONS_TOPIC else ""
    raise InvalidRecordError(where, f"{topic!r} is not an event topic ({', '.join(EVENT_TOPICS)}){hint}")


def check_payload(payload: Any, where: str = "payload") -> str:
    """``payload`` if it can be stored and replayed unchanged on both backends (see the module docstring).

    >>> check_payload('{"a": 1}')
    '{"a": 1}'
    >>> check_payload("[1]")
    Traceback (most recent call last):
    ...
    actors.store.errors.InvalidRecordError: payload: must be JSON object text ({...}), got '[1]'
    """
    if type(payload) is not str:
        raise InvalidRecordError(where, f"must be JSON object text (str), got {type(payload).__name__}")
    if not (payload.startswith("{") and payload.endswith("}")):
        raise InvalidRecordError(where, f"must be JSON object text ({{...}}), got {_excerpt(payload)}")
    if "\x00" in payload:
        raise InvalidRecordError(where, "contains a NUL character")
    if not payload.isascii():
        try:
            payload.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRecordError(where, f"is not valid UTF-8 text at index {exc.start}") from None
    return payload


def event_to_row(account: str, region: str, event: StreamEvent) -> dict[str, Any]:
    """Column values of a ``stream_events`` row; ``account`` and ``region`` are checked by the caller (once
    per tick), the event's fields here, each error naming its field."""
    if not isinstance(event, StreamEvent):
        raise InvalidRecordError("", f"must be a StreamEvent, got {type(event).__name__}")
    return {
        "account": account,
        "region": region,
        "topic": check_topic(event.topic),
        "seq": check_seq(event.seq, "seq"),
        "at_s": check_epoch(event.at_s, "at_s"),
        "payload": check_payload(event.payload),
    }


def event_from_row(row: Mapping[Any, Any]) -> StreamEvent:
    """A ``stream_events`` row back into a StreamEvent (validated on the way in: read as is)."""
    return StreamEvent(row["topic"], int(row["seq"]), float(row["at_s"]), row["payload"])


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"

