"""Carry decisions out on AWS: launch the replacement first, wait until it runs, then let the old one go.

The order is the one that never leaves a fleet short (AutoSpotting's and Karpenter's): a replacement is
launched (same AMI or launch template, a subnet in the chosen zone, the old instance's security groups,
instance profile, key and tags, spot through ``InstanceMarketOptions`` or on-demand), and only once it is
``running`` is the old instance detached from its Auto Scaling group (the new one attached first) and
terminated. A capacity error on launch (``InsufficientInstanceCapacity``, ``MaxSpotInstanceCountExceeded``,
``SpotMaxPriceTooLow``...) falls through to the decision's next candidate and is reported back as a risk
label for that pool. Launches are idempotent: the ``ClientToken`` is derived from the decision, so a retry
of the same decision cannot launch twice.

``dry_run`` makes the same mutating calls with ``DryRun=True``: AWS checks the permissions and changes
nothing (Auto Scaling has no dry run, so those calls are skipped and said so).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from actors.aws.errors import AwsError, CapacityError
from actors.aws.gateway import AwsGateway
from actors.aws.translate import DiscoveredInstance, LaunchRequest
from actors.aws.translate import Lifecycle as AwsLifecycle
from actors.executor import ExecutionResult, Outcome, carry_out
from engine.types import Action, Candidate, Decision, Lifecycle, Pool

log = logging.getLogger(__name__)

MAX_PLACEMENTS_TRIED = 3  # the target and two fall-backs: past that, capacity is short everywhere nearby
RUNNING_TIMEOUT_S = 300.0
RESERVED_TAG_PREFIX = "aws:"


def client_token(decision: Decision, pool: Pool, lifecycle: Lifecycle) -> str:
    """RunInstances' idempotency token (at most 64 ASCII characters): one per decision and placement.

    >>> d = Decision("i-1", Action.REPLACE, None, "", 5.0, Pool("m5.large", "us-east-1a"),  # type: ignore[arg-type]
    ...              Lifecycle.SPOT, Pool("m5.large", "us-east-1b"), Lifecycle.SPOT)
    >>> t = client_token(d, d.to_pool, d.to_lifecycle)
    >>> len(t) <= 64 and t.startswith("so-") and t == client_token(d, d.to_pool, d.to_lifecycle)
    True
    """
    basis = f"{decision.instance_id}|{decision.decided_at_s!r}|{pool.key}|{lifecycle.value}"
    return "so-" + hashlib.sha256(basis.encode()).hexdigest()[:48]


def placements(decision: Decision) -> Iterator[tuple[Pool, Lifecycle]]:
    """The decision's target, then its other candidates cheapest expected cost first, never the
    placement it leaves (an interrupted instance cannot go back where it was)."""
    seen: set[tuple[Pool, Lifecycle]] = set()
    if decision.from_lifecycle is Lifecycle.SPOT:
        seen.add((decision.from_pool, decision.from_lifecycle))
    target = (decision.to_pool, decision.to_lifecycle)
    yield target
    seen.add(target)
    ranked: list[Candidate] = sorted(decision.candidates, key=lambda c: c.expected_cost_usd_per_hour)
    for candidate in ranked:
        placement = (candidate.pool, candidate.lifecycle)
        if placement not in seen and math.isfinite(candidate.expected_cost_usd_per_hour):
            seen.add(placement)
            yield placement


@dataclass(slots=True)
class AwsExecutor:
    """Executes a region actor's decisions on AWS (modes ``dry_run`` and ``execute``)."""

    mode: str
    gateway: AwsGateway
    specs: Mapping[str, DiscoveredInstance]  # instance id -> how it was launched (from discovery)
    managed_tag: tuple[str, str]
    running_timeout_s: float = RUNNING_TIMEOUT_S
    on_launched: Callable[[str, DiscoveredInstance], None] | None = None  # the actor records the new spec

    def __post_init__(self) -> None:
        if self.mode not in ("dry_run", "execute"):
            raise ValueError(f"AwsExecutor mode must be 'dry_run' or 'execute', got {self.mode!r}")

    async def execute(self, decisions: list[Decision]) -> list[ExecutionResult]:
        return await carry_out(decisions, self._change)

    async def _change(self, decision: Decision) -> ExecutionResult:
        spec = self.specs.get(decision.instance_id)
        if spec is None:
            return ExecutionResult(decision, Outcome.FAILED, "no launch spec: not discovered on AWS",
                                   steps=(_step(decision, "failed", error="NotDiscovered"),))
        try:
            match decision.action:
                case Action.HIBERNATE:
                    return await self._hibernate(decision, spec)
                case Action.WAKE:
                    return await self._wake(decision, spec)
                case _:
                    return await self._replace(decision, spec)
        except Exception as exc:  # one decision's failure never stops the others
            log.exception("executing %s for %s failed", decision.action, decision.instance_id)
            return ExecutionResult(decision, Outcome.FAILED, str(exc),
                                   steps=(_step(decision, "failed", error=type(exc).__name__),))

    async def _hibernate(self, decision: Decision, spec: DiscoveredInstance) -> ExecutionResult:
        """Stop an on-demand instance (its id and volumes stay for the wake); a spot instance cannot stop,
        so it is terminated and a new one launched at the wake. An instance of an Auto Scaling group is
        left alone: the group would replace it at once (schedule the group's capacity instead)."""
        if spec.auto_scaling_group:
            return ExecutionResult(decision, Outcome.FAILED,
                                   f"in Auto Scaling group {spec.auto_scaling_group}: the group would replace it",
                                   steps=(_step(decision, "failed", error="InAutoScalingGroup"),))
        dry_run = self.mode == "dry_run"
        if decision.from_lifecycle is Lifecycle.ON_DEMAND:
            await self.gateway.stop([decision.instance_id], dry_run=dry_run)
            step = "stopped"
        else:
            await self.gateway.terminate([decision.instance_id], dry_run=dry_run)
            step = "terminated"
        if dry_run:
            return ExecutionResult(decision, Outcome.SKIPPED, "dry run: permissions checked, nothing changed",
                                   steps=(_step(decision, "dry_run", detail=f"would have {step} it"),))
        return ExecutionResult(decision, Outcome.APPLIED, step, steps=(_step(decision, step),))

    async def _wake(self, decision: Decision, spec: DiscoveredInstance) -> ExecutionResult:
        """A stopped on-demand instance the policy keeps where it was is started again; otherwise the
        wake is a launch at the policy's placement (a spot instance let go at hibernation, or a better
        placement), and a stopped instance left behind is then terminated."""
        stopped_here = spec.lifecycle is AwsLifecycle.ON_DEMAND
        if (stopped_here and decision.to_lifecycle is Lifecycle.ON_DEMAND
                and decision.to_pool == Pool(spec.instance_type, spec.availability_zone)):
            dry_run = self.mode == "dry_run"
            await self.gateway.start([decision.instance_id], dry_run=dry_run)
            if dry_run:
                return ExecutionResult(decision, Outcome.SKIPPED, "dry run: permissions checked, nothing changed",
                                       steps=(_step(decision, "dry_run", detail="would have started it"),))
            await self.gateway.wait_running(decision.instance_id, timeout_s=self.running_timeout_s)
            return ExecutionResult(decision, Outcome.APPLIED, "started",
                                   steps=(_step(decision, "started", decision.to_pool, decision.to_lifecycle),))
        return await self._replace(decision, spec, retire=stopped_here)

    async def _replace(self, decision: Decision, spec: DiscoveredInstance, retire: bool = True) -> ExecutionResult:
        dry_run = self.mode == "dry_run"
        steps: list[Mapping[str, Any]] = []
        refused: list[str] = []
        for attempt, (pool, lifecycle) in enumerate(placements(decision)):
            if attempt >= MAX_PLACEMENTS_TRIED:
                break
            request = await self._launch_request(decision, spec, pool, lifecycle)
            if request is None:
                steps.append(_step(decision, "failed", pool, lifecycle, error="NoSubnetInZone"))
                continue
            try:
                new_id = await self.gateway.run_instance(request, dry_run=dry_run)
            except CapacityError as exc:
                refused.append(pool.key)
                steps.append(_step(decision, "failed", pool, lifecycle, error=exc.code))
                continue
            except AwsError as exc:
                steps.append(_step(decision, "failed", pool, lifecycle, error=exc.code))
                return ExecutionResult(decision, Outcome.FAILED, str(exc), steps=tuple(steps),
                                       capacity_errors=tuple(refused))
            carried = replace(decision, to_pool=pool, to_lifecycle=lifecycle)
            if dry_run:
                if retire:
                    await self.gateway.terminate([decision.instance_id], dry_run=True)
                steps.append(_step(decision, "dry_run", pool, lifecycle,
                                   detail="RunInstances and TerminateInstances would have succeeded"))
                return ExecutionResult(carried, Outcome.SKIPPED, "dry run: permissions checked, nothing changed",
                                       steps=tuple(steps), capacity_errors=tuple(refused))
            assert new_id is not None
            steps.append(_step(decision, "launched", pool, lifecycle, new_instance_id=new_id))
            try:
                await self.gateway.wait_running(new_id, timeout_s=self.running_timeout_s)
            except AwsError as exc:
                steps.append(_step(decision, "failed", pool, lifecycle, new_instance_id=new_id, error=exc.code))
                return ExecutionResult(decision, Outcome.FAILED, f"replacement {new_id} did not run: {exc}",
                                       steps=tuple(steps), capacity_errors=tuple(refused))
            steps.append(_step(decision, "running", pool, lifecycle, new_instance_id=new_id))
            if self.on_launched is not None:
                self.on_launched(new_id, _launched_spec(spec, new_id, pool, lifecycle, request))
            if retire:
                await self._retire(decision, spec, new_id, steps)
            return ExecutionResult(carried, Outcome.APPLIED, f"replaced by {new_id}", instance_id=new_id,
                                   steps=tuple(steps), capacity_errors=tuple(refused))
        return ExecutionResult(decision, Outcome.FAILED, "no placement had capacity", steps=tuple(steps),
                               capacity_errors=tuple(refused))

    async def _retire(self, decision: Decision, spec: DiscoveredInstance, new_id: str,
                      steps: list[Mapping[str, Any]]) -> None:
        """The old instance leaves only after its replacement runs: through its Auto Scaling group when it
        has one (attach the new, detach the old: the group's size is kept), then terminated."""
        group = spec.auto_scaling_group
        if group:
            await self.gateway.attach_to_group(group, new_id)
            await self.gateway.detach_from_group(group, decision.instance_id)
            steps.append(_step(decision, "group_swapped", new_instance_id=new_id, detail=group))
        await self.gateway.terminate([decision.instance_id])
        steps.append(_step(decision, "terminated", new_instance_id=new_id))

    async def _launch_request(self, decision: Decision, spec: DiscoveredInstance, pool: Pool,
                              lifecycle: Lifecycle) -> LaunchRequest | None:
        if spec.availability_zone == pool.availability_zone and spec.subnet_id:
            subnet = spec.subnet_id
        else:
            subnets = await self.gateway.subnets(pool.availability_zone, spec.vpc_id)
            if not subnets:
                return None
            subnet = subnets[0]
        key, value = self.managed_tag
        tags = {k: v for k, v in spec.tags if not k.startswith(RESERVED_TAG_PREFIX)}
        tags[key] = value
        tags["spot-optimizer:replaces"] = decision.instance_id
        return LaunchRequest(
            client_token=client_token(decision, pool, lifecycle), instance_type=pool.instance_type,
            subnet_id=subnet, spot=lifecycle is Lifecycle.SPOT, image_id=spec.image_id,
            launch_template_id=spec.launch_template_id, launch_template_version=spec.launch_template_version,
            security_group_ids=spec.security_group_ids,  # a subnet of the same VPC: its groups apply
            iam_instance_profile_arn=spec.iam_instance_profile_arn, key_name=spec.key_name,
            tags=tuple(sorted(tags.items())))


