"""Request and response bodies of /api/v1, with the examples the OpenAPI schema shows.

Pydantic lives here, at the edge; the store's records and the engine's types are converted in the routes.
Names follow the house pattern (letters, digits, '.', '_', '-'), because an account name becomes an actor
name and a URL part; strings that reach the database are bounded and free of control characters.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from engine.policy import POLICY_NAMES
from engine.sim.backtest import DEADLINE_POLICY_NAMES
from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"
INSTANCE_TYPE_PATTERN = r"^[a-z0-9-]{1,32}\.[a-z0-9-]{1,32}$"

Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["acme-prod"])]
Region = Annotated[str, Field(pattern=REGION_PATTERN, examples=["us-east-1"])]
Label = Annotated[str, Field(pattern=LABEL_PATTERN, examples=["ci"])]
Number = Annotated[float, Field(allow_inf_nan=False)]

PolicyName = enum.StrEnum("PolicyName", {name: name for name in POLICY_NAMES})  # type: ignore[misc]
DeadlinePolicyName = enum.StrEnum("DeadlinePolicyName", {n: n for n in DEADLINE_POLICY_NAMES})  # type: ignore[misc]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- tenants and keys ------------------------------------------------------------------------------------


class TenantIn(Strict):
    name: Label = Field(examples=["acme"])


class TenantOut(BaseModel):
    id: str = Field(examples=["t_3f9a0c1d2e4b"])
    name: str = Field(examples=["acme"])
    created_at_s: float


class KeyIn(Strict):
    label: Label = "default"


class KeyOut(BaseModel):
    id: str = Field(examples=["0a1b2c3d4e5f"])
    tenant_id: str
    label: str
    created_at_s: float
    revoked_at_s: float | None = None


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret: shown once, stored only as a hash",
                     examples=["spk_0a1b2c3d4e5f_Zm9vYmFy..."])


class NewTenantOut(BaseModel):
    tenant: TenantOut
    api_key: NewKeyOut


class TokenOut(BaseModel):
    token: str
    expires_in_s: float
    websocket_path: str = Field(examples=["/ws?token=eyJ0Ijoi..."])


# --- accounts --------------------------------------------------------------------------------------------


class CredentialsMode(enum.StrEnum):
    REPLAY = "replay"  # follow the recorded market the server replays; no cloud access
    AWS_DEFAULT = "aws_default"  # the server's default AWS credential chain
    AWS_ASSUME_ROLE = "aws_assume_role"  # assume ``role_arn`` (with ``external_id``)


class ExecutorMode(enum.StrEnum):
    SIMULATED = "simulated"  # replay accounts only: the fleet follows every decision at once
    OBSERVE = "observe"  # decide, store and stream; no mutating cloud call
    DRY_RUN = "dry_run"  # every mutating AWS call made with DryRun=True: permissions checked, nothing changes
    EXECUTE = "execute"  # carry decisions out on the cloud


AWS_MODES = frozenset({CredentialsMode.AWS_DEFAULT, CredentialsMode.AWS_ASSUME_ROLE})
MANAGED_TAG_PATTERN = r"^[^=\x00-\x1f]{1,128}=[^\x00-\x1f]{0,256}$"
QUEUE_URL_PATTERN = r"^https?://[^\s]{1,2000}$"


class AwsSettings(Strict):
    """How Spot Optimizer finds an AWS account's fleet and hears of its interruptions."""

    interruption_queue_url: str | None = Field(
        default=None, pattern=QUEUE_URL_PATTERN,
        description="SQS queue fed by EventBridge with EC2 spot interruption, rebalance and state-change events",
        examples=["https://sqs.us-east-1.amazonaws.com/123456789012/spot-optimizer-events"])
    managed_tag: str = Field(default="spot-optimizer:managed=true", pattern=MANAGED_TAG_PATTERN,
                             description="key=value: only instances with this tag are watched and moved")


class Credentials(Strict):
    """References only, never secrets."""

    role_arn: str | None = Field(default=None, max_length=2048,
                                 pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@/_-]+$",
                                 examples=["arn:aws:iam::123456789012:role/spot-optimizer"])
    external_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9+=,.@:/_-]+$", min_length=2, max_length=1224)


