"""Runtime settings: the only place that reads the environment (prefix ``SPOT_``).

Built on demand (``Settings()``), never at import time, so tests and the CLI can override anything.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    """Everything the server needs; each field is ``SPOT_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SPOT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPOT_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy async URL; default: SQLite file under data_dir",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPOT_RAY_ADDRESS", "RAY_ADDRESS"),
        description="Ray cluster to join; default: start a local Ray",
    )
    ray_num_cpus: int = Field(default=2, ge=1)

    # The demo account: a replay of the bundled real prices and a small fleet that the account owns.
    replay: bool = True
    account: str = "demo"
    prices_path: Path | None = None  # AWS price history (JSON/CSV) or joint-prices file; default: bundled
    availability_path: Path | None = None  # spot-traces availability bundle; default: bundled
    replay_speed: float = Field(default=3600.0, gt=0, description="simulated seconds per wall second")
    replay_tick_interval_s: float = Field(default=0.5, gt=0, description="wall seconds between batches")
    demo_instance_type: str = "p3.2xlarge"
    demo_region: str = "us-east-1"
    demo_fleet_size: int = Field(default=4, ge=0, le=1000)
    policy: str = "risk_aware"

    # Tenants and auth. Without an admin key, `serve` bootstraps a local "demo" tenant and prints its key.
    admin_api_key: str | None = Field(default=None, description="bootstraps tenants: admin routes only")
    bootstrap_demo_tenant: bool = True
    demo_tenant: str = "demo"
    token_secret: str | None = Field(default=None, description="signs WebSocket tokens; default: random per start")
    ws_token_ttl_s: float = Field(default=300.0, gt=0, le=86_400)
    rate_limit_per_s: float = Field(default=50.0, gt=0, description="sustained requests per second per API key")
    rate_limit_burst: int = Field(default=200, ge=1)

    # The WebSocket fan-out.
    ws_queue_size: int = Field(default=1000, ge=1, description="events buffered per client before a resync")
    ws_heartbeat_s: float = Field(default=15.0, gt=0)
    # Hostile clients: what one connection may send, and how long its socket may refuse our writes.
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=1024, description="larger messages: close 1009")
    ws_messages_per_s: float = Field(default=20.0, gt=0, description="client messages per second per connection")
    ws_messages_burst: int = Field(default=50, ge=1)
    ws_max_streams: int = Field(default=256, ge=1, description="distinct streams one connection may subscribe to")
    ws_send_timeout_s: float = Field(default=30.0, gt=0, description="a socket that takes no data this long is cut")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger REST bodies: 413")
    stream_capacity: int = Field(default=10_000, ge=1, description="events kept per stream in the stream host")
    checkpoint_s: float = Field(default=60.0, gt=0, description="wall seconds between a region actor's checkpoints")
    unsaved_limit: int = Field(default=10_000, ge=1, description="events a region actor queues while its store "
                                                                 "is unreachable; past it the oldest are dropped")
    region_actor_memory_mb: float = Field(
        default=0.0, ge=0, description="memory each region actor reserves from Ray's scheduler; 0: none")
    price_retention_s: float = Field(
        default=7 * 86_400.0, gt=0,
        description="stored price events older than this (in the region's own tick time) are deleted")

    migrate_on_start: bool = Field(default=True, description="upgrade the database schema at start")

    # Webhooks (actors/notify): this process matches stored events to webhooks and delivers them.
    webhooks_enabled: bool = Field(default=True, description="run the webhook consumer in this process")
    webhook_poll_s: float = Field(default=1.0, gt=0, description="how often new events and due retries are read")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300, description="one delivery attempt, at most")
    webhook_concurrency: int = Field(default=8, ge=1, le=256, description="delivery attempts in flight at once")
    webhook_retry_base_s: float = Field(default=2.0, gt=0, description="first retry delay (doubles, jittered)")
    webhook_retry_max_s: float = Field(default=3600.0, gt=0, description="longest retry delay")
    webhook_max_attempts: int = Field(default=15, ge=1, description="attempts before a delivery is 'failed'")

    # AWS accounts (credentials_mode aws_default / aws_assume_role).
    aws_price_poll_s: float = Field(default=300.0, gt=0, description="DescribeSpotPriceHistory period")
    aws_discovery_s: float = Field(default=60.0, gt=0, description="DescribeInstances (managed tag) period")
    aws_notice_hold_s: float = Field(
        default=600.0, ge=0, description="a pool named by an interruption warning or a capacity error is no "
                                         "placement for this long")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        """Accept the conventional ``postgres://`` / ``postgresql://`` forms and pick the async driver."""
        if url is None:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        return url

    def resolved_database_url(self) -> str:
        """The configured URL, or an SQLite file under ``data_dir`` (created when missing)."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'spot-optimizer.db').resolve()}"