def _launched_spec(spec: DiscoveredInstance, new_id: str, pool: Pool, lifecycle: Lifecycle,
                   request: LaunchRequest) -> DiscoveredInstance:
    return replace(spec, instance_id=new_id, instance_type=pool.instance_type,
                   availability_zone=pool.availability_zone, subnet_id=request.subnet_id,
                   lifecycle=AwsLifecycle(lifecycle.value), state="running",
                   tags=request.tags)


def _step(decision: Decision, step: str, pool: Pool | None = None, lifecycle: Lifecycle | None = None,
          **extra: Any) -> dict[str, Any]:
    """One execution step as an ``alerts`` event body (the actor adds ``at_s``)."""
    out: dict[str, Any] = {"kind": "execution", "step": step, "instance_ids": [decision.instance_id],
                           "action": decision.action.value}
    if pool is not None:
        out["pool"] = pool.key
    if lifecycle is not None:
        out["lifecycle"] = lifecycle.value
    out.update({k: v for k, v in extra.items() if v is not None})
    parts = [step, decision.instance_id]
    if pool is not None:
        parts.append(f"-> {lifecycle.value if lifecycle else ''} {pool.key}")
    if "new_instance_id" in out:
        parts.append(f"({out['new_instance_id']})")
    if "error" in out:
        parts.append(f"error {out['error']}")
    out["detail"] = out.get("detail") or " ".join(parts)
    return out
