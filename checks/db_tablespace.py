"""The ``db.tablespace`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbTablespaceCheck(DbCheck):
    """Space used per tablespace (autoextend-aware) or per database/schema, with the size of each."""

    kind = "db.tablespace"
    item = "tablespace"
    main = "db.tablespace.used_percent"
