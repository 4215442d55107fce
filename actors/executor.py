"""The executor carries decisions out. One seam, several clouds.

``SimulatedCloud`` (replay and demo): every launch succeeds at once, so the fleet follows the decisions
(a ``hibernate`` stops the instance, a ``wake`` starts it where the policy placed it).
``Observe``: decide, store and stream; no cloud call at all (the default against a real account).
``DryRun``: records what it would do and changes nothing.
``actors.aws.executor.AwsExecutor``: AWS in ``dry_run`` (every mutating call with ``DryRun=True``) or
``execute`` (launch the replacement, wait until it runs, then terminate the old instance).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.types import Action, Decision


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"  # dry run, or nothing to do
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How one decision went. ``decision`` is the placement actually carried out (a capacity error can
    send it to the next candidate); ``instance_id`` is the replacement's id when the cloud gives a new
    one; ``steps`` are the cloud calls' outcomes, for the ``alerts`` topic; ``capacity_errors`` the pool
    keys that refused capacity on the way (labels for the risk model)."""

    decision: Decision
    outcome: Outcome
    detail: str = ""
    instance_id: str | None = None
    steps: tuple[Mapping[str, Any], ...] = ()
    capacity_errors: tuple[str, ...] = ()


class Executor(Protocol):
    mode: str

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]: ...


async def carry_out(decisions: list[Decision],
                    change: Callable[[Decision], Awaitable[ExecutionResult]]) -> list[ExecutionResult]:
    """One result per decision, in order: a KEEP is skipped (nothing to carry out), every other action
    goes through ``change``. The one place every executor that touches a cloud skips the keeps."""
    results = []
    for decision in decisions:
        if decision.action is Action.KEEP:
            results.append(ExecutionResult(decision, Outcome.SKIPPED, "keep"))
        else:
            results.append(await change(decision))
    return results


@dataclass(slots=True)
class SimulatedCloud:
    """Carries every placement change out instantly; records the calls (for tests and the demo)."""

    mode: str = "simulated"
    calls: list[Decision] = field(default_factory=list)

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]:
        return await carry_out(decisions, self._change)

    async def _change(self, decision: Decision) -> ExecutionResult:
        self.calls.append(decision)
        return ExecutionResult(decision, Outcome.APPLIED)


@dataclass(slots=True)
class Observe:
    """Makes no cloud call: the decisions are stored and streamed as recommendations."""

    mode: str = "observe"

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]:
        return [ExecutionResult(d, Outcome.SKIPPED, "observe") for d in decisions]


@dataclass(slots=True)
class DryRun:
    """Changes nothing; every decision is reported as skipped."""

    mode: str = "dry_run"

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]:
        return [ExecutionResult(d, Outcome.SKIPPED, "dry run") for d in decisions]


EXECUTOR_MODES = ("simulated", "observe", "dry_run", "execute")


def make_executor(mode: str, cloud: Any = None) -> Executor:
    """The executor for ``mode``. ``cloud`` is what carries decisions out on a real cloud (for AWS an
    ``actors.aws.executor.AwsExecutor`` factory: ``cloud(mode)``); without one, ``dry_run`` only records."""
    match mode:
        case "simulated":
            return SimulatedCloud()
        case "observe":
            return Observe()
        case "dry_run" if cloud is None:
            return DryRun()
        case "dry_run" | "execute" if cloud is not None:
            executor: Executor = cloud(mode)
            return executor
    raise ValueError(f"unknown executor mode {mode!r} here; choose from "
                     f"{', '.join(EXECUTOR_MODES if cloud is not None else EXECUTOR_MODES[:3])}")
