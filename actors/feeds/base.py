"""The one protocol every market feed implements, keyed by (provider, account, region).

A feed turns a cloud's (or a recording's) view of one account-region into calls on its region actor:
pools, price ticks (packed, see ``actors/wire.py``), the fleet, interruption notices. The registry starts
one feed per account-region by the account's credentials mode and never looks inside it, so a GCP or
Azure feed is a new class here, not a change to ``api/``.

A feed also says how fresh its data is (:class:`FeedHealth`), which ``/readyz``, ``/prices`` and
``GET /accounts/{a}`` show: a feed that cannot reach its cloud keeps the actor deciding on the last data
and reports since when that data is stale and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True, order=True)
class FeedKey:
    provider: str  # "replay", "aws", ...
    account: str
    region: str


@dataclass(slots=True)
class SourceHealth:
    """One data source of a feed (prices, discovery, interruptions): when it last worked, and if not, why.

    Times are wall-clock epoch seconds of this process; ``stale_since_s`` is the first failure after the
    last success (None while healthy).
    """

    last_ok_s: float | None = None
    stale_since_s: float | None = None
    error: str | None = None
    failures: int = 0

    def ok(self, now_s: float) -> None:
        self.last_ok_s, self.stale_since_s, self.error, self.failures = now_s, None, None, 0

    def failed(self, now_s: float, error: str) -> None:
        if self.stale_since_s is None:
            self.stale_since_s = now_s
        self.error = error
        self.failures += 1

    def as_json(self) -> dict[str, Any]:
        return {"last_ok_s": self.last_ok_s, "stale_since_s": self.stale_since_s, "error": self.error,
                "failures": self.failures}


@dataclass(slots=True)
class FeedHealth:
    """The health of a whole feed, derived from its sources: ``state`` is ``starting`` until every source
    worked once, ``ok``, ``stale`` (a source failing; the actor decides on the last data) or ``error`` (the
    account's credentials are refused: nothing will work until an operator acts). A feed with no sources
    (the replay) is ``ok``."""

    sources: dict[str, SourceHealth] = field(default_factory=dict)
    credentials_error: str | None = None

    def source(self, name: str) -> SourceHealth:
        return self.sources.setdefault(name, SourceHealth())

    def with_source(self, name: str, source: SourceHealth) -> FeedHealth:
        """This health with one more source (an account's queue beside a region's feed), unchanged itself."""
        return FeedHealth({**self.sources, name: source}, self.credentials_error)

    @property
    def state(self) -> str:
        return self._summary()[0]

    @property
    def detail(self) -> str | None:
        return self._summary()[1]

    def _summary(self) -> tuple[str, str | None]:
        if self.credentials_error:
            return "error", self.credentials_error
        failing = {name: s for name, s in self.sources.items() if s.error}
        if failing:
            name, worst = min(failing.items(), key=lambda item: item[1].stale_since_s or 0.0)
            return "stale", f"{name}: {worst.error}"
        if all(s.last_ok_s is not None for s in self.sources.values()):
            return "ok", None
        return "starting", None

    def as_json(self) -> dict[str, Any]:
        state, detail = self._summary()
        return {"state": state, "detail": detail,
                "sources": {name: s.as_json() for name, s in sorted(self.sources.items())}}


class Feed(Protocol):
    """A market feed for one (provider, account, region)."""

    key: FeedKey

    async def start(self, actor: Any) -> None:
        """Begin feeding ``actor`` (a region actor handle): pools, current state, then every change."""
        ...

    async def stop(self) -> None:
        """Stop feeding; idempotent."""
        ...

    def health(self) -> FeedHealth: ...
