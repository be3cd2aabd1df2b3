"""The check kinds installed: every kind, built-in or third-party, comes from the
``opsctl.checks`` entry-point group. Classes are imported only when a kind is used.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsctl.contract import Check

GROUP = "opsctl.checks"


class RegistryError(Exception):
    """Raised when a check kind is unknown or its plugin cannot be loaded."""


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=GROUP)}


def kinds() -> list[str]:
    """Return the names of the installed check kinds, sorted."""
    return sorted(_entry_points())


@cache
def load(kind: str) -> type[Check]:
    """Given a kind name, import and return its Check class.

    Raise RegistryError if no plugin provides the kind, if it fails to import, or if what it
    provides is not a Check subclass of that kind.
    """
    from opsctl.contract import Check

    entry = _entry_points().get(kind)
    if entry is None:
        known = ", ".join(kinds()) or "none installed"
        raise RegistryError(f"unknown check kind {kind!r}; known kinds: {known}")
    try:
        loaded = entry.load()
    except Exception as error:  # a third-party plugin can fail in any way on import
        raise RegistryError(
            f"check kind {kind!r} ({entry.value}) failed to load: {error}"
        ) from error
    if not (isinstance(loaded, type) and issubclass(loaded, Check)):
        raise RegistryError(f"check kind {kind!r} ({entry.value}) is not a Check subclass")
    if loaded.kind != kind:
        raise RegistryError(
            f"check kind {kind!r} ({entry.value}) declares kind {loaded.kind!r}; they must match"
        )
    return loaded