class PolicyParamsIn(Strict):
    """Overrides of the policy's knobs (``engine.policy.PolicyParams``); omitted ones keep their default."""

    risk_horizon_s: Number | None = Field(default=None, gt=0, le=30 * 86_400)
    restart_hours: Number | None = Field(default=None, ge=0, le=1e4)
    interruption_penalty_usd: Number | None = Field(default=None, ge=0, le=1e9)
    min_saving_fraction: Number | None = Field(default=None, ge=0, le=1e3)
    min_saving_usd_per_hour: Number | None = Field(default=None, ge=0, le=1e9)
    payback_hours: Number | None = Field(default=None, ge=0, le=1e6)
    min_dwell_s: Number | None = Field(default=None, ge=0, le=1e9)
    return_after_s: Number | None = Field(default=None, ge=0, le=1e9)
    max_pool_share: Number | None = Field(default=None, gt=0, le=1)
    budget_per_window: int | None = Field(default=None, ge=0, le=1_000_000_000)
    budget_window_s: Number | None = Field(default=None, ge=0, le=1e9)
    lost_work_hours: Number | None = Field(default=None, ge=0, le=1e4)
    fleet_outage_weight: Number | None = Field(default=None, ge=0, le=1e6)
    pareto_guard: bool | None = None

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AccountIn(Strict):
    name: Name
    regions: list[Region] = Field(min_length=1, max_length=32, examples=[["us-east-1"]])
    credentials_mode: CredentialsMode = CredentialsMode.REPLAY
    credentials: Credentials = Field(default_factory=Credentials)
    aws: AwsSettings | None = Field(default=None, description="AWS accounts only; defaults when omitted")
    executor_mode: ExecutorMode | None = Field(
        default=None, description="observe (the default for AWS accounts) and dry_run change nothing; execute "
                                  "carries decisions out on AWS; simulated (replay accounts; their default is "
                                  "dry_run) moves the replayed fleet instantly")
    policy: PolicyName = Field(default=PolicyName("risk_aware"))  # type: ignore[arg-type]
    policy_params: PolicyParamsIn = Field(default_factory=PolicyParamsIn)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "acme-prod", "regions": ["us-east-1"], "credentials_mode": "aws_default",
        "aws": {"interruption_queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/spot-events",
                "managed_tag": "spot-optimizer:managed=true"},
        "executor_mode": "observe", "policy": "risk_aware", "policy_params": {"min_saving_fraction": 0.1}}]})


class AccountPatch(Strict):
    regions: list[Region] | None = Field(default=None, min_length=1, max_length=32)
    executor_mode: ExecutorMode | None = None
    policy: PolicyName | None = None  # type: ignore[valid-type]
    policy_params: PolicyParamsIn | None = None
    credentials: Credentials | None = None
    aws: AwsSettings | None = None


class AccountOut(BaseModel):
    account: str = Field(examples=["acme-prod"])
    regions: list[str]
    credentials_mode: str
    credentials: dict[str, Any]
    executor_mode: str
    policy: str
    policy_params: dict[str, Any]
    aws: dict[str, Any] | None = None
    status: dict[str, Any] = Field(
        default_factory=dict,
        description="per region: the feed's state (starting, ok, stale, error), why, and since when",
        examples=[{"us-east-1": {"state": "stale", "detail": "prices: DescribeSpotPriceHistory: "
                                 "RequestLimitExceeded: Request limit exceeded.", "sources": {}}}])
    created_at_s: float
    updated_at_s: float


class AccountsOut(BaseModel):
    accounts: list[AccountOut]


# --- simulations -----------------------------------------------------------------------------------------


class DeadlineJobIn(Strict):
    job_hours: Number = Field(gt=0, le=1000, examples=[2.0])
    deadline_hours: Number = Field(gt=0, le=1000, examples=[3.0])
    restart_overhead_hours: Number = Field(default=0.1, ge=0, le=100)
    spot_usd_per_hour: Number = Field(default=0.9731, gt=0, le=1e4)
    on_demand_usd_per_hour: Number = Field(default=3.06, gt=0, le=1e4)
    delay_ticks: int = Field(default=0, ge=0, le=1000,
                             description="every choice takes effect this many ticks late (a launch takes time)")


