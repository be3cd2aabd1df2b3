"""The wire formats of the server's API, versioned under ``/api/v1``.

These pydantic models are the contract: FastAPI validates every request against them and
publishes them in the OpenAPI document. The agent (``agents/``) writes the push format
without importing this module (it stays small), and a test keeps the two in step. The
dispenser heartbeat format is the standard interface vendors implement
(``docs/dispenser-interface.md``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

#: Most samples one agent push may carry, and most heartbeats in one vendor batch.
MAX_SAMPLES = 5000
MAX_RESULTS = 200
MAX_HEARTBEATS = 1000
#: Largest request body the server reads, in bytes (answered 413 beyond).
MAX_BODY_BYTES = 4 * 1024 * 1024

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[a-zA-Z_][a-zA-Z0-9_.]*$")
]
ShortText = Annotated[str, StringConstraints(max_length=200)]


#: A time with its zone offset (a time without one is refused: 422).
AwareTime = AwareDatetime


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- agent push


class Sample(Wire):
    """One measured value."""

    name: MetricName = Field(description="e.g. cpu_percent, fs_used_percent")
    labels: dict[Annotated[str, StringConstraints(max_length=64)], ShortText] = Field(
        {}, max_length=16, description='e.g. {"mount": "/data"}'
    )
    value: float = Field(allow_inf_nan=False)
    at: AwareTime


class AgentCheckResult(Wire):
    """The result of a check the agent ran on its own host (Nagios codes)."""

    name: Identifier
    kind: Identifier = "agent.local"
    state: int = Field(ge=0, le=3, description="0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    summary: Annotated[str, StringConstraints(max_length=1000)]
    at: AwareTime
    duration: float = Field(0.0, ge=0, allow_inf_nan=False)
    metrics: list[dict[str, Any]] = Field([], max_length=50)


class AgentSpool(Wire):
    """What the agent's on-disk spool holds and has had to drop (counted, never silent)."""

    queued_batches: int = Field(0, ge=0)
    dropped_batches: int = Field(0, ge=0)
    dropped_samples: int = Field(0, ge=0)


class AgentFacts(Wire):
    """The host as the agent sees it: ``host`` as ``opsctl.sources.HostFacts.to_dict()``
    writes it, ``mounts`` as ``MountUsage.to_dict()``, so the server judges pushed facts
    with the same functions it judges local and SSH hosts with."""

    host: dict[str, Any] | None = None
    mounts: list[dict[str, Any]] = Field([], max_length=500)
    version: ShortText = ""


class AgentPush(Wire):
    """One batch an agent pushes. ``batch_id`` is the agent's: a batch retried with the same
    id (after a timeout, from the spool) is stored once."""

    batch_id: Identifier
    agent: Identifier
    sent_at: AwareTime
    interval: float = Field(30.0, gt=0, le=86400, description="seconds between collections")
    facts: AgentFacts | None = None
    spool: AgentSpool = AgentSpool()
    samples: list[Sample] = Field([], max_length=MAX_SAMPLES)
    results: list[AgentCheckResult] = Field([], max_length=MAX_RESULTS)


class PushAccepted(Wire):
    batch_id: str
    duplicate: bool = Field(description="true when this batch id was stored before")
    samples: int = Field(description="samples stored by this request (0 for a duplicate)")
    results: int


# --------------------------------------------------------------------------- dispensers

DeviceStatusReported = Literal["ok", "fault", "maintenance"]


class StockLevel(Wire):
    """One item's stock in a dispenser (e.g. one contraceptive product's channel)."""

    item: Identifier = Field(description="the vendor's item or channel code")
    name: ShortText = ""
    level: int = Field(ge=0, description="units left")
    capacity: int | None = Field(None, ge=0)
    low: int | None = Field(None, ge=0, description="level at or below which it is low")


class Heartbeat(Wire):
    """One heartbeat of one device."""

    device_id: Identifier
    timestamp: AwareTime = Field(description="the device's own clock, with its zone offset")
    status: DeviceStatusReported
    fault_code: Annotated[str, StringConstraints(max_length=32)] | None = None
    fault_message: ShortText | None = None
    stock: list[StockLevel] = Field([], max_length=64)
    temperature: float | None = Field(None, ge=-50, le=100, allow_inf_nan=False)
    door: Literal["closed", "open"] | None = None
    firmware: Annotated[str, StringConstraints(max_length=64)] | None = None
    interval: int | None = Field(
        None, ge=10, le=86400, description="seconds until the next heartbeat"
    )
    region: ShortText | None = Field(None, description="e.g. 杭州市西湖区, registers the device")
    address: ShortText | None = None


class HeartbeatBatch(Wire):
    """What a vendor's system sends: its name (which must be its token's) and heartbeats."""

    vendor: Identifier
    heartbeats: list[Heartbeat] = Field(min_length=1, max_length=MAX_HEARTBEATS)


class HeartbeatsAccepted(Wire):
    accepted: int = Field(description="heartbeats stored")
    stale: int = Field(description="heartbeats older than one already stored for the device")
    flips: int = Field(description="device status changes these heartbeats caused")


class Problem(Wire):
    """Every error answer: what went wrong, and where in the request."""

    error: str
    detail: str
    fields: list[dict[str, Any]] = []
