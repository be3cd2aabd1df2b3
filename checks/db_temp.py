"""The ``db.temp`` check kind (see ``opsctl.databases`` for the engines and their SQL)."""

from __future__ import annotations

from opsctl.databases.check import DbCheck


class DbTempCheck(DbCheck):
    """Temporary space: temp tablespace use, temp files and bytes per second, on-disk temporary tables."""

    kind = "db.temp"
    item = "temp"
    main = "db.temp.used_percent"
