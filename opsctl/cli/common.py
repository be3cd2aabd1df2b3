"""What the CLI nouns share: global options, loading the inventory and the store with clear
errors, and writing output for a person at a terminal or for a program in a pipe.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from opsctl.inventory import LoadedInventory
    from opsctl.store import Store

#: Exit code for bad input (an invalid inventory, a bad option value): the Nagios CRITICAL code,
#: which is also what Click uses for usage errors.
EXIT_BAD_INPUT = 2
#: Exit code when opsctl itself cannot work (the store is unreachable): UNKNOWN.
EXIT_UNKNOWN = 3


@dataclass(frozen=True)
class Options:
    """Global options, carried in ``ctx.obj``."""

    db: str | None = None
    tz: str = "Asia/Shanghai"


class Format(StrEnum):
    table = "table"
    json = "json"
    nagios = "nagios"


InventoryOption = Annotated[
    Path,
    typer.Option(
        "--inventory",
        "-i",
        envvar="OPSCTL_INVENTORY",
        show_envvar=True,
        help="Inventory YAML file.",
    ),
]
OptionalInventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        "-i",
        envvar="OPSCTL_INVENTORY",
        show_envvar=True,
        help="Inventory YAML file: its store.url and its sites' time zones are used.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Write JSON (same as --format json).")]


def options(ctx: typer.Context) -> Options:
    """Return the global options of this invocation."""
    found = ctx.find_object(Options)
    return found if found is not None else Options()


def is_terminal() -> bool:
    """True when standard output is a terminal (a person is reading)."""
    return sys.stdout.isatty()


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``message`` to standard error and return the Exit to raise."""
    typer.echo(f"opsctl: {message}", err=True)
    return typer.Exit(code)


def load_inventory(path: Path, *, as_json: bool = False) -> LoadedInventory:
    """Given an inventory path, return the loaded inventory. On errors, print every one of
    them (as JSON with ``as_json``) and exit with code 2.
    """
    from opsctl.inventory import InventoryInvalid, load

    if not path.exists():
        raise fail(f"{path}: inventory file not found (give one with -i or OPSCTL_INVENTORY)")
    try:
        return load(path)
    except InventoryInvalid as invalid:
        if as_json:
            emit_json({"valid": False, "errors": [_error_dict(e) for e in invalid.errors]})
        else:
            for error in invalid.errors:
                typer.echo(str(error), err=True)
            count = len(invalid.errors)
            typer.echo(f"{path}: {count} error{'s' if count != 1 else ''}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _error_dict(error: Any) -> dict[str, Any]:
    return {"file": error.file, "line": error.line, "path": error.path, "message": error.message}


def chosen_sites(loaded: LoadedInventory, site: str | None, inventory: Path) -> list[Any]:
    """Given a loaded inventory, the ``--site`` option and the inventory's path, return that
    site alone, or every site when no ``--site`` was given. Raise Exit (bad input) naming the
    sites there are if it is unknown."""
    sites = loaded.inventory.sites
    if site is None:
        return list(sites)
    chosen = loaded.site(site)
    if chosen is None:
        known = ", ".join(s.name for s in sites) or "none"
        raise fail(f"--site: no site named {site!r} in {inventory} (sites: {known})")
    return [chosen]


def store_url(ctx: typer.Context, loaded: LoadedInventory | None = None) -> str:
    """Return the store URL: --db / OPSCTL_DB, else the inventory's store.url (a relative
    SQLite path is taken relative to the inventory file), else the per-user default.
    """
    from opsctl.store import resolve_url

    inventory_url = None
    if loaded is not None and loaded.inventory.store.url:
        inventory_url = loaded.inventory.store.url
        if "://" not in inventory_url and not os.path.isabs(inventory_url):
            inventory_url = str((loaded.path.parent / inventory_url).resolve())
    return resolve_url(options(ctx).db, {}, inventory_url)


def open_store(ctx: typer.Context, loaded: LoadedInventory | None = None) -> Store:
    """Open the store for this invocation, or exit 3 with the reason."""
    from opsctl.store import Store, StoreError

    try:
        return Store.open(store_url(ctx, loaded))
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None


def open_store_for(ctx: typer.Context, inventory: Path | None) -> tuple[Store, dict[str, str]]:
    """Open the store of an optional inventory; return it and each site's time zone."""
    loaded = load_inventory(inventory) if inventory is not None else None
    zones = {site.name: site.timezone for site in loaded.inventory.sites} if loaded else {}
    return open_store(ctx, loaded), zones


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON on standard output (UTF-8, not ASCII-escaped)."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def local_time(value: datetime | None, tz: str) -> str:
    """Given an aware datetime, return it as ``2026-11-23 18:40:05`` in time zone ``tz``."""
    if value is None:
        return "-"
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def plain_table(headers: list[str], rows: list[list[str]]) -> str:
    """Given headers and rows of text, return a plain aligned table (stable for scripts).
    Columns are aligned by display width: a Chinese character takes two columns."""
    from rich.cells import cell_len

    widths = [cell_len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths[index], cell_len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell + " " * (widths[i] - cell_len(cell)) for i, cell in enumerate(row[:-1])] + [
            row[-1]
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


STATE_STYLE = {"OK": "green", "WARNING": "yellow", "CRITICAL": "bold red", "UNKNOWN": "magenta"}


def print_table(
    title: str, headers: list[str], rows: list[list[str]], state_column: int | None = None
) -> None:
    """Print a table: a rich table at a terminal, a plain aligned one when piped."""
    if not is_terminal():
        typer.echo(plain_table(headers, rows))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        # Text, not markup: summaries may contain brackets that rich would read as styles.
        cells = [Text(cell) for cell in row]
        if state_column is not None and row[state_column]:
            cells[state_column].stylize(STATE_STYLE.get(row[state_column].split()[0], ""))
        table.add_row(*cells)
    Console().print(table)
