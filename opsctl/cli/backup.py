"""``opsctl backup``: list the backup checks of an inventory, run a restore drill now."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    InventoryOption,
    JsonOption,
    emit_json,
    fail,
    load_inventory,
    local_time,
    open_store,
    options,
    print_table,
)

if TYPE_CHECKING:
    from opsctl.inventory import CheckInstance, LoadedInventory

app = typer.Typer(help="Backup sets and restore drills.", no_args_is_help=True)

BACKUP_KINDS = ("backup", "backup.drill")


@app.command("drill")
def drill(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="The backup.drill check: its name, or its id site/host/name.")
    ],
    inventory: InventoryOption = "inventory.yaml",  # type: ignore[assignment]
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    timeout: Annotated[
        str | None,
        typer.Option(help="Time allowed for this drill (e.g. 2h), instead of the check's timeout."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a restore drill now: restore the newest dump into a scratch database, verify it,
    drop the scratch database, store and show the result.

    The exit code is the drill's state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    from dataclasses import replace

    from opsctl.duration import parse_duration
    from opsctl.engine import Engine

    loaded = load_inventory(inventory, as_json=as_json)
    check = _find_drill(loaded, name, site, inventory)
    if timeout is not None:
        try:
            allowed = parse_duration(timeout)
        except ValueError as error:
            raise fail(f"--timeout: {error}") from None
        check = replace(check, spec=check.spec.model_copy(update={"timeout": allowed}))

    from opsctl.runner import StoreSink, status_of

    database = open_store(ctx, loaded)
    try:
        previous = {i: status_of(row) for i, row in database.statuses([check.id]).items()}
        # No previous result: a drill asked for by hand restores, whatever min_interval says.
        engine = Engine(concurrency=1, sink=StoreSink(database), retry=False, store=database)
        outcome = engine.run([check], previous, previous_results={})[0]
    finally:
        database.close()
        if "opsctl.ssh" in sys.modules:
            sys.modules["opsctl.ssh"].default_pool().close_all()
        if "opsctl.databases" in sys.modules:
            sys.modules["opsctl.databases"].default_pool().close_all()

    result = outcome.result
    if as_json:
        emit_json(
            {
                "id": check.id,
                "site": check.site.name,
                "target": check.target.name,
                "kind": check.kind,
                "name": check.name,
                **result.to_dict(),
            }
        )
    else:
        rows = [
            [item.verdict.name, item.item, item.value, item.threshold, item.advice]
            for item in result.items
        ]
        print_table(
            f"drill {check.id}",
            ["VERDICT", "ITEM", "VALUE", "THRESHOLD", "ADVICE"],
            rows,
            state_column=0,
        )
        typer.echo(f"{result.state.name}: {result.summary}")
    raise typer.Exit(int(result.state))


def _find_drill(
    loaded: LoadedInventory, name: str, site: str | None, inventory: Any
) -> CheckInstance:
    """Return the one backup.drill check called ``name`` (or with that id)."""
    drills = [
        check
        for check in loaded.select(sites=[site] if site else (), include_disabled=True)
        if check.kind == "backup.drill"
    ]
    matches = [check for check in drills if name in (check.id, check.name)]
    if not matches:
        known = ", ".join(check.id for check in drills) or "none"
        raise fail(
            f"{inventory}: no backup.drill check named {name!r} (backup.drill checks: {known})",
            EXIT_BAD_INPUT,
        )
    if len(matches) > 1:
        raise fail(
            f"{name!r} names {len(matches)} drills: {', '.join(c.id for c in matches)}; "
            "give the id (site/host/name) or --site",
            EXIT_BAD_INPUT,
        )
    return matches[0]


@app.command("list")
def list_backups(
    ctx: typer.Context,
    inventory: InventoryOption = "inventory.yaml",  # type: ignore[assignment]
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the backup and backup.drill checks with their last stored result."""
    loaded = load_inventory(inventory, as_json=as_json)
    checks = [
        check
        for check in loaded.select(sites=[site] if site else (), include_disabled=True)
        if check.kind in BACKUP_KINDS
    ]
    from opsctl.runner import result_of

    database = open_store(ctx, loaded)
    try:
        latest = {
            i: result_of(row) for i, row in database.latest_results(c.id for c in checks).items()
        }
    finally:
        database.close()
    entries = []
    for check in checks:
        config: Any = check.config
        result = latest.get(check.id)
        entries.append(
            {
                "id": check.id,
                "kind": check.kind,
                "path": config.path,
                "server": (
                    f"{config.server.engine}://{config.server.host}:{config.server.effective_port}"
                    if check.kind == "backup.drill"
                    else None
                ),
                "enabled": check.site.enabled and check.target.enabled and check.spec.enabled,
                "state": None if result is None else result.state.name,
                "started": None if result is None or result.started is None else result.started,
                "summary": None if result is None else result.summary,
                "timezone": check.site.timezone,
            }
        )
    if as_json:
        emit_json({"checks": [{k: v for k, v in e.items() if k != "timezone"} for e in entries]})
        return
    if not entries:
        typer.echo(f"{inventory}: no backup or backup.drill checks")
        return
    default_tz = options(ctx).tz
    rows = [
        [
            entry["state"] or "-",
            entry["id"],
            entry["kind"] + ("" if entry["enabled"] else " (disabled)"),
            entry["path"] + (f" -> {entry['server']}" if entry["server"] else ""),
            local_time(entry["started"], entry["timezone"] or default_tz),
            entry["summary"] or "never run",
        ]
        for entry in entries
    ]
    print_table(
        "backup checks", ["STATE", "CHECK", "KIND", "BACKUPS", "LAST RUN", "SUMMARY"], rows, 0
    )
