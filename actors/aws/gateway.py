"""Every AWS call the optimizer makes, for one account and region, as typed async methods.

All calls go through :meth:`AwsGateway._call`, the one place that retries: AWS throttling, 5xx and
network failures wait with exponential backoff and full jitter (so many actors throttled together do
not retry together) and every other error is raised at once, classified (:mod:`actors.aws.errors`).
Retrying RunInstances is safe because each launch carries a client token.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from botocore import xform_name

from actors.aws.errors import AwsError, ThrottledError, classify
from actors.aws.session import AwsAccess, AwsSessions
from actors.aws.translate import (
    VPC_SUFFIX,
    DiscoveredInstance,
    LaunchRequest,
    QueueMessage,
    SpotPrice,
    normalize_product,
    parse_instance_types,
    parse_instances,
    parse_messages,
    parse_spot_prices,
    run_instances_params,
)

FILTER_VALUES_PER_CALL = 100  # EC2 accepts up to 200 values per filter and 100 names per DescribeInstanceTypes
PAGE_SIZE = 1000
NOT_RUNNING_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})


def _chunks(items: Sequence[str], size: int = FILTER_VALUES_PER_CALL) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(items))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


class AwsGateway:
    """The AWS API of one account in one region. ``calls`` counts requests by operation (each retry
    counts; botocore's own retries underneath do not) and ``throttled`` the attempts that failed throttled."""

    def __init__(
        self,
        sessions: AwsSessions,
        access: AwsAccess,
        region: str,
        *,
        max_attempts: int = 5,
        base_delay_s: float = 0.2,
        max_delay_s: float = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.sessions = sessions
        self.access = access
        self.region = region
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.rng = rng or random.Random()
        self.calls: collections.Counter[str] = collections.Counter()
        self.throttled = 0

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (AWS Architecture Blog, 2015)."""
        return self.rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))

    async def _call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        for attempt in range(self.max_attempts):
            self.calls[operation] += 1
            try:
                client = await self.sessions.client(self.access, service, self.region)
                response: dict[str, Any] = await getattr(client, xform_name(operation))(**params)
                return response
            except Exception as exc:
                error = classify(exc, operation)
                if isinstance(error, ThrottledError):
                    self.throttled += 1
                if not isinstance(error, ThrottledError) or attempt + 1 == self.max_attempts:
                    raise error from None  # botocore's own message may echo the request; ours is redacted
            await asyncio.sleep(self.backoff_s(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _pages(self, service: str, operation: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Each page of a NextToken-paginated operation; each page is retried on its own."""
        seen: set[str] = set()
        token = None
        while True:
            page = await self._call(service, operation, **params, **({"NextToken": token} if token else {}))
            yield page
            token = page.get("NextToken")
            if not token:
                return
            if token in seen:
                raise AwsError("PaginationLoop", operation, "AWS returned the same NextToken twice")
            seen.add(token)

    async def spot_price_history(
        self, instance_types: Sequence[str], product_descriptions: Sequence[str], start_time_s: float | None
    ) -> list[SpotPrice]:
        """Price changes since ``start_time_s`` (AWS adds the change in force at that time), oldest first.

        A product and its ``(Amazon VPC)`` name are asked for and returned as one. No instance types
        means no prices (not every type's); no products means every product.
        """
        products = sorted({
            name for product in product_descriptions
            for name in (normalize_product(product), normalize_product(product) + VPC_SUFFIX)
        })
        params: dict[str, Any] = {"MaxResults": PAGE_SIZE}
        if products:
            params["ProductDescriptions"] = products
        if start_time_s is not None:
            params["StartTime"] = dt.datetime.fromtimestamp(start_time_s, tz=dt.UTC)
        unique: dict[tuple[str, str, str, float], SpotPrice] = {}
        for chunk in _chunks(instance_types):
            async for page in self._pages("ec2", "DescribeSpotPriceHistory", InstanceTypes=chunk, **params):
                for price in parse_spot_prices(page.get("SpotPriceHistory") or ()):
                    key = (price.instance_type, price.availability_zone, price.product_description, price.timestamp_s)
                    unique.setdefault(key, price)
        return sorted(unique.values(), key=lambda p: (p.timestamp_s, p.instance_type, p.availability_zone))

    async def offerings(self, instance_types: Sequence[str]) -> dict[str, frozenset[str]]:
        """The zones of this region offering each type (an empty set when none does)."""
        zones: dict[str, set[str]] = {name: set() for name in instance_types}
        for chunk in _chunks(instance_types):
            async for page in self._pages(
                "ec2", "DescribeInstanceTypeOfferings", LocationType="availability-zone",
                Filters=[{"Name": "instance-type", "Values": chunk}], MaxResults=PAGE_SIZE,
            ):
                for offering in page.get("InstanceTypeOfferings") or ():
                    zones.setdefault(offering["InstanceType"], set()).add(offering["Location"])
        return {name: frozenset(found) for name, found in zones.items()}

    async def instance_types(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """vCPUs, memory and architectures per type. A name AWS does not know is skipped: AWS refuses a
        whole batch for one unknown name, so such a batch is asked again one name at a time."""
        facts: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(names):
            try:
                facts.update(await self._describe_instance_types(chunk))
            except AwsError as error:
                if not error.code.startswith("InvalidInstanceType"):
                    raise
                for name in chunk:
                    try:
                        facts.update(await self._describe_instance_types([name]))
                    except AwsError as single:
                        if not single.code.startswith("InvalidInstanceType"):
                            raise
        return facts

    async def _describe_instance_types(self, names: list[str]) -> dict[str, dict[str, Any]]:
        facts: dict[str, dict[str, Any]] = {}
        async for page in self._pages("ec2", "DescribeInstanceTypes", InstanceTypes=names):
            facts.update(parse_instance_types(page.get("InstanceTypes") or ()))
        return facts

    async def managed_instances(self, tag_key: str, tag_value: str) -> list[DiscoveredInstance]:
        """Pending and running instances carrying the tag."""
        filters = [
            {"Name": f"tag:{tag_key}", "Values": [tag_value]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        found: list[DiscoveredInstance] = []
        async for page in self._pages("ec2", "DescribeInstances", Filters=filters, MaxResults=PAGE_SIZE):
            found.extend(parse_instances(page.get("Reservations") or ()))
        return found

    async def subnets(self, zone: str, vpc_id: str | None) -> list[str]:
        """Subnet ids in ``zone`` (and ``vpc_id``), the one with the most free addresses first."""
        filters = [{"Name": "availability-zone", "Values": [zone]}]
        if vpc_id is not None:
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
        found: list[dict[str, Any]] = []
        async for page in self._pages("ec2", "DescribeSubnets", Filters=filters, MaxResults=PAGE_SIZE):
            found.extend(page.get("Subnets") or ())
        found.sort(key=lambda subnet: (-int(subnet.get("AvailableIpAddressCount", 0)), subnet["SubnetId"]))
        return [subnet["SubnetId"] for subnet in found]

    async def run_instance(self, req: LaunchRequest, dry_run: bool = False) -> str | None:
        """The new instance's id; in a dry run, None once AWS says the launch would have succeeded."""
        try:
            answer = await self._call("ec2", "RunInstances", **run_instances_params(req, dry_run))
        except AwsError as error:
            if dry_run and error.code == "DryRunOperation":
                return None
            raise
        return str(answer["Instances"][0]["InstanceId"])

    async def instance_states(self, instance_ids: Sequence[str]) -> dict[str, str]:
        """State name per instance. Ids AWS does not show (not visible yet, or long gone) are absent:
        filtering by id instead of naming ids keeps one unknown id from failing the batch."""
        states: dict[str, str] = {}
        for chunk in _chunks(instance_ids):
            filters = [{"Name": "instance-id", "Values": chunk}]
            async for page in self._pages("ec2", "DescribeInstances", Filters=filters, MaxResults=PAGE_SIZE):
                for instance in parse_instances(page.get("Reservations") or ()):
                    states[instance.instance_id] = instance.state
        return states

    async def wait_running(self, instance_id: str, timeout_s: float = 300, poll_s: float = 2) -> None:
        """Return once the instance runs. Raises :class:`AwsError` with code ``WaitTimeout``, or with the
        state as code once it can no longer get there (``terminated``, ``shutting-down``, stopping)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            state = (await self.instance_states([instance_id])).get(instance_id)
            if state == "running":
                return
            if state in NOT_RUNNING_STATES:
                raise AwsError(state, "WaitRunning", f"{instance_id} is {state}")
            if loop.time() + poll_s > deadline:
                raise AwsError("WaitTimeout", "WaitRunning", f"{instance_id} not running after {timeout_s} s ({state})")
            await asyncio.sleep(poll_s)

    async def terminate(self, instance_ids: Sequence[str], dry_run: bool = False) -> None:
        """Terminate the instances (a dry run only checks that we may)."""
        for chunk in _chunks(instance_ids, PAGE_SIZE):
            try:
                await self._call("ec2", "TerminateInstances", InstanceIds=chunk, DryRun=dry_run)
            except AwsError as error:
                if not (dry_run and error.code == "DryRunOperation"):
                    raise

    async def stop(self, instance_ids: Sequence[str], dry_run: bool = False) -> None:
        """Stop on-demand instances (they keep their id and volumes; a dry run only checks that we may)."""
        await self._each_chunk("StopInstances", instance_ids, dry_run)

    async def start(self, instance_ids: Sequence[str], dry_run: bool = False) -> None:
        """Start stopped instances again (a dry run only checks that we may)."""
        await self._each_chunk("StartInstances", instance_ids, dry_run)

    async def _each_chunk(self, operation: str, instance_ids: Sequence[str], dry_run: bool) -> None:
        for chunk in _chunks(instance_ids, PAGE_SIZE):
            try:
                await self._call("ec2", operation, InstanceIds=chunk, DryRun=dry_run)
            except AwsError as error:
                if not (dry_run and error.code == "DryRunOperation"):
                    raise

    async def attach_to_group(self, group: str, instance_id: str) -> None:
        """Put the instance into the auto scaling group (its desired capacity grows by one)."""
        await self._call("autoscaling", "AttachInstances", AutoScalingGroupName=group, InstanceIds=[instance_id])

    async def detach_from_group(self, group: str, instance_id: str) -> None:
        """Take the instance out of the group and shrink the group, so it does not launch a replacement."""
        await self._call(
            "autoscaling", "DetachInstances", AutoScalingGroupName=group, InstanceIds=[instance_id],
            ShouldDecrementDesiredCapacity=True,
        )

    async def receive_messages(self, queue_url: str, wait_s: int = 20, max_messages: int = 10) -> list[QueueMessage]:
        """Up to ``max_messages`` messages, long-polling up to ``wait_s`` seconds for the first."""
        answer = await self._call(
            "sqs", "ReceiveMessage", QueueUrl=queue_url, WaitTimeSeconds=wait_s,
            MaxNumberOfMessages=max_messages, AttributeNames=["ApproximateReceiveCount"],
        )
        return parse_messages(answer)

    async def delete_message(self, queue_url: str, receipt_handle: str) -> None:
        """Acknowledge a message so SQS does not deliver it again."""
        await self._call("sqs", "DeleteMessage", QueueUrl=queue_url, ReceiptHandle=receipt_handle)
