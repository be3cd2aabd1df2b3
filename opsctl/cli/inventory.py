"""``opsctl inventory``: check an inventory file."""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl.cli.common import InventoryOption, JsonOption, emit_json, load_inventory

app = typer.Typer(help="Validate and inspect inventory files.", no_args_is_help=True)


@app.command("validate")
def validate(
    inventory: InventoryOption = "inventory.yaml",  # type: ignore[assignment]
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every check.")] = False,
) -> None:
    """Validate an inventory and report every error with its file, line and path (exit 2)."""
    loaded = load_inventory(inventory, as_json=as_json)
    sites = loaded.inventory.sites
    counts = {
        "sites": len(sites),
        "hosts": sum(len(s.hosts) for s in sites),
        "databases": sum(len(s.databases) for s in sites),
        "logs": sum(len(s.logs) for s in sites),
        "endpoints": sum(len(s.endpoints) for s in sites),
        "checks": len(loaded.checks),
        "enabled_checks": len(loaded.select()),
        "schedules": len(loaded.inventory.schedules),
    }
    if as_json:
        emit_json(
            {
                "valid": True,
                "files": loaded.files,
                "counts": counts,
                "checks": [
                    {"id": c.id, "kind": c.kind, "enabled": c in loaded.select()}
                    for c in loaded.checks
                ],
            }
        )
        return
    parts = [
        f"{value} {name if value != 1 else name.removesuffix('s')}"
        for name, value in counts.items()
        if name != "enabled_checks" and value
    ]
    files = f" ({len(loaded.files)} files)" if len(loaded.files) > 1 else ""
    typer.echo(
        f"{inventory}: valid{files}: " + ", ".join(parts) + f" ({counts['enabled_checks']} enabled)"
    )
    if verbose:
        enabled = {c.id for c in loaded.select()}
        for check in loaded.checks:
            typer.echo(
                f"  {check.id}  [{check.kind}]" + ("" if check.id in enabled else "  (disabled)")
            )
