"""The one owner of aioboto3 sessions and clients in a process.

Sessions hold credentials and clients hold connection pools: built once, shared by every caller and closed
together, they cost one credential lookup (or one STS AssumeRole per hour) instead of one per call, and no
connection is left open when the process stops (as skypilot's ``sky/adaptors/aws.py`` does for boto3).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aioboto3
from aiobotocore.credentials import AioCredentialResolver, AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.credentials import CredentialProvider

from actors.aws.errors import classify

MODES = ("aws_default", "aws_assume_role")
ASSUME_ROLE_DURATION_S = 3600
STS_FALLBACK_REGION = "us-east-1"
# SQS long polls hold a read open for up to 20 s; the timeout must outlast them.
MIN_READ_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class AwsAccess:
    """How to reach one AWS account: the default credential chain, or a role assumed through it.

    Plain and picklable: it is handed to Ray actors, which build their own sessions from it.
    """

    mode: str  # "aws_default" | "aws_assume_role"
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str = "spot-optimizer"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "aws_assume_role" and not self.role_arn:
            raise ValueError("role_arn is required when mode is 'aws_assume_role'")
        if self.mode == "aws_default" and (self.role_arn or self.external_id):
            raise ValueError("role_arn and external_id are only used when mode is 'aws_assume_role'")
        if not 2 <= len(self.session_name) <= 64:
            raise ValueError(f"session_name must be 2-64 characters, got {self.session_name!r}")


def client_config() -> Config:
    """Our client settings. Retries are left to ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS`` and the config
    file, and endpoints to ``AWS_ENDPOINT_URL``, so operators tune them the way they do for any SDK."""
    default_read_timeout_s = Config.OPTION_DEFAULTS["read_timeout"]
    return Config(read_timeout=max(default_read_timeout_s, MIN_READ_TIMEOUT_S), user_agent_extra="spot-optimizer")


class _AssumeRoleProvider(CredentialProvider):
    """Hands botocore one refreshable credentials object per access: botocore refreshes it through STS
    before it expires (15 minutes ahead, or at once when less than 10 remain)."""

    METHOD = "assume-role"
    CANONICAL_NAME = "custom-spot-optimizer-assume-role"

    def __init__(self, access: AwsAccess, duration_s: int) -> None:
        super().__init__()
        self._source = aioboto3.Session()
        self._params: dict[str, Any] = {
            "RoleArn": access.role_arn,
            "RoleSessionName": access.session_name,
            "DurationSeconds": duration_s,
        }
        if access.external_id:
            self._params["ExternalId"] = access.external_id
        self._credentials = AioDeferredRefreshableCredentials(refresh_using=self._assume_role, method=self.METHOD)

    async def _assume_role(self) -> dict[str, str]:
        region = self._source.region_name or STS_FALLBACK_REGION
        try:
            async with self._source.client("sts", region_name=region, config=client_config()) as sts:
                answer = await sts.assume_role(**self._params)
        except Exception as exc:
            raise classify(exc, "AssumeRole") from None
        credentials = answer["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    async def load(self) -> AioDeferredRefreshableCredentials:
        return self._credentials


def assume_role_session(access: AwsAccess, duration_s: int = ASSUME_ROLE_DURATION_S) -> aioboto3.Session:
    """A session whose only credential source is the role, assumed through the default chain.

    Built on botocore's public seam for credential sources (the ``credential_provider`` component).
    """
    botocore_session = AioSession()
    botocore_session.register_component(
        "credential_provider", AioCredentialResolver(providers=[_AssumeRoleProvider(access, duration_s)])
    )
    return aioboto3.Session(botocore_session=botocore_session)


class AwsSessions:
    """One per process: a session per :class:`AwsAccess` and an open client per (access, service, region).

    Clients are entered into one exit stack; :meth:`close` closes them all (call it on shutdown).
    """

    def __init__(self, *, assume_role_duration_s: int = ASSUME_ROLE_DURATION_S) -> None:
        self._duration_s = assume_role_duration_s
        self._sessions: dict[AwsAccess, aioboto3.Session] = {}
        self._clients: dict[tuple[AwsAccess, str, str], Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    def session(self, access: AwsAccess) -> aioboto3.Session:
        """The session of ``access``: one credentials set shared by all its regions and services."""
        session = self._sessions.get(access)
        if session is None:
            if access.mode == "aws_assume_role":
                session = assume_role_session(access, self._duration_s)
            else:
                session = aioboto3.Session()
            self._sessions[access] = session
        return session

    async def client(self, access: AwsAccess, service: str, region: str) -> Any:
        """The open client for ``service`` in ``region``; created on first use, then shared."""
        key = (access, service, region)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                creator = self.session(access).client(service, region_name=region, config=client_config())
                try:
                    client = await self._stack.enter_async_context(creator)
                except Exception as exc:
                    raise classify(exc, f"CreateClient:{service}") from None
                self._clients[key] = client
        return client

    async def close(self) -> None:
        """Close every client; the sessions stay, so a later :meth:`client` call opens new ones."""
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        self._clients.clear()
        await stack.aclose()
