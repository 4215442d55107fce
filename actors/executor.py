"""The executor carries decisions out. One seam, several clouds.

``SimulatedCloud`` (replay and demo): every launch succeeds at once, so the fleet follows the decisions.
``DryRun``: records what it would do and changes nothing (the safe default against a real account).
The AWS executor (launch the replacement, wait for it, then terminate the old instance) plugs in here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from engine.types import Action, Decision


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"  # dry run, or nothing to do
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    decision: Decision
    outcome: Outcome
    detail: str = ""


class Executor(Protocol):
    mode: str

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]: ...


@dataclass(slots=True)
class SimulatedCloud:
    """Carries every placement change out instantly; records the calls (for tests and the demo)."""

    mode: str = "simulated"
    calls: list[Decision] = field(default_factory=list)

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]:
        results = []
        for decision in decisions:
            if decision.action is Action.KEEP:
                results.append(ExecutionResult(decision, Outcome.SKIPPED, "keep"))
                continue
            self.calls.append(decision)
            results.append(ExecutionResult(decision, Outcome.APPLIED))
        return results


@dataclass(slots=True)
class DryRun:
    """Changes nothing; every decision is reported as skipped."""

    mode: str = "dry_run"

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]:
        return [ExecutionResult(d, Outcome.SKIPPED, "dry run") for d in decisions]


def make_executor(mode: str) -> Executor:
    match mode:
        case "simulated":
            return SimulatedCloud()
        case "dry_run":
            return DryRun()
    raise ValueError(f"unknown executor mode {mode!r}; choose 'simulated' or 'dry_run'")
