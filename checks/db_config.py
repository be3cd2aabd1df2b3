"""The ``db.config`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbConfigCheck(DbCheck):
    """Database configuration: key parameters (memory, connections, character set, archiving, checksums) recorded as report items."""

    kind = "db.config"
    item = "config"
    main = ""
