"""The ``db.backup`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbBackupCheck(DbCheck):
    """Backup status seen from inside the database: RMAN jobs, archiver health, DM8 backup sets, block corruption."""

    kind = "db.backup"
    item = "backup"
    main = ""
