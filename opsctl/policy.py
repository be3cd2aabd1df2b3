"""A site's alert policy (its ``alerts:`` in the inventory): how its alerts behave, where
they are sent, whom they escalate to, and whether a CRITICAL one opens an incident.

Kept apart from ``opsctl.alerts`` so that reading an inventory needs no database modules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsctl.duration import Duration


class AlertPolicy(BaseModel):
    """How a site's alerts behave and whom they reach."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_state: Literal["WARNING", "CRITICAL"] = Field(
        "WARNING", description="the least severe hard state that raises an alert"
    )
    renotify: Duration | None = Field(
        timedelta(hours=2), description="send an unacknowledged problem again this often"
    )
    escalate_after: Duration | None = Field(
        timedelta(minutes=10),
        description="unacknowledged this long: notify duty B, then as long "
        "again: the escalation contact",
    )
    flap_window: Duration = timedelta(hours=1)
    flap_changes: int = Field(6, ge=3, description="state changes within the window = flapping")
    unknown_alerts: bool = Field(True, description="UNKNOWN (cannot observe) raises alerts too")
    channels: list[str] = Field(
        default_factory=list, description="names of the inventory's channels to send to"
    )
    escalate_to: list[str] = Field(
        default_factory=list,
        description="names of the site's contacts told at the last escalation level",
    )
    auto_incident: bool = Field(
        False, description="a CRITICAL alert opens an incident (linked to it)"
    )
    incident_severity: Literal["critical", "major", "minor"] = Field(
        "critical", description="the severity of an incident opened from an alert"
    )
    sla_warning: Duration = Field(
        timedelta(minutes=15),
        description="tell the people on duty this long before an incident's SLA clock runs out",
    )
