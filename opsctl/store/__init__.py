"""The store: results, metric samples, check statuses and state changes, in SQLite or
PostgreSQL (SQLAlchemy 2.x, schema managed by alembic migrations).

Import this package lazily: it imports SQLAlchemy, which a ``--help`` does not need.
"""

from opsctl.store.api import (
    ChangeRow,
    Recorded,
    ResultRow,
    StatusRow,
    Store,
    StoreError,
    default_url,
    mask_url,
    resolve_url,
)

__all__ = [
    "ChangeRow",
    "Recorded",
    "ResultRow",
    "StatusRow",
    "Store",
    "StoreError",
    "default_url",
    "mask_url",
    "resolve_url",
]
