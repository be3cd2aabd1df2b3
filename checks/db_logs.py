"""The ``db.logs`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbLogsCheck(DbCheck):
    """Database log files: Oracle redo and archiving, PostgreSQL WAL and archiver, MySQL binlog, DM8 redo and archive."""

    kind = "db.logs"
    item = "logs"
    main = ""
