"""The ``db.io`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbIoCheck(DbCheck):
    """Read/write activity: reads and writes per second, cache hit ratio, transactions per second (rates between runs)."""

    kind = "db.io"
    item = "io"
    main = "db.io.hit_ratio"