class DeadlineSimulationIn(Strict):
    """The deadline-job workload on the bundled recorded history: ``spot-optimizer simulate deadline``."""

    workload: Literal["deadline"] = Field(default="deadline", description="the default when omitted")
    job: DeadlineJobIn
    policies: list[DeadlinePolicyName] = Field(
        default_factory=lambda: [DeadlinePolicyName("greedy"), DeadlinePolicyName("uniform_progress")],
        min_length=1, max_length=len(DEADLINE_POLICY_NAMES))
    runs: int = Field(default=64, ge=1, le=5000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    risk_horizon_s: Number = Field(default=3600.0, gt=0, le=7 * 86_400,
                                   description="horizon of the risk model that risk_aware consults")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "workload": "deadline", "job": {"job_hours": 2, "deadline_hours": 3, "restart_overhead_hours": 0.1},
        "policies": ["greedy", "uniform_progress"], "runs": 64, "seed": 0}]})


class FleetSimulationIn(Strict):
    """The fleet workload on the bundled recorded history: ``spot-optimizer simulate fleet``."""

    workload: Literal["fleet"]
    policies: list[PolicyName] = Field(
        default_factory=lambda: [PolicyName(name) for name in POLICY_NAMES], min_length=1,
        max_length=len(POLICY_NAMES))
    fleet_size: int = Field(default=10, ge=1, le=500, description="instances per fleet")
    runs: int = Field(default=100, ge=1, le=1000, description="fleets, each from a random start tick")
    hours: Number | None = Field(default=None, gt=0, le=1e5,
                                 description="hours per run, within the history; default: half of it")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    restart_hours: Number = Field(default=0.1, ge=0, le=1e4, description="downtime of an interrupted instance")
    decision_interval_s: Number = Field(
        default=DEFAULT_DECISION_INTERVAL_S, ge=0, le=86_400,
        description="consult the policy this often (whole ticks; 0: every tick); interruptions at once")
    instance_type: str | None = Field(default=None, pattern=INSTANCE_TYPE_PATTERN, examples=["p3.2xlarge"],
                                      description="the fleet's type; default: the history's most common")
    schedule: str | None = Field(default=None, max_length=1000, examples=["Mon-Fri 09:00-17:00 UTC"],
                                 description="hibernation schedule on the history's clock: stopped outside it")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "workload": "fleet", "policies": ["price_capacity_optimized", "risk_aware"], "fleet_size": 20,
        "runs": 50, "hours": 48, "seed": 0}]})


def _workload_of(value: Any) -> str | None:
    """The body's workload; a body that names none is a deadline job (as before fleets were accepted)."""
    if isinstance(value, dict):
        workload = value.get("workload", "deadline")
        return workload if isinstance(workload, str) else None
    return getattr(value, "workload", None)


SimulationIn = Annotated[
    Annotated[DeadlineSimulationIn, Tag("deadline")] | Annotated[FleetSimulationIn, Tag("fleet")],
    Discriminator(_workload_of, custom_error_type="invalid_workload",
                  custom_error_message="workload must be 'deadline' or 'fleet'"),
]


class SimulationOut(BaseModel):
    id: str = Field(examples=["sim_0a1b2c3d4e5f"])
    status: str = Field(examples=["running"], description="queued, running, succeeded or failed")
    progress: float = Field(ge=0, le=1, description="share of the shards done")
    request: dict[str, Any]
    error: str | None = None
    created_at_s: float
    finished_at_s: float | None = None
    result_path: str | None = Field(default=None, examples=["/api/v1/simulations/sim_0a1b2c3d4e5f/result"])


class SimulationsOut(BaseModel):
    simulations: list[SimulationOut]


class ErrorOut(BaseModel):
    error: str = Field(examples=["not_found"])
    detail: str = Field(examples=["unknown account 'acme-prod'"])


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": description}
    for code, description in (
        (401, "no or unknown API key"), (403, "wrong role for this route"), (404, "unknown, or not yours"),
        (422, "a field is invalid (named in detail)"), (429, "rate limited; see Retry-After"),
    )
}
