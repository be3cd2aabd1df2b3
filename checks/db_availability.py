"""The ``db.availability`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbAvailabilityCheck(DbCheck):
    """Database availability: connect time, version, start time and uptime (a restart since the last run is a WARNING), open mode, role, archive mode."""

    kind = "db.availability"
    item = "availability"
    main = "db.availability.connect_time"
