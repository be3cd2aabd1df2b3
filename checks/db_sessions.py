"""The ``db.sessions`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbSessionsCheck(DbCheck):
    """Sessions against the maximum, long-running transactions and lock waits."""

    kind = "db.sessions"
    item = "sessions"
    main = "db.sessions.used_percent"
