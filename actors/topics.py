"""The topics of a region's streams: their names, what each carries, where it is stored and the ``type``
of its WebSocket messages. The one list of them: the stream host, the store and the WebSocket read it here.

>>> TOPICS
('decisions', 'prices', 'instances', 'alerts')
>>> EVENT_TOPICS
('prices', 'instances', 'alerts')
>>> MESSAGE_TYPES["prices"]
'price'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of every (account, region): each event of it has a ``seq`` of its own numbering."""

    name: str
    message_type: str  # the ``type`` of its WebSocket messages
    carries: str  # what one event holds, for people (``actors/views.py`` shapes it)
    own_table: bool = False  # stored in a table of its own, not as JSON text in ``stream_events``


DECISIONS = Topic("decisions", "decision", "one decision of the policy: a move, or a keep whose reason changed",
                  own_table=True)
PRICES = Topic("prices", "price", "one tick's observed prices and availability")
INSTANCES = Topic("instances", "instances", "the whole fleet after it changed")
ALERTS = Topic("alerts", "alert", "an interruption, a notice, an execution step or a failure")

REGISTRY: dict[str, Topic] = {topic.name: topic for topic in (DECISIONS, PRICES, INSTANCES, ALERTS)}
TOPICS: tuple[str, ...] = tuple(REGISTRY)
DECISIONS_TOPIC = DECISIONS.name
EVENT_TOPICS: tuple[str, ...] = tuple(name for name, topic in REGISTRY.items() if not topic.own_table)
MESSAGE_TYPES: dict[str, str] = {name: topic.message_type for name, topic in REGISTRY.items()}
