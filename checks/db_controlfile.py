"""The ``db.controlfile`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbControlfileCheck(DbCheck):
    """Control files: Oracle/DM8 copies and status; PostgreSQL pg_control and checksums; MySQL says why not applicable."""

    kind = "db.controlfile"
    item = "controlfile"
    main = ""
